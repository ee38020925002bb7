"""Intervals and the verdict rule on hand-computed cases: a tie, a clear win, a clear loss, one seed."""
from __future__ import annotations

import numpy as np
import pytest

from ssn3dlib.studies.toolkit import (
    CONTRADICTED,
    INCONCLUSIVE,
    REPRODUCED,
    Claim,
    against_reference,
    compare,
    estimate,
    verdict_rule,
    wilson_interval,
)
from ssn3dlib.studies.toolkit.statistics import deciding, mde_factor, rate_against_reference, seeds_needed


def test_wilson_interval_by_hand():
    # 16 of 37: p = 0.4324, z = 1.96 -> centre (p + z^2/74) / (1 + z^2/37) = 0.4388,
    # half z sqrt(p(1-p)/37 + z^2/(4 * 37^2)) / (1 + z^2/37) = 0.1521 (by hand from the formula).
    low, high = wilson_interval(16, 37)
    assert low == pytest.approx(0.2867, abs=1e-3) and high == pytest.approx(0.5909, abs=1e-3)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 0)


def test_estimate_uses_wilson_for_one_seed_of_hits():
    hits = np.array([1] * 16 + [0] * 21)
    e = estimate(hits)
    assert e.value == pytest.approx(100 * 16 / 37) and e.method == "wilson"
    assert (e.low, e.high) == pytest.approx(tuple(100 * v for v in wilson_interval(16, 37)))
    assert e.n == {"queries": 37, "seeds": 1}


def test_mde_is_2_8_standard_errors():
    assert mde_factor() == pytest.approx(1.95996 + 0.84162, abs=1e-4)


def test_verdict_rule():
    assert verdict_rule(0.5, 3.0)[0] == REPRODUCED
    assert verdict_rule(-3.0, -0.5)[0] == CONTRADICTED
    assert verdict_rule(-1.0, 2.0) == (INCONCLUSIVE, "the 95% interval includes 0")
    verdict, reason = verdict_rule(0.5, 3.0, seeds=(1, 3))
    assert verdict == INCONCLUSIVE and "seed" in reason


def test_a_tie_is_inconclusive_never_broken():
    a = np.array([[1, 0, 1, 0, 1, 1, 0, 0]] * 3, dtype=float)
    c = compare(a, a.copy())
    assert c.effect == 0.0 and (c.low, c.high) == (0.0, 0.0) and c.verdict == INCONCLUSIVE


def test_a_clear_win_and_a_clear_loss():
    rng = np.random.default_rng(0)
    strong = (rng.random((3, 200)) < 0.8).astype(float)
    weak = (rng.random((3, 200)) < 0.3).astype(float)
    win = compare(strong, weak)
    assert win.verdict == REPRODUCED and win.low > 0
    assert win.effect == pytest.approx(100 * (strong.mean() - weak.mean()))
    assert win.low < win.effect < win.high and win.n == {"queries": 200, "seeds_a": 3, "seeds_b": 3}
    loss = compare(weak, strong)
    assert loss.verdict == CONTRADICTED and loss.high < 0
    assert win.mde == pytest.approx(mde_factor(df=win.df) * win.se)
    # 3 seeds: the seed-level variance has 2 degrees of freedom, so the t quantile is wide
    assert win.df < 10 and mde_factor(df=win.df) > mde_factor()


def test_two_way_interval_by_hand():
    from ssn3dlib.studies.toolkit.statistics import two_way_interval

    # d = [[1, 2, 3], [3, 4, 5]]: row means 2, 4; column means 2, 3, 4; grand 3; no interaction.
    # MS_rep = 3 * (1 + 1) / 1 = 6, MS_unit = 2 * (1 + 0 + 1) / 2 = 2, MS_int = 0:
    # Var = (6 + 2 - 0) / 6 = 4/3; df = 8^2 / (6^2 / 1 + 2^2 / 2) = 64 / 38.
    mean, se, df = two_way_interval(np.array([[1.0, 2, 3], [3, 4, 5]]))
    assert mean == pytest.approx(3.0) and se == pytest.approx(np.sqrt(4 / 3)) and df == pytest.approx(64 / 38)
    # One replicate: the paired t interval over units (sd / sqrt(n), n - 1 df).
    mean, se, df = two_way_interval(np.array([1.0, 2, 3, 6]))
    assert mean == pytest.approx(3.0) and se == pytest.approx(np.std([1, 2, 3, 6], ddof=1) / 2) and df == 3
    # Interaction only: MS_rep = MS_unit = 0, MS_int = 4; the unbiased estimate (0 + 0 - 4) / 4 is
    # negative, and Var cannot be below MS_int / (R Q) = 1: se 1 with the interaction's 1 df.
    mean, se, df = two_way_interval(np.array([[1.0, -1], [-1, 1]]))
    assert mean == 0.0 and se == pytest.approx(1.0) and df == pytest.approx(1.0)


def test_two_seeds_widen_the_interval_by_the_t_quantile():
    """Two seeds that disagree by 10 points on every query: the seed term has 1 degree of
    freedom, t_0.975(1) = 12.7, so a 20-point effect is not decided."""
    rng = np.random.default_rng(3)
    queries = rng.random(200)
    a = np.stack([queries + 0.15, queries + 0.25])
    b = np.stack([queries, queries])
    c = compare(a, b)
    assert c.effect == pytest.approx(20.0) and c.df == pytest.approx(1.0) and c.verdict == INCONCLUSIVE
    assert c.high - c.low == pytest.approx(2 * 12.706 * 5.0, rel=1e-3)


