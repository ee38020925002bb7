"""The misalignment study (notebook 05): the sweep plan, resume, the claim's verdict on
hand-made results, the study's PCK rules, and one tiny end-to-end sweep through the engine."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ssn3dlib.explorer import clip_attention, load_model
from ssn3dlib.studies import misalignment as ms
from ssn3dlib.studies.toolkit import WindowGrid, claims_from_records, write_metrics

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
        return {"rank1": 50.0, "mAP": 40.0 + point.level, "epochs": config.train.epochs}


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


# ---------------------------------------------------------------- the verdict

def results_frame(values):
    """values: {(model, level): [metric per seed]} -> results with rank1 == mAP == the value."""
    rows = []
    for (model, level), per_seed in values.items():
        for seed, v in enumerate(per_seed):
            rows.append({"level": level, "model": model, "seed": seed, "rank1": v, "mAP": v,
                         "wall_time_s": 1.0})
    return pd.DataFrame(rows)


def test_verdict_supported_when_c3d_degrades_and_ssn3d_recovers():
    df = results_frame({("c3d", 0.0): [60, 62], ("c3d", 1.0): [40, 45],
                        ("ssn3d-semi", 0.0): [61, 63], ("ssn3d-semi", 1.0): [58, 60]})
    v = ms.claim_verdict(df, "mAP", min_effect=2.0)
    assert v["verdict"] == "supported" and v["degrades"] and v["recovers"]
    assert v["unaligned_drop"]["per_seed"] == {"0": 20.0, "1": 17.0}
    assert v["aligned_drop"]["mean"] == pytest.approx(3.0)
    assert v["gap_at_high"]["min"] == pytest.approx(15.0)


def test_only_a_supported_verdict_makes_the_paper_claim_hold():
    verdicts = {"mAP": {"verdict": "supported", "statement": "mAP: ... Verdict: supported.", "low": 0.0, "high": 1.0},
                "rank1": {"verdict": "partly supported", "statement": "rank1: ... Verdict: partly supported.",
                          "low": 0.0, "high": 1.0}}
    claims = {c.name: c for c in ms.verdict_claims(verdicts, "cpu")}
    assert claims["central_claim_mAP"].holds is True and claims["central_claim_rank1"].holds is False
    assert all(c.paper_claim and c.statement == ms.PAPER_CLAIM for c in claims.values())
    assert claims["central_claim_rank1"].detail == verdicts["rank1"]["statement"]
    assert "profile cpu" in claims["central_claim_mAP"].data


def test_verdict_partly_supported_when_ssn3d_degrades_as_much():
    df = results_frame({("c3d", 0.0): [60, 62], ("c3d", 1.0): [40, 45],
                        ("ssn3d-semi", 0.0): [70, 70], ("ssn3d-semi", 1.0): [50, 52]})
    v = ms.claim_verdict(df, "rank1")
    assert v["degrades"] and not v["more_robust"] and v["ahead_at_high"]
    assert v["verdict"] == "partly supported"


def test_verdict_not_supported_when_seeds_disagree_or_the_drop_is_small():
    disagree = results_frame({("c3d", 0.0): [60, 40], ("c3d", 1.0): [40, 45],
                              ("ssn3d-semi", 0.0): [61, 63], ("ssn3d-semi", 1.0): [58, 60]})
    assert ms.claim_verdict(disagree)["verdict"] == "not supported"
    small = results_frame({("c3d", 0.0): [60, 60], ("c3d", 0.5): [59, 59], ("c3d", 1.0): [59, 59.5],
                           ("ssn3d-semi", 0.0): [60, 60], ("ssn3d-semi", 0.5): [60, 60],
                           ("ssn3d-semi", 1.0): [60, 60]})
    v = ms.claim_verdict(small, min_effect=2.0)
    assert (v["low"], v["high"]) == (0.0, 1.0)       # lowest against highest level
    assert v["verdict"] == "not supported" and not v["degrades"]
    assert ms.claim_verdict(small, min_effect=0.0)["degrades"]


def test_verdict_refuses_unpaired_or_missing_models():
    df = results_frame({("c3d", 0.0): [60, 62], ("c3d", 1.0): [40, 45], ("ssn3d-semi", 0.0): [61],
                        ("ssn3d-semi", 1.0): [58]})
    with pytest.raises(ValueError, match="same seeds"):
        ms.claim_verdict(df)
    with pytest.raises(ValueError, match="no results for model 'tp'"):
        ms.claim_verdict(df, aligned="tp")


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

    verdicts = {m: ms.claim_verdict(results, m, aligned="ssn3d-unsup") for m in ms.METRICS}
    metrics = ms.study_metrics(results, points, "smoke", {"levels": [0.0, 1.0]}, verdicts, {"0": 25.0}, 1.0)
    stored = json.loads(write_metrics(metrics, tmp_path / "out").read_text())
    assert len(stored["points"]) == 4 and stored["verdicts"]["mAP"]["verdict"] in (
        "supported", "partly supported", "not supported")
    assert {r["model"] for r in stored["per_model"]} == {"ssn3d-unsup", "c3d"}
    claims = claims_from_records(stored["claims"])
    assert [c.name for c in claims] == ["central_claim_rank1", "central_claim_mAP"]
    assert all(c.holds == (verdicts[c.name.split("_")[-1]]["verdict"] == "supported") for c in claims)
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
