"""The benchmark study (issue 5, notebook 04): train, evaluate and tabulate the paper's runs.

A run is a spec: dataset, model, and for SSN3D its learning strategy, classifier sharing
and lambda; plus a seed. Each profile maps a dataset to a base config (`BASE_CONFIGS`:
the paper's recipe on the real datasets for `full`, a 2-core scale for `cpu`); the spec
becomes engine overrides on top of it. Every run trains through the engine into
``reports/runs/<profile>/benchmark/<run>/`` (a finished run is loaded from its checkpoint,
an interrupted one continues, a changed config retrains), is evaluated under the dataset's
protocol (the split datasets as the mean over their splits when asked), and writes one
JSON record ``<study_dir>/<run>.json`` that ``ssn3dlib.reporting.tables`` renders beside
the paper's numbers. Each record keeps its per-query results (``per_query``: every test query's
first-true-match rank and AP, per split), so every verdict can be recomputed from the committed
records. The notebook's metrics.json lists the paper's orderings as claims
(``benchmark_claims``): each a paired comparison of two settings' per-query rank-1 hits with
its 95% interval, n and minimum detectable effect, decided by the toolkit's one verdict rule.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data.registry import dataset_info, dataset_title
from ..errors import InputError
from ..figures import new_figure
from ..models import model_capabilities
from ..paths import PROFILES, reports_dir, study_dir
from ..reporting import paper
from ..reporting.tables import (
    BASELINE_NAMES,
    RUN_KEYS,
    at_main_lambda,
    keypoint_drops,
    load_runs,
    render_markdown,
    with_exact_keypoints,
)
from .toolkit import WALL_TIME_KEY, Claim, claims_to_records, to_jsonable, write_json, write_metrics
from .toolkit.engine_runs import chance_rank1, epoch_losses, train_or_reuse, was_loaded
from .toolkit.parallel import check_workers, map_in_processes
from .toolkit.records import RUNS_WALL_TIME_KEY
from .toolkit.ssn_training import CONVERGED_FRACTION, converged_margin
from .toolkit.statistics import (
    INCONCLUSIVE,
    MIN_SEEDS,
    Comparison,
    compare,
    compare_blocks,
    seeds_needed,
    units_needed,
)

STUDY = "benchmark"
RANKS = (1, 5, 10, 20)
#: The tables the study renders, in the order of tables.md (keys of reporting.paper.TABLES).
TABLES = ("table1", "table2", "table3-5", "fig3")

#: Base config per profile and dataset (names in configs/); a notebook may add or replace entries.
BASE_CONFIGS: Dict[str, Dict[str, str]] = {
    "smoke": {"synthetic_world": "bench_smoke"},
    "cpu": {"synthetic_world": "bench_synthetic_frozen_cpu", "pku_reid_subset": "bench_pku_frozen_cpu"},
    "extended": {"synthetic_world": "bench_synthetic_frozen_cpu", "pku_reid_subset": "bench_pku_frozen_cpu"},
    "full": {"ilidsvid": "ilidsvid", "mars": "mars", "dukemtmc-videoreid": "dukemtmc", "prid2011": "prid2011"},
}

#: The first and last epoch means a record keeps (did the run learn, did its SSN?).
LOSS_KEYS = ("first_triplet_loss", "final_triplet_loss", "first_ssn_loss", "final_ssn_loss")
#: Records keep floats to this many digits (stable diffs of the committed records).
DIGITS = 4

#: Keys every run JSON holds: the table renderer's plus what a reader needs to trust a number.
#: per_query: one entry per split evaluated ({split, query, first_match_rank, ap}; rank 0 and ap
#: None for a query without a true match); ssn_num_parts: N of the SSN loss (None without one).
RECORD_KEYS = RUN_KEYS + ("study", "run", "protocol", "cmc", "chance_rank1", "num_query", "num_gallery",
                          WALL_TIME_KEY, "device", "loaded_from_checkpoint", "config", "overrides",
                          "backbone", "input_size", "clip_len", "config_lambda_ssn", "ssn_num_parts",
                          "per_query") + LOSS_KEYS


class BenchmarkError(InputError):
    """A run spec or parameter set that cannot run; the message says what to change."""


# ============================================================================ run specs

@dataclass(frozen=True)
class RunSpec:
    """One benchmark run. Strategy, sharing and lambda mean something for SSN3D only and are
    None for the baselines; lambda None is the paper's value for the dataset."""

    dataset: str
    model: str = "ssn3d"
    strategy: Optional[str] = "semi-supervised"
    shared_classifier: Optional[bool] = True
    lambda_ssn: Optional[float] = None
    seed: int = 0
    #: Extra engine overrides of this run only ("section.key=value").
    overrides: tuple = ()
    #: SSN3D with keypoints only: the fraction of frames whose keypoints are removed, as when the
    #: pose model finds nobody (data.keypoint_drop). None: the table as it is, the runs Tables 1-5
    #: show; a run with pose failures is our check of the paper's reason for Table 1.
    keypoint_drop: Optional[float] = None

    @property
    def has_ssn(self) -> bool:
        """Whether the model has an SSN (strategy, sharing and lambda describe the run)."""
        return model_capabilities(self.model).ssn

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], defaults: Optional[Mapping[str, Any]] = None) -> "RunSpec":
        """A validated spec from a parameter dict; keys it lacks come from `defaults`."""
        if not isinstance(spec, Mapping):
            raise BenchmarkError(f"a run spec must be a mapping like {{dataset: mars, model: tp}}, got {spec!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(spec) - set(known))
        if unknown:
            raise BenchmarkError(f"run spec {dict(spec)} has unknown keys {unknown}; a spec takes {known}")
        values = {**{k: v for k, v in (defaults or {}).items() if k in known}, **spec}
        if "dataset" not in values:
            raise BenchmarkError(f"run spec {dict(spec)} names no dataset; add dataset: <name>")
        overrides = values.get("overrides") or ()
        if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
            raise BenchmarkError(f"run spec overrides must be a list of 'section.key=value' strings, "
                                 f"got {overrides!r}")
        values["overrides"] = tuple(overrides)
        return cls(**values).normalised()

    def normalised(self) -> "RunSpec":
        """Checked values; the SSN keys cleared for a baseline (so equal runs compare equal)."""
        from ..models import MODELS, STRATEGIES

        if self.model not in MODELS:
            raise BenchmarkError(f"model {self.model!r} is not a benchmark model; choose one of {sorted(MODELS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise BenchmarkError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not self.has_ssn:
            if self.keypoint_drop:
                raise BenchmarkError(f"keypoint_drop removes keypoints, which {self.model!r} does not read; "
                                     f"use it with model ssn3d and a semi-supervised or supervised strategy")
            return RunSpec(self.dataset, self.model, None, None, None, self.seed, self.overrides)
        if self.strategy not in STRATEGIES:
            raise BenchmarkError(f"strategy {self.strategy!r} is not an SSN strategy; choose one of {STRATEGIES}")
        if not isinstance(self.shared_classifier, bool):
            raise BenchmarkError(f"shared_classifier must be true or false, got {self.shared_classifier!r}")
        lam = self.lambda_ssn
        if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0):
            raise BenchmarkError(f"lambda_ssn must be a number >= 0 or None (the paper's value), got {lam!r}")
        drop = self.keypoint_drop
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop < 1):
            raise BenchmarkError(f"keypoint_drop must be a fraction of frames in [0, 1) or None, got {drop!r}")
        if drop and self.strategy == "unsupervised":
            raise BenchmarkError("keypoint_drop removes keypoints, which the unsupervised SSN does not read; use "
                                 "it with strategy semi-supervised or supervised")
        return RunSpec(self.dataset, self.model, self.strategy, self.shared_classifier,
                       None if lam is None else float(lam), self.seed, self.overrides,
                       float(drop) if drop else None)

    def engine_overrides(self) -> List[str]:
        """The spec as engine overrides on top of its dataset's base config."""
        out = [f"model.name={self.model}", f"train.seed={self.seed}"]
        if self.has_ssn:
            out += [f"model.strategy={self.strategy}",
                    f"model.shared_classifier={'true' if self.shared_classifier else 'false'}"]
            if self.lambda_ssn is not None:
                out.append(f"loss.lambda_ssn={self.lambda_ssn!r}")
            if self.keypoint_drop is not None:
                out.append(f"data.keypoint_drop={self.keypoint_drop!r}")
        return out + list(self.overrides)


