"""The misalignment study (notebook 05): the sweep plan, resume (and per-query records added to
stored points), the claims' comparisons on hand-made per-query results, the study's PCK rules,
and one tiny end-to-end sweep through the engine."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ssn3dlib.explorer import clip_attention, load_model
from ssn3dlib.studies import misalignment as ms
from ssn3dlib.studies.toolkit import NOT_IN_PAPER, Comparison, WindowGrid, by_name, claims_from_records, write_metrics

# ---------------------------------------------------------------- the plan

def test_plan_covers_every_level_model_seed_once_with_the_same_seeds():
    points = ms.plan_sweep([1.0, 0.0, 0.5], ["c3d", "ssn3d-semi", "tp"], [3, 1])
    assert len(points) == 3 * 3 * 2
    assert len({p.key for p in points}) == len(points)
    assert [p.level for p in points] == sorted(p.level for p in points)  # one world at a time
    seeds = {(p.level, p.variant): set() for p in points}
    for p in points:
        seeds[(p.level, p.variant)].add(p.seed)
    assert all(s == {1, 3} for s in seeds.values())  # paired: every model and level, the same seeds


@pytest.mark.parametrize("levels, variants, seeds, message", [
    ([0.0, 1.5], ["c3d"], [0], "outside"),
    ([0.0, 0.0], ["c3d"], [0], "repeat"),
    ([0.5], ["c3d"], [0], "at least two levels"),
    ([0.0, 1.0], ["c3d", "resnet"], [0], "unknown model"),
    ([0.0, 1.0], ["c3d"], [], "seeds"),
    ([0.0, 1.0], ["c3d"], [0, 0], "repeat"),
    ([0.0, 1.0], ["c3d"], [-1], "seeds"),
])
def test_plan_refuses_bad_input(levels, variants, seeds, message):
    with pytest.raises(ValueError, match=message):
        ms.plan_sweep(levels, variants, seeds)


def test_point_config_changes_only_level_model_strategy_and_seed():
    base = ms.point_config("misalignment_smoke", ms.SweepPoint(0.0, "ssn3d-semi", 0))
    point = ms.SweepPoint(0.5, "ssn3d-unsup", 7)
    config = ms.point_config("misalignment_smoke", point)
    assert config.data.world["misalignment"] == 0.5
    assert (config.model.name, config.model.strategy, config.train.seed) == ("ssn3d", "unsupervised", 7)
    assert ms.config_differences(base.to_dict(), config.to_dict()) == [   # data.world compares as one value
        "data.world", "model.strategy", "train.seed"]
    c3d = ms.point_config("misalignment_smoke", ms.SweepPoint(0.0, "c3d", 0))
    assert c3d.model.name == "c3d" and c3d.model.backbone == base.model.backbone


# ---------------------------------------------------------------- resume

class FakeTrainer:
    """Stands in for the engine: records calls, returns fixed numbers."""

    def __init__(self):
        self.calls = []

    def __call__(self, point, config, run_dir):
        self.calls.append(point.key)
        return {"rank1": 50.0, "mAP": 40.0 + point.level, "epochs": config.train.epochs,
                "per_query": per_query([1, 2], [1.0, 0.5])}


def test_sweep_resumes_finished_points_and_retrains_stale_ones(tmp_path):
    points = ms.plan_sweep([0.0, 1.0], ["c3d", "tp"], [0])
    trainer = FakeTrainer()
    first = ms.run_sweep(points, "misalignment_smoke", tmp_path, progress=False, trainer=trainer)
    assert len(trainer.calls) == 4 and not first["resumed"].any()
    stored = json.loads((tmp_path / points[0].key / "result.json").read_text())
    assert stored["wall_time_s"] > 0 and stored["cpu_time_s"] >= 0 and stored["config"]["train"]["seed"] == 0

    trainer.calls.clear()
    again = ms.run_sweep(points, "misalignment_smoke", tmp_path, progress=False, trainer=trainer)
    assert trainer.calls == [] and again["resumed"].all()
    assert again["mAP"].tolist() == first["mAP"].tolist()

    # settings that do not change numbers keep results; a lost or half-written result is redone
    (tmp_path / points[1].key / "result.json").unlink()
    (tmp_path / points[2].key / "result.json").write_text('{"level": 1.0, "mod')
    ms.run_sweep(points, "misalignment_smoke", tmp_path, ["train.num_threads=2"], progress=False, trainer=trainer)
    assert sorted(trainer.calls) == sorted([points[1].key, points[2].key])

    # a change of budget makes every stored result stale
    trainer.calls.clear()
    rerun = ms.run_sweep(points, "misalignment_smoke", tmp_path, ["train.epochs=1"], progress=False,
                         trainer=trainer)
    assert len(trainer.calls) == 4 and (rerun["epochs"] == 1).all()


def test_a_stored_point_without_per_query_records_is_re_evaluated_once(tmp_path):
    points = ms.plan_sweep([0.0, 1.0], ["c3d"], [0])
    ms.run_sweep(points, "misalignment_smoke", tmp_path, progress=False, trainer=FakeTrainer())
    path = tmp_path / points[0].key / "result.json"
    stored = json.loads(path.read_text())
    del stored["per_query"]                          # stored before the engine kept per-query records
    path.write_text(json.dumps(stored))
    calls = []

    def evaluator(checkpoint, recorded):
        calls.append((checkpoint, recorded["mAP"]))
        return per_query([3], [0.25])

    again = ms.run_sweep(points, "misalignment_smoke", tmp_path, progress=False, trainer=FakeTrainer(),
                         evaluator=evaluator)
    assert calls == [(ms.checkpoint_path(tmp_path, points[0]), 40.0)]     # only the point that lacked it
    assert again["resumed"].all() and again["per_query"].iloc[0] == per_query([3], [0.25])
    assert json.loads(path.read_text())["per_query"] == per_query([3], [0.25])   # written back: once only
    ms.run_sweep(points, "misalignment_smoke", tmp_path, progress=False, trainer=FakeTrainer(), evaluator=evaluator)
    assert len(calls) == 1


# ---------------------------------------------------------------- the verdicts

def per_query(ranks, ap, names=None):
    """The engine's per-query record: first-true-match rank (0: no match) and AP (None then)."""
    return {"query": names or [f"q{i}" for i in range(len(ranks))], "first_match_rank": list(ranks),
            "ap": [a if r > 0 else None for r, a in zip(ranks, ap)]}


