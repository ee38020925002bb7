"""A user's own folder of tracklets (no protocol, no splits), for feature extraction:

    <root>/<identity>/<tracklet>/<frames>      identity layout (identity: the folder name)
    <root>/<tracklet>/<frames>                 tracklet layout (identity unknown: pid -1)

Frames are .jpg/.jpeg/.png files, ordered by the numbers in their names (frame 9 before
frame 10). The camera is read from the tracklet folder's name where it says one (`c2`,
`cam2`, `camera_2`, as in `0006_c2_t00`), else it is -1. A synthetic world's or DukeMTMC's
split folder (query/, gallery/) has the identity layout. Anything else (frames loose in the
root, folders mixing images and sub-folders, empty folders) is a DatasetLayoutError that
shows the two layouts.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

from .layout import DatasetLayoutError
from .tracklets import Tracklet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CAMERA = re.compile(r"(?:^|[^a-z0-9])c(?:am(?:era)?)?_?(?P<cam>\d+)(?=$|[^0-9])", re.IGNORECASE)
LAYOUTS = ("expected <root>/<identity>/<tracklet>/<frames> or <root>/<tracklet>/<frames> "
           f"(frames: {'/'.join(IMAGE_SUFFIXES)})")


def _natural(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _images(folder: Path) -> List[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def _subdirs(folder: Path) -> List[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: _natural(p.name))


def camera_of(name: str) -> int:
    """The camera a tracklet folder's name gives (`0006_c2_t00` -> 2), else -1."""
    match = CAMERA.search(name)
    return int(match["cam"]) if match else -1


def _tracklet(folder: Path, pid: int, name: str) -> Tracklet:
    frames = sorted(_images(folder), key=lambda p: _natural(p.name))
    if not frames:
        raise DatasetLayoutError(f"tracklet folder {folder} holds no frames; {LAYOUTS}")
    if _subdirs(folder):
        raise DatasetLayoutError(f"{folder} holds both frames and folders; {LAYOUTS}")
    return Tracklet(tuple(str(p) for p in frames), pid, camera_of(folder.name), name)


def read_tracklet_folder(root) -> List[Tracklet]:
    """Every tracklet under root, in the layout it has (see the module doc). Identities whose
    folder name is a number keep it as pid; other names are numbered 0, 1, ... in sorted order.
    Tracklet names are `<identity>/<tracklet>` (or `<tracklet>`)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetLayoutError(f"{root} does not exist or is not a folder; {LAYOUTS}")
    if _images(root):
        raise DatasetLayoutError(f"{root} holds frames directly ({_images(root)[0].name}, ...): put each "
                                 f"tracklet's frames in a folder of its own; {LAYOUTS}")
    top = _subdirs(root)
    if not top:
        raise DatasetLayoutError(f"{root} holds no folders; {LAYOUTS}")
    if all(_images(d) for d in top):                     # <root>/<tracklet>/<frames>
        return [_tracklet(d, -1, d.name) for d in top]
    if any(_images(d) for d in top):
        with_frames = next(d for d in top if _images(d))
        without = next(d for d in top if not _images(d))
        raise DatasetLayoutError(f"{root} mixes tracklet folders ({with_frames.name}/ holds frames) and "
                                 f"other folders ({without.name}/ holds none); {LAYOUTS}")
    numbered = all(d.name.isdigit() for d in top)
    tracklets = []
    for index, identity in enumerate(top):
        folders = _subdirs(identity)
        if not folders:
            raise DatasetLayoutError(f"identity folder {identity} holds no tracklet folders; {LAYOUTS}")
        pid = int(identity.name) if numbered else index
        tracklets += [_tracklet(d, pid, f"{identity.name}/{d.name}") for d in folders]
    return tracklets
