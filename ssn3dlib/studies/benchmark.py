"""The benchmark study (issue 5, notebook 04): train, evaluate and tabulate the paper's runs.

A run is a spec: dataset, model, and for SSN3D its learning strategy, classifier sharing
and lambda; plus a seed. Each profile maps a dataset to a base config (`BASE_CONFIGS`:
the paper's recipe on the real datasets for `full`, a 2-core scale for `cpu`); the spec
becomes engine overrides on top of it. Every run trains through the engine into
``reports/runs/<profile>/benchmark/<run>/`` (a finished run is loaded from its checkpoint,
an interrupted one continues, a changed config retrains), is evaluated under the dataset's
protocol (the split datasets as the mean over their splits when asked), and writes one
JSON record ``<study_dir>/<run>.json`` that ``ssn3dlib.reporting.tables`` renders beside
the paper's numbers.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..figures import new_figure
from ..paths import PROFILES, reports_dir, study_dir
from ..reporting import paper
from .engine_runs import chance_rank1, config_differences
from ..reporting.tables import BASELINE_NAMES, RUN_KEYS, at_main_lambda, load_runs, render_markdown

STUDY = "benchmark"
RANKS = (1, 5, 10, 20)
#: The tables the study renders, in the order of tables.md (keys of reporting.paper.TABLES).
TABLES = ("table1", "table2", "table3-5", "fig3")

#: Base config per profile and dataset (names in configs/); a notebook may add or replace entries.
BASE_CONFIGS: Dict[str, Dict[str, str]] = {
    "smoke": {"synthetic_world": "bench_smoke"},
    "cpu": {"synthetic_world": "bench_synthetic_cpu", "pku_reid_subset": "bench_pku_cpu"},
    "full": {"ilidsvid": "ilidsvid", "mars": "mars", "dukemtmc-videoreid": "dukemtmc", "prid2011": "prid2011"},
}

#: Keys every run JSON holds: the table renderer's plus what a reader needs to trust a number.
RECORD_KEYS = RUN_KEYS + ("study", "run", "protocol", "cmc", "chance_rank1", "num_query", "num_gallery",
                          "wall_time_s", "device", "loaded_from_checkpoint", "config", "overrides",
                          "backbone", "input_size", "clip_len", "config_lambda_ssn", "first_triplet_loss",
                          "final_triplet_loss", "first_ssn_loss", "final_ssn_loss")


class BenchmarkError(ValueError):
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
        if self.model != "ssn3d":
            return RunSpec(self.dataset, self.model, None, None, None, self.seed, self.overrides)
        if self.strategy not in STRATEGIES:
            raise BenchmarkError(f"strategy {self.strategy!r} is not an SSN strategy; choose one of {STRATEGIES}")
        if not isinstance(self.shared_classifier, bool):
            raise BenchmarkError(f"shared_classifier must be true or false, got {self.shared_classifier!r}")
        lam = self.lambda_ssn
        if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0):
            raise BenchmarkError(f"lambda_ssn must be a number >= 0 or None (the paper's value), got {lam!r}")
        return RunSpec(self.dataset, self.model, self.strategy, self.shared_classifier,
                       None if lam is None else float(lam), self.seed, self.overrides)

    def engine_overrides(self) -> List[str]:
        """The spec as engine overrides on top of its dataset's base config."""
        out = [f"model.name={self.model}", f"train.seed={self.seed}"]
        if self.model == "ssn3d":
            out += [f"model.strategy={self.strategy}",
                    f"model.shared_classifier={'true' if self.shared_classifier else 'false'}"]
            if self.lambda_ssn is not None:
                out.append(f"loss.lambda_ssn={self.lambda_ssn!r}")
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
    if m.name == "ssn3d":
        parts += [m.strategy, "shared" if m.shared_classifier else "nonshared", f"lambda{config.lambda_ssn():g}"]
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
    #: None when the engine can run it; else why not (e.g. a strategy it cannot evaluate yet).
    unsupported: Optional[str] = None
    overrides: List[str] = field(default_factory=list)   # all overrides on top of `base`
    #: The lambda of the base config with the notebook's overrides: the dataset's main setting,
    #: the one Tables 1, 2 and 3-5 show (other lambdas belong to the Fig. 3 sweep).
    main_lambda: Optional[float] = None