def base_config(dataset: str, profile: str, configs: Optional[Mapping[str, str]] = None) -> str:
    """The config a dataset's runs start from under a profile (`configs` adds or replaces entries)."""
    if profile not in PROFILES:
        raise BenchmarkError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    table = {**BASE_CONFIGS[profile], **(configs or {})}
    if dataset not in table:
        raise BenchmarkError(f"the {profile} profile has no base config for dataset {dataset!r} (it has "
                             f"{', '.join(sorted(table))}); pass configs={{{dataset!r}: <config name or file>}}")
    return table[dataset]


def run_config(spec: RunSpec, base: str, overrides: Sequence[str] = ()):
    """The run's RunConfig: base config, the notebook's overrides for every run, then the spec's."""
    from ..engine import load_config

    config = load_config(base, list(overrides) + spec.engine_overrides())
    if config.data.name != spec.dataset:
        raise BenchmarkError(f"base config {base!r} reads dataset {config.data.name!r}, but the run spec "
                             f"says {spec.dataset!r}; map {spec.dataset!r} to a config of that dataset")
    return config


def run_name(config, extra_overrides: Sequence[str] = ()) -> str:
    """File-safe, unique per run: dataset, model, SSN settings with the lambda actually used,
    seed, and a digest of any further overrides."""
    d, m = config.data.name, config.model
    parts = [d, m.name]
    if m.capabilities().ssn:
        parts += [m.strategy, "shared" if m.shared_classifier else "nonshared", f"lambda{config.lambda_ssn():g}"]
        if config.data.keypoint_drop:
            parts.append(f"kpdrop{config.data.keypoint_drop:g}")
    parts.append(f"seed{config.train.seed}")
    if extra_overrides:
        digest = hashlib.sha1("\n".join(sorted(extra_overrides)).encode()).hexdigest()[:8]
        parts.append(f"o{digest}")
    return "_".join(parts)


@dataclass
class PlannedRun:
    spec: RunSpec
    base: str
    config: Any                       # RunConfig
    name: str
    overrides: List[str] = field(default_factory=list)   # all overrides on top of `base`
    #: The lambda of the base config with the notebook's overrides: the dataset's main setting,
    #: the one Tables 1, 2 and 3-5 show (other lambdas belong to the Fig. 3 sweep).
    main_lambda: Optional[float] = None


def plan_runs(specs: Sequence[Mapping[str, Any]], profile: str, configs: Optional[Mapping[str, str]] = None,
              overrides: Sequence[str] = ()) -> List[PlannedRun]:
    """Validated runs in the given order; a spec repeated (the same name) is planned once."""
    from ..engine import load_config

    if not specs:
        raise BenchmarkError("no runs to plan: give a single run (dataset, model, ...) or a list `runs`")
    if isinstance(overrides, str):
        raise BenchmarkError(f"overrides must be a list of 'section.key=value' strings, got the string {overrides!r}")
    plans: Dict[str, PlannedRun] = {}
    for raw in specs:
        spec = raw if isinstance(raw, RunSpec) else RunSpec.from_dict(raw)
        base = base_config(spec.dataset, profile, configs)
        config = run_config(spec, base, overrides)
        name = run_name(config, list(overrides) + list(spec.overrides))
        if name in plans:
            continue
        plans[name] = PlannedRun(spec, base, config, name, list(overrides) + spec.engine_overrides(),
                                 load_config(base, list(overrides) + list(spec.overrides)).lambda_ssn())
    return list(plans.values())


def specs_from_parameters(params: Mapping[str, Any]) -> List[RunSpec]:
    """The notebook's parameters as run specs: `runs` when given (each spec's missing keys
    from the single-run parameters), else the single run; then each spec once per seed of
    `seeds` (see `expand_seeds`)."""
    single = {k: params[k] for k in ("dataset", "model", "strategy", "shared_classifier", "lambda_ssn", "seed")
              if k in params}
    runs = params.get("runs")
    if runs is None:
        specs = [RunSpec.from_dict(single)]
    elif not isinstance(runs, (list, tuple)):
        raise BenchmarkError(f"runs must be a list of run specs (mappings), got {type(runs).__name__}")
    else:
        specs = [RunSpec.from_dict(r, defaults=single) for r in runs]
    return expand_seeds(specs, params.get("seeds"))


def expand_seeds(specs: Sequence[RunSpec], seeds: Union[None, Sequence[int], Mapping[str, Sequence[int]]]
                 ) -> List[RunSpec]:
    """Each spec once per training seed: `seeds` None keeps every spec's own seed; a list applies
    to every dataset; a mapping gives each dataset its seeds (a dataset it does not name keeps
    its specs' own seed). Seeds are the replicates a comparison averages over; the paired
    comparison pairs the two settings' runs of the same seed."""
    if seeds is None:
        return list(specs)
    if isinstance(seeds, Mapping):
        table = dict(seeds)
    elif isinstance(seeds, (list, tuple)):
        table = None
    else:
        raise BenchmarkError(f"seeds must be a list of integers or a mapping dataset -> list, got {seeds!r}")
    out = []
    for spec in specs:
        chosen = seeds if table is None else table.get(spec.dataset, [spec.seed])
        if not isinstance(chosen, (list, tuple)) or not chosen or len(set(chosen)) != len(chosen):
            raise BenchmarkError(f"seeds for {spec.dataset} must be a non-empty list of distinct integers, "
                                 f"got {chosen!r}")
        out += [replace(spec, seed=seed).normalised() for seed in chosen]
    return out


def scale_table(plans: Sequence[PlannedRun]) -> pd.DataFrame:
    """The scale every base config trains at (input, backbone, batch, budget): the notebook
    states it beside the numbers, since it is what separates them from the paper's."""
    rows = {}
    for p in plans:
        c = p.config
        if p.base in rows:
            continue
        world = c.data.world or {}
        rows[p.base] = {
            "base config": p.base, "dataset": c.data.name,
            "identities": world.get("num_identities", "all"),
            "input": f"{c.data.size[0]}x{c.data.size[1]}", "backbone": c.model.backbone,
            "weights": (c.model.backbone_weights or "random initialisation")
                       + (", frozen" if c.model.freeze_backbone else ", trained")
                       + (f" + trainable 3x3 conv stage ({c.model.adapter_channels} ch)"
                          if c.model.adapter_channels else ""),
            "T (train / test clip)": f"{c.data.clip_len} / {c.eval.clip_len}",
            "batch": f"{c.data.identities_per_batch} ids x {c.data.instances_per_identity}",
            "epochs": c.train.epochs, "max steps/epoch": c.train.max_steps_per_epoch or "all",
            "lr": c.optim.lr, "embedding": c.model.embedding_dim,
        }
    return pd.DataFrame(list(rows.values()))


