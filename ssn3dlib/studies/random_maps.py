"""The random-data study (paper Fig. 5): can the SSN separate parts of pure noise?

Maps of C x H x W are drawn from a Gaussian, a 0-1 uniform, or are all ones; the
SSN (no backbone) is trained on the SSN loss alone. SPEC decisions: a fresh batch
every step by default (``fixed_set`` gives a fixed pool instead); valid windows.

Nine settings (3 distributions x N in {3, 6, 9}) make the study, each trained with
``seeds`` seeds (the step of convergence varies with the initialisation, so claims about
it compare medians over seeds). ``study_metrics`` gives what
``notebooks/01_random_maps.ipynb`` writes to ``metrics.json``. Its keys (stable, read by
the report assembler):

- ``study``: "random_maps"; ``profile``: smoke | cpu | full; ``wall_time_s``: notebook wall
  time; ``torch_threads``: CPU threads torch used.
- ``parameters``: the training parameters (steps, batch, channels, size, window, hidden,
  lr, weight_decay, seed, seeds, fixed_set, device, num_parts, distributions).
- ``runs``: one record per trained run (``SSNRun.record``): ``distribution``, ``seed``,
  ``num_parts``, ``log_n``, ``final_loss`` (mean loss of the last 5% of steps),
  ``first_step_below_10pct_log_n`` (first step whose loss is below 0.1 log N, null if never),
  ``steps``, ``wall_time_s``.
- ``settings``: one record per (distribution, N): ``distribution``, ``num_parts``, ``log_n``,
  ``final_loss`` (mean over seeds), ``first_step_below_10pct_log_n`` (median over seeds,
  null if the median run never gets there), ``seeds``.
- ``claims``: a list of ``Claim`` records (``ssn3dlib.studies.toolkit.claims``), all the
  paper's: ``noise_converges``, ``ones_stay_at_log_n``, ``larger_n_converges_later`` and
  ``gaussian_faster_than_uniform`` (see ``check_claims``), each with its ``comparison``
  (effect, 95% interval, n, minimum detectable effect, verdict) computed from ``runs`` alone,
  the seeds being the units: ``check_claims(metrics["runs"])`` recomputes them.

Each run is a toolkit ``SSNRun`` labelled with its ``distribution``; the training loop is
``toolkit.train_ssn`` fed by ``map_sampler``.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ..engine.distributed import resolve_device
from ..figures import new_figure
from ..models import SelfSeparatedNetwork
from .toolkit import (
    NOT_IN_PAPER,
    WALL_TIME_KEY,
    Claim,
    SSNRun,
    attention_maps,
    claims_to_records,
    peak_windows,
    train_ssn,
)
from .toolkit.parallel import check_workers, map_in_processes, with_threads
from .toolkit.ssn_training import CONVERGED_FRACTION
from .toolkit.statistics import INCONCLUSIVE, Comparison, against_reference, compare, deciding, seeds_needed

#: "uniform-standardised" is U(0, 1) moved and scaled to mean 0, SD 1 (as the Gaussian): beside
#: "uniform" (mean 0.5, SD 0.29) it tells the distribution's shape from its scale.
DISTRIBUTIONS = ("gaussian", "uniform", "uniform-standardised", "ones")
NUM_PARTS = (3, 6, 9)
#: Source of every claim of this study.
SOURCE = "Fig. 5"


def map_sampler(distribution: str, batch: int, shape, generator: torch.Generator,
                fixed_set: Optional[int] = None) -> Callable[[], torch.Tensor]:
    """A function returning a (batch, *shape) batch per call.

    fixed_set: draw a pool of this many maps once and sample batches from it.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; choose one of {DISTRIBUTIONS}")

    def draw(n):
        if distribution == "gaussian":
            return torch.randn(n, *shape, generator=generator)
        if distribution == "uniform":
            return torch.rand(n, *shape, generator=generator)
        if distribution == "uniform-standardised":
            return (torch.rand(n, *shape, generator=generator) - 0.5) * math.sqrt(12.0)
        return torch.ones(n, *shape)

    if fixed_set is None:
        return lambda: draw(batch)
    pool = draw(fixed_set)
    return lambda: pool[torch.randint(0, fixed_set, (batch,), generator=generator)]


def distribution_of(run: SSNRun) -> str:
    return run.labels["distribution"]


