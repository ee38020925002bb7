"""Writing a world to disk (generate_world), in the tree data_manifests/synthetic_world.yaml describes.

Every tracklet and static crop is rendered (in worker processes on a large world; the
files do not depend on their number) and saved as metadata-free PNG, the keypoint and
tracklet CSVs keep the plan's order, and world.yaml (config, counts, cameras, look-alike
pairs) is written last, as the mark of a complete world: a folder that already holds a
complete world of the same config is kept as it is.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from filelock import FileLock
from PIL import Image
from tqdm import tqdm

from ...errors import InputError
from .config import NAME, SPLITS, WorldConfig
from .pedestrian import KEYPOINT_NAMES
from .plan import WorldPlan, plan_world
from .reading import read_world
from .rendering import render_crop, render_tracklet

FORMAT_VERSION = 1
VISIBILITY_DOC = {"1": "visible", "0.5": "self-occluded (behind another body part or on the far side "
                  "of the body); coordinates exact", "0": "hidden by an occluder or outside the crop"}


def _save_png(image: np.ndarray, path: Path) -> None:
    # No metadata, fixed compression: the same pixels give the same bytes.
    Image.fromarray(image).save(path, format="PNG", compress_level=6)


def _keypoint_rows(rel: str, keypoints) -> List[str]:
    return [f"{rel},{name},{x:.2f},{y:.2f},{v:g}" for name, (x, y, v) in keypoints.items()]


_WORKER: Dict[str, object] = {}


def _init_worker(config: WorldConfig, root: str) -> None:
    _WORKER["plan"], _WORKER["root"] = plan_world(config), Path(root)


def _write_tracklet(i: int) -> Tuple[List[str], int]:
    plan, root = _WORKER["plan"], _WORKER["root"]
    tp = plan.tracklets[i]
    folder = root / tp.folder
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for t, frame in enumerate(render_tracklet(plan, tp)):
        rel = f"{tp.folder}/{t:04d}.png"
        _save_png(frame.image, root / rel)
        rows += _keypoint_rows(rel, frame.keypoints)
    return rows, tp.n_frames


def _write_crop(i: int) -> Tuple[List[str], int]:
    plan, root = _WORKER["plan"], _WORKER["root"]
    rel = f"crops/{i:04d}.png"
    frame = render_crop(plan, plan.crops[i])
    _save_png(frame.image, root / rel)
    return _keypoint_rows(rel, frame.keypoints), 1


def _write_csv(path: Path, header: str, rows: Sequence[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def world_counts(plan: WorldPlan) -> Dict[str, Dict[str, int]]:
    out = {}
    for split in SPLITS:
        ts = [t for t in plan.tracklets if t.split == split]
        out[split] = {"identities": len({t.pid for t in ts}), "tracklets": len(ts),
                      "images": sum(t.n_frames for t in ts)}
    out["crops"] = {"images": len(plan.crops)}
    return out


def world_description(plan: WorldPlan) -> Dict:
    """What world.yaml records: the config, the counts and how the world was built."""
    config = plan.config
    n_images = sum(t.n_frames for t in plan.tracklets)
    return {
        "name": NAME,
        "generator": "ssn3dlib.data.synthetic.generate_world",
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "effective_occlusion_rate": round(config.effective_occlusion_rate, 6),
        "counts": world_counts(plan),
        "keypoint_rows": {"keypoints.csv": n_images * len(KEYPOINT_NAMES),
                          "crops/keypoints.csv": len(plan.crops) * len(KEYPOINT_NAMES)},
        "keypoints": list(KEYPOINT_NAMES),
        "visibility": dict(VISIBILITY_DOC),
        "coordinates": "crop pixels, continuous: (0, 0) is the top-left corner, "
                       "pixel (i, j) covers [i, i+1) x [j, j+1)",
        "splits": {"train": plan.train_pids, "test": plan.test_pids},
        "look_alikes": plan.look_alikes,
        "cameras": [cam.describe() for cam in plan.cameras.values()],
    }


def _prepare_root(root: Path, overwrite: bool) -> None:
    """Empty a previous world at root; never delete a folder that is not a generated world."""
    if root.exists() and any(root.iterdir()):
        if not (root / "world.yaml").is_file() and not overwrite:
            raise InputError(f"{root} is not empty and holds no world.yaml: refusing to write a synthetic "
                             f"world over it (choose an empty folder or pass overwrite=True)")
        (root / "world.yaml").unlink(missing_ok=True)  # first: a half-written world is never accepted
        for name in (*SPLITS, "crops"):
            shutil.rmtree(root / name, ignore_errors=True)
        for name in ("keypoints.csv", "tracklets.csv"):
            (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def _stored_config(root: Path) -> Optional[Dict]:
    try:
        return yaml.safe_load((root / "world.yaml").read_text()).get("config")
    except (OSError, AttributeError, yaml.YAMLError):
        return None


def generate_world(config: WorldConfig, root, progress: bool = True, workers: Optional[int] = None,
                   overwrite: bool = False) -> Path:
    """Write the world of `config` under `root` (the tree: data_manifests/synthetic_world.yaml).

    Idempotent: if root already holds a complete world of the same config it is kept as it
    is; a world of another config is replaced. Tracklets render in `workers` processes
    (default: the CPU count, at most 8; small worlds stay in this process); the files are
    the same whatever the number.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    # Processes that ask for the same world at once (a study's parallel runs on a fresh cache)
    # take turns: the first writes it, the others then find it complete.
    with FileLock(str(root.parent / f".{root.name}.lock")):
        return _generate_locked(config, root, progress, workers, overwrite)