def plan_table(plans: Sequence[PlannedRun]) -> pd.DataFrame:
    """What will run, one row per run (the notebook shows it before training)."""
    return pd.DataFrame([{"run": p.name, "base config": p.base, "dataset": p.config.data.name,
                          "model": p.config.model.name, "strategy": p.spec.strategy,
                          "shared": p.spec.shared_classifier,
                          "lambda": p.config.lambda_ssn() if p.spec.has_ssn else None,
                          "seed": p.spec.seed, "epochs": p.config.train.epochs}
                         for p in plans])


# ============================================================================ running

def runs_root(profile: str) -> Path:
    """Run folders (checkpoints, metrics.jsonl): reports/runs/<profile>/benchmark/ (git-ignored)."""
    return reports_dir() / "runs" / profile / STUDY


def per_query_from_checkpoint(config, checkpoint: Path, final: Mapping[str, Any]) -> Dict[str, List]:
    """The per-query arrays of a run finished before evaluations kept them: its stored final
    checkpoint evaluated again by the engine (on the run's device and thread count), refused
    unless it gives the run's own rank-1 and mAP."""
    import torch

    from ..engine import evaluate

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(config.train.num_threads or threads)
        again = evaluate(checkpoint, device=config.train.device, progress=False)
    finally:
        torch.set_num_threads(threads)
    for key in ("rank1", "mAP"):
        if abs(again[key] - final[key]) > 1e-6:
            raise BenchmarkError(f"{checkpoint}: evaluated again, {key} is {again[key]:.4f}, not the run's "
                                 f"{final[key]:.4f}; retrain the run (delete its folder)")
    return again["per_query"]


def per_query_metrics(per_query: Mapping[str, Sequence], where: str) -> Dict[str, float]:
    """Rank-1 and mAP (percent) from one set of per-query arrays, refused when they are ragged."""
    from ..engine.evaluator import per_query_metrics as metrics

    lengths = {k: len(per_query[k]) for k in ("query", "first_match_rank", "ap")}
    if len(set(lengths.values())) != 1:
        raise BenchmarkError(f"{where}: per-query arrays of different lengths {lengths}")
    return metrics(per_query)


def check_per_query(per_query: Sequence[Mapping[str, Sequence]], expected: Mapping[str, float], where: str,
                    tolerance: float = 1e-9) -> None:
    """Refuse per-query arrays (one entry per split) whose rank-1 and mAP, averaged over the
    splits, are not `expected`'s."""
    if not isinstance(per_query, (list, tuple)) or not per_query:
        raise BenchmarkError(f"{where}: per_query must list one entry per split")
    values = [per_query_metrics(entry, where) for entry in per_query]
    for key in ("rank1", "mAP"):
        again = float(np.mean([v[key] for v in values]))
        if abs(again - expected[key]) > tolerance:
            raise BenchmarkError(f"{where}: {key} from the per-query arrays is {again:.4f}, "
                                 f"the record's {expected[key]:.4f}")


def _train_one(config, run_dir: Path, progress: bool) -> Dict[str, Any]:
    """Train (or load, or continue) one run; its final evaluation (with its per-query arrays)
    and bookkeeping."""
    result = train_or_reuse(config, run_dir, progress=progress)
    final = dict(result.final)
    if "per_query" not in final:
        final["per_query"] = per_query_from_checkpoint(config, result.paths["last"], final)
    check_per_query([final["per_query"]], final, run_dir.name)
    losses = epoch_losses(run_dir, has_ssn=config.model.capabilities().ssn)
    return {"final": final, "epochs": result.epochs, WALL_TIME_KEY: result.train_seconds,
            "device": result.device, "loaded": was_loaded(result, config),
            **{k: losses[k] for k in LOSS_KEYS}}


def _padded_cmc(cmc: Sequence[float], max_rank: int) -> List[float]:
    """CMC up to max_rank; a gallery smaller than max_rank has matched every query by its end
    (100%, as the evaluator reports ranks beyond the gallery)."""
    cmc = list(cmc)[:max_rank]
    return cmc + [100.0] * (max_rank - len(cmc))


def splits_for(config, all_splits: bool) -> Optional[List[int]]:
    """The splits to train: every split of a split protocol when all_splits, else None (one run)."""
    num_splits = dataset_info(config.data.name).num_splits
    return list(range(num_splits)) if all_splits and num_splits is not None else None


