"""Builders of small dataset trees that copy each benchmark's real on-disk layout exactly.

Images are tiny (16 x 8) but real, decodable files; the protocol files use the real
variable names, shapes and dtypes (scipy.io.savemat), so the readers see what they
would see on a user's machine.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import scipy.io
from PIL import Image


def write_image(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def build_ilidsvid(root: Path, num_persons: int = 6, num_splits: int = 10) -> Path:
    """i-LIDS-VID/sequences/cam{1,2}/personNNN/camC_personNNN_FFFFF.png + ls_set (splits x persons)."""
    rng = np.random.default_rng(0)
    person_ids = sorted(rng.choice(np.arange(1, 320), num_persons, replace=False))
    for pid in person_ids:
        for cam in (1, 2):
            start = int(rng.integers(1, 500))
            for k in range(int(rng.integers(3, 6))):
                frame = start + 7 * k  # numbers cross digit boundaries: sorting must be numeric
                write_image(root / f"i-LIDS-VID/sequences/cam{cam}/person{pid:03d}/"
                                   f"cam{cam}_person{pid:03d}_{frame:05d}.png", seed=frame)
    ls_set = np.stack([rng.permutation(num_persons) + 1 for _ in range(num_splits)]).astype(np.float64)
    split_dir = root / "train-test people splits"
    split_dir.mkdir(parents=True)
    scipy.io.savemat(split_dir / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set})
    return root


def build_prid2011(root: Path, frames: Dict[int, Sequence[int]]) -> Path:
    """prid_2011/multi_shot/cam_{a,b}/person_NNNN/FFFF.png; frames[pid] = (count cam_a, count cam_b),
    a count of 0 leaves that camera's folder out."""
    for pid, counts in frames.items():
        for cam, count in zip(("cam_a", "cam_b"), counts):
            for f in range(1, count + 1):
                write_image(root / f"prid_2011/multi_shot/{cam}/person_{pid:04d}/{f:04d}.png", seed=f)
    return root


def mars_names(info: np.ndarray) -> List[str]:
    """Image names for tracks info rows, as the official name lists spell them."""
    names: List[str] = []
    counters: Dict[tuple, int] = {}
    for start, end, pid, cam in info:
        key = (int(pid), int(cam))
        counters[key] = counters.get(key, 0) + 1
        pid_text = "00-1" if pid == -1 else f"{int(pid):04d}"
        names += [f"{pid_text}C{int(cam)}T{counters[key]:04d}F{f:03d}.jpg" for f in range(1, end - start + 2)]
    return names


def track_info(rows: Sequence[tuple]) -> np.ndarray:
    """(num_frames, pid, cam) rows -> contiguous (start, end, pid, cam) 1-based rows."""
    out, start = [], 1
    for n, pid, cam in rows:
        out.append((start, start + n - 1, pid, cam))
        start += n
    return np.array(out, dtype=np.int32)


def build_mars(root: Path, train_rows, test_rows, query_rows: Sequence[int], images: bool = True) -> Path:
    """bbox_train/, bbox_test/, info/ with name lists and the three .mat files."""
    info_dir = root / "info"
    info_dir.mkdir(parents=True)
    for split, rows, variable in (("train", train_rows, "track_train_info"),
                                  ("test", test_rows, "track_test_info")):
        info = rows if isinstance(rows, np.ndarray) else track_info(rows)
        names = mars_names(info)
        (info_dir / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        scipy.io.savemat(info_dir / f"tracks_{split}_info.mat", {variable: info})
        (root / f"bbox_{split}").mkdir()
        if images:
            for i, name in enumerate(names):
                write_image(root / f"bbox_{split}" / name[:4] / name, seed=i)
    scipy.io.savemat(info_dir / "query_IDX.mat",
                     {"query_IDX": np.asarray(query_rows, dtype=np.uint16).reshape(1, -1)})
    return root


def build_dukemtmc(root: Path, tracklets: Dict[str, Sequence[tuple]], old_naming: bool = False) -> Path:
    """<split>/<pid>/<tracklet>/<pid>_C<cam>_F<frame>_X<n>.jpg; tracklets[split] = [(pid, tid, cam, n)]."""
    for split, rows in tracklets.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for pid, tid, cam, n in rows:
            for f in range(1, n + 1):
                name = (f"{pid:04d}C{cam}F{f + 8:04d}X{tid}{f}.jpg" if old_naming
                        else f"{pid:04d}_C{cam}_F{f + 8:04d}_X{tid}{f}.jpg")
                write_image(root / split / f"{pid:04d}" / f"{tid:04d}" / name, seed=f)
    return root


def build_pku_reid(root: Path, num_persons: int = 4, views: int = 8) -> Path:
    """images/<pid:03d>/<cam:02d>_<view>.jpg for cameras 01 and 02, views 1..views."""
    for pid in range(1, num_persons + 1):
        for cam in (1, 2):
            for view in range(1, views + 1):
                write_image(root / "images" / f"{pid:03d}" / f"{cam:02d}_{view}.jpg", seed=view)
    return root


def build_mot(root: Path, sequences: Dict[str, Sequence[Sequence[tuple]]], size=(64, 48)) -> Path:
    """<root>/train/<SEQ>/{seqinfo.ini, img1/NNNNNN.jpg, gt/gt.txt, det/det.txt} in the MOTChallenge
    layout. sequences[name] = per frame, the ground-truth rows (id, x, y, w, h, visibility) of that
    frame (class 1, consider 1); each detection is its ground-truth box shifted by 1 px (score 0.9),
    plus one detection on a frame past the images (as the public det.txt covers the whole sequence)."""
    width, height = size
    for name, frames in sequences.items():
        seq = root / "train" / name
        for f in range(1, len(frames) + 1):
            path = seq / "img1" / f"{f:06d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(f).integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
        (seq / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={len(frames) + 10}\n"
            f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n")
        gt = [f"{f},{i},{x},{y},{w},{h},1,1,{v}" for f, rows in enumerate(frames, 1) for i, x, y, w, h, v in rows]
        det = [f"{f},-1,{x + 1},{y + 1},{w},{h},0.9" for f, rows in enumerate(frames, 1) for _, x, y, w, h, _ in rows]
        det.append(f"{len(frames) + 5},-1,1,1,10,20,0.5")
        for folder, lines in (("gt", gt), ("det", det)):
            (seq / folder).mkdir(exist_ok=True)
            (seq / folder / f"{folder}.txt").write_text("\n".join(lines) + "\n")
    return root