def test_one_seed_cannot_decide_even_a_large_difference():
    a = np.ones(50)
    b = np.zeros(50)
    c = compare(a, b)
    assert c.effect == 100.0 and c.verdict == INCONCLUSIVE and "seed" in c.reason
    # A design whose randomness is all in the units (a fixed model against another) may say so.
    assert compare(a, b, min_seeds=1).verdict == REPRODUCED


def test_pairing_removes_what_both_settings_share():
    """Two settings that differ by a constant on every query: paired, the interval is tight,
    though the queries' scores scatter far more than the effect."""
    rng = np.random.default_rng(1)
    base = np.stack([rng.random(60)] * 4)
    c = compare(base + 0.05, base)
    assert c.effect == pytest.approx(5.0) and c.low == pytest.approx(5.0) and c.verdict == REPRODUCED
    unpaired = compare(base + 0.05, np.stack([rng.random(60)] * 4))   # other scores per query
    assert unpaired.high - unpaired.low > 10


def test_seed_noise_widens_the_interval():
    rng = np.random.default_rng(2)
    queries = rng.random(100)
    calm = np.stack([queries + 0.1] * 4)
    noisy = np.stack([queries + 0.1 + s for s in (-0.2, 0.2, -0.15, 0.15)])
    reference = np.stack([queries] * 4)
    assert compare(noisy, reference).high - compare(noisy, reference).low > \
        3 * (compare(calm, reference).high - compare(calm, reference).low)


def test_against_a_reference():
    hits = np.array([[1.0] * 30 + [0.0] * 10] * 2)
    c = against_reference(hits, 0.25)
    assert c.effect == pytest.approx(50.0) and c.verdict == REPRODUCED and c.n == {"queries": 40, "seeds": 2}
    assert against_reference(hits, 0.75).verdict == INCONCLUSIVE


def test_scores_must_be_finite_and_paired():
    with pytest.raises(ValueError, match="NaN"):
        compare([1.0, np.nan], [0.0, 1.0])
    with pytest.raises(ValueError, match="same units"):
        compare(np.ones(3), np.ones(4))


def test_seeds_needed_for_a_target_mde():
    # sd 9 points per seed, MDE 10: 2 * (2.80 * 9 / 10)^2 = 12.7 -> 13 seeds.
    assert seeds_needed(9.0, 10.0) == 13
    assert seeds_needed(1.0, 10.0) == 2


def test_a_claim_takes_its_verdict_from_its_comparison():
    c = compare(np.ones(20), np.zeros(20))
    claim = Claim("x", "Table 1", "a > b", None, comparison=c.to_dict())
    assert claim.holds is None and claim.verdict == INCONCLUSIVE and "seed" in claim.reason
    win = compare(np.ones((2, 20)), np.zeros((2, 20))).to_dict()
    assert Claim("y", "Table 1", "a > b", None, comparison=win).holds is True
    with pytest.raises(ValueError, match="disagrees"):
        Claim("z", "Table 1", "a > b", False, comparison=win)
    assert Claim.from_dict(Claim("y", "Table 1", "a > b", None, comparison=win).to_dict()).verdict == REPRODUCED


def test_the_weakest_comparison_decides_an_all_of_claim():
    win = compare(np.ones((2, 20)), np.zeros((2, 20)))                     # +100, reproduced
    narrow = compare(np.r_[np.ones(12), np.zeros(8)][None].repeat(2, 0), np.zeros((2, 20)))  # +60, reproduced
    tie = compare(np.ones((2, 20)), np.ones((2, 20)))                      # 0, inconclusive
    loss = compare(np.zeros((2, 20)), np.ones((2, 20)))                    # -100, contradicted
    assert deciding({"a": win, "b": narrow}) == ("b", narrow)              # all reproduced: the lowest bound
    assert deciding({"a": win, "t": tie})[0] == "t"
    assert deciding({"a": win, "t": tie, "l": loss})[0] == "l"
    with pytest.raises(ValueError):
        deciding({})


def test_a_rate_against_a_reference_keeps_its_width_at_zero_hits():
    # 0 of 3 against 2.4%: Wilson [0, 0.5615] - 0.024 includes 0 (a bootstrap would say [-2.4, -2.4]).
    c = rate_against_reference(np.zeros(3), 0.024, unit="paintings")
    assert c.verdict == INCONCLUSIVE and c.low == pytest.approx(-2.4) and c.high == pytest.approx(53.75, abs=0.05)
    assert c.n == {"paintings": 3, "seeds": 1} and c.effect == pytest.approx(-2.4)
    # 6 of 30 against 2.2%: Wilson [0.0951, 0.3731] - 0.022 excludes 0.
    win = rate_against_reference(np.r_[np.ones(6), np.zeros(24)], 0.022)
    assert win.verdict == REPRODUCED and win.low == pytest.approx(7.31, abs=0.05)
    with pytest.raises(ValueError):
        rate_against_reference(np.full(4, 0.5), 0.1)


def test_units_needed_scales_the_mde_as_one_over_sqrt_n():
    from ssn3dlib.studies.toolkit.statistics import units_needed

    # MDE 20 with 37 queries; a target of 10 needs 4x the queries: 148.
    assert units_needed(37, 20.0, 10.0) == 148
    assert units_needed(30, 33.8, 10.0) == 343     # 30 * 3.38^2 = 342.7 -> 343
    with pytest.raises(ValueError, match="positive"):
        units_needed(30, 10.0, 0.0)