def run_one(plan: PlannedRun, profile: str, all_splits: bool = False, progress: bool = False,
            out_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Train and evaluate one planned run (every split of a split protocol when all_splits),
    write its JSON record, and return it."""
    from ..engine import load_config, mean_over_splits
    from ..engine.build import prepare_dataset
    from ..engine.trainer import split_run_dir

    run_dir = runs_root(profile) / plan.name
    splits = splits_for(plan.config, all_splits)
    max_rank = plan.config.eval.max_rank
    if splits is None:
        one = _train_one(plan.config, run_dir, progress)
        final = one["final"]
        metrics = {f"rank{r}": final[f"rank{r}"] for r in RANKS} | {"mAP": final["mAP"]}
        cmc = _padded_cmc(final["cmc"], max_rank)
        per_split, chance = None, chance_rank1(prepare_dataset(plan.config.data, progress=False))
        aggregate = ("single split" if plan.config.data.options.get("split") is not None
                     else "single query/gallery set")
        runs = [one]
        per_query = [{"split": plan.config.data.options.get("split"), **final["per_query"]}]
    else:
        runs, results, cmcs, chances = [], [], [], []
        for k in splits:
            config = load_config(plan.config, [f"data.options.split={k}"])
            one = _train_one(config, split_run_dir(run_dir, k), progress)
            runs.append(one)
            results.append({**one["final"], "split": k})
            cmcs.append(_padded_cmc(one["final"]["cmc"], max_rank))
            chances.append(chance_rank1(prepare_dataset(config.data, progress=False)))
        summary = mean_over_splits(results)
        metrics = {key: summary[key] for key in [f"rank{r}" for r in RANKS] + ["mAP"]}
        metrics |= {f"{key}_std": summary[f"{key}_std"] for key in list(metrics)}
        cmc, per_split, chance = np.mean(cmcs, axis=0).tolist(), summary["per_split"], float(np.mean(chances))
        final = runs[0]["final"]
        aggregate = f"mean over splits {splits}"
        per_query = [{"split": k, **r["final"]["per_query"]} for k, r in zip(splits, runs)]
    config = plan.config
    has_ssn = config.model.capabilities().ssn
    record = {
        "study": STUDY, "run": plan.name, "dataset": config.data.name, "model": config.model.name,
        "strategy": config.model.strategy if has_ssn else None,
        "shared_classifier": config.model.shared_classifier if has_ssn else None,
        "lambda_ssn": config.lambda_ssn() if has_ssn else None, "seed": config.train.seed,
        # frames whose keypoints were removed (simulated pose failures; 0: the runs of Tables 1-5)
        "keypoint_drop": config.data.keypoint_drop if has_ssn else 0.0,
        "profile": profile, "epochs": runs[0]["epochs"], **metrics,
        "ap_definition": final["ap_definition"],
        "protocol": {**final["protocol"], "aggregate": aggregate, "distance": final["distance"],
                     "query_without_match": final["num_query_without_match"]},
        "cmc": cmc, "chance_rank1": chance, "num_query": final["num_query"], "num_gallery": final["num_gallery"],
        "per_split": per_split,
        # training time of every session of the run(s), evaluations included; for a run
        # loaded from its checkpoint, the time it took when it was trained
        WALL_TIME_KEY: sum(r[WALL_TIME_KEY] for r in runs),
        "device": runs[0]["device"], "loaded_from_checkpoint": all(r["loaded"] for r in runs),
        "config": plan.base, "overrides": plan.overrides, "backbone": config.model.backbone,
        "input_size": list(config.data.size), "clip_len": config.data.clip_len,
        # the lambda this dataset's base config uses: the tables' main setting (others are a sweep)
        "config_lambda_ssn": plan.main_lambda if has_ssn else None,
        **{k: runs[0][k] for k in LOSS_KEYS},
        # N of the SSN loss (a fresh SSN sits at log N); None for a model without one
        "ssn_num_parts": config.model.num_parts if config.model.capabilities().ssn_loss else None,
        # each test query's first-true-match rank and AP, per split: what every claim is computed from
        "per_query": per_query,
    }
    record = to_jsonable(record, DIGITS)      # the caller gets what the file holds
    write_record(record, out_dir if out_dir is not None else study_dir(STUDY, profile))
    return record


def prepare_datasets(plans: Sequence[PlannedRun]) -> None:
    """Generate every synthetic world the plans read (once each, here), before any run: parallel
    runs then find it ready, and no run's wall time includes it."""
    from ..engine.build import prepare_dataset

    seen = set()
    for plan in plans:
        data = plan.config.data
        key = (data.name, repr(data.world), repr(data.root))
        if data.world is not None and key not in seen:
            seen.add(key)
            prepare_dataset(data, progress=False)


def run_all(plans: Sequence[PlannedRun], profile: str, all_splits: bool = False,
            progress: bool = True, out_dir: Optional[Path] = None, workers: int = 1) -> List[Dict[str, Any]]:
    """Every plan, one progress step per run; returns their records in the plans' order.
    workers > 1 trains that many runs at once in separate processes (``toolkit.parallel``); the
    records do not depend on it."""
    try:
        check_workers(workers)
    except ValueError as err:
        raise BenchmarkError(str(err)) from None
    prepare_datasets(plans)
    records: List[Optional[Dict[str, Any]]] = [None] * len(plans)
    bar = tqdm(total=len(plans), desc=f"benchmark [{profile}]", unit="run", disable=not progress)
    # longest first (a split protocol trains every split in one call), so no worker idles at the end
    order = sorted(range(len(plans)), key=lambda i: -len(splits_for(plans[i].config, all_splits) or [None]))
    calls = [(plans[i], profile, all_splits, False, out_dir) for i in order]
    for k, record in map_in_processes(run_one, calls, workers):
        records[order[k]] = record
        bar.set_postfix_str(plans[order[k]].name)
        bar.update()
    bar.close()
    return records


# ============================================================================ records

def check_record(record: Mapping[str, Any]) -> None:
    """Refuse a record the tables could misread: missing keys, metrics outside [0, 100],
    a CMC that decreases, per-query arrays that do not give its rank-1 and mAP."""
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise BenchmarkError(f"benchmark record {record.get('run', '?')} lacks {missing}")
    for key in [f"rank{r}" for r in RANKS] + ["mAP"]:
        value = record[key]
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 100.0:
            raise BenchmarkError(f"benchmark record {record['run']}: {key} = {value!r} is not a percentage")
    ranks = [record[f"rank{r}"] for r in RANKS]
    if any(b < a - 1e-9 for a, b in zip(ranks, ranks[1:])):
        raise BenchmarkError(f"benchmark record {record['run']}: rank-1/5/10/20 {ranks} decrease; a CMC cannot")
    # the record's floats are rounded to DIGITS: per-query AP (0..1) to 1e-4, so mAP to 0.01 points
    check_per_query(record["per_query"], record, f"benchmark record {record['run']}", tolerance=0.01)


def write_record(record: Dict[str, Any], out_dir: Union[str, Path]) -> Path:
    """<out_dir>/<run>.json, checked, then written atomically (a kill leaves the old file or the new one)."""
    record = to_jsonable(record, DIGITS)
    check_record(record)
    return write_json(Path(out_dir) / f"{record['run']}.json", record)


def write_summary(records: Sequence[Mapping[str, Any]], profile: str, parameters: Mapping[str, Any],
                  wall_time_s: float, out_dir: Union[str, Path]) -> Path:
    """<out_dir>/metrics.json: the notebook's run as a whole: which runs, the pairwise orderings,
    the paper's claims checked on the records (``benchmark_claims``, what the report shows), and
    the times."""
    summary = {
        "study": STUDY, "profile": profile, "parameters": dict(parameters),
        "runs": [r["run"] for r in records],
        "orderings": {m: orderings(records, m).to_dict("records") if records else [] for m in ("rank1", "mAP")},
        "claims": claims_to_records(benchmark_claims(records, profile)),
        # this execution (short when every run was loaded from its checkpoint), and the sum of
        # the runs' own training times (for loaded runs, the time they took when trained)
        WALL_TIME_KEY: wall_time_s, RUNS_WALL_TIME_KEY: sum(r[WALL_TIME_KEY] for r in records),
        "trained_now": sum(not r["loaded_from_checkpoint"] for r in records),
    }
    return write_metrics(to_jsonable(summary, DIGITS), out_dir)


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The headline numbers, one row per run (rounded for display)."""
    cols = ["dataset", "model", "strategy", "shared_classifier", "lambda_ssn", "seed", "epochs",
            "rank1", "rank5", "rank10", "rank20", "mAP", "chance_rank1", "final_ssn_loss", "wall_time_s"]
    frame = pd.DataFrame([{k: r[k] for k in cols} for r in records], columns=cols)
    return frame.round({"rank1": 1, "rank5": 1, "rank10": 1, "rank20": 1, "mAP": 1, "chance_rank1": 1,
                        "final_ssn_loss": 2, "wall_time_s": 1})


def render_tables(paths: Iterable[Path], header: str = "") -> str:
    """The four tables (paper Tables 1-5 and Fig. 3) of the given run JSONs, as markdown."""
    runs = load_runs(paths)
    parts = [header.rstrip() + "\n"] if header else []
    parts += [render_markdown(table, runs) for table in TABLES]   # tables keep only main-lambda runs
    return "\n".join(parts)


# ============================================================================ figures

def label(record: Mapping[str, Any]) -> str:
    """A short legend label: SSN3D settings, or the baseline's name."""
    if not model_capabilities(record["model"]).ssn:
        return BASELINE_NAMES.get(record["model"], record["model"])
    sharing = "" if record["shared_classifier"] else ", not shared"
    pose = f", no pose in {record['keypoint_drop']:.0%} of frames" if record.get("keypoint_drop") else ""
    return f"SSN3D {record['strategy']}{sharing}{pose}, λ={record['lambda_ssn']:g}"


def plot_cmc(records: Sequence[Mapping[str, Any]], panel=(5.5, 4.0)):
    """CMC curves (rank 1..max) of every run, one panel per dataset, chance rank-1 marked."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    if not datasets:
        raise BenchmarkError("no records to plot")
    fig, axes = new_figure(panel[0] * len(datasets), panel[1], ncols=len(datasets), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows = [r for r in records if r["dataset"] == dataset]
        for r in rows:
            ranks = np.arange(1, len(r["cmc"]) + 1)
            style = "-" if model_capabilities(r["model"]).ssn else "--"
            ax.plot(ranks, r["cmc"], style, marker=".", label=f"{label(r)} (mAP {r['mAP']:.1f})")
        ax.axhline(rows[0]["chance_rank1"], color="grey", lw=0.8, ls=":", label="chance rank-1")
        max_rank = len(rows[0]["cmc"])
        ax.set(title=f"{dataset_title(dataset)} ({rows[0]['profile']} profile)",
               xlabel="rank", ylabel="matching rate (%)", ylim=(0, 101), xlim=(1, max_rank),
               xticks=[1] + list(range(5, max_rank + 1, 5)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def lambda_sweeps(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rank-1 and mAP against lambda for the semi-supervised, shared SSN3D (paper Fig. 3):
    the datasets with at least two lambdas, mean over seeds."""
    runs = with_exact_keypoints(pd.DataFrame(list(records)))
    rows = [r for r in runs.to_dict("records") if r["model"] == "ssn3d" and r["strategy"] == "semi-supervised"
            and r["shared_classifier"]]
    frame = pd.DataFrame(rows, columns=["dataset", "lambda_ssn", "seed", "rank1", "mAP"])
    if frame.empty:
        return frame
    frame = frame.groupby(["dataset", "lambda_ssn"], as_index=False)[["rank1", "mAP"]].mean()
    counts = frame.groupby("dataset")["lambda_ssn"].transform("size")
    return frame[counts >= 2].sort_values(["dataset", "lambda_ssn"]).reset_index(drop=True)


def plot_lambda(sweeps: pd.DataFrame, size=(6.0, 4.0)):
    """Fig. 3's layout: rank-1 and mAP against lambda, one colour per dataset (lambda 0 drawn
    at the left edge of a symlog axis)."""
    if sweeps.empty:
        raise BenchmarkError("no dataset has runs at two or more lambdas; add a sweep to `runs`")
    fig, ax = new_figure(*size)
    for i, (dataset, rows) in enumerate(sweeps.groupby("dataset", sort=False)):
        name = dataset_title(dataset)
        ax.plot(rows["lambda_ssn"], rows["rank1"], "-o", color=f"C{i}", label=f"{name} rank-1")
        ax.plot(rows["lambda_ssn"], rows["mAP"], "--s", color=f"C{i}", label=f"{name} mAP")
    ax.set_xscale("symlog", linthresh=0.01)
    lambdas = sorted(sweeps["lambda_ssn"].unique())
    ax.set_xticks(lambdas, [f"{lam:g}" for lam in lambdas])
    ax.minorticks_off()
    ax.set(xlabel="λ (weight of the SSN loss)", ylabel="%", title="SSN loss weight (paper Fig. 3)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run_curves(record: Mapping[str, Any], profile: str, size=(10.0, 3.6)):
    """One run's training losses per epoch and its CMC (what the notebook's picker shows)."""
    from ..engine import read_metrics

    run_dir = runs_root(profile) / record["run"]
    if not (run_dir / "metrics.jsonl").is_file():  # split protocols: show split 0
        run_dir = run_dir / "split0"
    log = read_metrics(run_dir)
    fig, (left, right) = new_figure(*size, ncols=2)
    epochs = log[log["kind"] == "epoch"] if "kind" in log else log
    for key in ("loss", "triplet", "ssn"):
        if key in epochs and epochs[key].abs().sum() > 0:
            left.plot(epochs["epoch"], epochs[key], marker=".", label=key)
    left.set(xlabel="epoch", ylabel="mean loss", title="training losses per epoch")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.plot(np.arange(1, len(record["cmc"]) + 1), record["cmc"], marker=".")
    right.set_xticks([1] + list(range(5, len(record["cmc"]) + 1, 5)))
    right.axhline(record["chance_rank1"], color="grey", ls=":", label="chance rank-1")
    right.set(xlabel="rank", ylabel="matching rate (%)", ylim=(0, 101),
              title=f"CMC: rank-1 {record['rank1']:.1f}, mAP {record['mAP']:.1f}")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.suptitle(f"{label(record)} on {dataset_title(record['dataset'])}", fontsize=10)
    fig.tight_layout()
    return fig


def run_picker(records: Sequence[Mapping[str, Any]], profile: str):
    """ipywidgets panel: pick a run, see its losses and CMC. The figure is placed in the
    Output directly, so a static render (papermill, nbval) shows the first run's figure."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    choose = w.Dropdown(options=[(r["run"], i) for i, r in enumerate(records)], value=0, description="run",
                        layout=w.Layout(width="95%"))
    out = w.Output()

    def redraw(*_):
        fig = run_curves(records[choose.value], profile)
        out.outputs = ()
        out.append_display_data(fig)
        plt.close(fig)

    choose.observe(redraw, "value")
    redraw()
    return w.VBox([choose, out])


# ============================================================================ orderings

def orderings(records: Sequence[Mapping[str, Any]], metric: str = "rank1") -> pd.DataFrame:
    """The paper's orderings checked on our runs, per dataset, at the main lambda: semi >
    unsupervised > supervised, shared > not shared, SSN3D > each baseline. One row per
    comparison with both values (mean over seeds) and whether ours agrees (yes, no, or tie
    to 0.1 points); comparisons lacking a run are left out."""
    frame = with_exact_keypoints(pd.DataFrame(records))
    rows = []
    for dataset, runs in frame.groupby("dataset", sort=False):
        runs = at_main_lambda(runs)

        def value(model, strategy=None, shared=None, runs=runs):
            sel = runs["model"] == model
            if model == "ssn3d":
                sel &= (runs["strategy"] == strategy) & (runs["shared_classifier"] == shared)
            return float(runs.loc[sel, metric].mean()) if sel.any() else None

        semi = value("ssn3d", "semi-supervised", True)
        pairs = [("semi-supervised > unsupervised", semi, value("ssn3d", "unsupervised", True)),
                 ("unsupervised > supervised", value("ssn3d", "unsupervised", True),
                  value("ssn3d", "supervised", True)),
                 ("shared > not shared", semi, value("ssn3d", "semi-supervised", False))]
        pairs += [(f"SSN3D > {BASELINE_NAMES[m]}", semi, value(m)) for m in ("tp", "c3d", "st-attention")]
        for claim, a, b in pairs:
            if a is None or b is None:
                continue
            rows.append({"dataset": dataset_title(dataset), "paper's ordering": claim,
                         f"{metric} (first)": round(a, 1), f"{metric} (second)": round(b, 1),
                         "ours agrees": "tie" if round(a, 1) == round(b, 1) else ("yes" if a > b else "no")})
    return pd.DataFrame(rows)



# ============================================================================ claims

#: What the full profile would test: the paper's absolute numbers and orderings on its own
#: datasets (no row per dataset before a run on one exists).
PAPER_DATASET_CLAIMS = (
    ("tables3-5_paper_datasets", "Tables 3-5", "SSN3D rank-1: iLIDS-VID 88.9, MARS 90.1, Duke 96.8"),
    ("table1_paper_datasets", "Table 1", "semi-supervised > unsupervised > supervised on all three datasets"),
    ("table2_paper_datasets", "Table 2", "shared classifiers beat per-frame classifiers by a large margin"),
    ("fig3_paper_datasets", "Fig. 3", paper.LAMBDA["claim"]),
)


#: Seed-to-seed SD of one run's rank-1 (points): the misalignment sweep's (notebook 05, cpu
#: profile, 15 settings x 2 seeds on one 24-query test set, pooled SD 8.7), the only benchmark-
#: scale measurement of it so far; what a design must average over with seeds.
SEED_SD_RANK1 = 8.7
#: The minimum detectable effect (rank-1 points, 80% power) a benchmark comparison should reach:
#: the paper's own ablation gaps are 6-20 points.
TARGET_MDE = 10.0
#: An SSN has learnt when its final loss is under this fraction of log N (a fresh one sits at log N):
#: the toolkit's convergence threshold, the same in every study.
SSN_LEARNT_FRACTION = CONVERGED_FRACTION


def _paper_gaps(source: Mapping[str, Mapping[str, Mapping[str, float]]], a: str, b: str) -> str:
    """The paper's rank-1 gaps a - b per dataset, in words."""
    return ", ".join(f"{source[d][a]['rank1'] - source[d][b]['rank1']:+.1f} on {dataset_title(d)}"
                     for d in paper.DATASETS if d in source)


#: The paper's orderings as pairs (first must beat second): name, source, statement, and each
#: side's selector over a dataset's runs at its main lambda.
def _ordering_pairs() -> List[tuple]:
    def ssn(strategy, shared=True):
        return {"model": "ssn3d", "strategy": strategy, "shared_classifier": shared}

    semi = ssn("semi-supervised")
    pairs = [
        ("table1_semi_vs_unsupervised", "Table 1",
         "the semi-supervised SSN beats the unsupervised one (paper rank-1 "
         + _paper_gaps(paper.STRATEGY, "semi-supervised", "unsupervised") + ")",
         ("semi-supervised", semi), ("unsupervised", ssn("unsupervised"))),
        ("table1_unsupervised_vs_supervised", "Table 1",
         "the unsupervised SSN beats the supervised one (paper rank-1 "
         + _paper_gaps(paper.STRATEGY, "unsupervised", "supervised") + ")",
         ("unsupervised", ssn("unsupervised")), ("supervised", ssn("supervised"))),
        ("table2_shared_vs_not_shared", "Table 2",
         "shared classifiers beat per-frame classifiers (paper rank-1 "
         + _paper_gaps(paper.SHARING, "shared", "not shared") + ")",
         ("shared", semi), ("not shared", ssn("semi-supervised", False))),
    ]
    pairs += [(f"tables3-5_ssn3d_vs_{m}", "Tables 3-5",
               f"SSN3D outperforms {BASELINE_NAMES[m]} (same backbone, input and budget)",
               ("SSN3D", semi), (BASELINE_NAMES[m], {"model": m})) for m in ("tp", "c3d", "st-attention")]
    return pairs


def _select(runs: pd.DataFrame, selector: Mapping[str, Any]) -> List[Dict[str, Any]]:
    sel = np.ones(len(runs), dtype=bool)
    for key, value in selector.items():
        sel &= (runs[key] == value).to_numpy()
    return runs[sel].to_dict("records")


def _per_query_entries(records: Sequence[Mapping[str, Any]], where: str) -> Dict[Any, List[tuple]]:
    """split -> [(seed, per-query entry)] of one setting's runs."""
    out: Dict[Any, List[tuple]] = {}
    for r in records:
        if not r.get("per_query"):
            raise BenchmarkError(f"{where}: record {r['run']} has no per-query arrays; run notebook 04 again "
                                 f"(it evaluates a finished run's checkpoint to add them)")
        for entry in r["per_query"]:
            out.setdefault(entry["split"], []).append((r["seed"], entry))
    return {k: sorted(v, key=lambda se: se[0]) for k, v in out.items()}


def paired_scores(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], where: str = "comparison"
                  ) -> Dict[str, Any]:
    """Two settings' per-query scores on their shared test queries, ready for ``compare``, one
    block per split: ``blocks[split]`` holds hits_a/hits_b (rank-1 hit 1/0) and ap_a/ap_b, each
    (seeds, queries), rows in seed order, the split's queries in one order on both sides, queries
    without a true match left out; plus the design: queries (matched, all splits), splits,
    seeds_a, seeds_b (per split)."""
    ea, eb = _per_query_entries(a, where), _per_query_entries(b, where)
    if set(ea) != set(eb):
        raise BenchmarkError(f"{where}: the settings were evaluated on different splits "
                             f"({sorted(ea, key=str)} and {sorted(eb, key=str)}); pair runs on the same test sets")
    blocks: Dict[Any, Dict[str, np.ndarray]] = {}
    for split in sorted(ea, key=str):
        order = ea[split][0][1]["query"]
        matched = np.asarray(ea[split][0][1]["first_match_rank"]) > 0
        rows: Dict[str, List[np.ndarray]] = {k: [] for k in ("hits_a", "hits_b", "ap_a", "ap_b")}
        for side, entries in (("a", ea[split]), ("b", eb[split])):
            for seed, entry in entries:
                index = {q: i for i, q in enumerate(entry["query"])}
                if len(index) != len(order) or set(index) != set(order):
                    raise BenchmarkError(f"{where}: split {split}, seed {seed}: the test queries differ between "
                                         f"the runs; a paired comparison needs one test set")
                ranks = np.array([entry["first_match_rank"][index[q]] for q in order])
                if not np.array_equal(ranks > 0, matched):
                    raise BenchmarkError(f"{where}: split {split}: queries without a true match differ between "
                                         f"the runs; one test set has the same ones")
                ap = [entry["ap"][index[q]] for q, m in zip(order, matched) if m]
                rows[f"hits_{side}"].append((ranks[matched] == 1).astype(float))
                rows[f"ap_{side}"].append(np.array(ap, dtype=float))
        blocks[split] = {k: np.vstack(v) for k, v in rows.items()}
    seeds_a = {len(v) for v in ea.values()}
    seeds_b = {len(v) for v in eb.values()}
    if len(seeds_a) != 1 or len(seeds_b) != 1:
        raise BenchmarkError(f"{where}: the splits have different numbers of seeds ({sorted(seeds_a)} and "
                             f"{sorted(seeds_b)}); train every split with the same seeds")
    return {"blocks": blocks, "queries": int(sum(len(v["hits_a"][0]) for v in blocks.values())),
            "splits": len(blocks), "seeds_a": seeds_a.pop(), "seeds_b": seeds_b.pop()}


def what_would_decide(cmp: Comparison, queries: int, replicates: int) -> str:
    """What an inconclusive comparison of rank-1 would need for an MDE of TARGET_MDE: seeds
    (seeds_needed at the measured seed-to-seed SD) with one seed, else more replicates (the MDE
    ~ 1/sqrt(replicates) while their noise dominates) or test queries (~ 1/sqrt(queries))."""
    if replicates < MIN_SEEDS:
        text = (f"What would decide it: for a minimum detectable effect of {TARGET_MDE:g} rank-1 points, about "
                f"{seeds_needed(SEED_SD_RANK1, TARGET_MDE)} seeds per setting (seeds_needed at the seed-to-seed SD of "
                f"{SEED_SD_RANK1:g} rank-1 points measured in the misalignment sweep), or PKU-Reid's 10 splits as "
                f"replicates; and the test queries alone allow an MDE of {cmp.mde:.1f} points from {queries} queries")
        return text + (f": {TARGET_MDE:g} needs about {units_needed(queries, cmp.mde, TARGET_MDE)} queries "
                       f"(MDE ~ 1/sqrt(queries): more test identities)" if cmp.mde > TARGET_MDE else "")
    if cmp.mde > TARGET_MDE:
        more = units_needed(replicates, cmp.mde, TARGET_MDE)
        return (f"What would decide it: the design's MDE is {cmp.mde:.1f} points with {replicates} replicates per "
                f"setting; {TARGET_MDE:g} needs about {more} (MDE ~ 1/sqrt(replicates) while their noise dominates), "
                f"or more test queries (about {units_needed(queries, cmp.mde, TARGET_MDE)} at this noise)")
    return (f"The design had 80% power for {TARGET_MDE:g} points (MDE {cmp.mde:.1f}) and found no difference: one as "
            f"large as the paper's gaps would probably have shown; the interval bounds what remains")


def _compare_scores(scores: Mapping[str, Any], metric: str) -> Comparison:
    """One split: seeds are the replicates, crossed with the shared queries (``compare``);
    several splits: each split's difference is one replicate (``compare_blocks``)."""
    blocks = list(scores["blocks"].values())
    if len(blocks) == 1:
        return compare(blocks[0][f"{metric}_a"], blocks[0][f"{metric}_b"])
    return compare_blocks([blk[f"{metric}_a"] for blk in blocks], [blk[f"{metric}_b"] for blk in blocks])


def compare_settings(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], where: str = "comparison"
                     ) -> Dict[str, Comparison]:
    """Paired comparisons of setting a over b on their shared queries: rank-1 hits (the one that
    decides; an inconclusive one says what would decide it) and mAP (reported beside it,
    never breaking a rank-1 tie)."""
    scores = paired_scores(a, b, where)
    replicates = scores["splits"] * min(scores["seeds_a"], scores["seeds_b"])
    rank1 = _compare_scores(scores, "hits")
    if rank1.verdict == INCONCLUSIVE:
        rank1 = replace(rank1, reason=f"{rank1.reason}. {what_would_decide(rank1, scores['queries'], replicates)}")
    return {"rank1": rank1, "mAP": _compare_scores(scores, "ap")}


