"""Uncertainty for every verdict: intervals, paired differences, power and one verdict rule.

A claim of the paper compares two settings (semi- vs unsupervised, SSN3D vs C3D, a trained map
vs chance). We measure the effect (setting a minus setting b, in the paper's direction), its 95%
interval, the n behind it and the smallest effect the design could detect, and call it:

- *reproduced*: the interval excludes 0 on the paper's side;
- *contradicted*: the interval excludes 0 on the other side;
- *inconclusive*: the interval includes 0 (a tie always does), or the design cannot measure the
  noise it must (one training seed per setting: seed-to-seed variation is unmeasured).

No tie-breaks by a second metric.

Scores are per-unit arrays: (replicates, units). Units are test queries (a hit at rank 1 is 1/0,
AP in 0..1), crops, paintings; replicates are training seeds or splits, one row each. Both
settings are scored on the same units, and the rows are paired (row r of a with row r of b: the
same seed or split; independently trained rows pair just as well, since the pairs are then
independent draws). The effect's interval treats the differences d[r, q] = a[r, q] - b[r, q] as a
two-way crossed random design, replicates x units, one value per cell: its variance is

    Var(mean d) = (MS_replicates + MS_units - MS_interaction) / (R Q)

from the ANOVA mean squares (the unbiased estimator, floored at the largest mean square, which
it cannot be below when no variance component is negative), and the interval is mean d +- t(df) SE with Satterthwaite's
degrees of freedom. With few replicates the replicate term has few degrees of freedom and the t
quantile widens the interval accordingly (2 replicates: df near 1, t = 12.7), which a percentile
bootstrap over 2-4 seeds does not do. One replicate: a paired t interval over the units. Settings
with different numbers of replicates fall back to a bootstrap that resamples units once per
replicate (paired) and each setting's replicates independently. A rate from one seed also has its
Wilson interval.

Minimum detectable effect (MDE): the true effect a design finds with 80% power at the 5% level
(two-sided): (t_0.975 + t_0.8) x its standard error at the design's degrees of freedom, 2.80 SE
when they are many.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import norm, t as student_t

CONFIDENCE = 0.95
POWER = 0.80
RESAMPLES = 4000
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE)
#: Training seeds per setting below which seed-to-seed noise is unmeasured (no verdict).
MIN_SEEDS = 2


def mde_factor(confidence: float = CONFIDENCE, power: float = POWER, df: Optional[float] = None) -> float:
    """(q_(1 - alpha/2) + q_power): the MDE in units of the effect's standard error; normal
    quantiles (2.80) unless `df` gives Student t's."""
    if df is None or not np.isfinite(df):
        return float(norm.ppf(1 - (1 - confidence) / 2) + norm.ppf(power))
    return float(student_t.ppf(1 - (1 - confidence) / 2, df) + student_t.ppf(power, df))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Tuple[float, float]:
    """Wilson score interval of a proportion (e.g. rank-1 = queries matched at rank 1 / queries)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def as_scores(values) -> np.ndarray:
    """(seeds, units) float array from one seed's (units,) scores or a list of seeds' rows."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[0] == 0:
        raise ValueError(f"scores must be (units,) or (seeds, units) with at least one unit, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("scores hold NaN or infinite values: drop units without a score (e.g. queries with no "
                         "true match) before comparing")
    return arr


def _bootstrap_means(scores: np.ndarray, unit_weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B,) mean of resampled seeds' means over resampled units (weights: (B, units), rows sum to 1)."""
    per_seed = unit_weights @ scores.T                                   # (B, seeds)
    seeds = rng.integers(0, scores.shape[0], size=(len(unit_weights), scores.shape[0]))
    return np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)