def _generate_locked(config: WorldConfig, root: Path, progress: bool, workers: Optional[int],
                     overwrite: bool) -> Path:
    if not overwrite and _stored_config(root) == config.to_dict():
        try:
            read_world(root)
            return root
        except (FileNotFoundError, ValueError):
            pass  # incomplete or damaged: write it again
    _prepare_root(root, overwrite)
    start = time.perf_counter()
    plan = plan_world(config)
    tracks, crops = _render_all(config, plan, root, progress, workers)
    _write_csv(root / "keypoints.csv", "image,keypoint,x,y,visibility", tracks)
    (root / "crops").mkdir(exist_ok=True)
    _write_csv(root / "crops" / "keypoints.csv", "image,keypoint,x,y,visibility", crops)
    _write_csv(root / "crops" / "crops.csv", "image,pid,camid,yaw_deg",
               [f"crops/{c.index:04d}.png,{c.pid},{c.camid},{math.degrees(c.yaw):.1f}" for c in plan.crops])
    _write_csv(root / "tracklets.csv", "tracklet,split,pid,camid,frames,yaw_deg",
               [f"{t.folder},{t.split},{t.pid},{t.camid},{t.n_frames},{math.degrees(t.yaw):.1f}"
                for t in plan.tracklets])
    description = world_description(plan)
    (root / "world.yaml").write_text(yaml.safe_dump(description, sort_keys=False))  # last: marks completion
    seconds = time.perf_counter() - start
    n = sum(t.n_frames for t in plan.tracklets) + len(plan.crops)
    if progress:
        print(f"synthetic world: {n} images in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f} frames/s) -> {root}")
    return root


def _render_all(config, plan, root: Path, progress: bool, workers: Optional[int]):
    """Render and write every tracklet and crop; keypoint rows come back in plan order."""
    total = sum(t.n_frames for t in plan.tracklets) + len(plan.crops)
    jobs = [(_write_tracklet, i) for i in range(len(plan.tracklets))] + \
           [(_write_crop, i) for i in range(len(plan.crops))]
    (root / "crops").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, unit="frame", desc="synthetic world", disable=not progress)
    results: List[Tuple[List[str], int]] = []
    if workers is None:  # a process pool costs more than it saves on a tiny world
        workers = min(8, os.cpu_count() or 1) if total >= 400 else 1
    if workers <= 1:
        _init_worker(config, str(root))
        for fn, i in jobs:
            results.append(fn(i))
            bar.update(results[-1][1])
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                 initargs=(config, str(root))) as pool:
            futures = [pool.submit(fn, i) for fn, i in jobs]
            for fut in futures:  # in submission order: the csv rows keep the plan order
                results.append(fut.result())
                bar.update(results[-1][1])
    bar.close()
    n_tracks = len(plan.tracklets)
    track_rows = [row for rows, _ in results[:n_tracks] for row in rows]
    crop_rows = [row for rows, _ in results[n_tracks:] for row in rows]
    return track_rows, crop_rows
