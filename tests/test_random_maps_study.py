"""The random-maps study (paper Fig. 5): claim checks on hand-made loss curves, the study
grid, metrics.json records and the figures."""
import json
import math

import matplotlib.pyplot as plt
import pytest
import torch

from ssn3dlib.models import SelfSeparatedNetwork
from ssn3dlib.studies import random_maps as rm
from ssn3dlib.studies.toolkit import SSNRun, attention_maps, by_name, claims_from_records, peak_windows


def curve(start, end, steps=100, at=None):
    """A loss curve from `start` that drops to `end` at step `at` (never, if None)."""
    return [start if at is None or i < at else end for i in range(steps)]


def made_run(dist, n, losses, seed=0):
    """A run with the given loss curve (its SSN is only there to say N)."""
    return SSNRun(SelfSeparatedNetwork(1, n, window=1, hidden=2), seed, {"distribution": dist}, losses)


def run(dist, n, at, seed=0, end=0.01):
    log_n = math.log(n)
    if dist == "ones":
        return made_run(dist, n, curve(log_n + 1e-6, log_n + 1e-6), seed=seed)
    return made_run(dist, n, curve(log_n, end, at=at), seed=seed)


def paper_like_runs(seeds=3):
    """Seeds 0..seeds-1 of every setting; seed s converges s steps after seed 0."""
    return ([run("gaussian", n, at + s, seed=s) for n, at in [(3, 10), (6, 20), (9, 30)] for s in range(seeds)]
            + [run("uniform", n, at + s, seed=s) for n, at in [(3, 40), (6, 50), (9, 60)] for s in range(seeds)]
            + [run("ones", n, None, seed=s) for n in (3, 6, 9) for s in range(seeds)])


def verdicts(runs):
    return {c.name: c.verdict for c in rm.check_claims(runs)}


def replace(runs, dist, n, seed, new):
    return [new if (rm.distribution_of(r), r.num_parts, r.seed) == (dist, n, seed) else r for r in runs]


def test_all_claims_are_reproduced_on_paper_like_curves():
    claims = rm.check_claims(paper_like_runs(), data="hand-made curves; profile test")
    assert [c.name for c in claims] == ["noise_converges", "ones_stay_at_log_n", "larger_n_converges_later",
                                        "gaussian_faster_than_uniform"]
    assert all(c.verdict == "reproduced" and c.holds and c.paper_claim and c.source == "Fig. 5" for c in claims)
    assert all(c.data == "hand-made curves; profile test" for c in claims)
    claim = by_name(claims)
    # Steps move by 10 per step of N and 30 from Gaussian to uniform; seed s is s steps later in every
    # setting, so every seed-paired difference is exactly 10: an interval of no width.
    larger = claim["larger_n_converges_later"].comparison
    assert larger["effect"] == 10.0 and larger["low"] == larger["high"] == 10.0
    assert larger["n"] == {"run per seed": 1, "seeds_a": 3, "seeds_b": 3}
    assert claim["gaussian_faster_than_uniform"].comparison["effect"] == pytest.approx(30.0)
    # noise: final loss 0.01 against 0.1 log N; the decisive setting is N=3 (smallest margin in % of log N).
    noise = claim["noise_converges"].comparison
    assert noise["effect"] == pytest.approx(100 * (0.1 - 0.01 / math.log(3)))
    assert "Decided by gaussian N=3" in claim["noise_converges"].detail
    # ones: the loss stays 1e-6 above log N, so the margin is the whole 1% tolerance less a hair.
    assert claim["ones_stay_at_log_n"].comparison["effect"] == pytest.approx(1.0, abs=1e-3)
    assert "N=3 at 11, N=6 at 21, N=9 at 31" in claim["larger_n_converges_later"].detail   # medians
    assert "With 3 seed(s) per setting" in claim["larger_n_converges_later"].detail


def test_claims_are_recomputed_from_the_stored_run_records():
    runs = paper_like_runs()
    from_runs = [c.comparison for c in rm.check_claims(runs)]
    from_records = [c.comparison for c in rm.check_claims(json.loads(json.dumps([r.record() for r in runs])))]
    assert from_records == from_runs