def ssn_state(label: str, records: Sequence[Mapping[str, Any]]) -> str:
    """Whether a setting's SSN learnt: final SSN loss under SSN_LEARNT_FRACTION x log N in every
    run ("" for a model without an SSN)."""
    records = [r for r in records if r["model"] == "ssn3d"]
    if not records:
        return ""
    if any(pd.isna(r.get("ssn_num_parts")) or pd.isna(r.get("final_ssn_loss")) for r in records):
        return f"{label} has no SSN loss (its parts are the keypoints' windows)"
    log_n = float(np.log(records[0]["ssn_num_parts"]))
    losses = [r["final_ssn_loss"] for r in records]
    learnt = all(v < SSN_LEARNT_FRACTION * log_n for v in losses)
    values = "/".join(f"{v:.2f}" for v in losses)
    return (f"{label}'s SSN {'learnt' if learnt else 'did not learn'}: final SSN loss {values} of "
            f"log {int(records[0]['ssn_num_parts'])} = {log_n:.2f} "
            f"(learnt means under {SSN_LEARNT_FRACTION * log_n:.2f})")


def comparison_claim(name: str, source: str, statement: str, a: tuple, b: tuple, data: str) -> Claim:
    """One ordering of the paper (a's setting beats b's) as a Claim decided by the rank-1
    comparison; detail: both settings' numbers, both comparisons, each SSN's state."""
    (label_a, runs_a), (label_b, runs_b) = a, b
    cmp = compare_settings(runs_a, runs_b, name)
    r1a, r1b = (float(np.mean([r["rank1"] for r in runs])) for runs in (runs_a, runs_b))
    ma, mb = (float(np.mean([r["mAP"] for r in runs])) for runs in (runs_a, runs_b))
    ssn = "; ".join(t for t in (ssn_state(label_a, runs_a), ssn_state(label_b, runs_b)) if t)
    detail = (f"{label_a} rank-1 {r1a:.1f} vs {label_b} {r1b:.1f}: {cmp['rank1'].describe()}. "
              f"mAP {ma:.1f} vs {mb:.1f}: {cmp['mAP'].describe()}; reported, not deciding."
              + (f" {ssn[0].upper() + ssn[1:]}." if ssn else ""))
    # rounded as the records are, so the claims recomputed from metrics.json equal these
    return Claim(name, source, statement, None, detail, data, comparison=to_jsonable(cmp["rank1"].to_dict(), DIGITS))


