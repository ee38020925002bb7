"""Reading a generated world back (read_world) as train / query / gallery tracklets.

The folder is checked before it is trusted: identity and tracklet folder names, frames
numbered 0000 on without gaps, and the tracklet, image, crop and keypoint-row counts that
world.yaml records; each error says how to write the world again.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

from ...errors import InputError
from ..layout import DatasetLayoutError
from ..tracklets import Tracklet, VideoReIDDataset
from .config import NAME, SPLITS, WorldConfig

_REGENERATE = "generate it with generate_world(WorldConfig(...), root)"


_PID_DIR = re.compile(r"\d{4}")
_TRACK_DIR = re.compile(r"(?P<pid>\d{4})_c(?P<cam>\d+)_t(?P<k>\d{2})")
_FRAME_FILE = re.compile(r"(?P<frame>\d{4})\.png")


def _read_split(root: Path, split: str) -> List[Tracklet]:
    folder = root / split
    if not folder.is_dir():
        raise DatasetLayoutError(f"{NAME}: missing folder {folder}; {_REGENERATE}")
    tracklets = []
    for pid_dir in sorted(folder.iterdir()):
        if not (pid_dir.is_dir() and _PID_DIR.fullmatch(pid_dir.name)):
            raise InputError(f"{NAME}: unexpected entry {pid_dir} (identity folders are 4 digits); {_REGENERATE}")
        for tdir in sorted(pid_dir.iterdir()):
            match = _TRACK_DIR.fullmatch(tdir.name)
            if not (tdir.is_dir() and match and match.group("pid") == pid_dir.name):
                raise InputError(f"{NAME}: unexpected entry {tdir} (tracklet folders are "
                                 f"{pid_dir.name}_c<cam>_t<kk>); {_REGENERATE}")
            tracklets.append(Tracklet(_frames(tdir), int(pid_dir.name), int(match.group("cam")), tdir.name))
    return tracklets


def _frames(folder: Path) -> Tuple[str, ...]:
    """Frames 0000.png .. n-1 in order; a gap means a deleted frame."""
    names = sorted(p.name for p in folder.iterdir())
    bad = [n for n in names if not _FRAME_FILE.fullmatch(n)]
    if bad:
        raise InputError(f"{NAME}: unexpected files {bad[:3]} in {folder} (frames are NNNN.png); {_REGENERATE}")
    if not names:
        raise DatasetLayoutError(f"{NAME}: tracklet folder {folder} holds no frames; {_REGENERATE}")
    expected = [f"{i:04d}.png" for i in range(len(names))]
    if names != expected:
        missing = sorted(set(f"{i:04d}.png" for i in range(int(names[-1][:4]) + 1)) - set(names))
        raise DatasetLayoutError(f"{NAME}: frame(s) {missing[:5]} missing in {folder}; {_REGENERATE}")
    return tuple(str(folder / n) for n in names)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def read_world(root) -> VideoReIDDataset:
    """Read a generated world back as train / query / gallery tracklets, checking it first."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{NAME}: no world at {root} (folder missing); {_REGENERATE}")
    meta_path = root / "world.yaml"
    if not meta_path.is_file():
        raise DatasetLayoutError(f"{NAME}: {meta_path} missing (an incomplete or foreign folder); {_REGENERATE}")
    meta = yaml.safe_load(meta_path.read_text())
    if not isinstance(meta, dict) or "counts" not in meta or "config" not in meta:
        raise InputError(f"{NAME}: {meta_path} lacks 'config' or 'counts'; {_REGENERATE}")
    config = WorldConfig.from_dict(meta["config"])
    splits = {split: _read_split(root, split) for split in SPLITS}
    dataset = VideoReIDDataset(NAME, root, splits["train"], splits["query"], splits["gallery"],
                               {"gallery": "gallery only", "misalignment": config.misalignment,
                                "seed": config.seed, "occlusion_rate": config.effective_occlusion_rate})
    _check_counts(root, meta, dataset)
    return dataset


def _check_counts(root: Path, meta: Dict, dataset: VideoReIDDataset) -> None:
    found = dataset.counts()
    bad = [f"{split} {k}: found {found[split][k]}, world.yaml says {v}"
           for split in SPLITS for k, v in meta["counts"][split].items() if found[split][k] != v]
    for rel, rows in meta.get("keypoint_rows", {}).items():
        path = root / rel
        if not path.is_file():
            raise DatasetLayoutError(f"{NAME}: {path} missing; {_REGENERATE}")
        if _count_lines(path) - 1 != rows:
            bad.append(f"{rel}: found {_count_lines(path) - 1} rows, world.yaml says {rows}")
    crops = len(list((root / "crops").glob("*.png"))) if (root / "crops").is_dir() else 0
    if crops != meta["counts"].get("crops", {}).get("images", 0):
        bad.append(f"crops images: found {crops}, world.yaml says {meta['counts']['crops']['images']}")
    if bad:
        raise InputError(f"{NAME}: {root} does not match its world.yaml:\n  " + "\n  ".join(bad) +
                         f"\n{_REGENERATE}")
