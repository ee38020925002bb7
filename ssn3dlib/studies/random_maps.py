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
  ``gaussian_faster_than_uniform`` (see ``check_claims``).

Each run is a toolkit ``SSNRun`` labelled with its ``distribution``; the training loop is
``toolkit.train_ssn`` fed by ``map_sampler``.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..engine.distributed import resolve_device
from ..figures import new_figure
from ..models import SelfSeparatedNetwork
from .toolkit import WALL_TIME_KEY, Claim, SSNRun, attention_maps, claims_to_records, peak_windows, train_ssn
from .toolkit.ssn_training import CONVERGED_FRACTION

DISTRIBUTIONS = ("gaussian", "uniform", "ones")
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


def run_study(params: StudyParams, progress: bool = True) -> List[SSNRun]:
    """Every (distribution, N, seed) run, ordered by distribution, then N, then seed."""
    grid = [(d, n, params.seed + s) for d in params.distributions for n in params.num_parts
            for s in range(params.seeds)]
    return [train_ssn_on_random_maps(d, n, progress=progress, **params.training_kwargs(seed))
            for d, n, seed in tqdm(grid, desc="random-maps runs", disable=not progress)]


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
    return (f"random {params.channels} x {params.size} x {params.size} maps, {params.seeds} seed(s) per setting; "
            f"profile {profile}")


def check_claims(runs: Sequence[SSNRun], data: str = "random maps", ones_tolerance: float = 0.01) -> List[Claim]:
    """The paper's Fig. 5 claims, checked on our runs (every one a paper claim; `data` says
    what they were measured on).

    - noise_converges: every Gaussian and uniform run (every seed) falls below 0.1 log N,
      and its final loss is below 0.1 log N.
    - ones_stay_at_log_n: every all-ones run ends within ones_tolerance x log N of log N and
      never goes below it (identical windows give identical parts, so mean CE >= log N).
    - larger_n_converges_later: per noise distribution, the median step of convergence does
      not decrease as N grows.
    - gaussian_faster_than_uniform: for every N, the Gaussian setting converges (median step)
      no later than the uniform one.
    A claim whose runs are absent (e.g. no all-ones runs) is left out.
    """
    settings = {(s.distribution, s.num_parts): s for s in group_settings(runs)}
    noise = [r for r in runs if distribution_of(r) != "ones"]
    ones = [r for r in runs if distribution_of(r) == "ones"]
    claims = []

    def record(name, statement, holds, detail):
        claims.append(Claim(name, SOURCE, statement, bool(holds), detail, data))

    if noise:
        converged = [r.first_step_below(CONVERGED_FRACTION) is not None
                     and r.final_loss() < CONVERGED_FRACTION * r.log_n for r in noise]
        worst = max(noise, key=lambda r: r.final_loss() / r.log_n)
        record("noise_converges", "The loss can converge to a small value very fast even if the "
               "data is randomly generated.", all(converged),
               f"{sum(converged)} of {len(noise)} Gaussian and uniform runs fall below 0.1 log N and end "
               f"there; the highest final loss is {worst.final_loss():.3f} ({run_name(worst)}, seed "
               f"{worst.seed}, where 0.1 log N = {CONVERGED_FRACTION * worst.log_n:.3f}).")
    if ones:
        stay = [abs(r.final_loss() - r.log_n) <= ones_tolerance * r.log_n
                and min(r.losses) > r.log_n - 1e-4 for r in ones]
        gap = max(abs(r.final_loss() - r.log_n) / r.log_n for r in ones)
        record("ones_stay_at_log_n", "The learning curves of the all-one feature maps do not "
               "converge.", all(stay),
               f"{sum(stay)} of {len(ones)} all-ones runs stay at log N (never below it, final loss within "
               f"{100 * ones_tolerance:g}% of it); the largest final gap is {100 * gap:.2f}% of log N.")
    monotone, details = [], []
    for dist in [d for d in DISTRIBUTIONS if d != "ones"]:
        chain = sorted((s for (d, _), s in settings.items() if d == dist), key=lambda s: s.num_parts)
        if len(chain) < 2:
            continue
        steps = [s.steps_to_converge() for s in chain]
        monotone.append(all(a <= b for a, b in zip(steps, steps[1:])))
        details.append(f"{dist}: " + ", ".join(f"N={s.num_parts} at {_step_text(v)}" for s, v in zip(chain, steps)))
    if monotone:
        record("larger_n_converges_later", "It seems harder for our model to learn when the number "
               "of labels increases.", all(monotone),
               "The median step (over seeds) at which the loss first falls below 0.1 log N is "
               + "; ".join(details) + ".")
    pairs = [(settings[("gaussian", n)], settings[("uniform", n)]) for n in sorted({n for _, n in settings})
             if ("gaussian", n) in settings and ("uniform", n) in settings]
    if pairs:
        record("gaussian_faster_than_uniform", "Convergence is faster when the data is more dynamic "
               "(normal rather than 0-1 uniform).",
               all(g.steps_to_converge() <= u.steps_to_converge() for g, u in pairs),
               "The median step (over seeds) at which the loss first falls below 0.1 log N is, Gaussian "
               "against uniform, " + "; ".join(
                   f"N={g.num_parts}: {_step_text(g.steps_to_converge())} against "
                   f"{_step_text(u.steps_to_converge())}" for g, u in pairs) + ".")
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
