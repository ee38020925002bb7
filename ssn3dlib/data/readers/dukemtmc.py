"""DukeMTMC-VideoReID (Wu et al., CVPR 2018) in its official layout.

    <root>/train/<pid>/<tracklet>/<pid>_C<cam>_F<frame>_X<n>.jpg
    <root>/query/<pid>/<tracklet>/...
    <root>/gallery/<pid>/<tracklet>/...

Both image naming formats of the releases are accepted: 0001_C6_F0099_X30823.jpg and
0001C6F0099X30823.jpg. Frames are sorted by the F number; a tracklet whose frames
disagree on identity or camera is an error.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..layout import DatasetLayoutError, require_paths, sorted_frames, sorted_subdirs
from ..registry import DatasetInfo
from ..tracklets import Tracklet, VideoReIDDataset

NAME = "dukemtmc-videoreid"
SPLITS = ("train", "query", "gallery")
PID_DIR = re.compile(r"\d{4}")
TRACKLET_DIR = re.compile(r"\d{4}")
FRAME = re.compile(r"(?P<pid>\d{4})_?C(?P<cam>\d)_?F(?P<frame>\d{4})_?X(?P<x>\d+)\.jpg")


def _read_split(root: Path, split: str):
    tracklets = []
    for pid_dir in sorted_subdirs(root / split, PID_DIR):
        for tdir in sorted_subdirs(pid_dir, TRACKLET_DIR):
            frames = sorted_frames(NAME, tdir, FRAME, (".jpg",))
            parsed = {(m["pid"], m["cam"]) for m in (FRAME.fullmatch(Path(f).name) for f in frames)}
            if len(parsed) != 1 or next(iter(parsed))[0] != pid_dir.name:
                raise DatasetLayoutError(f"{NAME}: frames of {tdir} disagree with their folder on "
                                         f"identity or camera: {sorted(parsed)[:3]}")
            cam = int(next(iter(parsed))[1])
            tracklets.append(Tracklet(frames=tuple(frames), pid=int(pid_dir.name), camid=cam,
                                      name=f"{pid_dir.name}_C{cam}_T{tdir.name}"))
    if not tracklets:
        raise DatasetLayoutError(f"{NAME}: no <pid>/<tracklet>/ folders under {root / split}")
    return tracklets


def read_dukemtmc(root: Path) -> VideoReIDDataset:
    root = Path(root).expanduser().resolve()
    require_paths(NAME, root, SPLITS)
    train, query, gallery = (_read_split(root, s) for s in SPLITS)
    return VideoReIDDataset(NAME, root, train, query, gallery, protocol={"gallery": "official folders"})


DATASET = DatasetInfo(name=NAME, reader=read_dukemtmc, title="DukeMTMC-VideoReID", lambda_ssn=0.05)
