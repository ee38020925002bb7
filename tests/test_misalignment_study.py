"""The misalignment study (notebook 05): the plan, the claims' comparisons on hand-made per-query
records, the part-alignment claims, the detector calibration on a MOT fixture and the world's box
offsets, and one tiny end-to-end run through the engine (train once, test on every world, resume)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssn3dlib.data.synthetic.misalignment import box_offset_sds
from ssn3dlib.engine import load_config
from ssn3dlib.engine.config import config_changes
from ssn3dlib.explorer import load_model
from ssn3dlib.studies import misalignment as ms
from ssn3dlib.studies.toolkit import NOT_IN_PAPER, by_name, claims_from_records, write_metrics

from data_fixtures import build_mot

# ---------------------------------------------------------------- the plan


def test_models_cover_every_level_variant_and_seed_once_with_the_same_seeds():
    models = ms.plan_models(["c3d", "ssn3d-semi"], [0, 1], [1.0, 0.0])
    assert [m.key for m in models] == ["train1.00_c3d_s0", "train1.00_c3d_s1", "train1.00_ssn3d-semi_s0",
                                       "train1.00_ssn3d-semi_s1", "train0.00_c3d_s0", "train0.00_c3d_s1",
                                       "train0.00_ssn3d-semi_s0", "train0.00_ssn3d-semi_s1"]


@pytest.mark.parametrize("variants, seeds, levels, message", [
    (["c3d", "resnet"], [0], [0.0], "unknown model variants"),
    (["c3d"], [0, 0], [0.0], "repeat a value"),
    (["c3d"], [-1], [0.0], "integers >= 0"),
    (["c3d"], [0], [1.5], "outside"),
    (["c3d"], [], [0.0], "seeds is empty"),
])
def test_the_model_plan_refuses_bad_input(variants, seeds, levels, message):
    with pytest.raises(ValueError, match=message):
        ms.plan_models(variants, seeds, levels)


def test_test_worlds_are_the_sorted_levels_then_the_occluded_ones():
    worlds = ms.plan_tests([1.0, 0.0, 0.5], [0.3])
    assert [w.key for w in worlds] == ["m0.00_o0.00", "m0.50_o0.00", "m1.00_o0.00", "m0.00_o0.30"]
    assert ms.plan_tests([0.0, 1.0], [0.2], occlusion_level=0.5)[-1] == ms.TestWorld(0.5, 0.2)
    with pytest.raises(ValueError, match="at least two"):
        ms.plan_tests([0.5])
    with pytest.raises(ValueError, match="rates above 0"):
        ms.plan_tests([0.0, 1.0], [0.0])


def test_a_training_config_changes_only_the_world_knobs_model_strategy_and_seed():
    from ssn3dlib.engine import load_config

    base = load_config("misalignment_smoke")
    config = ms.model_config("misalignment_smoke", ms.TrainedModel("ssn3d-unsup", 3, 1.0))
    assert config.data.world["misalignment"] == 1.0 and config.data.world["occlusion_rate"] == 0.0
    assert (config.model.name, config.model.strategy, config.train.seed) == ("ssn3d", "unsupervised", 3)
    changed = config_changes(base.to_dict(), config.to_dict())
    assert set(changed) <= {"data.world", "model.strategy", "train.seed"}
    tested = ms.test_config(config, ms.TestWorld(0.5, 0.3))
    assert tested.data.world["misalignment"] == 0.5 and tested.data.world["occlusion_rate"] == 0.3
    assert tested.model == config.model
    with pytest.raises(ValueError, match="synthetic_world"):
        ms.model_config("bench_pku_frozen_cpu", ms.TrainedModel("c3d", 0, 0.0))


# ---------------------------------------------------------------- hand-made evaluations

QUERIES = [f"q{i}" for i in range(6)]


def _record(hits, aps=None):
    """A per-query record: first-match rank 1 where hits[i], else 3; the AP given or 1 / rank."""
    ranks = [1 if h else 3 for h in hits]
    return {"query": QUERIES, "first_match_rank": ranks,
            "ap": list(aps) if aps is not None else [1.0 / r for r in ranks]}


def _evals(scores, alignment=None):
    """scores[(variant, train_level, test_level, occlusion)] = per seed, the hits of each query."""
    rows = []
    for (variant, train, test, occ), per_seed in scores.items():
        for seed, hits in enumerate(per_seed):
            rows.append({"model": f"{variant}{train}s{seed}", "variant": variant, "seed": seed, "train_level": train,
                         "test_misalignment": test, "test_occlusion": occ, "world": ms.TestWorld(test, occ).key,
                         "per_query": _record(hits),
                         "alignment": (alignment or {}).get((variant, train, test, occ), [None] * 9)[seed]})
    return pd.DataFrame(rows)


ALL, NONE, HALF = [1] * 6, [0] * 6, [1, 0] * 3


def test_query_scores_are_hits_or_ap_per_seed_and_query_and_leave_out_unmatched_queries():
    ev = _evals({("c3d", 0.0, 0.0, 0.0): [HALF, ALL]})
    record = _record(HALF)
    record["first_match_rank"][1], record["ap"][1] = 0, None         # q1 has no true match
    ev.at[0, "per_query"] = record
    ev.at[1, "per_query"] = {**_record(ALL), "first_match_rank": [1, 0, 1, 1, 1, 1], "ap": [1, None, 1, 1, 1, 1]}
    hits = ms.query_scores(ev, "c3d", 0.0, ms.TestWorld(0.0), "rank1")
    assert list(hits.columns) == ["q0", "q2", "q3", "q4", "q5"] and hits.to_numpy().tolist() == [
        [1, 1, 0, 1, 0], [1, 1, 1, 1, 1]]
    ap = ms.query_scores(ev, "c3d", 0.0, ms.TestWorld(0.0), "mAP")
    assert ap.loc[0].tolist() == [1.0, 1.0, 1 / 3, 1.0, 1 / 3]
    with pytest.raises(ValueError, match="no evaluation"):
        ms.query_scores(ev, "tp", 0.0, ms.TestWorld(0.0), "rank1")


def _world(c3d_low, c3d_high, ssn_low, ssn_high, tp_low=HALF, tp_high=HALF, seeds=2):
    return _evals({("c3d", 0.0, 0.0, 0.0): [c3d_low] * seeds, ("c3d", 0.0, 1.0, 0.0): [c3d_high] * seeds,
                   ("ssn3d-semi", 0.0, 0.0, 0.0): [ssn_low] * seeds, ("ssn3d-semi", 0.0, 1.0, 0.0): [ssn_high] * seeds,
                   ("tp", 0.0, 0.0, 0.0): [tp_low] * seeds, ("tp", 0.0, 1.0, 0.0): [tp_high] * seeds})


def test_claims_reproduced_when_every_query_and_seed_agree():
    # C3D hits every query aligned and none misaligned; SSN3D hits every query at both; TP drops nothing
    claims = by_name(ms.central_claims(_world(ALL, NONE, ALL, ALL), "cpu", 0.0, 0.0, 1.0, metrics=["rank1"]))
    assert list(claims) == ["c3d_degrades_rank1", "control_c3d_drop_vs_tp_rank1", "ssn3d_beats_c3d_at_0_rank1",
                            "ssn3d_beats_c3d_at_1_rank1", "ssn3d_drops_less_rank1"]
    degrades = claims["c3d_degrades_rank1"]
    assert degrades.verdict == "reproduced" and degrades.comparison["effect"] == pytest.approx(100.0)
    assert degrades.comparison["n"] == {"queries": 6, "seeds": 2}
    assert claims["ssn3d_drops_less_rank1"].verdict == "reproduced"
    assert claims["ssn3d_beats_c3d_at_1_rank1"].verdict == "reproduced"
    tie = claims["ssn3d_beats_c3d_at_0_rank1"]                        # both hit every query: a tie
    assert tie.verdict == "inconclusive" and tie.comparison["effect"] == 0 and "minimum detectable" in tie.reason
    control = claims["control_c3d_drop_vs_tp_rank1"]
    assert not control.paper_claim and control.statement == NOT_IN_PAPER and control.verdict == "reproduced"
    # Without misalignment SSN3D's lead is the baseline, our check; the paper's claim is the misaligned level.
    assert not tie.paper_claim and tie.statement == NOT_IN_PAPER and "tested at 0 (" in tie.data
    misaligned = claims["ssn3d_beats_c3d_at_1_rank1"]
    assert misaligned.paper_claim and "tested at 1 (" in misaligned.data and "tested at 0 and" not in misaligned.data


def test_claims_contradicted_when_ssn3d_loses_more():
    claims = by_name(ms.central_claims(_world(ALL, ALL, ALL, NONE), "cpu", 0.0, 0.0, 1.0, metrics=["rank1"]))
    assert claims["ssn3d_drops_less_rank1"].verdict == "contradicted"
    assert claims["ssn3d_beats_c3d_at_1_rank1"].verdict == "contradicted"
    assert claims["c3d_degrades_rank1"].verdict == "inconclusive"      # C3D drops nothing: a tie


def test_one_seed_decides_nothing_however_large_the_effect():
    claims = by_name(ms.central_claims(_world(ALL, NONE, ALL, ALL, seeds=1), "cpu", 0.0, 0.0, 1.0,
                                       metrics=["rank1"]))
    one = claims["c3d_degrades_rank1"]
    assert one.comparison["effect"] == pytest.approx(100.0)
    assert one.verdict == "inconclusive" and "seed" in one.reason


def test_matched_and_occluded_claims_pair_separately_trained_models_by_seed():
    scores = {(v, t, t, 0.0): [ALL if v == "ssn3d-semi" or t == 0.0 else NONE] * 2
              for v in ("c3d", "ssn3d-semi") for t in (0.0, 1.0)}
    scores.update({("c3d", 0.0, 1.0, 0.0): [HALF] * 2, ("ssn3d-semi", 0.0, 1.0, 0.0): [HALF] * 2,
                   ("c3d", 0.0, 0.0, 0.3): [NONE] * 2, ("ssn3d-semi", 0.0, 0.0, 0.3): [ALL] * 2,
                   ("c3d", 0.0, 0.0, 0.6): [ALL] * 2, ("ssn3d-semi", 0.0, 0.0, 0.6): [NONE] * 2})
    claims = by_name(ms.central_claims(_evals(scores), "cpu", 0.0, 0.0, 1.0, metrics=["rank1"], matched_level=1.0,
                                       occlusions=[ms.TestWorld(0.0, 0.3), ms.TestWorld(0.0, 0.6)]))
    matched = claims["c3d_degrades_matched_rank1"]                    # trained+tested at 0: all, at 1: none
    assert matched.verdict == "reproduced" and matched.comparison["effect"] == pytest.approx(100.0)
    assert "trained and tested" in matched.data
    assert claims["ssn3d_drops_less_matched_rank1"].verdict == "reproduced"
    occluded = claims["ssn3d_beats_c3d_occluded_0.3_rank1"]          # one row per rate of the sweep
    assert occluded.comparison["effect"] == pytest.approx(100.0)
    assert occluded.verdict == "reproduced" and not occluded.paper_claim and "in 30% of frames" in occluded.data
    assert claims["ssn3d_beats_c3d_occluded_0.6_rank1"].comparison["effect"] == pytest.approx(-100.0)
    assert "c3d_degrades_rank1" in claims and "control_c3d_drop_vs_tp_rank1" not in claims   # no TP ran


def test_paired_settings_need_the_same_queries_and_seeds():
    a = pd.DataFrame([[1.0, 0.0]], columns=["q0", "q1"], index=[0])
    with pytest.raises(ValueError, match="same units"):
        ms.paired_arrays(a, pd.DataFrame([[1.0, 0.0]], columns=["q0", "q2"], index=[0]))
    with pytest.raises(ValueError, match="same seeds"):
        ms.paired_arrays(a, pd.DataFrame([[1.0, 0.0]], columns=["q0", "q1"], index=[1]))


def test_what_would_decide_gives_the_seeds_and_queries_by_hand():
    from ssn3dlib.studies.toolkit.statistics import Comparison

    cmp = Comparison(effect=4.0, low=-4.0, high=12.0, se=4.0, mde=11.2, n={"queries": 100, "seeds": 5},
                     verdict="inconclusive", reason="the 95% interval includes 0")
    text = ms.what_would_decide(cmp, seed_sd=5.0)
    # 10-point floor: queries 100 x (11.2 / 10)^2 = 125.44 -> 126; seeds 2 (2.80 x 5 / 10)^2 = 3.9 -> 4
    assert "about 126 queries" in text and "about 4 seeds" in text and "a 10-point effect" in text


def test_alignment_claims_compare_the_ssn_with_chance_and_the_position_prior_per_tracklet():
    def alignment(ssn, prior, chance, follows=0.5):
        return {"query": QUERIES, "ssn": [ssn] * 6, "prior": [prior] * 6, "chance": [chance] * 6,
                "follows": [follows] * 6, "follows_chance": [0.2] * 6, "follows_static": [0.9] * 6}

    ev = _evals({("ssn3d-semi", 0.0, 0.0, 0.0): [ALL, ALL], ("ssn3d-semi", 0.0, 1.0, 0.0): [ALL, ALL]},
                alignment={("ssn3d-semi", 0.0, 0.0, 0.0): [alignment(0.6, 0.9, 0.1)] * 2,
                           ("ssn3d-semi", 0.0, 1.0, 0.0): [alignment(0.6, 0.5, 0.1, 0.1)] * 2})
    claims = by_name(ms.alignment_claims(ev, "cpu", 0.0))
    assert claims["ssn_aligns_at_0"].verdict == "reproduced" and claims["ssn_aligns_at_0"].paper_claim
    assert claims["ssn_aligns_at_0"].comparison["effect"] == pytest.approx(50.0)
    prior0 = claims["ssn_beats_position_prior_at_0"]
    assert prior0.verdict == "contradicted" and not prior0.paper_claim
    assert prior0.comparison["n"] == {"query tracklets": 6, "seeds": 2}
    assert claims["ssn_beats_position_prior_at_1"].verdict == "reproduced"
    # stability across frames: peaks move with their part more often than two random windows' (at 0), less (at 1)
    stable0, stable1 = claims["ssn_parts_stable_across_frames_at_0"], claims["ssn_parts_stable_across_frames_at_1"]
    assert stable0.verdict == "reproduced" and stable0.comparison["effect"] == pytest.approx(30.0)
    assert stable1.verdict == "contradicted" and "never moves in 90.0%" in stable1.detail
    assert ms.alignment_claims(ev[ev["variant"] == "none"], "cpu", 0.0) == []


# ---------------------------------------------------------------- calibration

def test_consecutive_changes_pair_each_frame_with_the_next_one_of_the_same_person():
    frame = pd.DataFrame({"sequence": ["A"] * 4 + ["B"], "id": [1, 1, 1, 2, 2], "frame": [1, 2, 4, 1, 1],
                          "dx": [0.0, 0.1, 0.5, 0.3, 0.9]})
    changes = ms.consecutive_changes(frame, ["dx"])
    assert changes["dx"].tolist() == pytest.approx([0.1])            # 2 -> 4 skips a frame; B is another person


def test_detector_calibration_on_a_fixture_whose_detections_are_shifted_by_one_pixel(tmp_path):
    # each detection is its ground-truth box shifted by (+1, +1) px: dx = 1 / h for every match, no scale error
    frames = [[(1, 4, 2, 10, 50, 1.0), (2, 30, 5, 12, 60, 1.0)] for _ in range(3)]
    root = build_mot(tmp_path / "mot", {"SEQ-A": frames}, size=(64, 70))
    table = tmp_path / "kp.csv"
    # one keypoint that moves 2 px down in its crop from frame 1 to 2 and stays from 2 to 3
    pd.DataFrame({"image": [f"SEQ-A/0001/00000{f}.jpg" for f in (1, 2, 3)], "keypoint": "nose",
                  "x": [5.0, 5.0, 5.0], "y": [10.0, 12.0, 12.0], "visibility": 0.9}).to_csv(table, index=False)
    cal = ms.detector_calibration(root, table)
    assert cal["boxes"] == 6 and cal["frame_pairs"] == 4
    assert cal["detector"]["per_frame"]["dx"] == pytest.approx(np.std([1 / 50, 1 / 60] * 3, ddof=1))
    assert cal["detector"]["frame_to_frame"]["dx"] == pytest.approx(0.0)
    assert cal["detector"]["per_frame"]["log_scale"] == pytest.approx(0.0)
    world = cal["world_at_1"]["per_frame"]["dx"]
    assert cal["equivalent_level"]["per_frame"]["dx"] == pytest.approx(cal["detector"]["per_frame"]["dx"] / world)
    motion = cal["keypoint_motion"]
    assert motion["pairs"] == 2 and motion["median"] == pytest.approx(1 / 50)   # 0 and 2 px of a 50 px box
    # the report's finding states both sources apart, in % of the box height
    (finding,) = ms.misalignment_sources(cal, {"stride": 2, "rms": 0.02, "median": 0.005, "pairs": 9})
    assert "box jitter against the ground truth, SD 0.0 horizontally" in finding
    assert f"RMS {100 * motion['rms']:.1f} and median 2.0 (2 keypoint pairs in 2 frame pairs)" in finding
    assert "frames 2 apart, the exact keypoints move RMS 2.0 and median 0.5" in finding
    assert ms.misalignment_sources(None, None) == []


def test_the_worlds_box_offsets_are_zero_at_level_0_and_grow_with_the_level():
    zero, half, one = (box_offset_sds(level, tracks=300) for level in (0.0, 0.5, 1.0))
    assert all(v == 0 for kind in zero.values() for v in kind.values())
    for kind in ("per_frame", "frame_to_frame"):
        for key in ("dx", "dy", "log_scale"):
            assert 0 < half[kind][key] < one[kind][key]
            assert one[kind][key] / half[kind][key] == pytest.approx(2.0, rel=0.1)   # linear up to clipping


# ---------------------------------------------------------------- end to end

def test_worlds_generated_in_worker_processes_are_those_generated_here(tmp_path, monkeypatch):
    base = load_config("misalignment_smoke", ["data.world.num_identities=4", "data.world.frames_per_tracklet=[4, 5]"])
    tests = ms.plan_tests([0.0, 1.0])
    configs = [ms.test_config(base, t) for t in tests] * 2          # a world asked for twice is made once
    worlds = {}
    for workers in (1, 2):
        monkeypatch.setenv("SSN3D_CACHE", str(tmp_path / f"cache{workers}"))
        worlds[workers] = ms.prepare_worlds(configs, progress=False, workers=workers)
        assert list(worlds[workers]) == [t.key for t in tests]
    for key in worlds[1]:
        here, there = (worlds[w][key].query + worlds[w][key].gallery for w in (1, 2))
        assert [(t.pid, t.camid, len(t)) for t in here] == [(t.pid, t.camid, len(t)) for t in there]
        assert all(Path(a).read_bytes() == Path(b).read_bytes() for s, o in zip(here, there)
                   for a, b in zip(s.frames, o.frames))
    aligned, misaligned = (worlds[2][t.key].query[0].frames for t in tests)      # two worlds, not one twice
    assert any(Path(a).read_bytes() != Path(b).read_bytes() for a, b in zip(aligned, misaligned))


def test_tiny_study_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("SSN3D_CACHE", str(tmp_path / "cache"))
    overrides = ["data.world.num_identities=8", "data.world.frames_per_tracklet=[6, 8]", "train.epochs=1",
                 "eval.clip_len=8"]
    models = ms.plan_models(["ssn3d-semi", "c3d"], [0], [0.0])
    worlds = ms.plan_tests([0.0, 1.0])
    work = tmp_path / "runs"
    trainings = ms.train_models(models, "misalignment_smoke", work, overrides, progress=False)
    assert trainings["model"].tolist() == [m.key for m in models] and (trainings["steps"] >= 1).all()
    evals = ms.evaluate_models(models, worlds, work, progress=False)
    ms.check_evaluations(evals, models, worlds, trainings)          # own world = the training's evaluation
    # the same query tracklets at both levels, evaluated by the same trained model
    assert evals.iloc[0]["per_query"]["query"] == evals.iloc[2]["per_query"]["query"]
    ssn = evals[evals["variant"] == "ssn3d-semi"]
    assert all(a["frames"] > 0 and 0 <= a["pck"] <= 1 and len(a["ssn"]) == len(a["query"]) for a in ssn["alignment"])
    assert all(ms.ALIGNMENT_KEYS <= set(a) and all(0 <= v <= 1 for v in a["follows_chance"]) for a in ssn["alignment"])
    assert evals[evals["variant"] == "c3d"]["alignment"].isna().all()
    with pytest.raises(ValueError, match="no attention maps"):
        load_model(ms.checkpoint_path(work, models[1]))

    claims = ms.central_claims(evals, "smoke", 0.0, 0.0, 1.0) + ms.alignment_claims(evals, "smoke", 0.0)
    assert all(c.verdict == "inconclusive" and "seed" in c.reason for c in claims)     # one seed
    metrics = ms.study_metrics(trainings, evals, "smoke", {}, claims, 12.5, None, None, wall_time_s=1.0)
    stored = json.loads(write_metrics(metrics, tmp_path / "out").read_text())
    again = ms.evaluations_from_metrics(stored)
    assert [c.to_dict() for c in ms.central_claims(again, "smoke", 0.0, 0.0, 1.0)
            + ms.alignment_claims(again, "smoke", 0.0)] == [c.to_dict() for c in claims_from_records(stored["claims"])]

    # trainings found finished are loaded; the study's runs time stays what they took when they trained
    reloaded = ms.train_models(models, "misalignment_smoke", work, overrides, progress=False)
    assert reloaded["resumed"].all()
    assert reloaded["train_time_s"].tolist() == pytest.approx(trainings["train_time_s"].tolist(), rel=0.2)
    again_metrics = ms.study_metrics(reloaded, evals, "smoke", {}, claims, 12.5, None, None, wall_time_s=1.0)
    trained_then = reloaded["train_time_s"].sum() + evals["wall_time_s"].sum()
    assert again_metrics["runs_wall_time_s"] == pytest.approx(trained_then)

    # resume: an unchanged checkpoint's evaluation is read back; a changed one is evaluated again
    assert ms.evaluate_models(models, worlds, work, progress=False)["resumed"].all()
    checkpoint = ms.checkpoint_path(work, models[1])
    checkpoint.write_bytes(checkpoint.read_bytes())                  # same bytes: still resumed
    assert ms.evaluate_models(models, worlds, work, progress=False)["resumed"].all()
    (work / models[1].key / f"eval_{worlds[0].key}.json").write_text(json.dumps({"checkpoint_sha1": "other"}))
    redone = ms.evaluate_models(models, worlds, work, progress=False)
    assert redone["resumed"].tolist() == [True, False, True, True]
    assert redone["rank1"].tolist() == evals["rank1"].tolist()
    with pytest.raises(FileNotFoundError, match="train_models first"):
        ms.evaluate_models(ms.plan_models(["tp"], [0], [0.0]), worlds, work, progress=False)
