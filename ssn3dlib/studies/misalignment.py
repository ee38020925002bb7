"""The misalignment study (notebook 05): the paper's central claim, measured.

Claim (Sec. 3): 3D convolution over unaligned feature maps (C3D) degrades as the person moves
inside the box from frame to frame, and the SSN's part alignment recovers it.

World. The synthetic world's ``misalignment`` knob jitters and drifts each frame's box (shift
up to 25 % of the box, scale up to +-20 % at level 1); its occluders have their own knob
(``occlusion_rate``), off in the main sweep. A tracklet's person, background and gait do not
change with either knob, so two worlds that differ in them are the same people seen through
other boxes: the same query tracklets (names, persons, lengths) at every level.

Design. A model is trained once per (variant, seed, training level) through the engine
(``TrainedModel``; the base config is the benchmark's frozen-backbone recipe) and then evaluated
on the test identities of every test world (``TestWorld``: a misalignment level, and an
occlusion rate for the occluder sweep). So a drop from one test level to another is measured
within one trained model (its seed is paired with itself), free of training noise; training at a
misaligned level too gives the matched comparison (trained and tested at 1 against trained and
tested at 0), where seeds pair independently trained models. Every evaluation keeps each query's
first-true-match rank and AP (``per_query``), so every verdict is recomputed from the records.

Mechanism. For every SSN3D model and test world, the peak of each attention map on every query
frame is scored against the world's exact keypoint (PCK within ``radius`` x image height;
visibility above 0 counts, as self-occluded parts keep exact coordinates; unsupervised maps are
matched to parts on the scored frames), beside chance (a uniformly drawn window, exact) and a
position prior (one fixed window per part: the mean position over the training frames of the
model's training world). Units for the intervals: query tracklets (each its frames' mean), rows:
seeds.

Calibration. ``detector_calibration`` measures on real MOT17 frames (``ssn3dlib.data.mot``) how
far the public Faster R-CNN boxes sit from the ground truth, per frame and from one frame to the
next, and the same for the world's levels (``box_offset_sds``), in box heights; the figures mark
where a real detector sits on the misalignment axis. It also measures the other source of
misalignment, the keypoints' own motion inside a box that follows the person (MOT17: MediaPipe
keypoints of consecutive ground-truth crops; the world: exact keypoints at level 0).

Resume: trainings continue or are loaded by ``train_or_reuse``; each evaluation is stored in
``<work_dir>/<model>/eval_<world>.json`` with the digest of the checkpoint it scored, and is
reused while that checkpoint is unchanged.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from tqdm.auto import tqdm

from ..figures import new_figure
from .toolkit import (
    NOT_IN_PAPER,
    WALL_TIME_KEY,
    Claim,
    Comparison,
    chance_follows_motion,
    chance_pck,
    claims_to_records,
    follows_motion,
    match_parts,
    pck,
    position_prior,
    read_json,
    to_jsonable,
    visible_keypoints,
    write_json,
)
from .toolkit.engine_runs import chance_rank1, epoch_losses, train_or_reuse, was_loaded
from .toolkit.parallel import check_workers, map_in_processes
from .toolkit.records import FINDINGS_KEY, RUNS_WALL_TIME_KEY
from .toolkit.statistics import (
    CONFIDENCE,
    INCONCLUSIVE,
    against_reference,
    seeds_needed,
    two_way_interval,
    units_needed,
)

STUDY = "misalignment"
METRICS = ("rank1", "mAP")
#: Per-query record of an evaluation (the engine's: query, first_match_rank, ap).
PER_QUERY_KEY = "per_query"
#: Per-evaluation CPU time (all threads of the process): the load-independent cost.
CPU_TIME_KEY = "cpu_time_s"
SOURCE = "Sec. 3 claim"
#: What the paper claims (Sec. 3), the statement each verdict tests a part of.
PAPER_CLAIM = ("3D convolution over unaligned feature maps degrades as the person moves inside the box "
               "from frame to frame; the SSN's part alignment recovers the loss")
#: Per-query score of each metric: a hit at rank 1 (1/0) or the query's AP (0..1).
SCORE_OF = {"rank1": "hit at rank 1", "mAP": "AP"}


@dataclass(frozen=True)
class Variant:
    """A model as the study names it: an engine model and, for SSN3D, its strategy."""

    label: str
    model: str
    strategy: Optional[str] = None
    color: str = "black"

    @property
    def short(self) -> str:
        """The label without its parenthesis ("C3D", "TP"), for sentences."""
        return self.label.split(" (")[0]

    @property
    def has_attention(self) -> bool:
        """Whether the model returns attention maps (what the alignment and the viewer need)."""
        from ..models import model_capabilities

        return model_capabilities(self.model, **({"strategy": self.strategy} if self.strategy else {})).attention_maps

    def overrides(self) -> List[str]:
        return [f"model.name={self.model}"] + ([f"model.strategy={self.strategy}"] if self.strategy else [])


#: The compared models, in plotting order (colours fixed so every figure agrees).
VARIANTS: Dict[str, Variant] = {
    "ssn3d-semi": Variant("SSN3D semi-supervised", "ssn3d", "semi-supervised", "tab:red"),
    "ssn3d-unsup": Variant("SSN3D unsupervised", "ssn3d", "unsupervised", "tab:orange"),
    "c3d": Variant("C3D (unaligned 3D conv)", "c3d", None, "tab:blue"),
    "tp": Variant("TP (temporal pooling)", "tp", None, "tab:green"),
    "st-attention": Variant("2D+1D attention", "st-attention", None, "tab:purple"),
}


# ============================================================================ the plan

def _check_level(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} {value!r} is outside [0, 1]; the world's knobs run from 0 (off) to 1 (severe)")
    return float(value)


def _distinct(name: str, values: Sequence) -> list:
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} {values} repeat a value; list each once")
    return values


@dataclass(frozen=True)
class TrainedModel:
    """One training: a variant and seed on the world at `train_level` (occluders off)."""

    variant: str
    seed: int
    train_level: float

    @property
    def key(self) -> str:
        """Folder name: stable, sortable, no characters a shell dislikes."""
        return f"train{self.train_level:.2f}_{self.variant}_s{self.seed}"

    def overrides(self) -> List[str]:
        """Engine overrides that turn the base config into this training's config."""
        return ([f"data.world.misalignment={self.train_level!r}", "data.world.occlusion_rate=0.0"]
                + VARIANTS[self.variant].overrides() + [f"train.seed={self.seed}"])


@dataclass(frozen=True)
class TestWorld:
    """A test condition: the same test identities seen at this misalignment and occlusion rate."""

    misalignment: float
    occlusion: float = 0.0

    @property
    def key(self) -> str:
        return f"m{self.misalignment:.2f}_o{self.occlusion:.2f}"

    @property
    def label(self) -> str:
        return f"misalignment {self.misalignment:g}" + (f", occluders in {self.occlusion:.0%} of frames"
                                                         if self.occlusion else "")

    def overrides(self) -> List[str]:
        return [f"data.world.misalignment={self.misalignment!r}", f"data.world.occlusion_rate={self.occlusion!r}"]