def plan_runs(specs: Sequence[Mapping[str, Any]], profile: str, configs: Optional[Mapping[str, str]] = None,
              overrides: Sequence[str] = ()) -> List[PlannedRun]:
    """Validated runs in the given order; a spec repeated (the same name) is planned once."""
    from ..engine import ConfigError, load_config
    from ..engine.build import check_evaluable

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
        unsupported = None
        try:
            check_evaluable(config)
        except ConfigError as err:
            unsupported = str(err)
        plans[name] = PlannedRun(spec, base, config, name, unsupported,
                                 list(overrides) + spec.engine_overrides(),
                                 load_config(base, list(overrides) + list(spec.overrides)).lambda_ssn())
    return list(plans.values())


def specs_from_parameters(params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The notebook's parameters as run specs: `runs` when given (each spec's missing keys
    from the single-run parameters), else the single run."""
    single = {k: params[k] for k in ("dataset", "model", "strategy", "shared_classifier", "lambda_ssn", "seed")
              if k in params}
    runs = params.get("runs")
    if runs is None:
        return [single]
    if not isinstance(runs, (list, tuple)):
        raise BenchmarkError(f"runs must be a list of run specs (mappings), got {type(runs).__name__}")
    return [RunSpec.from_dict(r, defaults=single) for r in runs]


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
                          "lambda": p.config.lambda_ssn() if p.spec.model == "ssn3d" else None,
                          "seed": p.spec.seed, "epochs": p.config.train.epochs,
                          "runs?": "yes" if p.unsupported is None else "no: engine limitation"}
                         for p in plans])


# ============================================================================ running

def runs_root(profile: str) -> Path:
    """Run folders (checkpoints, metrics.jsonl): reports/runs/<profile>/benchmark/ (git-ignored)."""
    return reports_dir() / "runs" / profile / STUDY


def _fresh_needed(config, run_dir: Path) -> bool:
    """True when run_dir holds a run of another config (retrain it rather than resume)."""
    import yaml


    stored = run_dir / "config.yaml"
    if not stored.is_file():
        return False
    changed = config_differences(yaml.safe_load(stored.read_text()) or {}, config.to_dict())
    if changed:
        tqdm.write(f"{run_dir.name}: config changed in {', '.join(changed[:4])}; retraining from scratch")
    return bool(changed)


def _train_one(config, run_dir: Path, progress: bool) -> Dict[str, Any]:
    """Train (or load, or continue) one run; its final evaluation and bookkeeping."""
    from ..engine import read_metrics, train

    result = train(config, run_dir, resume=not _fresh_needed(config, run_dir), progress=progress)
    if result.final is None:
        raise RuntimeError(f"{run_dir}: training ended without an evaluation; the engine evaluates after "
                           f"the last epoch, so the run did not finish")
    log = read_metrics(run_dir)
    epochs = log[log["kind"] == "epoch"] if "kind" in log else log
    loaded = result.resumed_from is not None and result.resumed_from["epoch"] >= config.train.epochs
    losses = {}
    for key in ("triplet", "ssn"):   # first and last epoch means: did the run learn, did its SSN?
        has = len(epochs) and key in epochs and (key == "triplet" or config.model.name == "ssn3d")
        losses[f"first_{key}_loss"] = float(epochs[key].iloc[0]) if has else None
        losses[f"final_{key}_loss"] = float(epochs[key].iloc[-1]) if has else None
    return {"final": result.final, "epochs": result.epochs, "train_seconds": result.train_seconds,
            "device": result.device, "loaded": loaded, **losses}


def _padded_cmc(cmc: Sequence[float], max_rank: int) -> List[float]:
    """CMC up to max_rank; a gallery smaller than max_rank has matched every query by its end
    (100%, as the evaluator reports ranks beyond the gallery)."""
    cmc = list(cmc)[:max_rank]
    return cmc + [100.0] * (max_rank - len(cmc))


def splits_for(config, all_splits: bool) -> Optional[List[int]]:
    """The splits to train: every split of a split protocol when all_splits, else None (one run)."""
    from ..engine.build import SPLIT_DATASETS

    if all_splits and config.data.name in SPLIT_DATASETS:
        return list(range(SPLIT_DATASETS[config.data.name]))
    return None


def run_one(plan: PlannedRun, profile: str, all_splits: bool = False, progress: bool = False,
            out_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Train and evaluate one planned run (every split of a split protocol when all_splits),
    write its JSON record, and return it."""
    from ..engine import load_config, mean_over_splits
    from ..engine.build import prepare_dataset

    if plan.unsupported is not None:
        raise BenchmarkError(f"{plan.name} cannot run: {plan.unsupported}")
    start = time.perf_counter()
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
    else:
        runs, results, cmcs, chances = [], [], [], []
        for k in splits:
            config = load_config(plan.config, [f"data.options.split={k}"])
            one = _train_one(config, run_dir / f"split{k}", progress)
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
    config = plan.config
    is_ssn3d = config.model.name == "ssn3d"
    record = {
        "study": STUDY, "run": plan.name, "dataset": config.data.name, "model": config.model.name,
        "strategy": config.model.strategy if is_ssn3d else None,
        "shared_classifier": config.model.shared_classifier if is_ssn3d else None,
        "lambda_ssn": config.lambda_ssn() if is_ssn3d else None, "seed": config.train.seed,
        "profile": profile, "epochs": runs[0]["epochs"], **metrics,
        "ap_definition": final["ap_definition"],
        "protocol": {**final["protocol"], "aggregate": aggregate, "distance": final["distance"],
                     "query_without_match": final["num_query_without_match"]},
        "cmc": cmc, "chance_rank1": chance, "num_query": final["num_query"], "num_gallery": final["num_gallery"],
        "per_split": per_split,
        # training time of every session of the run(s), evaluations included; for a run
        # loaded from its checkpoint, the time it took when it was trained
        "wall_time_s": sum(r["train_seconds"] for r in runs),
        "this_call_s": time.perf_counter() - start,
        "device": runs[0]["device"], "loaded_from_checkpoint": all(r["loaded"] for r in runs),
        "config": plan.base, "overrides": plan.overrides, "backbone": config.model.backbone,
        "input_size": list(config.data.size), "clip_len": config.data.clip_len,
        # the lambda this dataset's base config uses: the tables' main setting (others are a sweep)
        "config_lambda_ssn": plan.main_lambda if is_ssn3d else None,
        **{k: runs[0][k] for k in ("first_triplet_loss", "final_triplet_loss", "first_ssn_loss", "final_ssn_loss")},
    }
    record = _plain(record)      # the caller gets what the file holds
    write_record(record, out_dir if out_dir is not None else study_dir(STUDY, profile))
    return record