def run_name(run: SSNRun) -> str:
    return f"{distribution_of(run)} N={run.num_parts}"


def train_ssn_on_random_maps(distribution: str, num_parts: int, steps: int = 300, batch: int = 128,
                             channels: int = 128, size: int = 16, window: int = 3,
                             hidden: int = 512, lr: float = 1e-3, weight_decay: float = 5e-4,
                             seed: int = 0, fixed_set: Optional[int] = None,
                             device: str = "cpu", progress: bool = True) -> SSNRun:
    """Train an SSN with Adam on random maps; the run (labels: distribution) keeps every step's loss.

    Defaults are the paper's (128 x 16 x 16, k = 3, batch 128, Adam, wd 5e-4);
    lr is not given in the paper for this study. device: cpu, cuda, cuda:N or auto; maps are
    drawn on the CPU (the same data on every device) and the trained model comes back on the CPU.
    """
    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be positive, got steps={steps}, batch={batch}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    sample = map_sampler(distribution, batch, (channels, size, size), generator, fixed_set)
    ssn = SelfSeparatedNetwork(channels, num_parts, window=window, hidden=hidden).to(dev)
    run = train_ssn(ssn, lambda: {"x": sample()}, steps, seed, lr=lr, weight_decay=weight_decay, device=dev,
                    labels={"distribution": distribution}, desc=f"{distribution} N={num_parts} seed {seed}",
                    progress=progress)
    run.ssn.cpu()
    return run