def plan_models(variants: Sequence[str], seeds: Sequence[int], train_levels: Sequence[float]) -> List[TrainedModel]:
    """Every (training level, variant, seed); the same seeds for every variant and level keep
    the comparisons paired."""
    variants = _distinct("models", variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown model variants {unknown}; choose from {', '.join(VARIANTS)}")
    seeds = _distinct("seeds", seeds)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be integers >= 0, got {seeds}")
    levels = [_check_level("training level", x) for x in _distinct("train_levels", train_levels)]
    return [TrainedModel(v, int(s), level) for level in levels for v in variants for s in seeds]


def plan_tests(test_levels: Sequence[float], occlusions: Sequence[float] = (),
               occlusion_level: Optional[float] = None) -> List[TestWorld]:
    """The misalignment sweep (occluders off) at `test_levels`, then the occluder sweep: each rate
    of `occlusions` at misalignment `occlusion_level` (default: the lowest test level)."""
    levels = sorted(_check_level("test level", x) for x in _distinct("test_levels", test_levels))
    if len(levels) < 2:
        raise ValueError(f"a sweep needs at least two test levels to measure a drop, got {levels}")
    at = levels[0] if occlusion_level is None else _check_level("occlusion_level", occlusion_level)
    worlds = [TestWorld(level) for level in levels]
    for rate in list(occlusions):
        rate = _check_level("occlusion rate", rate)
        if rate == 0.0:
            raise ValueError("occlusion rate 0 is the misalignment sweep itself; list rates above 0")
        worlds.append(TestWorld(at, rate))
    return list(dict.fromkeys(worlds))


def model_config(base, model: TrainedModel, overrides: Sequence[str] = ()):
    """The training's RunConfig: base config, the study's overrides, then the model's own."""
    from ..engine import load_config

    config = load_config(base, list(overrides) + model.overrides())
    if config.data.name != "synthetic_world" or config.data.world is None:
        raise ValueError(f"the misalignment study needs data.name: synthetic_world with data.world set (the knobs "
                         f"are data.world.misalignment and occlusion_rate); {base!r} has data.name "
                         f"{config.data.name!r}")
    return config


def test_config(config, world: TestWorld):
    """A trained model's config with its data moved to a test world."""
    from ..engine import load_config

    return load_config(config, world.overrides())


def _generate_world(data) -> None:
    from ..engine.build import prepare_dataset

    prepare_dataset(data, progress=False)


def prepare_worlds(configs: Sequence, progress: bool = True, workers: int = 1) -> Dict[str, Any]:
    """Generate (or find in the cache) every world the configs read, once each and `workers` at
    once, before any run; returns {world key: dataset}. A world depends on its config only, so
    generating it in a worker process writes the same files as here."""
    from ..engine.build import prepare_dataset

    data: Dict[str, Any] = {}
    for config in configs:
        w = config.data.world
        data.setdefault(TestWorld(float(w["misalignment"]), float(w.get("occlusion_rate") or 0.0)).key, config.data)
    if check_workers(workers) > 1 and len(data) > 1:
        bar = tqdm(total=len(data), desc="worlds", unit="world", disable=not progress)
        for _ in map_in_processes(_generate_world, [(d,) for d in data.values()], workers):
            bar.update()
        bar.close()
        progress = False
    return {key: prepare_dataset(d, progress=False)
            for key, d in tqdm(data.items(), desc="worlds", unit="world", disable=not progress)}


# ============================================================================ training

def checkpoint_path(work_dir: Union[str, Path], model: TrainedModel) -> Path:
    return Path(work_dir) / model.key / "checkpoints" / "last.pt"


def _train(model: TrainedModel, config, work_dir: Path) -> Dict[str, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    run_dir = Path(work_dir) / model.key
    result = train_or_reuse(config, run_dir)
    return {"model": model.key, "variant": model.variant, "seed": model.seed, "train_level": model.train_level,
            "rank1": result.final["rank1"], "mAP": result.final["mAP"],
            "epochs": result.epochs, "train_time_s": result.train_seconds, "resumed": was_loaded(result, config),
            WALL_TIME_KEY: time.perf_counter() - start, CPU_TIME_KEY: time.process_time() - cpu,
            **epoch_losses(run_dir, config.model.capabilities().ssn_loss)}


def train_models(models: Sequence[TrainedModel], base, work_dir: Union[str, Path], overrides: Sequence[str] = (),
                 workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """Train (or load, or continue) every model; one row each, in the models' order."""
    configs = [model_config(base, m, overrides) for m in models]      # all checked before any training
    prepare_worlds(configs, progress, workers)
    rows: List[Optional[Dict]] = [None] * len(models)
    bar = tqdm(total=len(models), desc="trainings", unit="model", disable=not progress)
    for k, row in map_in_processes(_train, [(m, c, Path(work_dir)) for m, c in zip(models, configs)],
                                   check_workers(workers)):
        rows[k] = row
        bar.set_postfix_str(models[k].key)
        bar.update()
    bar.close()
    return pd.DataFrame(rows)


# ============================================================================ evaluation

def file_digest(path: Union[str, Path]) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _evaluate_world(world: TestWorld, models: Sequence[TrainedModel], work_dir: Path,
                    radius_fraction: float, alignment_level: Optional[float]) -> List[Dict[str, Any]]:
    """Every model on one test world, in one process (its frozen features are computed once and
    shared by all the models); a stored evaluation of an unchanged checkpoint is read back. SSN3D
    models trained at `alignment_level` also get their part alignment on worlds without occluders."""
    import torch

    from ..engine.evaluator import evaluate

    rows = []
    for model in models:
        checkpoint = checkpoint_path(work_dir, model)
        stored_at = Path(work_dir) / model.key / f"eval_{world.key}.json"
        digest = file_digest(checkpoint)
        align = (VARIANTS[model.variant].has_attention and world.occlusion == 0.0
                 and alignment_level is not None and np.isclose(model.train_level, alignment_level))
        stored = read_json(stored_at)
        if stored is not None and stored.get("checkpoint_sha1") == digest and \
                stored.get("radius_fraction") == radius_fraction and (stored.get("alignment") is not None) == align \
                and (not align or ALIGNMENT_KEYS <= set(stored["alignment"])):
            rows.append({**stored, "resumed": True})
            continue
        start, cpu = time.perf_counter(), time.process_time()
        threads = torch.get_num_threads()
        try:
            from ..engine.checkpoint import load_checkpoint

            wanted = (load_checkpoint(checkpoint)["config"].get("train") or {}).get("num_threads")
            if wanted:
                torch.set_num_threads(wanted)
            result = evaluate(checkpoint, world.overrides(), device="cpu", progress=False)
            alignment = part_alignment(checkpoint, world, radius_fraction) if align else None
        finally:
            torch.set_num_threads(threads)
        row = {"model": model.key, "variant": model.variant, "seed": model.seed, "train_level": model.train_level,
               "test_misalignment": world.misalignment, "test_occlusion": world.occlusion, "world": world.key,
               "rank1": result["rank1"], "rank5": result["rank5"], "mAP": result["mAP"],
               "ap_definition": result["ap_definition"], "num_query": result["num_query"],
               "num_gallery": result["num_gallery"], PER_QUERY_KEY: result[PER_QUERY_KEY],
               "alignment": alignment, "radius_fraction": radius_fraction, "checkpoint_sha1": digest,
               WALL_TIME_KEY: time.perf_counter() - start, CPU_TIME_KEY: time.process_time() - cpu}
        write_json(stored_at, to_jsonable(row))
        rows.append({**row, "resumed": False})
    return rows


def evaluate_models(models: Sequence[TrainedModel], worlds: Sequence[TestWorld], work_dir: Union[str, Path],
                    radius_fraction: float = 0.1, workers: int = 1, progress: bool = True,
                    alignment_level: Optional[float] = None) -> pd.DataFrame:
    """Every trained model on every test world (one process per world at a time); one row per
    (model, world) with its per-query record and, for the SSN3D models trained at
    `alignment_level` (default: the lowest training level), their part alignment on the worlds
    without occluders (the mechanism claims use those)."""
    if alignment_level is None:
        alignment_level = min(m.train_level for m in models)
    missing = [m.key for m in models if not checkpoint_path(work_dir, m).is_file()]
    if missing:
        raise FileNotFoundError(f"no checkpoint for {missing[:3]} under {work_dir}; train_models first")
    rows: List[Dict] = []
    bar = tqdm(total=len(worlds), desc="test worlds", unit="world", disable=not progress)
    calls = [(w, list(models), Path(work_dir), radius_fraction, alignment_level) for w in worlds]
    for _, part in map_in_processes(_evaluate_world, calls, check_workers(workers)):
        rows += part
        bar.update()
    bar.close()
    order = {(m.key, w.key): i for i, (m, w) in enumerate((m, w) for w in worlds for m in models)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[(r["model"], r["world"])])).reset_index(drop=True)


# ============================================================================ part alignment

def split_keypoints(dataset, split: str, part_set: str) -> Dict[str, np.ndarray]:
    """{frame path: (N, 3) x, y, visibility} of one split's frames, from the world's keypoints.csv
    (only that split's rows are grouped: the whole table takes seconds)."""
    from ..data.keypoints import parts_by_image, read_keypoint_table

    root = Path(dataset.root)
    frames = {str(Path(f).relative_to(root)) for t in getattr(dataset, split) for f in t.frames}
    table = read_keypoint_table(root / "keypoints.csv")
    parts = parts_by_image(table[table["image"].isin(frames)], part_set)
    return {str(root / image): p for image, p in parts.items()}


@lru_cache(maxsize=8)
def _world_parts(data_key: str, split: str, part_set: str) -> Tuple[Any, Dict[str, np.ndarray]]:
    """(dataset, split_keypoints) of a world, per process: every model scored on one world (or
    fitted on one training world) reads its table once. Keyed by the data section (``_as_key``)."""
    import json

    from ..engine.build import prepare_dataset
    from ..engine.config import DataConfig

    dataset = prepare_dataset(DataConfig(**json.loads(data_key)), progress=False)
    return dataset, split_keypoints(dataset, split, part_set)


def _as_key(data) -> str:
    """A data section as a JSON string: a hashable cache key that rebuilds the section."""
    import json

    return json.dumps(asdict(data), sort_keys=True)


#: What a stored part alignment must hold to be reused (older records lack the frame-to-frame keys).
ALIGNMENT_KEYS = {"ssn", "prior", "chance", "follows", "follows_chance", "follows_static"}


def part_alignment(checkpoint: Union[str, Path], world: TestWorld, radius_fraction: float = 0.1,
                   chunk: int = 64) -> Dict[str, Any]:
    """Does each attention map land on its body part in every query frame of `world`, however
    the box moved? Per query tracklet (in query order): the SSN's PCK, a position prior's (one
    fixed window per part, fitted on the training frames of the model's own training world) and
    chance's (exact), with this study's rules (module doc); stability across frames: over the
    tracklet's consecutive frame pairs, the fraction of parts (visible in both) whose peak moved
    with the keypoint (``toolkit.follows_motion``) for the SSN, two random windows and a still
    map (the prior's fixed windows); plus the overall values and the matching of unnamed maps."""
    from ..data.clip_dataset import read_frame
    from ..explorer import frame_maps, load_model

    loaded = load_model(checkpoint)
    config = loaded.config
    if not config.model.shared_classifier:
        raise ValueError(f"{checkpoint}: per-frame classifiers make a frame's maps depend on its place in "
                         f"the clip; part_alignment measures shared-classifier models only")
    part_set, grid = config.data.part_set, loaded.window_grid
    dataset, keypoints = _world_parts(_as_key(test_config(config, world).data), "query", part_set)
    paths = [f for t in dataset.query for f in t.frames]
    missing = [p for p in paths if p not in keypoints]
    if missing:
        raise ValueError(f"no keypoints for {missing[0]} ({len(missing)} query frames lack them) in "
                         f"{dataset.root}/keypoints.csv")
    # A frame's maps do not depend on the other frames of its clip (the SSN runs per frame, one
    # shared classifier), so frames go through in long chunks, whatever their tracklet.
    maps = np.concatenate([frame_maps(loaded, [read_frame(p) for p in paths[s:s + chunk]]).numpy()
                           for s in range(0, len(paths), chunk)])
    truth = np.stack([keypoints[p] for p in paths])
    visible = visible_keypoints(truth, min_visibility=0.0)
    peaks = grid.peak_pixels(maps)
    match = np.arange(peaks.shape[1])
    if not config.model.capabilities().keypoints_in_training:       # unnamed maps
        match = match_parts(peaks, truth, visible)
        peaks = peaks[:, match]
    fit = np.stack(list(_world_parts(_as_key(config.data), "train", part_set)[1].values()))
    prior = position_prior(fit, visible_keypoints(fit, 0.0), grid)
    radius = radius_fraction * config.data.size[0]
    tracklet_of = np.repeat(np.arange(len(dataset.query)), [len(t) for t in dataset.query])

    def per_tracklet(frame_hits: np.ndarray) -> List[float]:
        """Each query tracklet's mean over its frames' visible parts (frame_hits: (F, N) in 0..1)."""
        out = []
        for k in range(len(dataset.query)):
            rows = tracklet_of == k
            out.append(float(frame_hits[rows][visible[rows]].mean()) if visible[rows].any() else float("nan"))
        return out

    # consecutive frames of one query tracklet
    first = np.flatnonzero(tracklet_of[:-1] == tracklet_of[1:])
    a, b = first, first + 1
    both = visible[a] & visible[b]
    still = np.broadcast_to(prior, peaks.shape)

    def per_tracklet_pairs(pair_hits: np.ndarray) -> List[float]:
        out = []
        for k in range(len(dataset.query)):
            rows = tracklet_of[a] == k
            out.append(float(np.nanmean(pair_hits[rows][both[rows]])) if both[rows].any() else float("nan"))
        return out

    dist = np.linalg.norm(peaks - np.nan_to_num(truth[..., :2]), axis=-1)
    prior_dist = np.linalg.norm(prior[None] - np.nan_to_num(truth[..., :2]), axis=-1)
    near = (np.linalg.norm(np.nan_to_num(truth[..., None, :2]) - grid.all_centres(), axis=-1) <= radius).mean(-1)
    return {"query": [t.name for t in dataset.query],
            "ssn": per_tracklet((dist <= radius).astype(float)),
            "prior": per_tracklet((prior_dist <= radius).astype(float)),
            "chance": per_tracklet(near),
            "follows": per_tracklet_pairs(follows_motion(peaks[a], peaks[b], truth[a], truth[b], both, radius)),
            "follows_chance": per_tracklet_pairs(chance_follows_motion(truth[a], truth[b], both, grid, radius)),
            "follows_static": per_tracklet_pairs(follows_motion(still[a], still[b], truth[a], truth[b], both, radius)),
            "pck": pck(peaks, truth, visible, radius)["overall"],
            "prior_pck": pck(np.broadcast_to(prior, peaks.shape), truth, visible, radius)["overall"],
            "chance_pck": chance_pck(truth, visible, grid, radius)["overall"],
            "radius_px": float(radius), "frames": int(len(paths)), "matching": [int(m) for m in match]}


# ============================================================================ scores

def _select(evals: pd.DataFrame, variant: str, train_level: float, world: TestWorld) -> pd.DataFrame:
    """One variant's evaluation rows (one per seed) for models trained at `train_level`, on `world`."""
    sel = evals[(evals["variant"] == variant) & np.isclose(evals["train_level"], train_level)
                & np.isclose(evals["test_misalignment"], world.misalignment)
                & np.isclose(evals["test_occlusion"], world.occlusion)]
    if sel.empty:
        raise ValueError(f"no evaluation of {variant!r} trained at {train_level:g} on {world.label}; run it first")
    if sel["seed"].duplicated().any():
        raise ValueError(f"{variant!r} trained at {train_level:g} on {world.label} has a seed twice")
    return sel.sort_values("seed")


def query_scores(evals: pd.DataFrame, variant: str, train_level: float, world: TestWorld,
                 metric: str) -> pd.DataFrame:
    """(seeds x queries) per-query scores: a hit at rank 1 (1/0) for rank1, the AP (0..1) for mAP;
    rows indexed by seed, columns by query name; queries without a true match left out, as the
    evaluation leaves them out."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    rows = {}
    sel = _select(evals, variant, train_level, world)
    for seed, record in zip(sel["seed"], sel[PER_QUERY_KEY]):
        ranks = np.asarray(record["first_match_rank"])
        matched = ranks > 0
        values = (ranks == 1).astype(float) if metric == "rank1" else np.array(
            [a if m else np.nan for a, m in zip(record["ap"], matched)], dtype=float)
        rows[int(seed)] = pd.Series(values[matched], index=np.asarray(record["query"])[matched])
    frame = pd.DataFrame(rows).T.sort_index()
    if frame.isna().any().any():
        raise ValueError(f"{variant!r} on {world.label}: the seeds' evaluations hold different queries")
    return frame


def alignment_scores(evals: pd.DataFrame, variant: str, train_level: float, world: TestWorld,
                     which: str) -> pd.DataFrame:
    """(seeds x query tracklets) part alignment: which = "ssn", "prior" or "chance"."""
    rows = {}
    sel = _select(evals, variant, train_level, world)
    for seed, record in zip(sel["seed"], sel["alignment"]):
        if not isinstance(record, dict):
            raise ValueError(f"{variant!r} has no part alignment (not an SSN3D model?)")
        rows[int(seed)] = pd.Series(record[which], index=record["query"], dtype=float)
    return pd.DataFrame(rows).T.sort_index().dropna(axis=1)


def paired_arrays(*frames: pd.DataFrame) -> List[np.ndarray]:
    """The frames as (seeds, units) arrays over one shared unit order and the same seeds (paired)."""
    names, seeds = sorted(frames[0].columns), list(frames[0].index)
    for f in frames[1:]:
        if sorted(f.columns) != names:
            raise ValueError(f"paired settings must be scored on the same units; got {len(names)} and "
                             f"{len(f.columns)} ({sorted(set(names) ^ set(f.columns))[:4]} differ)")
        if list(f.index) != seeds:
            raise ValueError(f"paired settings need the same seeds, got {seeds} and {list(f.index)}")
    return [f[names].to_numpy(dtype=float) for f in frames]


# ============================================================================ the verdicts

#: The paper's statements (Sec. 3) each comparison tests a part of.
STATEMENTS = {
    "degrades": "3D convolution over unaligned feature maps (C3D) degrades as the person moves inside the box "
                "from frame to frame",
    "beats": "the SSN's part alignment recovers the loss: under misalignment SSN3D beats C3D",
    "drops_less": "the SSN's part alignment recovers the loss: SSN3D loses less than C3D as misalignment grows",
    "aligns": "the SSN finds the same body part in every frame, wherever the box moved it (its maps land on "
              "the parts)",
    "stable": "the semi-supervised SSN's parts are stable across multiple frames (each peak moves with its part)",
}
#: Smallest effect (points) whose n an inconclusive reason computes: the target MDE of a
#: rank-1 comparison; a smaller observed effect is not worth a design of its own.
DECIDE_FLOOR = 10.0


def _seed_sd(*arrays: np.ndarray) -> float:
    """Pooled SD (points) of single seeds' means within each setting; NaN with one seed."""
    variances = [np.var(100 * a.mean(axis=1), ddof=1) for a in arrays if len(a) > 1]
    return float(np.sqrt(np.mean(variances))) if variances else float("nan")


def what_would_decide(cmp: Comparison, seed_sd: float, unit: str = "queries", floor: float = DECIDE_FLOOR) -> str:
    """For an inconclusive comparison: its MDE and the n that would detect the observed effect
    (or `floor` points when it is smaller) at 80% power: seeds (``seeds_needed`` at the observed
    seed scatter) and test units (the MDE scales as 1/sqrt(units))."""
    units = cmp.n[unit]
    target = max(abs(cmp.effect), floor)
    what = (f"the observed {abs(cmp.effect):.1f} points" if abs(cmp.effect) >= floor
            else f"a {floor:g}-point effect (the observed one is {cmp.effect:+.1f})")
    seeds = cmp.n.get("seeds", cmp.n.get("seeds_a"))
    more_seeds = (f"about {seeds_needed(seed_sd, target)} seeds at the observed seed scatter ({seed_sd:.1f} "
                  f"points per seed)" if np.isfinite(seed_sd) and seed_sd > 0 else "more seeds")
    more_units = f"about {units_needed(units, cmp.mde, target)} {unit}" if cmp.mde > 0 else f"not more {unit}"
    return (f"{cmp.reason or 'the 95% interval includes 0'}: with {units} {unit} and {seeds} seeds the minimum "
            f"detectable effect is {cmp.mde:.1f} points; detecting {what} at 80% power takes {more_seeds} or "
            f"{more_units}")


def _claim(name: str, statement: str, cmp: Comparison, seed_sd: float, detail: str, data: str,
           unit: str = "queries", source: str = SOURCE, paper_claim: bool = True) -> Claim:
    """A claim row; paper_claim False = our own check (the report marks its source)."""
    reason = what_would_decide(cmp, seed_sd, unit) if cmp.verdict == INCONCLUSIVE else ""
    return Claim(name, source, statement, None,
                 detail=f"{detail}: {cmp.describe()}", data=data, paper_claim=paper_claim,
                 reason=reason, comparison=cmp.to_dict())


def _difference(a: np.ndarray, b: np.ndarray) -> Comparison:
    """a - b over seed-paired rows and shared units: the two-way t interval of the differences
    (``against_reference`` of a - b against 0)."""
    return against_reference(a - b, 0.0, unit="queries")


def central_claims(evals: pd.DataFrame, profile: str, train_level: float, low: float, high: float,
                   metrics: Sequence[str] = METRICS, unaligned: str = "c3d", aligned: str = "ssn3d-semi",
                   control: str = "tp", matched_level: Optional[float] = None,
                   occlusions: Sequence[TestWorld] = ()) -> List[Claim]:
    """The central claim's parts, each a comparison of seed-paired per-query scores (module doc),
    for models trained at `train_level` and tested at `low` and `high` misalignment:

    - ``c3d_degrades_<m>``: C3D tested at low minus at high (paper: > 0), within each model;
    - ``control_c3d_drop_vs_tp_<m>`` (our control): C3D's drop minus TP's (TP pools frames: no
      temporal kernel to misalign), is the loss specific to 3D convolution?
    - ``ssn3d_beats_c3d_at_<level>_<m>``: SSN3D minus C3D at every test level (at level 0, without
      misalignment, our baseline check: the paper's claim is about the misaligned levels);
    - ``ssn3d_drops_less_<m>``: C3D's drop minus SSN3D's;
    - with `matched_level`: ``c3d_degrades_matched_<m>``, C3D trained and tested at low minus C3D
      trained and tested at matched_level, and ``ssn3d_drops_less_matched_<m>`` (independently
      trained models paired by seed: training noise is in the interval);
    - per occluded TestWorld of `occlusions` (the occluder sweep): ``ssn3d_beats_c3d_occluded_<rate>_<m>``
      (our check: with occluders and no misalignment, SSN3D minus C3D).

    Variants missing from the evaluations leave out the claims that need them.
    """
    present = set(evals["variant"])
    u, a, c = VARIANTS[unaligned].short, VARIANTS[aligned].short, VARIANTS[control].short
    lo, hi = TestWorld(low), TestWorld(high)
    levels = sorted(set(evals.loc[np.isclose(evals["train_level"], train_level)
                                  & np.isclose(evals["test_occlusion"], 0.0), "test_misalignment"]))
    claims = []
    for metric in metrics:
        def tested_at(levels_text, metric=metric):
            return (f"synthetic world, trained at misalignment {train_level:g}, tested at {levels_text} (the same "
                    f"query tracklets at every level, occluders off), per-query {SCORE_OF[metric]} ({metric}); "
                    f"profile {profile}")

        data = tested_at(f"{low:g} and {high:g}")

        def scores(variant, world, level=train_level, metric=metric):
            return query_scores(evals, variant, level, world, metric)

        u_lo, u_hi = paired_arrays(scores(unaligned, lo), scores(unaligned, hi))
        claims.append(_claim(f"c3d_degrades_{metric}", STATEMENTS["degrades"], _difference(u_lo, u_hi),
                             _seed_sd(u_lo, u_hi),
                             f"{u}'s {metric} is {100 * u_lo.mean():.1f} at misalignment {low:g} and "
                             f"{100 * u_hi.mean():.1f} at {high:g}; low minus high", data))
        if control in present:
            t_lo, t_hi, *_ = paired_arrays(scores(control, lo), scores(control, hi), scores(unaligned, lo))
            claims.append(_claim(
                f"control_c3d_drop_vs_tp_{metric}", NOT_IN_PAPER, _difference(u_lo - u_hi, t_lo - t_hi),
                _seed_sd(u_lo - u_hi, t_lo - t_hi),
                f"Control, is the loss specific to 3D convolution? From misalignment {low:g} to {high:g} {u}'s "
                f"{metric} drops {100 * (u_lo - u_hi).mean():+.1f} points and {c}'s {100 * (t_lo - t_hi).mean():+.1f}; "
                f"{u}'s drop minus {c}'s", data, paper_claim=False))
        if aligned in present:
            for level in levels:
                w = TestWorld(float(level))
                s, x = paired_arrays(scores(aligned, w), scores(unaligned, w))
                misaligned = level != 0   # at 0: the gap a recovery is measured from, not the paper's claim
                lead = f"{a}'s {metric} is {100 * s.mean():.1f} and {u}'s {100 * x.mean():.1f}"
                claims.append(_claim(
                    f"ssn3d_beats_c3d_at_{level:g}_{metric}", STATEMENTS["beats"] if misaligned else NOT_IN_PAPER,
                    _difference(s, x), _seed_sd(s, x),
                    f"At misalignment {level:g} {lead}" if misaligned else
                    f"Baseline, SSN3D's lead without misalignment (the paper's recovery claim is about the "
                    f"misaligned levels and the drops): at misalignment 0 {lead}",
                    tested_at(f"{level:g}"), paper_claim=misaligned))
            s_lo, s_hi, *_ = paired_arrays(scores(aligned, lo), scores(aligned, hi), scores(unaligned, lo))
            claims.append(_claim(
                f"ssn3d_drops_less_{metric}", STATEMENTS["drops_less"], _difference(u_lo - u_hi, s_lo - s_hi),
                _seed_sd(u_lo - u_hi, s_lo - s_hi),
                f"From misalignment {low:g} to {high:g} {u}'s {metric} drops {100 * (u_lo - u_hi).mean():+.1f} points "
                f"and {a}'s {100 * (s_lo - s_hi).mean():+.1f}; {u}'s drop minus {a}'s", data))
        if matched_level is not None:
            mdata = (f"synthetic world, trained and tested at misalignment {low:g} against trained and tested at "
                     f"{matched_level:g} (separate trainings paired by seed), per-query {SCORE_OF[metric]} "
                     f"({metric}); profile {profile}")
            mw = TestWorld(matched_level)
            m_lo, m_hi = paired_arrays(scores(unaligned, lo, low), scores(unaligned, mw, matched_level))
            claims.append(_claim(f"c3d_degrades_matched_{metric}", STATEMENTS["degrades"],
                                 _difference(m_lo, m_hi), _seed_sd(m_lo, m_hi),
                                 f"{u} trained and tested at {low:g} scores {100 * m_lo.mean():.1f} {metric}, trained "
                                 f"and tested at {matched_level:g} {100 * m_hi.mean():.1f}", mdata))
            if aligned in present:
                n_lo, n_hi, *_ = paired_arrays(scores(aligned, lo, low), scores(aligned, mw, matched_level),
                                               scores(unaligned, lo, low))
                claims.append(_claim(
                    f"ssn3d_drops_less_matched_{metric}", STATEMENTS["drops_less"],
                    _difference(m_lo - m_hi, n_lo - n_hi), _seed_sd(m_lo - m_hi, n_lo - n_hi),
                    f"Trained and tested at {matched_level:g} instead of {low:g}, {u}'s {metric} drops "
                    f"{100 * (m_lo - m_hi).mean():+.1f} points and {a}'s {100 * (n_lo - n_hi).mean():+.1f}; {u}'s "
                    f"drop minus {a}'s", mdata))
        for occlusion in (occlusions if aligned in present else ()):
            odata = (f"synthetic world, trained at misalignment {train_level:g} without occluders, tested with "
                     f"{occlusion.label}; per-query {SCORE_OF[metric]} ({metric}); profile {profile}")
            s, x = paired_arrays(scores(aligned, occlusion), scores(unaligned, occlusion))
            claims.append(_claim(f"ssn3d_beats_c3d_occluded_{occlusion.occlusion:g}_{metric}", NOT_IN_PAPER,
                                 _difference(s, x), _seed_sd(s, x),
                                 f"With {occlusion.label} {a}'s {metric} is {100 * s.mean():.1f} "
                                 f"and {u}'s {100 * x.mean():.1f}", odata, paper_claim=False))
    return claims


def alignment_claims(evals: pd.DataFrame, profile: str, train_level: float, variant: str = "ssn3d-semi"
                     ) -> List[Claim]:
    """The mechanism at every test level (occluders off), over query tracklets x seeds:
    ``ssn_aligns_at_<level>`` (paper): the SSN's PCK minus chance's;
    ``ssn_beats_position_prior_at_<level>`` (our stricter check): minus the position prior's,
    which knows where parts usually sit in a box and loses them when the box moves;
    ``ssn_parts_stable_across_frames_at_<level>`` (paper): the fraction of parts whose peak moves
    with the keypoint between consecutive frames, minus two random windows'."""
    if variant not in set(evals["variant"]):
        return []
    label = VARIANTS[variant].short
    levels = sorted(set(evals.loc[(evals["variant"] == variant) & np.isclose(evals["train_level"], train_level)
                                  & np.isclose(evals["test_occlusion"], 0.0), "test_misalignment"]))
    claims = []
    for level in levels:
        w = TestWorld(float(level))
        ssn, prior, chance = paired_arrays(*(alignment_scores(evals, variant, train_level, w, k)
                                             for k in ("ssn", "prior", "chance")))
        data = (f"synthetic world (exact keypoints), {label} trained at misalignment {train_level:g}, query frames "
                f"at misalignment {level:g}; units: query tracklets; profile {profile}")
        for name, statement, ref, ref_text, paper in (
                (f"ssn_aligns_at_{level:g}", STATEMENTS["aligns"], chance, "a uniformly drawn window", True),
                (f"ssn_beats_position_prior_at_{level:g}", NOT_IN_PAPER, prior,
                 "a fixed window at each part's mean training position", False)):
            cmp = against_reference(ssn - ref, 0.0, unit="query tracklets")
            claims.append(_claim(name, statement, cmp, _seed_sd(ssn, ref),
                                 f"PCK of {label}'s attention peaks at misalignment {level:g} is "
                                 f"{100 * ssn.mean():.1f} against {100 * ref.mean():.1f} for {ref_text}", data,
                                 unit="query tracklets", paper_claim=paper))
        follows, chance_f, still = paired_arrays(*(alignment_scores(evals, variant, train_level, w, k)
                                                   for k in ("follows", "follows_chance", "follows_static")))
        cmp = against_reference(follows - chance_f, 0.0, unit="query tracklets")
        claims.append(_claim(f"ssn_parts_stable_across_frames_at_{level:g}", STATEMENTS["stable"], cmp,
                             _seed_sd(follows, chance_f),
                             f"Between consecutive query frames at misalignment {level:g}, {label}'s peaks move with "
                             f"their part in {100 * follows.mean():.1f}% of cases, two random windows in "
                             f"{100 * chance_f.mean():.1f}% and a map that never moves in {100 * still.mean():.1f}% "
                             f"(so read it with the PCK row); per tracklet, minus chance", data,
                             unit="query tracklets"))
    return claims


# ============================================================================ calibration

def detector_calibration(mot_root: Union[str, Path], keypoint_table: Optional[Union[str, Path]] = None,
                         image_size: Tuple[int, int] = (128, 64)) -> Dict[str, Any]:
    """Where a real detector sits on the world's misalignment axis (module doc).

    detector: the public detections against the ground truth on MOT17 (``mot.box_errors``),
    per frame and between consecutive frames of one identity; world_at_1: the world's box offsets
    at misalignment 1 in the same units (``box_offset_sds``); equivalent_level: per offset, the
    level whose SD equals the detector's (the SDs are linear in the level). keypoint_motion: the
    keypoints' own displacement between consecutive frames inside a box that follows the person,
    in box heights (MOT17: MediaPipe keypoints of ground-truth crops, visibility > 0.5 in both
    frames; needs `keypoint_table`)."""
    from ..data import mot
    from ..data.synthetic.misalignment import box_offset_sds

    seqs = mot.read_mot(mot_root)
    matches = pd.concat([mot.match_detections(s) for s in seqs], ignore_index=True)
    errors = mot.box_errors(matches)
    off = mot.box_offsets(matches["det_x"], matches["det_y"], matches["det_w"], matches["det_h"],
                          matches["x"], matches["y"], matches["w"], matches["h"])
    frame = pd.DataFrame({"sequence": matches["sequence"], "id": matches["id"], "frame": matches["frame"],
                          **{k: np.asarray(v) for k, v in off.items()}})
    keys = ("dx", "dy", "log_scale")
    changes = consecutive_changes(frame, keys)
    world = box_offset_sds(1.0, image_size)
    detector = {"per_frame": {k: errors[f"sd_{k}"] for k in keys},
                "frame_to_frame": {k: float(np.std(changes[k], ddof=1)) for k in keys}}
    out = {"boxes": errors["boxes"], "median_iou": errors["median_iou"], "frame_pairs": int(len(changes)),
           "detector": detector, "world_at_1": world,
           "equivalent_level": {kind: {k: detector[kind][k] / world[kind][k] for k in keys} for kind in detector}}
    if keypoint_table is not None:
        out["keypoint_motion"] = mot_keypoint_motion(seqs, keypoint_table)
    return out


def misalignment_sources(calibration: Optional[Dict[str, Any]], world_motion: Optional[Dict[str, Any]]
                         ) -> List[str]:
    """The paper's two sources of misalignment, apart, in box heights between consecutive frames:
    the detector's box jitter and the keypoints' own motion inside a box that follows the person
    (MOT17), beside the synthetic world's keypoint motion."""
    if not calibration:
        return []
    jitter = calibration["detector"]["frame_to_frame"]
    text = (f"Two sources of misalignment between consecutive MOT17 frames (33 ms apart), in % of the box "
            f"height: the public detector's box jitter against the ground truth, SD {100 * jitter['dx']:.1f} "
            f"horizontally and {100 * jitter['dy']:.1f} vertically and {100 * jitter['log_scale']:.1f}% in "
            f"scale ({calibration['frame_pairs']} frame pairs)")
    motion = calibration.get("keypoint_motion") or {}
    if motion.get("rms") is not None:
        text += (f"; the keypoints' own motion inside the ground-truth box (pose change, no detector), RMS "
                 f"{100 * motion['rms']:.1f} and median {100 * motion['median']:.1f} ({motion['pairs']} keypoint "
                 f"pairs in {motion['frame_pairs']} frame pairs)")
    if world_motion and world_motion.get("rms") is not None:
        text += (f"; in the synthetic world, frames {world_motion['stride']} apart, the exact keypoints move RMS "
                 f"{100 * world_motion['rms']:.1f} and median {100 * world_motion['median']:.1f} inside the box "
                 f"before any box jitter")
    return [text + "."]


def consecutive_changes(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per identity (sequence, id), the change of `keys` from each frame to the next one present."""
    frame = frame.sort_values(["sequence", "id", "frame"])
    nxt = frame.groupby(["sequence", "id"])[["frame", *keys]].shift(-1)
    keep = (nxt["frame"] - frame["frame"]) == 1
    return (nxt[list(keys)] - frame[list(keys)])[keep].reset_index(drop=True)


def mot_keypoint_motion(seqs, keypoint_table: Union[str, Path], min_visibility: float = 0.5) -> Dict[str, Any]:
    """RMS displacement (box heights) of each MediaPipe keypoint between consecutive ground-truth
    crops of one identity, visible in both frames; over every such pair."""
    from ..data import mot
    from ..data.keypoints import read_keypoint_table

    table = read_keypoint_table(keypoint_table)
    boxes = mot.crop_boxes(seqs, crops_root=Path("."))
    rows = table.merge(boxes.rename(columns={"x": "x_box", "y": "y_box"}), on="image")
    # keypoint relative to its box, in box heights: crop pixels -> frame pixels -> box
    rows = rows[rows["visibility"] > min_visibility].assign(
        x=lambda r: (r["x"] + r["crop_left"] - r["x_box"]) / r["h"],
        y=lambda r: (r["y"] + r["crop_top"] - r["y_box"]) / r["h"])
    pairs = rows.merge(rows.assign(frame=rows["frame"] - 1), on=["sequence", "id", "frame", "keypoint"],
                       suffixes=("", "_next"))
    disp = np.hypot(pairs["x_next"] - pairs["x"], pairs["y_next"] - pairs["y"])
    return {"pairs": int(len(pairs)), "frame_pairs": int(pairs[["sequence", "id", "frame"]].drop_duplicates().shape[0]),
            "rms": float(np.sqrt(np.mean(disp ** 2))) if len(disp) else None,
            "median": float(np.median(disp)) if len(disp) else None}


def world_keypoint_motion(dataset, part_set: str, stride: int = 1) -> Dict[str, Any]:
    """The same for the world's exact keypoints (visibility above 0: coordinates are exact) on the
    query tracklets, between frames `stride` apart, in crop heights."""
    kp = split_keypoints(dataset, "query", part_set)
    height = None
    disps = []
    for t in dataset.query:
        for a, b in zip(t.frames, t.frames[stride:]):
            if a in kp and b in kp:
                both = (kp[a][:, 2] > 0) & (kp[b][:, 2] > 0)
                if height is None:
                    from PIL import Image

                    with Image.open(a) as im:
                        height = im.height
                disps.append(np.hypot(*(kp[b][both, :2] - kp[a][both, :2]).T) / height)
    disp = np.concatenate(disps) if disps else np.array([])
    return {"pairs": int(len(disp)), "stride": stride,
            "rms": float(np.sqrt(np.mean(disp ** 2))) if len(disp) else None,
            "median": float(np.median(disp)) if len(disp) else None}


# ============================================================================ summaries

def mean_interval(scores: np.ndarray) -> Tuple[float, float, float]:
    """(mean, low, high) in percent of (seeds, units) scores: the two-way t interval of their mean."""
    mean, se, df = two_way_interval(scores)
    half = float(student_t.ppf(1 - (1 - CONFIDENCE) / 2, df)) * se if se > 0 else 0.0
    return 100 * mean, 100 * (mean - half), 100 * (mean + half)


def level_summary(evals: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, training level, test world): each metric's mean over seeds and queries with
    its 95% t interval (two-way, seeds x queries), and the seeds."""
    rows = []
    for (variant, train, m, o), sel in evals.groupby(["variant", "train_level", "test_misalignment",
                                                      "test_occlusion"], sort=False):
        row = {"variant": variant, "train_level": train, "test_misalignment": m, "test_occlusion": o,
               "seeds": int(sel["seed"].nunique())}
        for metric in METRICS:
            mean, low, high = mean_interval(query_scores(evals, variant, train, TestWorld(m, o), metric).to_numpy())
            row.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
        if isinstance(sel["alignment"].iloc[0], dict):
            for key in ("pck", "prior_pck", "chance_pck"):
                row[key] = 100 * float(np.mean([a[key] for a in sel["alignment"]]))
        rows.append(row)
    order = {v: i for i, v in enumerate(VARIANTS)}
    return pd.DataFrame(rows).sort_values(["train_level", "test_occlusion", "variant", "test_misalignment"],
                                          key=lambda c: c.map(order) if c.name == "variant" else c,
                                          ignore_index=True)


def check_evaluations(evals: pd.DataFrame, models: Sequence[TrainedModel], worlds: Sequence[TestWorld],
                      trainings: Optional[pd.DataFrame] = None) -> None:
    """The study ran correctly: one row per (model, world), metrics in [0, 100], the per-query
    records give each row's rank-1 and mAP, and a model tested on its own training world scores
    what its training's final evaluation gave (the same evaluation)."""
    from ..engine.evaluator import per_query_metrics

    got = sorted(zip(evals["model"], evals["world"]))
    want = sorted((m.key, w.key) for m in models for w in worlds)
    if got != want:
        raise AssertionError(f"evaluations do not match the plan: missing {sorted(set(want) - set(got))[:4]}, "
                             f"unexpected {sorted(set(got) - set(want))[:4]}")
    for row in evals.to_dict("records"):
        if not (0 <= row["rank1"] <= 100 and 0 <= row["mAP"] <= 100):
            raise AssertionError(f"{row['model']} on {row['world']}: metrics outside [0, 100]")
        again = per_query_metrics(row[PER_QUERY_KEY])
        if (again["rank1"], again["mAP"]) != (row["rank1"], row["mAP"]):
            raise AssertionError(f"{row['model']} on {row['world']}: per-query records give {again}")
    if trainings is None:
        return
    own = evals[np.isclose(evals["test_misalignment"], evals["train_level"]) & np.isclose(evals["test_occlusion"], 0)]
    for row in own.merge(trainings, on="model", suffixes=("", "_trained")).to_dict("records"):
        if (row["rank1"], row["mAP"]) != (row["rank1_trained"], row["mAP_trained"]):
            raise AssertionError(f"{row['model']} on its own training world scores rank-1 {row['rank1']} and mAP "
                                 f"{row['mAP']}, its training's final evaluation {row['rank1_trained']} and "
                                 f"{row['mAP_trained']}: the two evaluations differ")


def study_metrics(trainings: pd.DataFrame, evals: pd.DataFrame, profile: str, params: Dict[str, Any],
                  claims: Sequence[Claim], chance: float, calibration: Optional[Dict[str, Any]],
                  world_motion: Optional[Dict[str, Any]], wall_time_s: float) -> Dict[str, Any]:
    """What metrics.json holds: every training, every evaluation with its per-query record and
    part alignment (what every verdict is recomputed from), the level summary, the claims, the
    detector calibration."""
    eval_keys = ["model", "variant", "seed", "train_level", "test_misalignment", "test_occlusion", "world",
                 "rank1", "rank5", "mAP", "ap_definition", "num_query", "num_gallery", PER_QUERY_KEY, "alignment",
                 WALL_TIME_KEY, CPU_TIME_KEY, "resumed"]
    return to_jsonable({
        "study": STUDY, "profile": profile, "parameters": params, "paper_claim": PAPER_CLAIM,
        "chance_rank1": chance, "trainings": trainings.to_dict("records"),
        "evaluations": [{k: r[k] for k in eval_keys if k in r} for r in evals.to_dict("records")],
        "by_level": level_summary(evals).to_dict("records"),
        "claims": claims_to_records(claims),
        "calibration": calibration, "world_keypoint_motion": world_motion,
        FINDINGS_KEY: misalignment_sources(calibration, world_motion),
        WALL_TIME_KEY: wall_time_s,
        "trained_this_session": int((~trainings["resumed"]).sum()),
        # what the trainings took when they trained (a resumed one's reload is not training time) and
        # the evaluations (a stored evaluation keeps its own time)
        RUNS_WALL_TIME_KEY: float(trainings["train_time_s"].sum() + evals[WALL_TIME_KEY].sum()),
    })      # not rounded: the claims are recomputed from these records and must come out the same


def evaluations_from_metrics(metrics: Dict[str, Any]) -> pd.DataFrame:
    """The evaluations table back from a metrics.json (to recompute the claims)."""
    return pd.DataFrame(metrics["evaluations"])


# ============================================================================ figures

def _mark_detector(ax, calibration: Optional[Dict[str, Any]]) -> None:
    """Where a real detector sits (``detector_calibration``): its box changes from one frame to
    the next (darker band) and its per-frame offsets from the true box (lighter), each over the
    three offsets dx, dy and scale."""
    if calibration is None:
        return
    for kind, shade, label in (("per_frame", "0.9", "detector per frame"),
                               ("frame_to_frame", "0.78", "detector frame to frame")):
        levels = calibration["equivalent_level"][kind].values()
        lo, hi = min(levels), min(max(levels), 1.0)
        ax.axvspan(lo, hi, color=shade, zorder=0, linewidth=0)
        ax.text(lo, ax.get_ylim()[1] * (0.97 if kind == "per_frame" else 0.92), f" {label}", va="top", ha="left",
                fontsize=6.5, color="0.3")


def plot_levels(summary: pd.DataFrame, train_level: float, chance: Optional[float] = None,
                calibration: Optional[Dict[str, Any]] = None, size=(11.0, 4.2)):
    """Rank-1 and mAP against the test misalignment for models trained at `train_level`
    (occluders off): mean over seeds and queries, 95% interval bars; the grey bands are where a
    real detector's boxes sit (``detector_calibration``)."""
    sel = summary[np.isclose(summary["train_level"], train_level) & np.isclose(summary["test_occlusion"], 0.0)]
    fig, axes = new_figure(*size, ncols=len(METRICS))
    names = {"rank1": "rank-1 (%)", "mAP": "mAP (%)"}
    for ax, metric in zip(axes, METRICS):
        for variant, rows in sel.groupby("variant", sort=False):
            v = VARIANTS[variant]
            ax.errorbar(rows["test_misalignment"], rows[metric],
                        yerr=[rows[metric] - rows[f"{metric}_low"], rows[f"{metric}_high"] - rows[metric]],
                        marker="o", capsize=3, color=v.color, label=v.label)
        if metric == "rank1" and chance is not None:
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1)
            ax.text(0.0, chance, " chance", va="bottom", fontsize=7, color="grey")
        ax.set_xlabel("test misalignment (box jitter and drift; 0 = fixed boxes)")
        ax.set_ylabel(names[metric])
        ax.set_xticks(sorted(sel["test_misalignment"].unique()))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        _mark_detector(ax, calibration)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Trained at misalignment {train_level:g}, tested at every level: mean over "
                 f"{int(sel['seeds'].max())} seeds x queries, 95% interval", fontsize=10)
    fig.tight_layout()
    return fig


def plot_alignment(summary: pd.DataFrame, evals: pd.DataFrame, train_level: float,
                   calibration: Optional[Dict[str, Any]] = None, size=(5.8, 4.2)):
    """PCK of the SSN's attention peaks against the test misalignment (95% interval over seeds x
    query tracklets), beside the position prior and chance."""
    fig, ax = new_figure(*size)
    sel = summary[np.isclose(summary["train_level"], train_level) & np.isclose(summary["test_occlusion"], 0.0)
                  & summary.get("pck", pd.Series(np.nan, index=summary.index)).notna()]
    for variant, rows in sel.groupby("variant", sort=False):
        v = VARIANTS[variant]
        bounds = np.array([mean_interval(alignment_scores(evals, variant, train_level, TestWorld(float(level)), "ssn")
                                         .to_numpy())[1:] for level in rows["test_misalignment"]])
        ax.errorbar(rows["test_misalignment"], rows["pck"],
                    yerr=[rows["pck"] - bounds[:, 0], bounds[:, 1] - rows["pck"]],
                    marker="o", capsize=3, color=v.color, label=f"{v.label} (attention peaks)")
        ax.plot(rows["test_misalignment"], rows["prior_pck"], linestyle="--", color=v.color, alpha=0.6,
                label="position prior (fixed window per part)")
        ax.plot(rows["test_misalignment"], rows["chance_pck"], linestyle=":", color="grey", label="chance")
    ax.set_xlabel("test misalignment")
    ax.set_ylabel("PCK (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    _mark_detector(ax, calibration)
    ax.legend(fontsize=7, loc="center right")
    ax.set_title("Do the SSN's parts land on their body parts?", fontsize=10)
    fig.tight_layout()
    return fig


def level_strip(tracklets_by_level: Dict[float, Any], n_frames: int = 8, cell=(0.7, 1.4)):
    """The same tracklet at every level (rows), its first frames in columns: what the knob does."""
    from PIL import Image

    levels = sorted(tracklets_by_level)
    n = min(n_frames, min(len(t.frames) for t in tracklets_by_level.values()))
    fig, axes = new_figure(cell[0] * n + 0.8, cell[1] * len(levels), nrows=len(levels), ncols=n, squeeze=False)
    for r, level in enumerate(levels):
        frames = tracklets_by_level[level].frames
        for c in range(n):
            ax = axes[r, c]
            with Image.open(frames[c]) as im:
                ax.imshow(np.asarray(im.convert("RGB")), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"m = {level:g}", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.95, bottom=0.01, wspace=0.04, hspace=0.06)
    return fig


def attention_widget(work_dir: Union[str, Path], models: Sequence[TrainedModel], worlds: Dict[str, Any],
                     n_frames: int = 8):
    """ipywidgets panel over the explorer's `attention_strip`: trained model, test world, query
    tracklet, part."""
    import ipywidgets as w

    from ..explorer import attention_strip, clip_attention, load_model, show_figure

    ssn = [m for m in models if VARIANTS[m.variant].has_attention]
    if not ssn:
        raise ValueError("no SSN3D model among the trained ones: attention needs one")
    model = w.Dropdown(options=[(f"{VARIANTS[m.variant].label}, trained at {m.train_level:g}, seed {m.seed}", m)
                                for m in ssn], description="model")
    world = w.Dropdown(options=sorted(worlds), description="test world")
    first = worlds[world.value]
    track = w.Dropdown(options=[(t.name, i) for i, t in enumerate(first.query)], value=0, description="query")
    part = w.Dropdown(options=[], description="part")
    out = w.Output()
    updating = []   # non-empty while redraw itself changes the part list (no nested redraw)

    def redraw(*_):
        if updating:
            return
        loaded = load_model(checkpoint_path(work_dir, model.value))
        tracklet = worlds[world.value].query[track.value]
        images, maps, extent, _ = clip_attention(loaded, tracklet, range(min(n_frames, len(tracklet))))
        names = loaded.part_names
        if [n for n, _ in part.options] != names:
            updating.append(True)
            keep = part.value if part.value is not None and part.value < len(names) else 0
            part.options = [(n, i) for i, n in enumerate(names)]
            part.value = keep
            updating.clear()
        show_figure(out, attention_strip(images, maps, part.value, extent,
                                         f"{model.label}, {world.value}: {names[part.value]}"))

    for control in (model, world, track, part):
        control.observe(redraw, "value")
    redraw()
    return w.VBox([w.HBox([model, world]), w.HBox([track, part]), out])


__all__ = ["VARIANTS", "Variant", "TrainedModel", "TestWorld", "PAPER_CLAIM", "plan_models", "plan_tests",
           "model_config", "test_config", "prepare_worlds", "train_models", "evaluate_models", "checkpoint_path",
           "part_alignment", "split_keypoints", "query_scores", "alignment_scores", "paired_arrays",
           "central_claims", "alignment_claims", "what_would_decide", "detector_calibration",
           "consecutive_changes", "mot_keypoint_motion", "world_keypoint_motion", "level_summary",
           "check_evaluations", "study_metrics", "evaluations_from_metrics", "plot_levels", "plot_alignment",
           "level_strip", "attention_widget", "chance_rank1", "PER_QUERY_KEY"]