def test_each_claim_is_contradicted_by_the_curves_that_contradict_it():
    runs = paper_like_runs()
    for s in range(3):                                      # Gaussian N=9 faster than N=6 on every seed
        runs = replace(runs, "gaussian", 9, s, run("gaussian", 9, 5 + s, seed=s))
    assert verdicts(runs)["larger_n_converges_later"] == "contradicted"
    runs = paper_like_runs()
    for s in range(3):                                      # Gaussian N=6 slower than uniform N=6
        runs = replace(runs, "gaussian", 6, s, run("gaussian", 6, 55 + s, seed=s))
    assert verdicts(runs)["gaussian_faster_than_uniform"] == "contradicted"
    runs = paper_like_runs()
    for s in range(3):                                      # uniform N=9 ends at 0.5 log N
        runs = replace(runs, "uniform", 9, s, run("uniform", 9, 60, seed=s, end=0.5 * math.log(9)))
    assert verdicts(runs)["noise_converges"] == "contradicted"
    runs = paper_like_runs()
    for s in range(3):                                      # all-ones runs that "learn" (gap 44% of log N)
        runs = replace(runs, "ones", 6, s, made_run("ones", 6, curve(math.log(6), 1.0, at=50), seed=s))
    assert verdicts(runs)["ones_stay_at_log_n"] == "contradicted"


def test_a_difference_within_the_seeds_spread_is_inconclusive_and_says_what_would_decide_it():
    runs = paper_like_runs()
    # Gaussian N=6 at 5, 20, 35: mean 20 like N=3's 10..12 + 9 ... the spread (sd 15) swamps the step of N.
    for s, at in enumerate((5, 20, 35)):
        runs = replace(runs, "gaussian", 6, s, run("gaussian", 6, at, seed=s))
    claim = by_name(rm.check_claims(runs))["larger_n_converges_later"]
    assert claim.verdict == "inconclusive" and claim.holds is None
    assert "Decided by gaussian N=3 to 6" in claim.detail
    assert "includes 0" in claim.reason and "seeds per setting" in claim.reason


def test_one_seed_per_setting_decides_nothing():
    claims = rm.check_claims(paper_like_runs(seeds=1))
    assert all(c.verdict == "inconclusive" for c in claims), [(c.name, c.verdict) for c in claims]
    assert all("seed" in c.reason for c in claims)


def test_a_run_that_never_converges_counts_as_its_step_budget():
    runs = paper_like_runs()
    runs = replace(runs, "uniform", 6, 0, run("uniform", 6, None, seed=0))   # 100 steps instead of 50
    claim = by_name(rm.check_claims(runs))["gaussian_faster_than_uniform"]
    assert "censored" in claim.detail and "uniform N=6 seed 0" in claim.detail
    assert "N=6: +46.7" in claim.detail                    # (100 + 51 + 52) / 3 - (20 + 21 + 22) / 3


def test_convergence_step_of_a_setting_is_the_median_over_seeds():
    runs = [run("uniform", 6, 30, seed=0), run("uniform", 6, None, seed=1), run("uniform", 6, 50, seed=2)]
    (setting,) = rm.group_settings(runs)
    assert setting.steps_to_converge() == 50                # median of 30, 50, never
    assert setting.summary()["first_step_below_10pct_log_n"] == 50
    runs[0] = run("uniform", 6, None, seed=0)
    (setting,) = rm.group_settings(runs)
    assert setting.summary()["first_step_below_10pct_log_n"] is None  # median run never converges
    assert setting.final_loss() == pytest.approx(sum(r.final_loss() for r in runs) / 3)


def test_claims_without_their_runs_are_left_out():
    assert set(verdicts([run("gaussian", 3, 10), run("gaussian", 6, 20)])) == {"noise_converges",
                                                                               "larger_n_converges_later"}


def test_study_params_refuse_bad_settings():
    with pytest.raises(ValueError, match="unknown distributions"):
        rm.StudyParams(distributions=["gaussian", "laplace"])
    with pytest.raises(ValueError, match="at least 2"):
        rm.StudyParams(num_parts=[1, 3])
    with pytest.raises(ValueError, match="smaller than"):
        rm.StudyParams(size=2, window=3)
    with pytest.raises(ValueError, match="seeds"):
        rm.StudyParams(seeds=0)


def test_fixed_set_sampler_draws_only_from_its_pool():
    g = torch.Generator().manual_seed(0)
    sample = rm.map_sampler("gaussian", 5, (2, 3, 3), g, fixed_set=4)
    torch.manual_seed(0)
    pool_rows = {tuple(b.flatten().tolist()) for _ in range(10) for b in sample()}
    assert len(pool_rows) <= 4


