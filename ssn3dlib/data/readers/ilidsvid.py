"""iLIDS-VID (Wang et al., ECCV 2014) in its official layout.

    <root>/i-LIDS-VID/sequences/cam1/person001/cam1_person001_00317.png
    <root>/i-LIDS-VID/sequences/cam2/person001/...
    <root>/train-test people splits/train_test_splits_ilidsvid.mat   (ls_set: 10 x 300)

A frame's name repeats its camera and person; one whose name says another than its folders is
an error (a frame copied into the wrong folder would otherwise train as the folder's person).

Protocol (the one of the dataset authors, also torchreid's): row `split` of ls_set holds
1-based indices into the sorted person folders; its first half is the test identities,
its second half the train identities. Query = cam1 sequences of the test identities,
gallery = their cam2 sequences. Results are the mean over the 10 splits.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..layout import DatasetLayoutError, manifest_hint, require_paths, sorted_frames, sorted_subdirs
from ..registry import DatasetInfo
from ..tracklets import Tracklet, VideoReIDDataset

NAME = "ilidsvid"
SEQUENCES = "i-LIDS-VID/sequences"
SPLIT_FILE = "train-test people splits/train_test_splits_ilidsvid.mat"
PERSON = re.compile(r"person(?P<pid>\d{3})")
FRAME = re.compile(r"cam(?P<cam>[12])_person(?P<pid>\d{3})_(?P<frame>\d+)\.png")
NUM_SPLITS = 10


def read_splits(root: Path) -> np.ndarray:
    import scipy.io

    path = Path(root) / SPLIT_FILE
    try:
        ls_set = np.asarray(scipy.io.loadmat(path)["ls_set"]).astype(np.int64)
    except KeyError:
        raise DatasetLayoutError(f"{NAME}: {path} has no variable 'ls_set'; {manifest_hint(NAME)}") from None
    except Exception as err:
        raise DatasetLayoutError(f"{NAME}: cannot read {path} ({err}); {manifest_hint(NAME)}") from err
    if ls_set.ndim != 2 or ls_set.shape[1] % 2:
        raise DatasetLayoutError(f"{NAME}: ls_set must be (splits, 2 x identities per half), got "
                                 f"{ls_set.shape}")
    return ls_set


def read_ilidsvid(root: Path, split: int = 0) -> VideoReIDDataset:
    root = Path(root).expanduser().resolve()
    require_paths(NAME, root, [f"{SEQUENCES}/cam1", f"{SEQUENCES}/cam2", SPLIT_FILE])
    ls_set = read_splits(root)
    if not 0 <= split < len(ls_set):
        raise InputError(f"{NAME}: split must be in 0..{len(ls_set) - 1}, got {split}")
    cams = {c: [p.name for p in sorted_subdirs(root / SEQUENCES / f"cam{c}", PERSON)] for c in (1, 2)}
    if cams[1] != cams[2]:
        only = sorted(set(cams[1]) ^ set(cams[2]))
        raise DatasetLayoutError(f"{NAME}: cam1 and cam2 must hold the same person folders; "
                                 f"unmatched: {only[:5]}")
    persons = cams[1]
    if ls_set.max() > len(persons) or ls_set.min() < 1:
        raise DatasetLayoutError(f"{NAME}: the split file indexes persons 1..{ls_set.max()} but "
                                 f"{len(persons)} person folders were found under {root / SEQUENCES}")
    half = ls_set.shape[1] // 2
    test_ids = sorted(int(i) - 1 for i in ls_set[split, :half])
    train_ids = sorted(int(i) - 1 for i in ls_set[split, half:])

    def tracklet(person: str, cam: int) -> Tracklet:
        folder = root / SEQUENCES / f"cam{cam}" / person
        frames = sorted_frames(NAME, folder, FRAME, (".png",))
        pid = PERSON.fullmatch(person)["pid"]
        for frame in frames:  # the name repeats camera and person: a frame filed under another is refused
            m = FRAME.fullmatch(Path(frame).name)
            if (m["cam"], m["pid"]) != (str(cam), pid):
                raise DatasetLayoutError(f"{NAME}: frame {frame} is named for cam{m['cam']} person{m['pid']} but "
                                         f"lies in cam{cam}/{person}/; move it to its own folder (or delete it), "
                                         f"then run `ssn3d data verify {NAME}`; {manifest_hint(NAME)}")
        return Tracklet(frames=tuple(frames), pid=int(PERSON.fullmatch(person)["pid"]), camid=cam,
                        name=f"cam{cam}_{person}")

    train = [tracklet(persons[i], cam) for i in train_ids for cam in (1, 2)]
    query = [tracklet(persons[i], 1) for i in test_ids]
    gallery = [tracklet(persons[i], 2) for i in test_ids]
    return VideoReIDDataset(NAME, root, train, query, gallery,
                            protocol={"split": split, "num_splits": len(ls_set),
                                      "query_camera": 1, "gallery_camera": 2})


DATASET = DatasetInfo(name=NAME, reader=read_ilidsvid, title="iLIDS-VID", num_splits=NUM_SPLITS,
                      options={"split": f"0..{NUM_SPLITS - 1}"}, lambda_ssn=0.1)