@dataclass(frozen=True)
class StudyParams:
    """The study's parameters (a notebook's parameters cell maps onto these).

    seeds: runs per (distribution, N), with seeds seed, seed + 1, ...
    """
    steps: int = 300
    batch: int = 128
    channels: int = 128
    size: int = 16
    window: int = 3
    hidden: int = 512
    lr: float = 1e-3
    weight_decay: float = 5e-4
    seed: int = 0
    seeds: int = 1
    fixed_set: Optional[int] = None
    device: str = "cpu"
    num_parts: Sequence[int] = NUM_PARTS
    distributions: Sequence[str] = DISTRIBUTIONS

    def __post_init__(self):
        unknown = [d for d in self.distributions if d not in DISTRIBUTIONS]
        if unknown:
            raise ValueError(f"unknown distributions {unknown}; choose from {DISTRIBUTIONS}")
        if any(n < 2 for n in self.num_parts):
            raise ValueError(f"every N must be at least 2 (one label cannot be separated), "
                             f"got num_parts={list(self.num_parts)}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if self.size < self.window:
            raise ValueError(f"maps of {self.size}x{self.size} are smaller than the "
                             f"{self.window}x{self.window} window; raise size or lower window")

    def as_dict(self) -> Dict:
        d = asdict(self)
        d["num_parts"], d["distributions"] = list(self.num_parts), list(self.distributions)
        return d

    def training_kwargs(self, seed: int) -> Dict:
        """Keyword arguments of train_ssn_on_random_maps for one seed."""
        d = self.as_dict()
        for key in ("num_parts", "distributions", "seeds"):
            d.pop(key)
        d["seed"] = seed
        return d


def run_study(params: StudyParams, progress: bool = True, workers: int = 1, threads: int = 0) -> List[SSNRun]:
    """Every (distribution, N, seed) run, ordered by distribution, then N, then seed; `workers`
    processes train at once, each on `threads` torch threads (0: torch's setting). A run depends on
    its seed only, never on the worker that trained it."""
    grid = [(d, n, params.seed + s) for d in params.distributions for n in params.num_parts
            for s in range(params.seeds)]
    per_run_bars = progress and check_workers(workers) == 1    # one bar per run only when runs go one by one
    calls = [(threads, train_ssn_on_random_maps, (d, n), {**params.training_kwargs(seed), "progress": per_run_bars})
             for d, n, seed in grid]
    runs: List[Optional[SSNRun]] = [None] * len(grid)
    for i, run in tqdm(map_in_processes(with_threads, calls, workers), total=len(grid), desc="random-maps runs",
                       disable=not progress):
        runs[i] = run
    return runs


def _steps_to_converge(run: SSNRun) -> float:
    """First step below the threshold; never = infinitely late (so it compares as latest)."""
    step = run.first_step_below(CONVERGED_FRACTION)
    return math.inf if step is None else float(step)


@dataclass
class Setting:
    """All seeds of one (distribution, N)."""
    distribution: str
    num_parts: int
    runs: List[SSNRun]

    @property
    def name(self) -> str:
        return f"{self.distribution} N={self.num_parts}"

    @property
    def log_n(self) -> float:
        return math.log(self.num_parts)

    def final_loss(self) -> float:
        """Mean over seeds of each run's final loss."""
        return statistics.fmean(r.final_loss() for r in self.runs)

    def steps_to_converge(self) -> float:
        """Median over seeds of the first step below 0.1 log N (inf: the median run never gets there)."""
        return statistics.median(_steps_to_converge(r) for r in self.runs)

    def summary(self) -> Dict:
        step = self.steps_to_converge()
        return {"distribution": self.distribution, "num_parts": self.num_parts,
                "log_n": round(self.log_n, 6), "final_loss": round(self.final_loss(), 6),
                "first_step_below_10pct_log_n": None if math.isinf(step) else step,
                "seeds": len(self.runs)}


def group_settings(runs: Sequence[SSNRun]) -> List[Setting]:
    """Runs grouped by (distribution, N), in the order they first appear."""
    groups: Dict[tuple, Setting] = {}
    for r in runs:
        key = (distribution_of(r), r.num_parts)
        groups.setdefault(key, Setting(*key, [])).runs.append(r)
    return list(groups.values())


def _step_text(step: float) -> str:
    return "never" if math.isinf(step) else f"{step:g}"


def data_label(params: StudyParams, profile: str) -> str:
    """What the claims were measured on, as the report shows it."""
    return (f"random {params.channels} x {params.size} x {params.size} maps, attention classifier K = {params.hidden}, "
            f"batch {params.batch} (the paper: 128 channels, K = 512, batch 128), {params.seeds} seed(s) per setting; "
            f"profile {profile}")


def _record(run) -> Dict:
    """A run's record (``SSNRun.record()``, or the stored record itself): what the claims read."""
    return run.record() if isinstance(run, SSNRun) else dict(run)


def _converged_at(record: Dict) -> float:
    """First step below 0.1 log N; a run that never gets there counts as its step budget
    (censored: its true step is later, so this understates how late it is)."""
    step = record["first_step_below_10pct_log_n"]
    return float(record["steps"] if step is None else step)


def _by_seed(records: Sequence[Dict], value: Callable[[Dict], float]) -> np.ndarray:
    """(seeds, 1) scores, one row per seed (the units of this study's comparisons are its seeds)."""
    return np.array([[value(r)] for r in sorted(records, key=lambda r: r["seed"])])


def _decide_text(comparisons: Dict[str, Comparison], unit: str) -> Tuple[str, Comparison, str]:
    """(deciding key, its comparison, words): every comparison's effect and interval, the deciding one in full."""
    key, decisive = deciding(comparisons)
    each = "; ".join(f"{k}: {c.effect:+.1f} ({c.low:+.1f} to {c.high:+.1f}), {c.verdict}"
                     for k, c in comparisons.items())
    return key, decisive, f"{each}. Decided by {key}: {decisive.describe(unit)}"


def _what_decides(comparison: Comparison, records: Sequence[Sequence[Dict]], value: Callable[[Dict], float],
                  scale: float = 1.0) -> str:
    """Reason of an inconclusive comparison: the seeds per setting a difference of its size needs."""
    if comparison.verdict != INCONCLUSIVE:
        return ""
    sds = [np.std([scale * value(r) for r in group], ddof=1) for group in records if len(group) > 1]
    if not sds or abs(comparison.effect) == 0:
        return comparison.reason + "; needs at least 2 seeds per setting and a non-zero difference to size it"
    seeds = seeds_needed(float(np.sqrt(np.mean(np.square(sds)))), abs(comparison.effect))
    return (f"{comparison.reason}; a difference of {abs(comparison.effect):.1f} with this seed-to-seed spread "
            f"needs about {seeds} seeds per setting")


#: Below this many seeds per setting the details say how few degrees of freedom the interval has.
FEW_SEEDS = 10
#: The unit of every comparison: each seed's run is one replicate (a row of the scores).
UNIT = "run per seed"


def _few_seeds(records: Sequence[Dict]) -> str:
    """A note when the settings have few seeds: the seed-paired t interval has seeds - 1 degrees of freedom."""
    counts: Dict[tuple, int] = {}
    for r in records:
        key = (r["distribution"], r["num_parts"])
        counts[key] = counts.get(key, 0) + 1
    fewest = min(counts.values())
    return (f" With {fewest} seed(s) per setting the interval is Student's t over the seed-paired differences with "
            f"{fewest - 1} degree(s) of freedom: wide by design." if fewest < FEW_SEEDS else "")


def check_claims(runs: Sequence, data: str = "random maps", ones_tolerance: float = 0.01) -> List[Claim]:
    """The paper's Fig. 5 claims, each a comparison over training seeds (the randomness of this
    study is the SSN's initialisation and the drawn maps; a seed's run is one unit). Runs are
    ``SSNRun``s or their stored records (metrics.json ``runs``): the claims read only the
    records, so they can be recomputed from metrics.json. Each setting's seeds are the rows
    (``statistics``), paired by seed with the other setting's; one seed per setting is
    inconclusive by the rule. A claim over several settings needs every comparison reproduced
    (``deciding``: the weakest decides).

    - noise_converges: per Gaussian and uniform setting, 0.1 log N minus the final loss, in
      % of log N (> 0: the loss ends below the threshold).
    - ones_stay_at_log_n (an equivalence): per all-ones N, the tolerance (ones_tolerance x
      log N) minus |final loss - log N|, in % of log N: reproduced when the whole interval of
      the gap lies below the tolerance.
    - larger_n_converges_later: per noise distribution and each step of N, the step of
      convergence at the larger N minus that at the smaller one.
    - gaussian_faster_than_uniform: per N, the uniform setting's step of convergence minus the
      Gaussian one's.
    A run that never falls below 0.1 log N converges at its step budget (censored). A claim
    whose runs are absent (e.g. no all-ones runs) is left out.
    """
    records = [_record(r) for r in runs]
    groups: Dict[tuple, List[Dict]] = {}
    for r in records:
        groups.setdefault((r["distribution"], r["num_parts"]), []).append(r)
    noise = {k: g for k, g in groups.items() if k[0] != "ones"}
    ones = {k: g for k, g in groups.items() if k[0] == "ones"}
    censored = [f"{d} N={n} seed {r['seed']}" for (d, n), g in noise.items() for r in g
                if r["first_step_below_10pct_log_n"] is None]
    censoring = (f" Runs that never fall below 0.1 log N count as their step budget (censored, so later in "
                 f"truth): {', '.join(censored)}." if censored else " Every noise run falls below 0.1 log N.")
    few = _few_seeds(records)
    claims = []

    def record(name, statement, comparison: Comparison, detail, reason=""):
        claims.append(Claim(name, SOURCE, statement, None, detail, data, reason=reason,
                            comparison=comparison.to_dict()))

    def name(key):
        return f"{key[0]} N={key[1]}"

    if noise:
        def margin(r):
            return CONVERGED_FRACTION - r["final_loss"] / r["log_n"]
        comparisons = {name(k): against_reference(_by_seed(g, margin), 0.0, unit=UNIT)
                       for k, g in noise.items()}
        key, decisive, words = _decide_text(comparisons, "points of log N")
        ratios = {name(k): 100 * statistics.fmean(r["final_loss"] / r["log_n"] for r in g) for k, g in noise.items()}
        record("noise_converges", "The loss can converge to a small value very fast even if the "
               "data is randomly generated.", decisive,
               "Mean final loss over seeds, in % of log N, against the 0.1 log N threshold (10%): "
               + ", ".join(f"{k} {v:.2f}%" for k, v in ratios.items())
               + f". Margin below the threshold per setting (points of log N, 95% CI): {words}.{few}",
               _what_decides(decisive, [noise[k] for k in noise if name(k) == key], margin, 100))
    if ones:
        def inside(r):
            return ones_tolerance - abs(r["final_loss"] - r["log_n"]) / r["log_n"]
        comparisons = {name(k): against_reference(_by_seed(g, inside), 0.0, unit=UNIT)
                       for k, g in ones.items()}
        key, decisive, words = _decide_text(comparisons, "points of log N")
        gap = max(abs(r["final_loss"] - r["log_n"]) / r["log_n"] for g in ones.values() for r in g)
        record("ones_stay_at_log_n", "The learning curves of the all-one feature maps do not "
               "converge.", decisive,
               f"A sanity check, not evidence about learning: all-ones maps make every window the same feature, "
               f"so the loss is log N by construction. Equivalence test: the claim is that the loss stays within "
               f"{100 * ones_tolerance:g}% of log N "
               f"(identical windows give identical parts, so the loss cannot go below log N); the effect is the "
               f"tolerance minus |final loss - log N| in points of log N, reproduced when the whole interval of "
               f"the gap lies inside the tolerance. The largest gap of any all-ones run is {100 * gap:.4f}% of "
               f"log N. Per N: {words}.{few}",
               _what_decides(decisive, [ones[k] for k in ones if name(k) == key], inside, 100))
    comparisons, steps = {}, {}
    for dist in [d for d in DISTRIBUTIONS if d != "ones"]:
        chain = sorted(n for d, n in noise if d == dist)
        for n in chain:
            steps[(dist, n)] = statistics.median(_converged_at(r) for r in noise[(dist, n)])
        for small, large in zip(chain, chain[1:]):
            comparisons[(dist, small, large)] = compare(_by_seed(noise[(dist, large)], _converged_at),
                                                        _by_seed(noise[(dist, small)], _converged_at),
                                                        scale=1.0, unit=UNIT)
    if comparisons:
        labelled = {f"{d} N={a} to {b}": c for (d, a, b), c in comparisons.items()}
        key, decisive, words = _decide_text(labelled, "steps")
        d, a, b = next(k for k in comparisons if f"{k[0]} N={k[1]} to {k[2]}" == key)
        record("larger_n_converges_later", "It seems harder for our model to learn when the number "
               "of labels increases.", decisive,
               "Median step (over seeds) at which the loss first falls below 0.1 log N: "
               + "; ".join(f"{dist}: " + ", ".join(f"N={n} at {steps[(x, n)]:g}" for x, n in steps if x == dist)
                           for dist in dict.fromkeys(x for x, _ in steps))
               + f". Mean step at the larger N minus the smaller, per distribution and step of N: {words}."
               + f"{few}{censoring}",
               _what_decides(decisive, [noise[(d, a)], noise[(d, b)]], _converged_at))
    pairs = {n: (noise[("uniform", n)], noise[("gaussian", n)]) for n in sorted({n for _, n in noise})
             if ("gaussian", n) in noise and ("uniform", n) in noise}
    scaled = {n: (noise[("uniform-standardised", n)], noise[("gaussian", n)]) for n in sorted({n for _, n in noise})
              if ("gaussian", n) in noise and ("uniform-standardised", n) in noise}
    if scaled:
        comparisons = {f"N={n}": compare(_by_seed(u, _converged_at), _by_seed(g, _converged_at), scale=1.0,
                                         unit=UNIT) for n, (u, g) in scaled.items()}
        key, decisive, words = _decide_text(comparisons, "steps")
        claims.append(Claim(
            "gaussian_faster_than_standardised_uniform", SOURCE, NOT_IN_PAPER, None,
            "Is 'more dynamic' the distribution or its scale? Against U(0, 1) standardised to the Gaussian's mean 0 "
            "and SD 1, median step (over seeds) to 0.1 log N: "
            + "; ".join(f"N={n}: Gaussian {steps[('gaussian', n)]:g}, standardised uniform "
                        f"{steps[('uniform-standardised', n)]:g}, 0-1 uniform "
                        f"{steps.get(('uniform', n), float('nan')):g}" for n in scaled)
            + f". Mean standardised-uniform step minus Gaussian step per N: {words}.{few}{censoring}", data,
            paper_claim=False, reason=_what_decides(decisive, list(scaled[int(key[2:])]), _converged_at),
            comparison=decisive.to_dict()))
    if pairs:
        comparisons = {f"N={n}": compare(_by_seed(u, _converged_at), _by_seed(g, _converged_at), scale=1.0,
                                         unit=UNIT) for n, (u, g) in pairs.items()}
        key, decisive, words = _decide_text(comparisons, "steps")
        record("gaussian_faster_than_uniform", "Convergence is faster when the data is more dynamic "
               "(normal rather than 0-1 uniform).", decisive,
               "Median step (over seeds) at which the loss first falls below 0.1 log N, Gaussian against "
               "uniform: " + "; ".join(f"N={n}: {steps[('gaussian', n)]:g} against {steps[('uniform', n)]:g}"
                                        for n in pairs)
               + f". Mean uniform step minus Gaussian step per N: {words}.{few}{censoring}",
               _what_decides(decisive, list(pairs[int(key[2:])]), _converged_at))
    return claims


def study_metrics(runs: Sequence[SSNRun], params: StudyParams, profile: str,
                  wall_time_s: float) -> Dict:
    """What the notebook writes to metrics.json (keys documented in the module docstring)."""
    return {"study": "random_maps", "profile": profile, "parameters": params.as_dict(),
            "runs": [r.record() for r in runs],
            "settings": [s.summary() for s in group_settings(runs)],
            "claims": claims_to_records(check_claims(runs, data_label(params, profile))),
            WALL_TIME_KEY: round(wall_time_s, 1), "torch_threads": torch.get_num_threads()}


def loss_curves_figure(runs: Sequence[SSNRun]):
    """The loss curves like Fig. 5: one panel per (distribution, N), rows = distribution,
    columns = N, one curve per seed; log N dashed, the 0.1 log N threshold dotted, the
    median step of convergence marked."""
    settings = group_settings(runs)
    dists = [d for d in DISTRIBUTIONS if any(s.distribution == d for s in settings)]
    ns = sorted({s.num_parts for s in settings})
    fig, axes = new_figure(3.2 * len(ns), 2.3 * len(dists), nrows=len(dists), ncols=len(ns),
                           squeeze=False, sharex=True)
    for s in settings:
        ax = axes[dists.index(s.distribution), ns.index(s.num_parts)]
        for i, r in enumerate(s.runs):
            ax.plot(r.losses, lw=0.9, color="C0", alpha=1.0 if i == 0 else 0.45,
                    label="loss" if i == 0 else None)
        ax.axhline(s.log_n, color="grey", ls="--", lw=1, label="log N")
        ax.axhline(CONVERGED_FRACTION * s.log_n, color="grey", ls=":", lw=1, label="0.1 log N")
        step = s.steps_to_converge()
        if not math.isinf(step):
            ax.axvline(step, color="C3", lw=0.8, alpha=0.7, label="converged (median step)")
            ax.text(step, 0.5 * s.log_n, f" {step:g}", color="C3", fontsize=7)
        ax.set_ylim(0, 1.25 * max(s.log_n, max(max(r.losses) for r in s.runs)))
        ax.set_title(f"{s.name} ({len(s.runs)} seed{'s' if len(s.runs) > 1 else ''})", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].legend(handles, labels, fontsize=6, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    for ax in axes[:, 0]:
        ax.set_ylabel("SSN loss")
    fig.tight_layout()
    return fig


def sample_maps(distribution: str, count: int, channels: int, size: int, seed: int = 1234) -> torch.Tensor:
    """A fixed set of maps to look at (its own seed, apart from the training batches)."""
    return map_sampler(distribution, count, (channels, size, size), torch.Generator().manual_seed(seed))()


def attention_figure(run: SSNRun, maps: torch.Tensor, index: int, part: int):
    """Part `part`'s attention map on sample `index` of `maps` (what the notebook's picker
    shows): the map over window positions, its peak marked."""
    if not 0 <= index < len(maps):
        raise ValueError(f"sample index {index} out of range 0..{len(maps) - 1}")
    if not 0 <= part < run.num_parts:
        raise ValueError(f"part {part} out of range 0..{run.num_parts - 1} for {run_name(run)}")
    att = attention_maps(run.ssn, maps[index:index + 1])[0, part]
    r, c = peak_windows(att)
    fig, ax = new_figure(3.4, 3.0)
    im = ax.imshow(att.numpy(), cmap="viridis")
    ax.plot(c, r, "rx", ms=8)
    ax.set_title(f"{run_name(run)}, seed {run.seed}: sample {index}, part {part}\n"
                 f"peak at window ({r}, {c}), weight {float(att.max()):.2f}", fontsize=8)
    ax.set(xlabel="window column", ylabel="window row")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
