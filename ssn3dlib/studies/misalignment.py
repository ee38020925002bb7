"""The misalignment study (issue 5, notebook 05): the paper's central claim, measured.

Claim: 3D convolution over unaligned feature maps (C3D) degrades as the person drifts
inside the box from frame to frame, and the SSN's part alignment recovers it.

The synthetic world's ``misalignment`` knob jitters and drifts each frame's box (and, by
default, adds occluders at 0.3 x the level); a tracklet's person, background and gait do
not change with it, so the levels are paired: the same world seen through worse boxes. A
sweep point is (level, model variant, training seed); every point trains with the same
base config (backbone, budget, data), through the engine, and is evaluated on the test
identities of its level's world.

Resume: each point writes ``<work_dir>/<key>/result.json`` when it has been evaluated; a
later sweep skips it when the stored config is the one it would train now, so an
interrupted batch continues where it stopped (and a point killed mid-training resumes from
its engine checkpoint, ``toolkit.engine_runs.train_or_reuse``). A point whose config changed
is retrained from scratch.

Part alignment (``part_alignment``) scores the SSN's attention peaks against the world's exact
keypoints with this study's own rules, passed to the toolkit explicitly: a keypoint counts when
its visibility is above 0 (self-occluded parts too), and unsupervised maps are matched to parts
on the very frames that are scored (study 03 counts only visibility above 0.5 and fits the
matching on labelled crops).

Verdicts (``central_claims``): every point keeps its per-query record (``per_query``: each test
query's first-true-match rank and AP, from the engine's evaluation; a point stored before the
engine kept it is re-evaluated from its checkpoint, which must reproduce its recorded rank-1 and
mAP exactly). The levels' worlds hold the same query tracklets (same names, persons and
lengths; only the boxes differ), so settings are compared query by query (paired) with the
toolkit's ``compare``: a t interval over the shared queries and the seed-paired runs.
A drop (level low minus level high) pairs each seed with itself: the same initialisation and
batch order at both levels, the study's design. Each claim is reproduced / contradicted /
inconclusive by the toolkit's one rule; an inconclusive one says what n would decide it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..figures import new_figure
from .toolkit import (
    NOT_IN_PAPER,
    WALL_TIME_KEY,
    Claim,
    Comparison,
    WindowGrid,
    chance_pck,
    claims_to_records,
    compare,
    match_parts,
    pck,
    read_json,
    to_jsonable,
    visible_keypoints,
    write_json,
)
from .toolkit.engine_runs import chance_rank1, config_differences, epoch_losses, train_or_reuse  # chance_rank1: API
from .toolkit.parallel import map_in_processes
from .toolkit.records import RUNS_WALL_TIME_KEY
from .toolkit.statistics import seeds_needed, units_needed

STUDY = "misalignment"
METRICS = ("rank1", "mAP")
RESULT_FILE = "result.json"
#: Per-point CPU time (all threads of this process): the load-independent cost of a point.
CPU_TIME_KEY = "cpu_time_s"
#: Per-query record of a point's evaluation (the engine's: query, first_match_rank, ap).
PER_QUERY_KEY = "per_query"
#: What the paper claims (Sec. 3), the statement each metric's verdict tests.
PAPER_CLAIM = ("3D convolution over unaligned feature maps degrades as the person moves inside the box "
               "from frame to frame; the SSN's part alignment recovers the loss")


@dataclass(frozen=True)
class Variant:
    """A model as the study names it: an engine model and, for SSN3D, its strategy."""

    label: str
    model: str
    strategy: Optional[str] = None
    color: str = "black"

    @property
    def has_attention(self) -> bool:
        """Whether the model returns attention maps (what the alignment and the viewer need)."""
        from ..models import model_capabilities

        return model_capabilities(self.model, **({"strategy": self.strategy} if self.strategy else {})).attention_maps


#: The compared models, in plotting order (colours fixed so every figure agrees).
VARIANTS: Dict[str, Variant] = {
    "ssn3d-semi": Variant("SSN3D semi-supervised", "ssn3d", "semi-supervised", "tab:red"),
    "ssn3d-unsup": Variant("SSN3D unsupervised", "ssn3d", "unsupervised", "tab:orange"),
    "c3d": Variant("C3D (unaligned 3D conv)", "c3d", None, "tab:blue"),
    "tp": Variant("TP (temporal pooling)", "tp", None, "tab:green"),
    "st-attention": Variant("2D+1D attention", "st-attention", None, "tab:purple"),
}

# ============================================================================ the plan

@dataclass(frozen=True)
class SweepPoint:
    level: float
    variant: str
    seed: int

    @property
    def key(self) -> str:
        """Folder name of the point: stable, sortable, no characters a shell dislikes."""
        return f"m{self.level:.2f}_{self.variant}_s{self.seed}"

    def overrides(self) -> List[str]:
        """Engine overrides that turn the base config into this point's config."""
        v = VARIANTS[self.variant]
        out = [f"data.world.misalignment={self.level!r}", f"model.name={v.model}", f"train.seed={self.seed}"]
        if v.strategy is not None:
            out.append(f"model.strategy={v.strategy}")
        return out


