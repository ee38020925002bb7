"""The PKU-Reid subset shipped in ../shared/data/pku_reid_subset, read set-to-set.

    <root>/images/<pid>/<cam>_<view>.jpg     cam in 01, 02; view 1..8 (orientation sweep)
    <root>/keypoints_mediapipe.csv            (optional) pose-model keypoints

Each identity's 8 views in one camera form one "tracklet" (an orientation sweep, not a
video). Identities are split in two halves by a seeded permutation (`split` 0..9); test
identities give one query (camera `query_camera`) and one gallery (the other camera) set.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import InputError
from ..layout import DatasetLayoutError, manifest_hint, require_paths, sorted_frames, sorted_subdirs
from ..registry import DatasetInfo
from ..splits import seeded_halves
from ..tracklets import Tracklet, VideoReIDDataset

NAME = "pku_reid_subset"
PID_DIR = re.compile(r"\d{3}")
NUM_SPLITS = 10
SPLIT_SEED = 0
CAMERAS = (1, 2)


FRAME = re.compile(r"(?P<cam>0[12])_(?P<frame>[1-8])\.jpg")


def read_pku_reid(root: Path, split: int = 0, query_camera: int = 1) -> VideoReIDDataset:
    root = Path(root).expanduser().resolve()
    require_paths(NAME, root, ["images"])
    if query_camera not in CAMERAS:
        raise InputError(f"{NAME}: query_camera must be 1 or 2, got {query_camera}")
    pid_dirs = sorted_subdirs(root / "images", PID_DIR)
    if not pid_dirs:
        raise DatasetLayoutError(f"{NAME}: no <pid>/ folders under {root / 'images'}; {manifest_hint(NAME)}")
    tracks = {}
    for pid_dir in pid_dirs:
        frames = sorted_frames(NAME, pid_dir, FRAME, (".jpg",))  # validates every name
        for cam in CAMERAS:
            views = tuple(f for f in frames if FRAME.fullmatch(Path(f).name)["cam"] == f"{cam:02d}")
            if not views:
                raise DatasetLayoutError(f"{NAME}: identity {pid_dir.name} has no camera {cam:02d} views")
            tracks[(pid_dir.name, cam)] = Tracklet(frames=views, pid=int(pid_dir.name), camid=cam,
                                                   name=f"{pid_dir.name}_{cam:02d}")
    train, test = seeded_halves([d.name for d in pid_dirs], split, NUM_SPLITS, SPLIT_SEED)
    gallery_camera = 3 - query_camera
    return VideoReIDDataset(
        NAME, root,
        train=[tracks[(p, c)] for p in train for c in CAMERAS],
        query=[tracks[(p, query_camera)] for p in test],
        gallery=[tracks[(p, gallery_camera)] for p in test],
        protocol={"split": split, "num_splits": NUM_SPLITS,
                  "splits": f"seeded halves (numpy default_rng({SPLIT_SEED}))",
                  "query_camera": query_camera, "gallery_camera": gallery_camera, "set_to_set": True})


DATASET = DatasetInfo(name=NAME, reader=read_pku_reid, title="PKU-Reid subset", num_splits=NUM_SPLITS,
                      options={"split": f"0..{NUM_SPLITS - 1}", "query_camera": "1 or 2"},
                      keypoint_table="keypoints_mediapipe.csv")
