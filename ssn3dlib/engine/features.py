"""Features out of a trained model: one embedding per tracklet of a registered dataset or of
a user's own folder (ssn3dlib.data.folder), computed as the evaluation computes them (all
frames, clips of eval.clip_len, their embeddings averaged: `evaluator.tracklet_features`),
saved with each tracklet's identity, camera, split and frames.

    from ssn3dlib.engine.features import extract_features, save_features, load_features
    feats = extract_features("reports/runs/.../best.pt", images="my_crops/")
    save_features(feats, "features.npz")
    load_features("features.npz")["features"]           # (N, D) float32

The .npz holds plain arrays only (no pickles): features (N, D), name, identity, pid, camid,
split (N,), frames (all frame paths, relative to `root`) with frame_offsets (N + 1): tracklet
i's frames are frames[frame_offsets[i]:frame_offsets[i + 1]]; meta is a JSON string (the
checkpoint, its run, the source folder).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..data.tracklets import Tracklet
from ..errors import InputError
from ..paths import output_file
from .config import ConfigError

SPLITS = ("train", "query", "gallery")


@dataclass
class TrackletFeatures:
    """Embeddings (N, D) of N tracklets, with the split each came from and what made them."""

    features: np.ndarray
    tracklets: List[Tracklet]
    splits: List[str]
    root: Path
    meta: Dict[str, Any]


def _dataset_tracklets(config, name: str, root: Optional[Path], splits: Sequence[str], progress: bool):
    """(tracklets, split names, root) of a registered dataset: the checkpoint's own (its
    protocol options, e.g. the split) when it is the one the model was trained on."""
    from ..data.readers import read_dataset
    from ..paths import data_root
    from .build import prepare_dataset

    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise InputError(f"unknown split(s) {unknown}; choose from {', '.join(SPLITS)}")
    if name == config.data.name and root is None:
        dataset = prepare_dataset(config.data, progress=progress)
    else:
        dataset = read_dataset(name, Path(root) if root is not None else data_root() / name)
    tracklets, names = [], []
    for split in splits:
        tracklets += getattr(dataset, split)
        names += [split] * len(getattr(dataset, split))
    if not tracklets:
        raise InputError(f"{name} at {dataset.root} has no tracklets in {', '.join(splits)}")
    return tracklets, names, Path(dataset.root)


def _keypoints(config, name: str, root: Path, table: Optional[Union[str, Path]], from_folder: bool):
    """The supervised strategy's per-frame parts (None for every other model)."""
    from .build import keypoints_at_test_time, load_keypoints

    if not keypoints_at_test_time(config):
        return None
    if table is None and from_folder:
        raise ConfigError(f"model.strategy={config.model.strategy!r} takes each frame's keypoints at test time: "
                          f"give a keypoint table (image,keypoint,x,y,visibility; image paths relative to "
                          f"{root}) with --keypoints")
    keypoints = str(Path(table).expanduser().resolve()) if table is not None else "auto"
    data = replace(config.data, name=name if not from_folder else config.data.name, keypoints=keypoints)
    return load_keypoints(replace(config, data=data), root)


def extract_features(checkpoint: Union[str, Path], images: Optional[Union[str, Path]] = None,
                     dataset: Optional[str] = None, root: Optional[Union[str, Path]] = None,
                     splits: Sequence[str] = SPLITS, keypoints: Optional[Union[str, Path]] = None,
                     batch_size: Optional[int] = None, device: str = "auto", progress: bool = True,
                     overrides: Sequence[str] = ()) -> TrackletFeatures:
    """One embedding per tracklet of `images` (a folder, see ssn3dlib.data.folder) or of
    `dataset` (a registered name; root: where it lies, default the checkpoint's own data for
    its own dataset, else the data root). keypoints: a keypoint table, for the supervised
    strategy (a dataset's own table is found by itself). batch_size: clips per forward pass
    (eval.clips_per_batch). Raises CheckpointError for a file that is no engine checkpoint,
    DatasetLayoutError for a folder of another layout."""
    from ..data.folder import read_tracklet_folder
    from .evaluator import load_trained, run_description, tracklet_features

    if (images is None) == (dataset is None):
        raise InputError("give either images (a folder of tracklets) or dataset (a registered name)")
    if batch_size is not None:
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        overrides = [*overrides, f"eval.clips_per_batch={batch_size}"]
    trained = load_trained(checkpoint, overrides, device)
    config = trained.config
    if images is not None:
        tracklets = read_tracklet_folder(images)
        names, source = ["images"] * len(tracklets), Path(images).expanduser().resolve()
        kp = _keypoints(config, config.data.name, source, keypoints, from_folder=True)
    else:
        tracklets, names, source = _dataset_tracklets(config, dataset, Path(root) if root else None, splits,
                                                      progress)
        kp = _keypoints(config, dataset, source, keypoints, from_folder=False)
    feats = tracklet_features(trained.model, config, tracklets, trained.device, trained.amp_dtype, progress, kp)
    meta = {"checkpoint": str(Path(checkpoint).resolve()), "epochs": trained.payload.get("epoch"),
            "run": run_description(config), "source": "images" if images is not None else dataset,
            "root": str(source), "clip_len": config.eval.clip_len, "distance": config.eval.metric}
    return TrackletFeatures(feats.numpy().astype(np.float32), tracklets, names, source, meta)


def _relative(path: str, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:   # another drive (Windows)
        return path


def check_output(path: Union[str, Path]) -> Path:
    """The features file to write, refused unless it is a .npz (before any work is done)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{path}: features are written as .npz (parquet would need pyarrow, which this "
                         f"environment does not have); name the file features.npz")
    return output_file(path, (".npz",))


def save_features(result: TrackletFeatures, path: Union[str, Path]) -> Path:
    """Write a .npz (see the module doc); another suffix is refused (parquet needs pyarrow,
    which is not a dependency)."""
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [_relative(f, result.root) for t in result.tracklets for f in t.frames]
    offsets = np.cumsum([0] + [len(t) for t in result.tracklets])
    identity = [t.name.split("/")[0] if "/" in t.name else str(t.pid) for t in result.tracklets]
    np.savez(path, features=result.features, name=np.array([t.name for t in result.tracklets], dtype=str),
             identity=np.array(identity, dtype=str), pid=np.array([t.pid for t in result.tracklets]),
             camid=np.array([t.camid for t in result.tracklets]), split=np.array(result.splits, dtype=str),
             frames=np.array(frames, dtype=str), frame_offsets=offsets,
             meta=np.array(json.dumps({**result.meta, "root": str(result.root)})))
    return path


def load_features(path: Union[str, Path]) -> Dict[str, Any]:
    """The arrays of a features .npz, meta parsed, plus `tracklet_frames` (one list per tracklet)."""
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    out["meta"] = json.loads(str(out["meta"]))
    o = out["frame_offsets"]
    out["tracklet_frames"] = [out["frames"][o[i]:o[i + 1]].tolist() for i in range(len(o) - 1)]
    return out