def _unit_weights(units: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    draws = rng.integers(0, units, size=(resamples, units))
    counts = np.zeros((resamples, units))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts / units


@dataclass(frozen=True)
class Estimate:
    """A measured quantity (in the scores' scale times `scale`) with its 95% interval."""

    value: float
    low: float
    high: float
    n: Dict[str, int] = field(default_factory=dict)
    method: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def estimate(values, scale: float = 100.0, resamples: int = RESAMPLES, seed: int = 0,
             unit: str = "queries") -> Estimate:
    """Mean score of one setting with its interval: Wilson for one seed's 0/1 scores, else a
    bootstrap over seeds then units."""
    scores = as_scores(values)
    s, u = scores.shape
    n = {unit: u, "seeds": s}
    if s == 1 and np.isin(scores, (0.0, 1.0)).all():
        low, high = wilson_interval(int(scores.sum()), u)
        return Estimate(scale * float(scores.mean()), scale * low, scale * high, n, "wilson")
    rng = np.random.default_rng(seed)
    boot = _bootstrap_means(scores, _unit_weights(u, resamples, rng), rng)
    low, high = np.quantile(boot, [(1 - CONFIDENCE) / 2, 1 - (1 - CONFIDENCE) / 2])
    return Estimate(scale * float(scores.mean()), scale * float(low), scale * float(high), n,
                    "bootstrap over seeds then " + unit)


@dataclass(frozen=True)
class Comparison:
    """Effect of setting a over setting b (a - b, in the paper's direction) and its verdict.

    effect, low, high, se, mde are in the scores' scale times `scale` (percentage points for
    rank-1 and mAP). n counts units and each side's seeds. reason says why a verdict is
    inconclusive and what would decide it.
    """

    effect: float
    low: float
    high: float
    se: float
    mde: float
    n: Dict[str, int]
    verdict: str
    reason: str = ""
    method: str = ""
    #: Degrees of freedom of the t interval (None: a bootstrap or Wilson interval).
    df: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def describe(self, unit: str = "points") -> str:
        """One sentence: effect, interval, n, MDE."""
        n = ", ".join(f"{k} {v}" for k, v in self.n.items())
        return (f"effect {self.effect:+.1f} {unit} (95% CI {self.low:+.1f} to {self.high:+.1f}; {n}; "
                f"minimum detectable effect {self.mde:.1f})")


def verdict_rule(low: float, high: float, seeds: Sequence[int] = (MIN_SEEDS, MIN_SEEDS),
                 min_seeds: int = MIN_SEEDS) -> Tuple[str, str]:
    """(verdict, reason) for an effect measured in the paper's direction with interval [low, high]."""
    if min(seeds) < min_seeds:
        return INCONCLUSIVE, (f"{min(seeds)} training seed(s) on one side: seed-to-seed noise is unmeasured; "
                              f"needs at least {min_seeds} seeds per setting")
    if low > 0:
        return REPRODUCED, ""
    if high < 0:
        return CONTRADICTED, ""
    return INCONCLUSIVE, "the 95% interval includes 0"


def two_way_interval(diff: np.ndarray) -> Tuple[float, float, float]:
    """(mean, standard error, degrees of freedom) of the mean of d (replicates, units) in a
    crossed random design (see the module docstring)."""
    d = as_scores(diff)
    r, q = d.shape
    grand = float(d.mean())
    if r == 1 and q == 1:
        return grand, 0.0, float("inf")
    row, col = d.mean(axis=1), d.mean(axis=0)
    ms_rep = q * float(((row - grand) ** 2).sum()) / (r - 1) if r > 1 else 0.0
    ms_unit = r * float(((col - grand) ** 2).sum()) / (q - 1) if q > 1 else 0.0
    if r == 1:
        return grand, float(np.sqrt(ms_unit / q)), float(q - 1)
    if q == 1:
        return grand, float(np.sqrt(ms_rep / r)), float(r - 1)
    ms_int = float(((d - row[:, None] - col[None, :] + grand) ** 2).sum()) / ((r - 1) * (q - 1))
    terms = [(ms_rep, r - 1), (ms_unit, q - 1), (-ms_int, (r - 1) * (q - 1))]
    combined = ms_rep + ms_unit - ms_int
    # R Q Var = Q s2_rep + R s2_unit + s2_int is at least each mean square's expectation
    # (E MS_rep = Q s2_rep + s2_int, ...): below the largest, a component estimate went negative.
    floor_ms, floor_df = max(terms[:2] + [(ms_int, (r - 1) * (q - 1))])
    if combined < floor_ms:
        terms, combined = [(floor_ms, floor_df)], floor_ms
    if combined <= 0:
        return grand, 0.0, float("inf")
    df = combined ** 2 / sum(ms ** 2 / dof for ms, dof in terms if ms != 0.0)
    return grand, float(np.sqrt(combined / (r * q))), float(df)


def _t_comparison(diff: np.ndarray, scale: float, seeds: Sequence[int], min_seeds: int, n: Dict[str, int],
                  method: str) -> Comparison:
    """A Comparison from the paired differences (replicates, units): two-way t interval, MDE at
    its degrees of freedom and the verdict rule."""
    effect, se, df = two_way_interval(diff)
    if se == 0.0:                  # every difference equal (a tie when 0): no spread to widen by
        low = high = scale * effect
    else:
        half = float(student_t.ppf(1 - (1 - CONFIDENCE) / 2, df)) * se
        low, high = scale * (effect - half), scale * (effect + half)
    verdict, reason = verdict_rule(low, high, seeds, min_seeds)
    return Comparison(scale * effect, low, high, scale * se, mde_factor(df=df) * scale * se, n, verdict, reason,
                      method, df=float(df) if np.isfinite(df) else None)


def compare(a, b, scale: float = 100.0, resamples: int = RESAMPLES, seed: int = 0, unit: str = "queries",
            min_seeds: int = MIN_SEEDS) -> Comparison:
    """Paired comparison of two settings scored on the same units: a and b are (replicates,
    units) (or (units,) for one seed); the effect is mean(a) - mean(b). With as many replicates
    on both sides, row r of a pairs with row r of b and the interval is the two-way t interval of
    their differences; otherwise a bootstrap that resamples the shared units once per replicate
    (paired) and each setting's replicates independently (separately trained). min_seeds=1 for
    designs whose randomness is all in the units (e.g. one fixed model scored against chance)."""
    a, b = as_scores(a), as_scores(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a paired comparison needs the same units on both sides, got {a.shape[1]} and {b.shape[1]}")
    n = {unit: int(a.shape[1]), "seeds_a": int(a.shape[0]), "seeds_b": int(b.shape[0])}
    seeds = (a.shape[0], b.shape[0])
    if a.shape[0] == b.shape[0]:
        return _t_comparison(a - b, scale, seeds, min_seeds, n,
                             f"two-way (replicates x {unit}) t interval of the paired differences")
    rng = np.random.default_rng(seed)
    weights = _unit_weights(a.shape[1], resamples, rng)
    diff = _bootstrap_means(a, weights, rng) - _bootstrap_means(b, weights, rng)
    return _bootstrap_comparison(float(a.mean() - b.mean()), diff, scale, seeds, min_seeds, n,
                                 f"paired bootstrap over {unit}, seeds resampled per setting ({resamples} replicates)")


def compare_blocks(a_blocks: Sequence, b_blocks: Sequence, scale: float = 100.0, unit: str = "queries",
                   block: str = "splits", min_seeds: int = MIN_SEEDS) -> Comparison:
    """Paired comparison over blocks that each have their own units and their own trainings
    (the splits of a split protocol: another test set and another training set each): block k's
    a and b are (seeds, units_k) on the same units. The effect is the mean over blocks of
    mean(a_k) - mean(b_k); its t interval comes from the spread of those block differences
    (blocks - 1 df), which holds both the training noise and the test sampling of a block."""
    if len(a_blocks) != len(b_blocks) or not a_blocks:
        raise ValueError(f"need the same non-empty list of {block} on both sides, got {len(a_blocks)} and "
                         f"{len(b_blocks)}")
    diffs, units, seeds_a, seeds_b = [], 0, 0, 0
    for a, b in zip(a_blocks, b_blocks):
        a, b = as_scores(a), as_scores(b)
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"a paired comparison needs the same units on both sides within each of the {block}, "
                             f"got {a.shape[1]} and {b.shape[1]}")
        diffs.append(float(a.mean() - b.mean()))
        units += a.shape[1]
        seeds_a, seeds_b = seeds_a + a.shape[0], seeds_b + b.shape[0]
    n = {unit: units, block: len(diffs), "seeds_a": seeds_a // len(diffs), "seeds_b": seeds_b // len(diffs)}
    return _t_comparison(np.asarray(diffs)[:, None], scale, (seeds_a, seeds_b), min_seeds, n,
                         f"t interval over the {block}' paired differences (each {block[:-1]}: its own "
                         f"{unit} and training)")


def against_reference(a, reference: float, scale: float = 100.0, unit: str = "queries",
                      min_seeds: int = MIN_SEEDS) -> Comparison:
    """mean(a) minus a known constant (a chance level computed exactly, log N), with the
    two-way t interval of a (replicates, units)."""
    scores = as_scores(a)
    n = {unit: int(scores.shape[1]), "seeds": int(scores.shape[0])}
    return _t_comparison(scores - reference, scale, (scores.shape[0],), min_seeds, n,
                         f"two-way (replicates x {unit}) t interval against a fixed reference")


def _bootstrap_comparison(effect: float, boot: np.ndarray, scale: float, seeds: Sequence[int], min_seeds: int,
                          n: Dict[str, int], method: str) -> Comparison:
    """A Comparison from an effect and its bootstrap replicates (unscaled): percentile interval,
    standard error, MDE and the verdict rule."""
    low, high = (scale * float(v) for v in np.quantile(boot, [(1 - CONFIDENCE) / 2, 1 - (1 - CONFIDENCE) / 2]))
    se = scale * float(boot.std(ddof=1))
    if effect == 0.0 and se == 0.0:                    # identical scores: an exact tie
        low = high = 0.0
    verdict, reason = verdict_rule(low, high, seeds, min_seeds)
    return Comparison(scale * effect, low, high, se, mde_factor() * se, n, verdict, reason, method)


def rate_against_reference(hits, reference: float, scale: float = 100.0, unit: str = "queries",
                           confidence: float = CONFIDENCE) -> Comparison:
    """One fixed model's 0/1 hits (units,) against a known rate (a chance level computed
    exactly): the Wilson interval of the hit rate minus the reference. Unlike a bootstrap it
    keeps its width when every hit is 0 or every one 1 (0 of 3 is not evidence of a rate below
    2%). The randomness is all in the units (min_seeds=1); se = the interval's half-width / z."""
    scores = as_scores(hits)
    if scores.shape[0] != 1 or not np.isin(scores, (0.0, 1.0)).all():
        raise ValueError("rate_against_reference takes one seed's 0/1 hits; use against_reference otherwise")
    n, successes = scores.shape[1], int(scores.sum())
    low, high = (scale * (v - reference) for v in wilson_interval(successes, n, confidence))
    se = (high - low) / (2 * norm.ppf(1 - (1 - confidence) / 2))
    verdict, reason = verdict_rule(low, high, (1,), min_seeds=1)
    return Comparison(scale * (successes / n - reference), low, high, se, mde_factor(confidence) * se,
                      {unit: n, "seeds": 1}, verdict, reason, f"Wilson interval of the hit rate against a fixed "
                      f"reference ({successes} of {n})")


def correlation(x, y, direction: int = 1, scale: float = 100.0, unit: str = "runs") -> Comparison:
    """Spearman's rank correlation of x and y (e.g. runs' final loss and PCK) times `direction`
    (the sign the claim predicts, so a positive effect is in the paper's direction), with the
    Fisher z interval (se 1.06 / sqrt(n - 3), Fieller et al.'s for Spearman) and the MDE of that
    design; scale 100 gives the correlation in hundredths. Needs at least 5 pairs."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 5:
        raise ValueError(f"a correlation needs two equally long 1-d samples of at least 5, got {x.shape}, {y.shape}")
    n = len(x)
    rho = float(spearmanr(x, y).statistic) * direction
    if not np.isfinite(rho):                  # a constant sample: no ranking to correlate
        return Comparison(0.0, -scale, scale, float("inf"), float("inf"), {unit: n}, INCONCLUSIVE,
                          "one of the samples is constant: no rank order to correlate",
                          "Spearman rank correlation")
    se = 1.06 / np.sqrt(n - 3)
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    half = float(norm.ppf(1 - (1 - CONFIDENCE) / 2)) * se
    low, high = scale * float(np.tanh(z - half)), scale * float(np.tanh(z + half))
    verdict, reason = verdict_rule(low, high)
    mde = scale * float(np.tanh(mde_factor() * se))
    return Comparison(scale * rho, low, high, scale * se, mde, {unit: n}, verdict, reason,
                      "Spearman rank correlation, Fisher z interval")


def seeds_needed(sd_per_seed: float, mde: float, confidence: float = CONFIDENCE, power: float = POWER) -> int:
    """Seeds per setting so that a difference of two independent seed means detects `mde`
    when single seeds scatter by sd_per_seed (same units as mde)."""
    if mde <= 0:
        raise ValueError("the minimum detectable effect must be positive")
    return max(MIN_SEEDS, int(np.ceil(2 * (mde_factor(confidence, power) * sd_per_seed / mde) ** 2)))


def units_needed(units: int, mde: float, target: float) -> int:
    """Test units (queries, crops, paintings, replicates) at which a design whose MDE is `mde`
    with `units` reaches `target`: the MDE scales as 1/sqrt(units)."""
    if target <= 0:
        raise ValueError("the target minimum detectable effect must be positive")
    return int(np.ceil(units * (mde / target) ** 2))


def deciding(comparisons: Mapping[str, Comparison]) -> Tuple[str, Comparison]:
    """(key, comparison) that decides a claim holding only if every comparison is reproduced
    (e.g. "every motif is found"): a contradicted one if any, else an inconclusive one, else a
    reproduced one; within that verdict the one with the lowest interval bound. The claim takes
    its verdict: reproduced only when all are (an intersection test: no multiplicity correction)."""
    if not comparisons:
        raise ValueError("no comparisons to decide from")
    rank = {CONTRADICTED: 0, INCONCLUSIVE: 1, REPRODUCED: 2}
    return min(comparisons.items(), key=lambda kv: (rank[kv[1].verdict], kv[1].low))


def optional_comparison(record: Optional[Dict[str, Any]]) -> Optional[Comparison]:
    """A Comparison from its stored dict (None stays None)."""
    return None if record is None else Comparison(**record)
