"""Checks every reader runs before reading: required paths, frame naming, readable images.

Errors name what is wrong, where, and where the manifest says to get the data, so a
user never trains on a half-extracted archive or silently re-ordered frames.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, List, Pattern, Sequence

from ..errors import MissingFile


class DatasetLayoutError(MissingFile):
    """A dataset tree does not match the layout its reader expects."""


def manifest_hint(name: str) -> str:
    return f"see data_manifests/{name}.yaml for the expected layout and where to download it"


def require_paths(dataset: str, root: Path, relative: Iterable[str]) -> None:
    """Fail with one message listing every required path missing under root."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{dataset}: dataset root {root} does not exist or is not a "
                                 f"folder; {manifest_hint(dataset)}")
    missing = [rel for rel in relative if not (root / rel).exists()]
    if missing:
        raise DatasetLayoutError(f"{dataset}: missing {', '.join(repr(m) for m in missing)} under "
                                 f"{root}; {manifest_hint(dataset)}")


def sorted_frames(dataset: str, folder: Path, pattern: Pattern[str], suffixes: Sequence[str]) -> List[str]:
    """Frame files of one tracklet folder, sorted by the frame number the name carries.

    pattern must have a named group `frame`. Files with the right suffix but a
    name that does not match are an error (never silently skipped or mis-sorted).
    """
    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes]
    if not files:
        raise DatasetLayoutError(f"{dataset}: tracklet folder {folder} holds no "
                                 f"{'/'.join(suffixes)} frames; {manifest_hint(dataset)}")
    numbered = []
    for path in files:
        match = pattern.fullmatch(path.name)
        if not match:
            raise DatasetLayoutError(f"{dataset}: frame {path} does not follow the naming "
                                     f"{pattern.pattern!r}; {manifest_hint(dataset)}")
        numbered.append((int(match.group("frame")), path.name, str(path)))
    numbered.sort()
    return [p for _, _, p in numbered]


def sorted_subdirs(folder: Path, pattern: Pattern[str] = re.compile(r".*")) -> List[Path]:
    """Sub-folders whose names match, in sorted order (identity folders, tracklet folders)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and pattern.fullmatch(p.name))


def check_images_readable(paths: Iterable[str]) -> int:
    """Decode every image; raise naming the first unreadable file. Returns the count."""
    from PIL import Image

    count = 0
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()
        except Exception as err:  # PIL raises several types for corrupt files
            raise DatasetLayoutError(f"unreadable image {path}: {type(err).__name__}: {err}. "
                                     f"Re-extract the dataset archive.") from err
        count += 1
    return count