def plan_sweep(levels: Sequence[float], variants: Sequence[str], seeds: Sequence[int]) -> List[SweepPoint]:
    """Every (level, variant, seed), grouped by level (one world at a time), then variant, then seed.

    The same seeds for every model and level keep the comparison paired.
    """
    levels, variants, seeds = list(levels), list(variants), list(seeds)
    if not levels:
        raise ValueError("levels is empty; give misalignment levels in [0, 1], e.g. [0.0, 0.5, 1.0]")
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 <= level <= 1.0:
            raise ValueError(f"misalignment level {level!r} is outside [0, 1]; the world's knob runs from "
                             f"0 (fixed boxes) to 1 (severe jitter)")
    if len(set(float(x) for x in levels)) != len(levels):
        raise ValueError(f"levels {levels} repeat a value; list each level once")
    if len(levels) < 2:
        raise ValueError(f"a sweep needs at least two levels to show a trend, got {levels}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"unknown model variants {unknown or variants}; choose from {', '.join(VARIANTS)}")
    if len(set(variants)) != len(variants):
        raise ValueError(f"models {variants} repeat a name; list each once")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {seeds} repeat a value; list each once")
    return [SweepPoint(float(level), variant, int(seed))
            for level in sorted(float(x) for x in levels) for variant in variants for seed in seeds]


# ============================================================================ running

def point_config(base, point: SweepPoint, overrides: Sequence[str] = ()):
    """The point's RunConfig: base config, the sweep's extra overrides, then the point's own."""
    from ..engine import load_config

    return load_config(base, list(overrides) + point.overrides())


def point_status(point: SweepPoint, config, work_dir: Path) -> Tuple[str, Optional[Dict[str, Any]]]:
    """("done", result) when a valid result exists; else ("todo" | "stale: <keys>", None)."""
    result = read_json(Path(work_dir) / point.key / RESULT_FILE)
    if result is None:
        return "todo", None
    changed = config_differences(result.get("config", {}), config.to_dict())
    if changed:
        return f"stale: config changed in {', '.join(changed[:4])}", None
    return "done", result


def train_point(point: SweepPoint, config, run_dir: Path) -> Dict[str, Any]:
    """Train and evaluate one point with the engine (continuing or loading what run_dir holds
    when its config gives the same numbers); the numbers a result row needs. The last epoch's
    SSN loss says whether the SSN learned at all within the budget (a fresh SSN sits at log N):
    what makes an SSN3D point mean something."""
    result = train_or_reuse(config, run_dir)
    final = result.final
    per_query = final.get(PER_QUERY_KEY) or point_per_query(Path(run_dir) / "checkpoints" / "last.pt", final)
    return {"rank1": final["rank1"], "rank5": final["rank5"], "mAP": final["mAP"], PER_QUERY_KEY: per_query,
            "ap_definition": final["ap_definition"], "num_query": final["num_query"],
            "num_gallery": final["num_gallery"], "epochs": result.epochs,
            "train_time_s": result.train_seconds, "eval_time_s": final["eval_seconds"],
            "device": result.device, **epoch_losses(run_dir, config.model.capabilities().ssn_loss)}


def point_per_query(checkpoint: Union[str, Path], recorded: Dict[str, Any]) -> Dict[str, List]:
    """The per-query record of a finished point, by evaluating its checkpoint again (with the
    thread count it was trained with); the evaluation must give the recorded rank-1 and mAP
    exactly, or the record would not be the one behind the point's numbers."""
    import torch

    from ..engine.checkpoint import load_checkpoint
    from ..engine.evaluator import evaluate, per_query_metrics

    threads = torch.get_num_threads()
    wanted = (load_checkpoint(checkpoint)["config"].get("train") or {}).get("num_threads")
    try:
        if wanted:
            torch.set_num_threads(wanted)
        evaluation = evaluate(checkpoint, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    per_query = evaluation[PER_QUERY_KEY]
    again = {**{m: evaluation[m] for m in METRICS}, **{f"{m} from per_query": v
                                                       for m, v in per_query_metrics(per_query).items()}}
    off = {k: v for k, v in again.items() if v != recorded[k.split(" ")[0]]}
    if off:
        raise RuntimeError(f"{checkpoint}: evaluating the checkpoint again gives {off}, not the recorded "
                           f"rank-1 {recorded['rank1']} and mAP {recorded['mAP']}; retrain the point (delete its "
                           f"result.json) rather than pair queries from a different evaluation")
    return per_query


def with_per_query(result: Dict[str, Any], point: SweepPoint, work_dir: Path,
                   evaluator: Callable[[Path, Dict[str, Any]], Dict[str, List]] = point_per_query) -> Dict[str, Any]:
    """A stored result with its per-query record: added (and result.json rewritten) when the
    point was stored before the engine kept one."""
    if result.get(PER_QUERY_KEY):
        return result
    result = {**result, PER_QUERY_KEY: evaluator(checkpoint_path(work_dir, point), result)}
    write_json(Path(work_dir) / point.key / RESULT_FILE, result)
    return result


def run_point(point: SweepPoint, config, work_dir: Path,
              trainer: Callable[[SweepPoint, Any, Path], Dict[str, Any]] = train_point) -> Dict[str, Any]:
    """Train one point and write its result.json (atomically); returns the result row."""
    run_dir = Path(work_dir) / point.key
    start, cpu_start = time.perf_counter(), time.process_time()
    numbers = trainer(point, config, run_dir)
    v = VARIANTS[point.variant]
    row = {"level": point.level, "model": point.variant, "label": v.label, "engine_model": v.model,
           "strategy": v.strategy, "seed": point.seed, **numbers,
           WALL_TIME_KEY: time.perf_counter() - start, CPU_TIME_KEY: time.process_time() - cpu_start,
           "config": config.to_dict()}
    write_json(run_dir / RESULT_FILE, row)
    return row


def prepare_worlds(base, levels: Iterable[float], overrides: Sequence[str] = (),
                   progress: bool = True) -> Dict[float, Any]:
    """Generate (or find in the cache) each level's world once, before any training, so no
    point's wall time includes it; returns {level: dataset} (train/query/gallery tracklets)."""
    from ..engine import load_config
    from ..engine.build import prepare_dataset

    worlds = {}
    for level in tqdm(sorted(set(float(x) for x in levels)), desc="worlds", unit="level", disable=not progress):
        config = load_config(base, list(overrides) + [f"data.world.misalignment={level!r}"])
        if config.data.name != "synthetic_world" or config.data.world is None:
            raise ValueError(f"the misalignment study needs data.name: synthetic_world with data.world set "
                             f"(the knob is data.world.misalignment); the config has data.name "
                             f"{config.data.name!r} and data.world {config.data.world!r}")
        worlds[level] = prepare_dataset(config.data, progress=False)
    return worlds


def run_sweep(points: Sequence[SweepPoint], base, work_dir: Union[str, Path], overrides: Sequence[str] = (),
              progress: bool = True,
              trainer: Callable[[SweepPoint, Any, Path], Dict[str, Any]] = train_point,
              evaluator: Callable[[Path, Dict[str, Any]], Dict[str, List]] = point_per_query,
              workers: int = 1) -> pd.DataFrame:
    """Every point's result (one row each, in the points' order, `resumed` True for those found
    done), each with its per-query record (`evaluator` re-evaluates a stored point that lacks
    one: ``with_per_query``). workers > 1 trains that many points at once in separate processes
    (``toolkit.parallel``; `trainer` must then be a module-level function).

    base: a config name in configs/, a file or a dict; overrides apply to every point.
    """
    work_dir = Path(work_dir)
    configs = [point_config(base, p, overrides) for p in points]  # all checked before any training
    rows: List[Optional[Dict[str, Any]]] = [None] * len(points)
    todo = []
    for i, (point, config) in enumerate(zip(points, configs)):
        status, result = point_status(point, config, work_dir)
        if status == "done":
            rows[i] = {**with_per_query(result, point, work_dir, evaluator), "resumed": True}
            continue
        if status != "todo" and progress:
            tqdm.write(f"{point.key}: {status}; retraining")
        if status != "todo":
            (work_dir / point.key / RESULT_FILE).unlink(missing_ok=True)
        todo.append(i)
    bar = tqdm(total=len(points), initial=len(points) - len(todo), desc="misalignment sweep", unit="point",
               disable=not progress)
    calls = [(points[i], configs[i], work_dir, trainer) for i in todo]
    for k, row in map_in_processes(run_point, calls, workers):
        rows[todo[k]] = {**row, "resumed": False}
        bar.set_postfix_str(points[todo[k]].key)
        bar.update()
    bar.close()
    return pd.DataFrame(rows)


# ============================================================================ summaries

RESULT_COLUMNS = ["level", "model", "strategy", "seed", "rank1", "mAP", WALL_TIME_KEY]


def check_results(results: pd.DataFrame, points: Sequence[SweepPoint]) -> None:
    """The study ran correctly: one row per planned point, metrics in [0, 100], times positive."""
    got = sorted(zip(results["level"], results["model"], results["seed"]))
    want = sorted((p.level, p.variant, p.seed) for p in points)
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        raise AssertionError(f"sweep results do not match the plan: missing {missing}, unexpected {extra}")
    for metric in METRICS:
        bad = results[~results[metric].between(0, 100)]
        if len(bad):
            raise AssertionError(f"{metric} outside [0, 100] at {bad[['level', 'model', 'seed']].values.tolist()}")
    if not (results[WALL_TIME_KEY] > 0).all():
        raise AssertionError("every point must have a positive wall time")


def summary_by_level(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, level): mean, min and max over seeds of rank-1 and mAP (the figure's lines and bands)."""
    agg = {f"{m}_{s}": (m, s) for m in METRICS for s in ("mean", "min", "max")}
    out = results.groupby(["model", "level"], sort=False).agg(seeds=("seed", "nunique"), **agg).reset_index()
    order = {v: i for i, v in enumerate(VARIANTS)}
    return out.sort_values(["model", "level"], key=lambda c: c.map(order) if c.name == "model" else c,
                           ignore_index=True)


def _rows(results: pd.DataFrame, model: str, level: float) -> pd.DataFrame:
    """One model's result rows at one level, one per seed."""
    sel = results[(results["model"] == model) & np.isclose(results["level"], level)]
    if sel.empty:
        raise ValueError(f"no results for model {model!r} at misalignment {level}; run that point first")
    if sel["seed"].duplicated().any():
        raise ValueError(f"model {model!r} at misalignment {level} has a seed twice: {sel['seed'].tolist()}")
    return sel


def paired(results: pd.DataFrame, model: str, level: float, metric: str) -> pd.Series:
    """One model's metric at one level, indexed by seed."""
    sel = _rows(results, model, level)
    return sel.set_index("seed")[metric].sort_index()


def drop(results: pd.DataFrame, model: str, metric: str, low: float, high: float) -> pd.Series:
    """Per seed: metric at `low` minus metric at `high` (positive = worse under misalignment)."""
    a, b = paired(results, model, low, metric), paired(results, model, high, metric)
    if list(a.index) != list(b.index):
        raise ValueError(f"model {model!r} has seeds {list(a.index)} at {low} but {list(b.index)} at {high}; "
                         f"the drop needs the same seeds at both levels")
    return a - b


def model_summary(results: pd.DataFrame) -> List[Dict[str, Any]]:
    """Per model: mean metrics at the lowest and highest level, the paired drop (mean, min, max
    over seeds) and the mean wall time of a point."""
    low, high = float(results["level"].min()), float(results["level"].max())
    rows = []
    for model in [m for m in VARIANTS if m in set(results["model"])]:
        sel = results[results["model"] == model]
        row: Dict[str, Any] = {"model": model, "label": VARIANTS[model].label,
                               "seeds": sorted(int(s) for s in sel["seed"].unique()),
                               f"mean_{WALL_TIME_KEY}": float(sel[WALL_TIME_KEY].mean())}
        for metric in METRICS:
            d = drop(results, model, metric, low, high)
            row[metric] = {"mean_over_levels": float(sel[metric].mean()),
                           f"at_{low:g}": float(paired(results, model, low, metric).mean()),
                           f"at_{high:g}": float(paired(results, model, high, metric).mean()),
                           "drop_mean": float(d.mean()), "drop_min": float(d.min()), "drop_max": float(d.max())}
        rows.append(row)
    return rows


# ============================================================================ the verdicts

#: Per-query score of each metric: a hit at rank 1 (1/0) or the query's AP (0..1).
SCORE_OF = {"rank1": "hit at rank 1", "mAP": "AP"}
#: Paper statements of the central claim's parts (Sec. 3), one tested comparison each.
STATEMENTS = {
    "degrades": "3D convolution over unaligned feature maps (C3D) degrades as the person moves inside the box "
                "from frame to frame",
    "beats": "the SSN's part alignment recovers the loss: under misalignment SSN3D beats C3D",
    "drops_less": "the SSN's part alignment recovers the loss: SSN3D loses less than C3D as misalignment grows",
}


def query_scores(results: pd.DataFrame, model: str, level: float, metric: str) -> pd.DataFrame:
    """(seeds x queries) per-query scores of one model at one level: a hit at rank 1 (1/0) for
    rank1, the query's AP (0..1) for mAP; rows indexed by seed, columns by query name; queries
    without a true match (no rank, no AP) are left out, as the evaluation leaves them out."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    sel = _rows(results, model, level)
    rows = {}
    for seed, record in zip(sel["seed"], sel.get(PER_QUERY_KEY, pd.Series([None] * len(sel)))):
        if not isinstance(record, dict):
            raise ValueError(f"model {model!r} at misalignment {level}, seed {seed} has no per-query record; "
                             f"run_sweep adds it (re-evaluating a stored point)")
        ranks = np.asarray(record["first_match_rank"])
        matched = ranks > 0
        values = (ranks == 1).astype(float) if metric == "rank1" else np.array(
            [a if m else np.nan for a, m in zip(record["ap"], matched)], dtype=float)
        rows[int(seed)] = pd.Series(values[matched], index=np.asarray(record["query"])[matched])
    frame = pd.DataFrame(rows).T.sort_index()
    if frame.isna().any().any():
        raise ValueError(f"model {model!r} at misalignment {level}: the seeds' evaluations hold different queries")
    return frame


def _same_queries(*frames: pd.DataFrame) -> List[np.ndarray]:
    """The frames' scores as (seeds, queries) arrays over one shared query order (paired)."""
    names = sorted(frames[0].columns)
    for f in frames[1:]:
        if sorted(f.columns) != names:
            raise ValueError(f"paired settings must be scored on the same queries; got {len(names)} and "
                             f"{len(f.columns)} queries ({sorted(set(names) ^ set(f.columns))[:4]} differ)")
    return [f[names].to_numpy(dtype=float) for f in frames]


def level_drop(results: pd.DataFrame, model: str, metric: str, low: float, high: float) -> pd.DataFrame:
    """(seeds x queries) per-query drop, score at `low` minus score at `high` (positive = worse
    under misalignment), each seed paired with itself (same initialisation and batch order)."""
    a, b = query_scores(results, model, low, metric), query_scores(results, model, high, metric)
    if list(a.index) != list(b.index):
        raise ValueError(f"model {model!r} has seeds {list(a.index)} at {low} but {list(b.index)} at {high}; "
                         f"the drop needs the same seeds at both levels")
    a_arr, b_arr = _same_queries(a, b)
    return pd.DataFrame(a_arr - b_arr, index=a.index, columns=sorted(a.columns))


def _seed_sd(*arrays: np.ndarray) -> float:
    """Pooled standard deviation (points) of single seeds' means within each setting; NaN with one seed."""
    variances = [np.var(100 * a.mean(axis=1), ddof=1) for a in arrays if len(a) > 1]
    return float(np.sqrt(np.mean(variances))) if variances else float("nan")


#: Smallest effect (points) whose n an inconclusive reason computes: issue 11's target MDE for
#: a rank-1 comparison; a smaller observed effect is not worth a design of its own.
DECIDE_FLOOR = 10.0


def what_would_decide(cmp: Comparison, seed_sd: float, floor: float = DECIDE_FLOOR) -> str:
    """For an inconclusive comparison: the design's MDE and the n that would detect the
    observed effect (or `floor` points when it is smaller) at 80% power: training seeds per
    setting at the observed seed scatter (``seeds_needed``) and test queries (the MDE scales as
    1/sqrt(queries))."""
    queries = cmp.n["queries"]
    observed = abs(cmp.effect)
    target = max(observed, floor)
    what = (f"the observed {observed:.1f} points" if observed >= floor
            else f"a {floor:g}-point effect (the observed one is {cmp.effect:+.1f})")
    seeds = (f"about {seeds_needed(seed_sd, target)} seeds per setting at the observed seed scatter "
             f"({seed_sd:.1f} points per seed, itself from {min(cmp.n['seeds_a'], cmp.n['seeds_b'])} seeds)"
             if np.isfinite(seed_sd) and seed_sd > 0 else "more seeds (their scatter is unmeasured here)")
    more_queries = (f"about {units_needed(queries, cmp.mde, target)} test queries (the MDE scales as "
                    f"1/sqrt(queries))" if cmp.mde > 0 else
                    "not more queries: the queries' scores do not differ between the two settings here")
    return (f"{cmp.reason or 'the 95% interval includes 0'}: with {queries} queries and "
            f"{cmp.n['seeds_a']} and {cmp.n['seeds_b']} seeds the minimum detectable effect is {cmp.mde:.1f} "
            f"points. Detecting {what} at 80% power takes {seeds} and {more_queries}; issue 13 redesigns this "
            f"study to decide it.")


def _claim(name: str, source: str, statement: Optional[str], cmp: Comparison, seed_sd: float, detail: str,
           data: str) -> Claim:
    reason = what_would_decide(cmp, seed_sd) if cmp.verdict == "inconclusive" else ""
    return Claim(name, source, statement or NOT_IN_PAPER, None, detail=f"{detail}: {cmp.describe()}",
                 data=data, paper_claim=statement is not None, reason=reason, comparison=cmp.to_dict())


def _short(model: str) -> str:
    """A model's name in a sentence: its label without the parenthesis ("C3D", "TP")."""
    return VARIANTS[model].label.split(" (")[0]


def central_claims(results: pd.DataFrame, profile: str, metrics: Sequence[str] = METRICS,
                   unaligned: str = "c3d", aligned: str = "ssn3d-semi", control: str = "tp") -> List[Claim]:
    """The central claim's parts, each a paired comparison (``compare``) between the lowest and
    highest level, per metric (each metric its own claim, none deciding another's):

    - ``c3d_degrades_<m>``: C3D at the lowest level minus C3D at the highest (paper: > 0);
    - ``ssn3d_beats_c3d_misaligned_<m>``: SSN3D minus C3D at the highest level (> 0);
    - ``ssn3d_drops_less_<m>``: C3D's drop minus SSN3D's drop (> 0);
    - ``control_c3d_drop_vs_tp_<m>`` (our control, when TP ran): C3D's drop minus TP's, is the
      loss specific to 3D convolution (TP pools frames and has no temporal kernel to misalign)?

    Models missing from the sweep leave out the claims that need them.
    """
    low, high = float(results["level"].min()), float(results["level"].max())
    if low == high:
        raise ValueError("the verdicts compare two misalignment levels; the results hold only one")
    present = set(results["model"])
    ul, al = _short(unaligned), _short(aligned)
    claims = []
    for metric in metrics:
        data = (f"synthetic world, misalignment {low:g} against {high:g} (the same query tracklets at every "
                f"level), per-query {SCORE_OF[metric]} ({metric}); profile {profile}")
        u_low, u_high = _same_queries(query_scores(results, unaligned, low, metric),
                                      query_scores(results, unaligned, high, metric))
        cmp = compare(u_low, u_high)
        claims.append(_claim(
            f"c3d_degrades_{metric}", "Sec. 3 claim", STATEMENTS["degrades"], cmp, _seed_sd(u_low, u_high),
            f"{ul}'s {metric} is {100 * u_low.mean():.1f} at misalignment {low:g} and {100 * u_high.mean():.1f} at "
            f"{high:g}; level {low:g} minus level {high:g}", data))
        if aligned in present:
            a_high, _ = _same_queries(query_scores(results, aligned, high, metric),
                                      query_scores(results, unaligned, high, metric))
            cmp = compare(a_high, u_high)
            claims.append(_claim(
                f"ssn3d_beats_c3d_misaligned_{metric}", "Sec. 3 claim", STATEMENTS["beats"], cmp,
                _seed_sd(a_high, u_high), f"At misalignment {high:g} {al}'s {metric} is {100 * a_high.mean():.1f} "
                f"and {ul}'s {100 * u_high.mean():.1f}", data))
        u_drop = level_drop(results, unaligned, metric, low, high)
        for other, name, statement, lead in (
                (aligned, f"ssn3d_drops_less_{metric}", STATEMENTS["drops_less"], ""),
                (control, f"control_c3d_drop_vs_tp_{metric}", None,
                 "Control, is the loss specific to 3D convolution? ")):
            if other not in present:
                continue
            c_drop, o_drop = _same_queries(u_drop, level_drop(results, other, metric, low, high))
            cmp = compare(c_drop, o_drop)
            ol = _short(other)
            claims.append(_claim(
                name, "Sec. 3 claim" if statement else "Sec. 3 claim (our control)", statement, cmp,
                _seed_sd(c_drop, o_drop),
                f"{lead}From misalignment {low:g} to {high:g} {ul}'s {metric} drops {100 * c_drop.mean():+.1f} points "
                f"and {ol}'s {100 * o_drop.mean():+.1f} (each seed's drop on the same queries); {ul}'s drop minus "
                f"{ol}'s", data))
    return claims


def study_metrics(results: pd.DataFrame, points: Sequence[SweepPoint], profile: str, params: Dict[str, Any],
                  claims: Sequence[Claim], chance: Dict[str, float], wall_time_s: float,
                  alignment: Optional[pd.DataFrame] = None) -> Dict[str, Any]:
    """What metrics.json holds: every point with its per-query record (what every verdict is
    recomputed from), the per-model summary, the claims (``central_claims``), the SSN's part
    alignment (when measured), the setup."""
    keep = ["level", "model", "label", "strategy", "seed", "rank1", "rank5", "mAP", "ap_definition",
            "num_query", "num_gallery", "epochs", "steps", "first_triplet_loss", "final_triplet_loss",
            "first_ssn_loss", "final_ssn_loss", "train_time_s", "eval_time_s", WALL_TIME_KEY, CPU_TIME_KEY,
            "resumed", PER_QUERY_KEY]
    point_rows = [{k: r[k] for k in keep if k in r} for r in results.to_dict("records")]
    config = results["config"].iloc[0] if "config" in results else None
    return to_jsonable({
        "study": STUDY, "profile": profile, "parameters": params, "chance_rank1": chance,
        "points": sorted(point_rows, key=lambda r: (r["level"], list(VARIANTS).index(r["model"]), r["seed"])),
        "num_points": len(points), "per_model": model_summary(results),
        "claims": claims_to_records(claims),
        "part_alignment": None if alignment is None or alignment.empty else {
            "by_model_level": alignment_summary(alignment), "points": alignment.to_dict("records")},
        "example_config": config,
        # this notebook session; points read back from an earlier session cost it nothing
        WALL_TIME_KEY: wall_time_s,
        "points_trained_this_session": int((~results["resumed"]).sum()) if "resumed" in results else None,
        RUNS_WALL_TIME_KEY: float(results[WALL_TIME_KEY].sum()),
        f"sum_of_point_{CPU_TIME_KEY}": float(results[CPU_TIME_KEY].sum()) if CPU_TIME_KEY in results else None})


# ============================================================================ figures

def plot_sweep(results: pd.DataFrame, chance: Optional[Dict[str, float]] = None, size=(11.0, 4.2)):
    """Rank-1 and mAP against misalignment: one line per model (mean over seeds), a band from
    the worst to the best seed."""
    summary = summary_by_level(results)
    fig, axes = new_figure(*size, ncols=len(METRICS))
    names = {"rank1": "rank-1 (%)", "mAP": "mAP (%)"}
    for ax, metric in zip(axes, METRICS):
        for model, sel in summary.groupby("model", sort=False):
            v = VARIANTS[model]
            ax.plot(sel["level"], sel[f"{metric}_mean"], marker="o", color=v.color, label=v.label)
            ax.fill_between(sel["level"], sel[f"{metric}_min"], sel[f"{metric}_max"], color=v.color,
                            alpha=0.15, linewidth=0)
        if metric == "rank1" and chance:
            for level_value in chance.values():  # the same identities at every level: one number
                ax.axhline(level_value, color="grey", linestyle=":", linewidth=1)
                ax.text(ax.get_xlim()[0], level_value, " chance", va="bottom", fontsize=7, color="grey")
                break
        ax.set_xlabel("misalignment (box jitter and drift; 0 = fixed boxes)")
        ax.set_ylabel(names[metric])
        ax.set_xticks(sorted(results["level"].unique()))
        ax.grid(alpha=0.3)
    seeds = sorted(results["seed"].unique())
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Misalignment study: mean of {len(seeds)} seed(s); band = seed min..max", fontsize=10)
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
            ax.imshow(np.asarray(Image.open(frames[c]).convert("RGB")), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"m = {level:g}", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.95, bottom=0.01, wspace=0.04, hspace=0.06)
    return fig


# ============================================================================ attention

def checkpoint_path(work_dir: Union[str, Path], point: SweepPoint) -> Path:
    """The point's last engine checkpoint."""
    return Path(work_dir) / point.key / "checkpoints" / "last.pt"


def part_alignment(checkpoint: Union[str, Path], tracklets: Sequence, keypoints: Dict[str, np.ndarray],
                   radius_fraction: float = 0.1, chunk: int = 64, loaded=None) -> Dict[str, Any]:
    """Does each attention map land on its body part in every frame, however the box moved?

    For every frame of `tracklets`, the peak window of each map is compared with the part's true
    keypoint (the world's exact keypoints, `keypoints`: {frame path: (N, 3) x, y, visibility});
    a hit is a peak within radius_fraction x image height. loaded: the checkpoint already
    loaded (``ssn3dlib.explorer.load_model``), to skip loading it again.
    Returns PCK, its chance level and the matching used (``peak_pck``).
    """
    from ..data.clip_dataset import read_frame
    from ..explorer import frame_maps, load_model

    loaded = loaded or load_model(checkpoint)
    config = loaded.config
    if not config.model.shared_classifier:
        raise ValueError(f"{checkpoint}: per-frame classifiers make a frame's maps depend on its place in "
                         f"the clip; part_alignment measures shared-classifier models only")
    paths = [f for t in tracklets for f in t.frames]
    missing = [p for p in paths if p not in keypoints]
    if missing:
        raise ValueError(f"no keypoints for {missing[0]} ({len(missing)} frames lack them); pass the world's "
                         f"table as loaded by query_keypoints or ssn3dlib.data.clip_dataset.load_part_keypoints")
    # A frame's maps do not depend on the other frames of its clip (the SSN runs per frame,
    # one shared classifier), so frames go through in long chunks, whatever their tracklet.
    maps = np.concatenate([frame_maps(loaded, [read_frame(p) for p in paths[s:s + chunk]]).numpy()
                           for s in range(0, len(paths), chunk)])                     # (F, N, h', w')
    grid = loaded.window_grid
    truth = np.stack([keypoints[p] for p in paths])                                  # (F, N, 3)
    return peak_pck(grid.peak_pixels(maps), truth, grid, radius_fraction * config.data.size[0],
                    unnamed=not config.model.capabilities().keypoints_in_training)


def peak_pck(peaks: np.ndarray, truth: np.ndarray, grid: WindowGrid, radius: float,
             unnamed: bool = False) -> Dict[str, Any]:
    """PCK of map peaks (F, N, 2) against keypoints (F, N, 3: x, y, visibility), and its chance
    level (a peak drawn uniformly over the window grid), with this study's rules:

    - a keypoint counts when its visibility is above 0: the world's self-occluded parts (0.5)
      keep exact coordinates, and a part hidden behind the body is still where the map should be;
    - unnamed (unsupervised) maps are first matched to parts one-to-one on the same frames
      that are scored (minimising the mean peak distance): the study asks whether some
      consistent assignment exists, not how well a matching transfers to new frames.
    """
    visible = visible_keypoints(truth, min_visibility=0.0)
    if not visible.any():
        raise ValueError("no visible keypoint: PCK is undefined")
    match = np.arange(peaks.shape[1])
    if unnamed:
        match = match_parts(peaks, truth, visible)      # match[i] = the map shown as part i
        peaks = peaks[:, match]
    return {"pck": pck(peaks, truth, visible, radius)["overall"],
            "chance_pck": chance_pck(truth, visible, grid, radius)["overall"],
            "radius_px": float(radius), "frames": int(len(peaks)), "matching": [int(m) for m in match]}


def alignment_summary(alignment: pd.DataFrame) -> Dict[str, Any]:
    """Per SSN3D variant and level: PCK mean/min/max over seeds and the chance PCK."""
    out: Dict[str, Any] = {}
    for (model, level), sel in alignment.groupby(["model", "level"], sort=False):
        out.setdefault(model, {})[f"{level:g}"] = {
            "pck_mean": float(sel["pck"].mean()), "pck_min": float(sel["pck"].min()),
            "pck_max": float(sel["pck"].max()), "chance_pck": float(sel["chance_pck"].mean())}
    return out


def query_keypoints(dataset, part_set: str) -> Dict[str, np.ndarray]:
    """{query frame path: (N, 3) x, y, visibility} from the world's keypoints.csv (query rows only:
    the whole table takes seconds to group)."""
    from ..data.keypoints import parts_by_image, read_keypoint_table

    root = Path(dataset.root)
    frames = {str(Path(f).relative_to(root)) for t in dataset.query for f in t.frames}
    table = read_keypoint_table(root / "keypoints.csv")
    parts = parts_by_image(table[table["image"].isin(frames)], part_set)
    return {str(root / image): p for image, p in parts.items()}


def alignment_sweep(points: Sequence[SweepPoint], worlds: Dict[float, Any], work_dir: Union[str, Path],
                    radius_fraction: float = 0.1, progress: bool = True) -> pd.DataFrame:
    """part_alignment of every SSN3D point on its level's query tracklets (one row each)."""
    import torch

    from ..explorer import load_model

    ssn_points = [p for p in points if VARIANTS[p.variant].has_attention]
    keypoints, rows = {}, []
    for point in tqdm(ssn_points, desc="part alignment", unit="point", disable=not progress):
        checkpoint = checkpoint_path(work_dir, point)
        loaded = load_model(checkpoint)
        config = loaded.config
        if point.level not in keypoints:
            if config.train.num_threads:  # the study's thread budget, also when every point was read back
                torch.set_num_threads(config.train.num_threads)
            keypoints[point.level] = query_keypoints(worlds[point.level], config.data.part_set)
        result = part_alignment(checkpoint, worlds[point.level].query, keypoints[point.level], radius_fraction,
                                loaded=loaded)
        rows.append({"level": point.level, "model": point.variant, "seed": point.seed, **result})
    return pd.DataFrame(rows)


def plot_alignment(alignment: pd.DataFrame, size=(5.5, 4.2)):
    """PCK of the SSN's attention peaks against misalignment (mean over seeds, min..max band),
    beside the chance PCK of a uniformly drawn window."""
    fig, ax = new_figure(*size)
    for model, sel in alignment.groupby("model", sort=False):
        g = sel.groupby("level")["pck"].agg(["mean", "min", "max"]).reset_index()
        v = VARIANTS[model]
        ax.plot(g["level"], 100 * g["mean"], marker="o", color=v.color, label=v.label)
        ax.fill_between(g["level"], 100 * g["min"], 100 * g["max"], color=v.color, alpha=0.15, linewidth=0)
    chance = alignment.groupby("level")["chance_pck"].mean()
    ax.plot(chance.index, 100 * chance.values, linestyle=":", color="grey", label="chance (uniform window)")
    ax.set_xlabel("misalignment")
    ax.set_ylabel(f"PCK of attention peaks (%), radius {alignment['radius_px'].iloc[0]:.1f} px")
    ax.set_xticks(sorted(alignment["level"].unique()))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Do the SSN's parts land on their body parts?", fontsize=10)
    fig.tight_layout()
    return fig


def attention_widget(work_dir: Union[str, Path], worlds: Dict[float, Any], variants: Sequence[str],
                     seeds: Sequence[int], n_frames: int = 8):
    """ipywidgets panel over the explorer's `attention_strip`: level, SSN3D variant, seed, query
    tracklet, part."""
    import ipywidgets as w

    from ..explorer import attention_strip, clip_attention, load_model, show_figure

    ssn = [v for v in variants if VARIANTS[v].has_attention]
    if not ssn:
        raise ValueError(f"none of the models {list(variants)} is an SSN3D variant; attention needs one")
    levels = sorted(worlds)
    level = w.Dropdown(options=levels, value=levels[-1], description="level")
    variant = w.Dropdown(options=[(VARIANTS[v].label, v) for v in ssn], description="model")
    seed = w.Dropdown(options=list(seeds), description="seed")
    track = w.Dropdown(options=[(t.name, i) for i, t in enumerate(worlds[levels[0]].query)], value=0,
                       description="query")
    part = w.Dropdown(options=[], description="part")
    out = w.Output()
    updating = []   # non-empty while redraw itself changes the part list (no nested redraw)

    def redraw(*_):
        if updating:
            return
        point = SweepPoint(level.value, variant.value, seed.value)
        loaded = load_model(checkpoint_path(work_dir, point))
        tracklet = worlds[level.value].query[track.value]
        images, maps, extent, _ = clip_attention(loaded, tracklet, range(min(n_frames, len(tracklet))))
        names = loaded.part_names
        if [n for n, _ in part.options] != names:  # semi-supervised parts have names, unsupervised ones not
            updating.append(True)
            keep = part.value if part.value is not None and part.value < len(names) else 0
            part.options = [(n, i) for i, n in enumerate(names)]
            part.value = keep
            updating.clear()
        show_figure(out, attention_strip(images, maps, part.value, extent,
                                         f"{VARIANTS[variant.value].label}, misalignment {level.value:g}, "
                                         f"seed {seed.value}: {names[part.value]}"))

    for control in (level, variant, seed, track, part):
        control.observe(redraw, "value")
    redraw()
    return w.VBox([w.HBox([level, variant, seed]), w.HBox([track, part]), out])


__all__ = ["VARIANTS", "Variant", "SweepPoint", "PAPER_CLAIM", "plan_sweep", "point_config", "run_sweep",
           "run_point", "train_point", "point_status", "config_differences", "check_results", "summary_by_level",
           "model_summary", "central_claims", "query_scores", "level_drop", "what_would_decide", "drop",
           "paired", "point_per_query", "with_per_query", "PER_QUERY_KEY", "chance_rank1", "study_metrics",
           "plot_sweep", "level_strip", "prepare_worlds", "checkpoint_path", "attention_widget", "part_alignment",
           "alignment_sweep", "plot_alignment", "query_keypoints", "peak_pck", "alignment_summary"]