def _lambda_claims(sweep: pd.DataFrame, dataset: str, data: str) -> List[Claim]:
    """Fig. 3: the small lambda (0 < lambda <= 0.1; the dataset's main one when it is small)
    against every other lambda of the semi-supervised, shared SSN3D sweep."""
    runs = sweep[(sweep["model"] == "ssn3d") & (sweep["dataset"] == dataset)
                 & (sweep["strategy"] == "semi-supervised") & sweep["shared_classifier"].astype(bool)]
    lambdas = sorted(set(runs["lambda_ssn"]))
    small = [lam for lam in lambdas if 0 < lam <= 0.1]
    if not small or len(lambdas) < 2:
        return []
    main = runs["config_lambda_ssn"].iloc[0]
    best = main if main in small else small[-1]
    claims = []
    for other in (lam for lam in lambdas if lam not in small):
        a = (f"lambda {best:g}", _select(runs, {"lambda_ssn": best}))
        b = (f"lambda {other:g}", _select(runs, {"lambda_ssn": other}))
        claims.append(comparison_claim(f"fig3_lambda{best:g}_vs_{other:g}_{dataset}", "Fig. 3",
                                       f"{paper.LAMBDA['claim']}: lambda {best:g} beats lambda {other:g}", a, b, data))
    converged = _convergence_claim(_select(runs, {"lambda_ssn": best}), best, dataset, data)
    return claims + ([converged] if converged is not None else [])


