"""MARS (Zheng et al., ECCV 2016) in its official layout.

    <root>/bbox_train/<pid>/<pid>C<cam>T<tracklet>F<frame>.jpg
    <root>/bbox_test/<pid>/...                 (pid folders 0000 = distractors, 00-1 = junk)
    <root>/info/train_name.txt, test_name.txt  (one image name per line, track order)
    <root>/info/tracks_train_info.mat          (track_train_info: start, end, pid, cam; 1-based)
    <root>/info/tracks_test_info.mat           (track_test_info)
    <root>/info/query_IDX.mat                  (query_IDX: 1-based rows of track_test_info)

Protocol: pid -1 (junk) tracklets are dropped, pid 0 (distractors) stay in the gallery.
Two gallery protocols exist in the literature, chosen by name:
- "official" (default): every test tracklet is in the gallery, queries included, as in
  the MARS evaluation code; same pid + same camera (the query itself) is junk. With junk
  dropped: 1980 queries x 11310 gallery tracklets.
- "gallery-only": the test tracklets that are not queries (torchreid, AP3D): 9330.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...errors import InputError
from ..layout import DatasetLayoutError, manifest_hint, require_paths
from ..registry import DatasetInfo
from ..tracklets import Tracklet, VideoReIDDataset

NAME = "mars"
GALLERY_PROTOCOLS = {
    "official": "all test tracklets incl. queries (MARS evaluation code)",
    "gallery-only": "test tracklets that are not queries (torchreid, AP3D)",
}
INFO_FILES = {"tracks_train_info.mat": "track_train_info", "tracks_test_info.mat": "track_test_info",
              "query_IDX.mat": "query_IDX"}
NAME_LISTS = ("train_name.txt", "test_name.txt")
IMAGE_NAME = re.compile(r"(?P<pid>\d{4}|00-1)C(?P<cam>\d)T(?P<tracklet>\d{4})F(?P<frame>\d{3})\.jpg")


def read_protocol(info_dir: Path) -> Dict[str, np.ndarray]:
    """Load and sanity-check the three .mat files (no images needed)."""
    import scipy.io

    info_dir = Path(info_dir)
    require_paths(NAME, info_dir, INFO_FILES)
    out = {}
    for filename, variable in INFO_FILES.items():
        try:
            mat = scipy.io.loadmat(info_dir / filename)
        except Exception as err:
            raise DatasetLayoutError(f"{NAME}: cannot read {info_dir / filename} ({err}); "
                                     f"{manifest_hint(NAME)}") from err
        if variable not in mat:
            raise DatasetLayoutError(f"{NAME}: {info_dir / filename} has no variable {variable!r}; "
                                     f"{manifest_hint(NAME)}")
        out[variable] = np.asarray(mat[variable]).astype(np.int64)
    for variable in ("track_train_info", "track_test_info"):
        info = out[variable]
        if info.ndim != 2 or info.shape[1] != 4 or np.any(info[:, 0] > info[:, 1]) or info.min(initial=1) < -1:
            raise DatasetLayoutError(f"{NAME}: {variable} must be rows of (start, end, pid, cam) with "
                                     f"start <= end; got shape {info.shape}")
    query = out["query_IDX"].ravel()
    n_test = len(out["track_test_info"])
    if query.min() < 1 or query.max() > n_test or len(np.unique(query)) != len(query):
        raise DatasetLayoutError(f"{NAME}: query_IDX must hold distinct 1-based rows of "
                                 f"track_test_info (1..{n_test})")
    out["query_IDX"] = query
    return out


def _read_names(path: Path) -> List[str]:
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return names


def _tracklets(names: List[str], info: np.ndarray, image_dir: Path, split: str) -> List[Optional[Tracklet]]:
    """One Tracklet per info row (None for junk pid -1), frames sorted by frame number."""
    if info[:, 1].max(initial=0) > len(names):
        raise DatasetLayoutError(f"{NAME}: tracks info of {split} points past the end of its name "
                                 f"list ({len(names)} names); the info/ files do not belong together")
    out: List[Optional[Tracklet]] = []
    for row, (start, end, pid, cam) in enumerate(info):
        if pid == -1:
            out.append(None)
            continue
        chunk = names[start - 1:end]
        parsed = [IMAGE_NAME.fullmatch(n) for n in chunk]
        bad = [n for n, m in zip(chunk, parsed) if m is None]
        if bad:
            raise DatasetLayoutError(f"{NAME}: image name {bad[0]!r} in {split} does not follow "
                                     f"<pid>C<cam>T<tracklet>F<frame>.jpg")
        if any(int(m["pid"]) != pid or int(m["cam"]) != cam for m in parsed):
            raise DatasetLayoutError(f"{NAME}: {split} track {row + 1} is pid {pid} cam {cam} in the "
                                     f".mat file but its image names say otherwise ({chunk[0]})")
        ordered = sorted(zip((int(m["frame"]) for m in parsed), chunk))
        frames = tuple(str(image_dir / n[:4] / n) for _, n in ordered)
        out.append(Tracklet(frames=frames, pid=int(pid), camid=int(cam), name=ordered[0][1][:11]))
    return out


def _check_files_exist(tracklets: List[Tracklet], split_dir: Path) -> None:
    """One directory listing per identity folder, not one stat per image (1.2M images)."""
    listing: Dict[str, set] = {}
    missing = []
    for t in tracklets:
        for frame in t.frames:
            folder, name = os.path.split(frame)
            if folder not in listing:
                listing[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
            if name not in listing[folder]:
                missing.append(frame)
    if missing:
        raise DatasetLayoutError(f"{NAME}: {len(missing)} images listed in info/ are missing under "
                                 f"{split_dir}, e.g. {missing[0]}; re-extract the archive "
                                 f"({manifest_hint(NAME)})")


def read_mars(root: Path, gallery: str = "official", check_files: bool = True) -> VideoReIDDataset:
    """Read MARS; see the module docstring for the layout and the gallery protocols."""
    if gallery not in GALLERY_PROTOCOLS:
        raise InputError(f"unknown MARS gallery protocol {gallery!r}; choose one of "
                         f"{sorted(GALLERY_PROTOCOLS)}")
    root = Path(root).expanduser().resolve()
    require_paths(NAME, root, ["bbox_train", "bbox_test", "info"] +
                  [f"info/{f}" for f in (*INFO_FILES, *NAME_LISTS)])
    protocol = read_protocol(root / "info")
    train = _tracklets(_read_names(root / "info" / "train_name.txt"), protocol["track_train_info"],
                       root / "bbox_train", "train")
    test = _tracklets(_read_names(root / "info" / "test_name.txt"), protocol["track_test_info"],
                      root / "bbox_test", "test")
    query_rows = set(int(i) - 1 for i in protocol["query_IDX"])
    query = [test[i] for i in sorted(query_rows)]
    if any(t is None for t in query):
        raise DatasetLayoutError(f"{NAME}: query_IDX selects a junk (pid -1) tracklet")
    if gallery == "official":
        gallery_tracks = [t for t in test if t is not None]
    else:
        gallery_tracks = [t for i, t in enumerate(test) if t is not None and i not in query_rows]
    train = [t for t in train if t is not None]
    if check_files:
        _check_files_exist(train, root / "bbox_train")
        _check_files_exist([t for t in test if t is not None], root / "bbox_test")
    return VideoReIDDataset(NAME, root, train, query, gallery_tracks,
                            protocol={"gallery": gallery, "gallery_description": GALLERY_PROTOCOLS[gallery],
                                      "junk_pid": -1, "distractor_pid": 0})


def check_protocol_files(root: Path, manifest: Dict) -> Tuple[str, List[str]]:
    """The info/*.mat files alone (under root/info, or root itself) against the manifest's
    raw_tracks: a summary line and the mismatches. Needs no images."""
    info_dir = root / "info" if (root / "info").is_dir() else root
    protocol = read_protocol(info_dir)
    found = {"train": len(protocol["track_train_info"]), "test": len(protocol["track_test_info"]),
             "query": len(protocol["query_IDX"])}
    summary = f"{NAME} protocol files in {info_dir}: " + ", ".join(f"{k} {v}" for k, v in found.items())
    return summary, [f"{k}: found {found[k]}, manifest says {v}" for k, v in manifest["raw_tracks"].items()
                     if found[k] != v]


DATASET = DatasetInfo(name=NAME, reader=read_mars, title="MARS", lambda_ssn=0.1,
                      options={"gallery": " | ".join(GALLERY_PROTOCOLS), "check_files": "true | false"},
                      protocol_counts={("gallery", "gallery-only"): "counts_gallery_only"},
                      protocol_check=check_protocol_files)