def query_results(values):
    """values: {(model, level): [per seed: (ranks, ap)]} -> results rows with per-query records."""
    rows = []
    for (model, level), per_seed in values.items():
        for seed, (ranks, ap) in enumerate(per_seed):
            record = per_query(ranks, ap)
            rows.append({"level": level, "model": model, "seed": seed, "per_query": record,
                         "rank1": 100 * np.mean(np.array(ranks) == 1), "mAP": 100 * np.mean(ap),
                         "wall_time_s": 1.0})
    return pd.DataFrame(rows)


ALL_HIT, ALL_MISS = ([1, 1, 1, 1], [1.0, 1.0, 1.0, 1.0]), ([2, 3, 2, 5], [0.5, 1 / 3, 0.5, 0.2])


def test_query_scores_are_hits_or_ap_per_seed_and_query_and_leave_out_unmatched_queries():
    df = query_results({("c3d", 0.0): [([1, 2, 0], [0.9, 0.5, 0.0]), ([3, 1, 0], [0.4, 1.0, 0.0])]})
    hits = ms.query_scores(df, "c3d", 0.0, "rank1")
    assert hits.values.tolist() == [[1.0, 0.0], [0.0, 1.0]] and list(hits.columns) == ["q0", "q1"]
    assert ms.query_scores(df, "c3d", 0.0, "mAP").values.tolist() == [[0.9, 0.5], [0.4, 1.0]]
    with pytest.raises(ValueError, match="no results for model 'tp'"):
        ms.query_scores(df, "tp", 0.0, "mAP")
    with pytest.raises(ValueError, match="no per-query record"):
        ms.query_scores(df.drop(columns="per_query"), "c3d", 0.0, "mAP")


def test_level_drop_pairs_each_seed_with_itself_query_by_query():
    df = query_results({("c3d", 0.0): [([1, 1], [1.0, 0.8]), ([1, 2], [1.0, 0.5])],
                        ("c3d", 1.0): [([2, 1], [0.5, 0.6]), ([1, 1], [1.0, 1.0])]})
    np.testing.assert_allclose(ms.level_drop(df, "c3d", "mAP", 0.0, 1.0).values, [[0.5, 0.2], [0.0, -0.5]])
    assert ms.level_drop(df, "c3d", "rank1", 0.0, 1.0).values.tolist() == [[1.0, 0.0], [0.0, -1.0]]
    unpaired = df[~((df["level"] == 1.0) & (df["seed"] == 1))]
    with pytest.raises(ValueError, match="same seeds at both levels"):
        ms.level_drop(unpaired, "c3d", "mAP", 0.0, 1.0)