def _convergence_claim(records: Sequence[Mapping[str, Any]], lam: float, dataset: str, data: str) -> Optional[Claim]:
    """Fig. 3's reason for a small lambda, "the SSN loss converges very fast": at that lambda, each
    run's final SSN loss under SSN_LEARNT_FRACTION x log N, as a margin in points of log N with a
    t interval over the runs (seeds or splits); None without an SSN loss."""
    losses = [(r["final_ssn_loss"], r["ssn_num_parts"]) for r in records
              if not pd.isna(r.get("final_ssn_loss")) and not pd.isna(r.get("ssn_num_parts"))]
    if not losses:
        return None
    fractions = [loss / np.log(parts) for loss, parts in losses]
    cmp = converged_margin(fractions)
    reason = "" if cmp.verdict != INCONCLUSIVE else (
        f"{cmp.reason}; with {len(losses)} run(s) the MDE is {cmp.mde:.1f} points of log N: more runs would "
        f"narrow it")
    return Claim(f"fig3_ssn_loss_converges_at_lambda{lam:g}_{dataset}", "Fig. 3",
                 "The SSN loss converges very fast, which is why a small lambda is enough (here: by the end of "
                 f"training at lambda {lam:g} its loss is under {SSN_LEARNT_FRACTION:g} log N)", None,
                 f"Final SSN loss at lambda {lam:g} in % of log N per run: "
                 + ", ".join(f"{100 * f:.0f}%" for f in fractions)
                 + f"; margin under the {100 * SSN_LEARNT_FRACTION:.0f}% threshold: {cmp.describe('points of log N')}. "
                 "The semi-supervised SSN's loss also counts the labelled frames, whose parts are the keypoints' "
                 "windows.", data, reason=reason, comparison=to_jsonable(cmp.to_dict(), DIGITS))   # as stored