@pytest.fixture(scope="module")
def small_study():
    # One thread: tiny convolutions split over busy cores run many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        params = rm.StudyParams(steps=40, batch=16, channels=8, size=8, hidden=16, lr=3e-3, seeds=2,
                                num_parts=[3, 5], distributions=["gaussian", "ones"])
        return params, rm.run_study(params, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_study_runs_every_setting_and_seed(small_study):
    params, runs = small_study
    assert [(rm.distribution_of(r), r.num_parts, r.seed) for r in runs] == [
        (d, n, s) for d in ("gaussian", "ones") for n in (3, 5) for s in (0, 1)]
    assert all(len(r.losses) == 40 and not r.ssn.training for r in runs)
    assert all(p.device.type == "cpu" for r in runs for p in r.ssn.parameters())
    # Different seeds are different runs.
    assert runs[0].losses != runs[1].losses
    gaussian = [r for r in runs if rm.distribution_of(r) == "gaussian"]
    assert all(r.final_loss() < 0.5 * r.log_n for r in gaussian)


def test_runs_trained_in_worker_processes_equal_the_runs_trained_one_by_one(small_study):
    params, runs = small_study
    subset = rm.StudyParams(**{**params.as_dict(), "num_parts": [3], "distributions": ["gaussian"]})
    parallel = rm.run_study(subset, progress=False, workers=2, threads=1)
    assert [(r.seed, r.losses) for r in parallel] == [(r.seed, r.losses) for r in runs[:2]]


def test_metrics_are_json_records_with_the_documented_keys(small_study):
    params, runs = small_study
    metrics = json.loads(json.dumps(rm.study_metrics(runs, params, "smoke", wall_time_s=12.34)))
    assert {"study", "profile", "parameters", "runs", "settings", "claims", "wall_time_s",
            "torch_threads"} <= set(metrics)
    assert metrics["profile"] == "smoke" and metrics["wall_time_s"] == 12.3
    assert metrics["parameters"]["seeds"] == 2 and metrics["parameters"]["num_parts"] == [3, 5]
    assert len(metrics["runs"]) == 8 and len(metrics["settings"]) == 4
    assert {"distribution", "num_parts", "seed", "log_n", "final_loss",
            "first_step_below_10pct_log_n", "steps", "wall_time_s"} == set(metrics["runs"][0])
    assert metrics["runs"][1]["seed"] == 1 and metrics["runs"][2]["num_parts"] == 5
    claims = claims_from_records(metrics["claims"])           # the records read back as claims
    assert {c.name for c in claims} == {"noise_converges", "ones_stay_at_log_n", "larger_n_converges_later"}
    assert all(c.paper_claim and c.comparison["n"].get("seeds", c.comparison["n"].get("seeds_a")) == 2
               and c.verdict in ("reproduced", "contradicted", "inconclusive") for c in claims)
    assert all(c.data.endswith("profile smoke") and "8 x 8 x 8" in c.data for c in claims)


def test_figures_have_one_panel_per_setting_and_a_map_per_pick(small_study):
    params, runs = small_study
    fig = rm.loss_curves_figure(runs)
    converged = not math.isinf(rm.group_settings(runs[:2])[0].steps_to_converge())
    # 2 seeds, log N, 0.1 log N, and the convergence step when there is one.
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 2 + 2 + converged
    assert len(fig.axes[2].lines) == 2 + 2                  # all-ones: never converges
    plt.close(fig)
    maps = rm.sample_maps("gaussian", 3, params.channels, params.size)
    att = attention_maps(runs[0].ssn, maps)
    assert att.shape == (3, 3, 6, 6)
    fig = rm.attention_figure(runs[0], maps, index=2, part=1)
    assert fig.axes[0].images[0].get_array().shape == (6, 6)
    # The cross marks the peak window of that sample's part (x = column, y = row).
    row, col = peak_windows(att[2, 1])
    assert fig.axes[0].lines[0].get_xydata().tolist() == [[col, row]]
    plt.close(fig)
    with pytest.raises(ValueError, match="part 3 out of range"):
        rm.attention_figure(runs[0], maps, index=0, part=3)
    with pytest.raises(ValueError, match="sample index 3"):
        rm.attention_figure(runs[0], maps, index=3, part=0)


def test_standardised_uniform_has_the_gaussians_mean_and_sd_and_separates_shape_from_scale():
    draw = rm.map_sampler("uniform-standardised", 64, (4, 8, 8), torch.Generator().manual_seed(0))
    x = draw()
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02 and x.abs().max() <= math.sqrt(3) + 1e-6
    # the standardised uniform converges as fast as the Gaussian (shape does not matter, scale did)
    runs = paper_like_runs() + [run("uniform-standardised", n, at + s, seed=s)
                                for n, at in [(3, 10), (6, 20), (9, 30)] for s in range(3)]
    claim = by_name(rm.check_claims(runs))["gaussian_faster_than_standardised_uniform"]
    assert not claim.paper_claim and claim.verdict == "inconclusive" and claim.comparison["effect"] == 0.0
    assert "mean 0" in claim.detail and "standardised uniform 11" in claim.detail
    slower = paper_like_runs() + [run("uniform-standardised", n, at + 25 + s, seed=s)
                                  for n, at in [(3, 10), (6, 20), (9, 30)] for s in range(3)]
    assert verdicts(slower)["gaussian_faster_than_standardised_uniform"] == "reproduced"