def test_claims_reproduced_when_every_query_and_seed_agree():
    # C3D hits every query at 0 and none at 1; SSN3D and TP hit every query at both levels.
    df = query_results({("c3d", 0.0): [ALL_HIT] * 2, ("c3d", 1.0): [ALL_MISS] * 2,
                        ("ssn3d-semi", 0.0): [ALL_HIT] * 2, ("ssn3d-semi", 1.0): [ALL_HIT] * 2,
                        ("tp", 0.0): [ALL_HIT] * 2, ("tp", 1.0): [ALL_HIT] * 2})
    claims = by_name(ms.central_claims(df, "cpu"))
    assert list(claims) == [f"{c}_{m}" for m in ms.METRICS for c in (
        "c3d_degrades", "ssn3d_beats_c3d_misaligned", "ssn3d_drops_less", "control_c3d_drop_vs_tp")]
    ap_drop = 100 * (1 - np.mean(ALL_MISS[1]))                      # 1 - (0.5 + 1/3 + 0.5 + 0.2) / 4
    for name, effect in [("c3d_degrades_rank1", 100.0), ("c3d_degrades_mAP", ap_drop),
                         ("ssn3d_beats_c3d_misaligned_mAP", ap_drop), ("ssn3d_drops_less_rank1", 100.0),
                         ("control_c3d_drop_vs_tp_mAP", ap_drop)]:
        c = claims[name]
        assert c.verdict == "reproduced" and c.holds is True and c.reason == ""
        assert c.comparison["effect"] == pytest.approx(effect)
        assert c.comparison["n"] == {"queries": 4, "seeds_a": 2, "seeds_b": 2}
    control = claims["control_c3d_drop_vs_tp_rank1"]
    assert not control.paper_claim and control.statement == NOT_IN_PAPER and "TP's" in control.detail
    assert claims["c3d_degrades_mAP"].statement == ms.STATEMENTS["degrades"]
    assert "C3D's mAP is 100.0 at misalignment 0 and 38.3 at 1" in claims["c3d_degrades_mAP"].detail


def test_claims_contradicted_when_ssn3d_loses_more_and_inconclusive_on_a_tie():
    df = query_results({("c3d", 0.0): [ALL_HIT] * 2, ("c3d", 1.0): [ALL_HIT] * 2,
                        ("ssn3d-semi", 0.0): [ALL_HIT] * 2, ("ssn3d-semi", 1.0): [ALL_MISS] * 2})
    claims = by_name(ms.central_claims(df, "cpu", metrics=["rank1"]))
    assert set(claims) == {"c3d_degrades_rank1", "ssn3d_beats_c3d_misaligned_rank1", "ssn3d_drops_less_rank1"}
    assert claims["ssn3d_beats_c3d_misaligned_rank1"].verdict == "contradicted"
    assert claims["ssn3d_drops_less_rank1"].verdict == "contradicted"
    assert claims["ssn3d_drops_less_rank1"].comparison["effect"] == pytest.approx(-100.0)
    tie = claims["c3d_degrades_rank1"]                                 # the same hits at both levels
    assert tie.verdict == "inconclusive" and tie.holds is None
    assert tie.comparison["effect"] == 0.0 and tie.comparison["low"] == tie.comparison["high"] == 0.0
    assert "minimum detectable effect is 0.0" in tie.reason and "not more queries" in tie.reason
    assert "issue 13" in tie.reason


def test_one_seed_decides_nothing_however_large_the_effect():
    df = query_results({("c3d", 0.0): [ALL_HIT], ("c3d", 1.0): [ALL_MISS]})
    (claim,) = ms.central_claims(df, "smoke", metrics=["rank1"])
    assert claim.comparison["effect"] == 100.0 and claim.comparison["low"] > 0
    assert claim.verdict == "inconclusive" and "1 training seed(s)" in claim.reason
    assert "their scatter is unmeasured" in claim.reason
    same = query_results({("c3d", 0.0): [ALL_HIT], ("c3d", 1.0): [ALL_HIT]})
    (tie,) = ms.central_claims(same, "smoke", metrics=["rank1"])              # no spread at all: MDE 0
    assert tie.comparison["mde"] == 0.0 and "not more queries" in tie.reason