def _gap_growth_claim(name: str, statement: str, with_failures: tuple, exact: tuple, data: str) -> Claim:
    """Does setting a's lead over b grow when the pose model fails? (a_f - b_f) - (a_e - b_e) in
    rank-1 hits per seed and shared test query (rows pair by seed order, as in every comparison
    of independently trained settings; one replicate per split when there are several)."""
    (label_f, a_f, b_f), (label_e, a_e, b_e) = with_failures, exact
    # a_f's query order for all four settings, each checked against it
    scores = [paired_scores(a_f, other, name) for other in (b_f, a_e, b_e)]
    grown, before = [], []
    for split, block in scores[0]["blocks"].items():
        hits = [block["hits_a"], block["hits_b"], scores[1]["blocks"][split]["hits_b"],
                scores[2]["blocks"][split]["hits_b"]]
        if len({h.shape[0] for h in hits}) != 1:
            raise BenchmarkError(f"{name}: the four settings need the same number of seeds, got "
                                 f"{[h.shape[0] for h in hits]}")
        grown.append(hits[0] - hits[1])
        before.append(hits[2] - hits[3])
    cmp = compare(grown[0], before[0]) if len(grown) == 1 else compare_blocks(grown, before)
    queries, replicates = scores[0]["queries"], len(grown) * grown[0].shape[0]
    if cmp.verdict == INCONCLUSIVE:
        cmp = replace(cmp, reason=f"{cmp.reason}. {what_would_decide(cmp, queries, replicates)}")
    gap_f, gap_e = (100 * float(np.mean([g.mean() for g in gaps])) for gaps in (grown, before))
    detail = (f"Semi-supervised minus supervised rank-1: {gap_f:+.1f} points {label_f}, {gap_e:+.1f} {label_e}; "
              f"the growth: {cmp.describe()}.")
    return Claim(name, "Table 1", statement, None, detail, data, reason=cmp.reason,
                 comparison=to_jsonable(cmp.to_dict(), DIGITS))


def _pose_failure_claims(sweep: pd.DataFrame, dataset: str, data: str) -> List[Claim]:
    """The paper's reason for Table 1, "the supervised SSN is worse because the pose model fails on
    some frames", on runs whose keypoints were removed from a fraction d of the frames
    (keypoint_drop) beside the same settings on the table's keypoints (main lambda, shared
    classifier), for each d: the failures make the supervised SSN worse (supervised minus
    supervised with failures), and they widen the semi-supervised SSN's lead over it (which picks
    its labelled frames among the best-labelled, so it can skip the frames without a pose)."""
    on = sweep[(sweep["dataset"] == dataset) & (sweep["model"] == "ssn3d")]
    runs = at_main_lambda(on[on["shared_classifier"].astype(bool)])
    drop = keypoint_drops(runs).to_numpy()
    claims = []
    for d in sorted(set(drop[drop > 0])):
        def runs_of(strategy: str, rate: float) -> List[Dict[str, Any]]:
            return runs[(runs["strategy"] == strategy).to_numpy() & np.isclose(drop, rate)].to_dict("records")

        sup, sup_f = runs_of("supervised", 0.0), runs_of("supervised", d)
        semi, semi_f = runs_of("semi-supervised", 0.0), runs_of("semi-supervised", d)
        failures, tag = f"with no pose in {d:.0%} of frames", f"{dataset}_drop{d:g}"
        if sup and sup_f:
            claims.append(comparison_claim(
                f"table1_pose_failures_hurt_supervised_{tag}", "Table 1",
                f"the supervised SSN is worse because the pose model fails on some frames (the paper's reason for "
                f"Table 1; here the keypoints of {d:.0%} of the frames are removed at random): supervised on the "
                f"table's keypoints beats supervised {failures}",
                ("supervised, all keypoints", sup), (f"supervised {failures}", sup_f), data))
        if sup and sup_f and semi and semi_f:
            claims.append(_gap_growth_claim(
                f"table1_pose_failures_widen_semi_lead_{tag}",
                f"the paper's reason for Table 1 (the pose model fails on some frames): the semi-supervised SSN's "
                f"lead over the supervised one is larger {failures} than with all keypoints",
                (failures, semi_f, sup_f), ("with all keypoints", semi, sup), data))
    return claims


def benchmark_claims(records: Sequence[Mapping[str, Any]], profile: str) -> List[Claim]:
    """The paper's orderings as paired comparisons, per dataset the records cover: Table 1
    semi-supervised > unsupervised > supervised, Table 2 shared > not shared, Tables 3-5 SSN3D >
    each baseline (at each dataset's main lambda), Fig. 3 the small lambda > each other lambda of
    the sweep. Each claim compares the two settings' per-query rank-1 hits on their shared test
    queries (seeds and splits as replicates) and takes the verdict rule's reproduced /
    contradicted / inconclusive; mAP is reported beside it and never breaks a tie. Without a
    run on the paper's own datasets, its absolute numbers and orderings are listed as not
    testable here. No records: no claims."""
    if not records:
        return []
    everything = pd.DataFrame(list(records))
    sweep = with_exact_keypoints(everything)
    claims: List[Claim] = []
    if not set(paper.DATASETS) & set(sweep["dataset"]):
        data = ", ".join(dataset_title(d) for d in paper.DATASETS)
        claims += [Claim(name, source, statement, None, "see the CPU-scale comparisons below", data,
                         reason="the benchmarks' images are not on this machine and need GPUs; "
                                "`ssn3d studies run --profile full` regenerates them")
                   for name, source, statement in PAPER_DATASET_CLAIMS]
    runs = at_main_lambda(sweep)
    for dataset in sorted(set(runs["dataset"])):
        data = f"{dataset_title(dataset)}; profile {profile}"
        on = runs[runs["dataset"] == dataset]
        for name, source, statement, (label_a, sel_a), (label_b, sel_b) in _ordering_pairs():
            a, b = _select(on, sel_a), _select(on, sel_b)
            if a and b:
                claims.append(comparison_claim(f"{name}_{dataset}", source, statement, (label_a, a), (label_b, b),
                                               data))
        claims += _lambda_claims(sweep, dataset, data)
        claims += _pose_failure_claims(everything, dataset, data)
    return claims


__all__ = ["BASE_CONFIGS", "BenchmarkError", "PlannedRun", "RECORD_KEYS", "RunSpec", "at_main_lambda", "base_config",
           "benchmark_claims", "check_record", "compare_settings", "lambda_sweeps", "orderings",
           "paired_scores", "per_query_from_checkpoint", "plan_runs", "plan_table", "plot_cmc",
           "plot_lambda", "records_frame", "render_tables", "run_all", "run_config", "run_curves",
           "run_name", "run_one", "run_picker", "runs_root", "scale_table", "specs_from_parameters",
           "splits_for", "write_record", "write_summary", "expand_seeds"]