def run_all(plans: Sequence[PlannedRun], profile: str, all_splits: bool = False,
            progress: bool = True, out_dir: Optional[Path] = None) -> List[Dict[str, Any]]:
    """Every runnable plan in order, one progress step per run; returns their records."""
    records = []
    runnable = [p for p in plans if p.unsupported is None]
    bar = tqdm(runnable, desc=f"benchmark [{profile}]", unit="run", disable=not progress)
    for plan in bar:
        bar.set_postfix_str(plan.name)
        records.append(run_one(plan, profile, all_splits, progress=False, out_dir=out_dir))
    bar.close()
    return records


# ============================================================================ records

def _plain(value):
    """JSON-ready: numpy scalars to Python, NaN to None, floats rounded (stable diffs)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def check_record(record: Mapping[str, Any]) -> None:
    """Refuse a record the tables could misread: missing keys, metrics outside [0, 100],
    a CMC that decreases."""
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


def write_record(record: Dict[str, Any], out_dir: Union[str, Path]) -> Path:
    """<out_dir>/<run>.json, written atomically (a kill leaves the old file or the new one)."""
    record = _plain(record)
    check_record(record)
    path = Path(out_dir) / f"{record['run']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    return path


def write_summary(records: Sequence[Mapping[str, Any]], plans: Sequence[PlannedRun], profile: str,
                  parameters: Mapping[str, Any], wall_time_s: float, out_dir: Union[str, Path]) -> Path:
    """<out_dir>/metrics.json: the notebook's run as a whole (the study report reads its wall
    time): which runs, which were not run and why, the orderings, the times."""
    summary = {
        "study": STUDY, "profile": profile, "parameters": dict(parameters),
        "runs": [r["run"] for r in records],
        "not_run": [{"run": p.name, "reason": p.unsupported} for p in plans if p.unsupported],
        "orderings": {m: orderings(records, m).to_dict("records") if records else [] for m in ("rank1", "mAP")},
        # this execution (short when every run was loaded from its checkpoint) and the runs' own training
        "wall_time_s": wall_time_s, "training_time_s": sum(r["wall_time_s"] for r in records),
        "trained_now": sum(not r["loaded_from_checkpoint"] for r in records),
    }
    path = Path(out_dir) / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_plain(summary), indent=1) + "\n")
    tmp.replace(path)
    return path


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
    if record["model"] != "ssn3d":
        return BASELINE_NAMES.get(record["model"], record["model"])
    sharing = "" if record["shared_classifier"] else ", not shared"
    return f"SSN3D {record['strategy']}{sharing}, λ={record['lambda_ssn']:g}"


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
            style = "-" if r["model"] == "ssn3d" else "--"
            ax.plot(ranks, r["cmc"], style, marker=".", label=f"{label(r)} (mAP {r['mAP']:.1f})")
        ax.axhline(rows[0]["chance_rank1"], color="grey", lw=0.8, ls=":", label="chance rank-1")
        max_rank = len(rows[0]["cmc"])
        ax.set(title=f"{paper.DATASET_TITLES.get(dataset, dataset)} ({rows[0]['profile']} profile)",
               xlabel="rank", ylabel="matching rate (%)", ylim=(0, 101), xlim=(1, max_rank),
               xticks=[1] + list(range(5, max_rank + 1, 5)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def lambda_sweeps(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rank-1 and mAP against lambda for the semi-supervised, shared SSN3D (paper Fig. 3):
    the datasets with at least two lambdas, mean over seeds."""
    rows = [r for r in records if r["model"] == "ssn3d" and r["strategy"] == "semi-supervised"
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
        name = paper.DATASET_TITLES.get(dataset, dataset)
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
    fig.suptitle(f"{label(record)} on {paper.DATASET_TITLES.get(record['dataset'], record['dataset'])}", fontsize=10)
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
    frame = pd.DataFrame(records)
    rows = []
    for dataset, runs in frame.groupby("dataset", sort=False):
        runs = at_main_lambda(runs)

        def value(model, strategy=None, shared=None):
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
            rows.append({"dataset": paper.DATASET_TITLES.get(dataset, dataset), "paper's ordering": claim,
                         f"{metric} (first)": round(a, 1), f"{metric} (second)": round(b, 1),
                         "ours agrees": "tie" if round(a, 1) == round(b, 1) else ("yes" if a > b else "no")})
    return pd.DataFrame(rows)


__all__ = ["BASE_CONFIGS", "BenchmarkError", "PlannedRun", "RECORD_KEYS", "RunSpec", "at_main_lambda",
           "base_config", "check_record", "lambda_sweeps", "orderings", "plan_runs", "plan_table", "plot_cmc",
           "plot_lambda", "records_frame", "render_tables", "run_all", "run_config", "run_curves", "run_name",
           "run_one", "run_picker", "runs_root", "scale_table", "specs_from_parameters", "splits_for",
           "write_record", "write_summary"]