def test_what_would_decide_gives_the_seeds_and_queries_by_hand():
    # seeds_needed(10, 10) = ceil(2 x 2.8016^2) = 16; queries: 24 x (20 / 10)^2 = 96
    cmp = Comparison(5.0, -5.0, 15.0, 7.1, 20.0, {"queries": 24, "seeds_a": 2, "seeds_b": 2}, "inconclusive",
                     "the 95% interval includes 0")
    reason = ms.what_would_decide(cmp, seed_sd=10.0)
    assert "a 10-point effect (the observed one is +5.0)" in reason
    assert "about 16 seeds per setting" in reason and "about 96 test queries" in reason
    assert "minimum detectable effect is 20.0" in reason
    big = ms.what_would_decide(Comparison(40.0, -1.0, 81.0, 15.0, 42.0, cmp.n, "inconclusive", ""), 10.0)
    assert "the observed 40.0 points" in big and "about 2 seeds" in big and "about 27 test queries" in big


def test_paired_settings_need_the_same_queries():
    other = per_query([1, 2], [1.0, 0.5], names=["q0", "q9"])
    df = query_results({("c3d", 0.0): [ALL_HIT] * 2, ("c3d", 1.0): [ALL_MISS] * 2})
    df.at[2, "per_query"] = other
    df.at[3, "per_query"] = other
    with pytest.raises(ValueError, match="same queries"):
        ms.central_claims(df, "cpu")


def test_verdicts_need_two_levels():
    df = query_results({("c3d", 0.0): [ALL_HIT] * 2})
    with pytest.raises(ValueError, match="two misalignment levels"):
        ms.central_claims(df, "cpu")


# ---------------------------------------------------------------- summaries and figures

def results_frame(values):
    """values: {(model, level): [metric per seed]} -> results with rank1 == mAP == the value."""
    rows = []
    for (model, level), per_seed in values.items():
        for seed, v in enumerate(per_seed):
            rows.append({"level": level, "model": model, "seed": seed, "rank1": v, "mAP": v,
                         "wall_time_s": 1.0})
    return pd.DataFrame(rows)


def test_summaries_by_level_and_by_model():
    df = results_frame({("c3d", 0.0): [60, 62], ("c3d", 1.0): [40, 46]})
    summary = ms.summary_by_level(df)
    row = summary[(summary["model"] == "c3d") & (summary["level"] == 1.0)].iloc[0]
    assert (row["mAP_mean"], row["mAP_min"], row["mAP_max"], row["seeds"]) == (43.0, 40.0, 46.0, 2)
    (c3d,) = ms.model_summary(df)
    assert c3d["mAP"]["drop_mean"] == pytest.approx(18.0)
    assert (c3d["mAP"]["drop_min"], c3d["mAP"]["drop_max"]) == (16.0, 20.0)


def test_check_results_catches_missing_points_and_impossible_metrics():
    points = ms.plan_sweep([0.0, 1.0], ["c3d"], [0, 1])
    df = results_frame({("c3d", 0.0): [60, 62], ("c3d", 1.0): [40, 46]})
    ms.check_results(df, points)
    with pytest.raises(AssertionError, match="missing"):
        ms.check_results(df.iloc[1:], points)
    bad = df.copy()
    bad.loc[0, "mAP"] = 140.0
    with pytest.raises(AssertionError, match="mAP outside"):
        ms.check_results(bad, points)


def test_plot_sweep_draws_one_line_per_model_on_both_metrics():
    df = results_frame({("c3d", 0.0): [60, 62], ("c3d", 1.0): [40, 46],
                        ("tp", 0.0): [50, 52], ("tp", 1.0): [45, 47]})
    fig = ms.plot_sweep(df, {"0": 10.0})
    assert len(fig.axes) == 2
    for ax in fig.axes:
        labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert labels == [ms.VARIANTS["c3d"].label, ms.VARIANTS["tp"].label]


def test_peak_pck_counts_self_occluded_parts_and_matches_on_the_scored_frames():
    grid = WindowGrid((20, 20), (2, 2), window=1)          # window centres at x, y in {4.5, 14.5}
    lo, hi = 4.5, 14.5
    truth = np.array([[[lo, lo, 1.0], [hi, hi, 0.5]],      # 0.5: self-occluded, counts in this study
                      [[hi, lo, 1.0], [lo, hi, 0.0]]])     # 0: hidden, does not count
    peaks = np.array([[[lo, lo], [lo, hi]], [[hi, lo], [hi, hi]]])
    r = ms.peak_pck(peaks, truth, grid, radius=3.0)
    assert r["pck"] == pytest.approx(2 / 3)        # 2 hits among the 3 counted keypoints
    assert r["chance_pck"] == pytest.approx(0.25)  # each keypoint has 1 of the 4 windows in reach
    assert r["matching"] == [0, 1] and r["frames"] == 2
    swapped = peaks[:, ::-1]
    assert ms.peak_pck(swapped, truth, grid, 3.0)["pck"] == 0.0
    matched = ms.peak_pck(swapped, truth, grid, 3.0, unnamed=True)   # fitted on these very frames
    assert matched["matching"] == [1, 0] and matched["pck"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no visible keypoint"):
        ms.peak_pck(peaks, truth * [1, 1, 0], grid, 3.0)


# ---------------------------------------------------------------- end to end

def test_tiny_sweep_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("SSN3D_CACHE", str(tmp_path / "cache"))
    overrides = ["data.world.num_identities=8", "data.world.frames_per_tracklet=[6, 8]", "train.epochs=1",
                 "eval.clip_len=8"]
    points = ms.plan_sweep([0.0, 1.0], ["ssn3d-unsup", "c3d"], [0])
    worlds = ms.prepare_worlds("misalignment_smoke", [0.0, 1.0], overrides, progress=False)
    # paired levels: the same tracklets (persons, lengths), only the boxes differ
    low, high = (sorted((t.name, len(t)) for t in worlds[level].query) for level in (0.0, 1.0))
    assert low == high and worlds[0.0].root != worlds[1.0].root

    results = ms.run_sweep(points, "misalignment_smoke", tmp_path / "runs", overrides, progress=False)
    ms.check_results(results, points)
    assert (results["steps"] >= 1).all()
    ssn = results[results["model"] == "ssn3d-unsup"]
    assert ssn["final_ssn_loss"].between(0, 2 * np.log(9)).all()
    assert results[results["model"] == "c3d"]["final_ssn_loss"].isna().all()

    # every point keeps its per-query record, and re-evaluating its checkpoint gives the same numbers
    row = results.iloc[1].to_dict()
    assert len(row["per_query"]["query"]) == row["num_query"]
    assert ms.point_per_query(ms.checkpoint_path(tmp_path / "runs", points[1]), row) == row["per_query"]
    with pytest.raises(RuntimeError, match="not the recorded"):
        ms.point_per_query(ms.checkpoint_path(tmp_path / "runs", points[1]), {**row, "mAP": row["mAP"] + 1})

    claims = ms.central_claims(results, "smoke", aligned="ssn3d-unsup")
    metrics = ms.study_metrics(results, points, "smoke", {"levels": [0.0, 1.0]}, claims, {"0": 25.0}, 1.0)
    stored = json.loads(write_metrics(metrics, tmp_path / "out").read_text())
    assert len(stored["points"]) == 4 and all(p["per_query"] == r for p, r in zip(
        stored["points"], results.sort_values(["level", "model"], ascending=[True, False])["per_query"]))
    assert {r["model"] for r in stored["per_model"]} == {"ssn3d-unsup", "c3d"}
    stored_claims = claims_from_records(stored["claims"])
    assert [c.name for c in stored_claims] == [f"{c}_{m}" for m in ms.METRICS
                                               for c in ("c3d_degrades", "ssn3d_beats_c3d_misaligned",
                                                         "ssn3d_drops_less")]
    assert all(c.verdict == "inconclusive" and "training seed" in c.reason for c in stored_claims)  # one seed
    assert stored["wall_time_s"] == 1.0 and all(p["wall_time_s"] > 0 for p in stored["points"])

    # the explorer shows the sweep's SSN3D checkpoints and refuses the others
    loaded = load_model(ms.checkpoint_path(tmp_path / "runs", points[0]))
    assert loaded.part_names == [f"part {i}" for i in range(9)]          # unsupervised maps are unnamed
    images, maps, extent, _ = clip_attention(loaded, worlds[0.0].query[0], range(4))
    assert images.shape == (4, 3, 64, 32) and maps.shape[:2] == (4, 9)
    with pytest.raises(ValueError, match="no attention maps"):
        load_model(ms.checkpoint_path(tmp_path / "runs", points[1]))

    alignment = ms.alignment_sweep(points, worlds, tmp_path / "runs", progress=False)
    assert list(alignment["model"]) == ["ssn3d-unsup", "ssn3d-unsup"]      # SSN3D points only
    assert (alignment["frames"] == sum(len(t) for t in worlds[0.0].query)).all()
    assert alignment["pck"].between(0, 1).all() and alignment["chance_pck"].between(0.01, 0.5).all()
    assert all(sorted(m) == list(range(9)) for m in alignment["matching"])   # a one-to-one matching

    again = ms.run_sweep(points, "misalignment_smoke", tmp_path / "runs", overrides, progress=False)
    assert again["resumed"].all() and again["mAP"].tolist() == results["mAP"].tolist()
    assert yaml.safe_load((tmp_path / "runs" / points[0].key / "config.yaml").read_text())["train"]["epochs"] == 1
