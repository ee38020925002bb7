"""The benchmark study (notebook 04): run specs to engine configs, run names, run records,
orderings and the claims they become, and one tiny run end to end through the engine (trained,
then loaded back)."""
import json
import math

import pandas as pd
import pytest

from ssn3dlib.engine.checkpoint import load_checkpoint, save_checkpoint
from ssn3dlib.reporting.tables import RUN_KEYS, load_runs, render_markdown
from ssn3dlib.studies import benchmark as bm
from ssn3dlib.studies.benchmark import BenchmarkError, RunSpec
from ssn3dlib.studies.toolkit import Claim, Comparison, by_name

QUERIES = [f"q{i:02d}" for i in range(20)]


def _per_query(hits, ap=None, split=None, queries=QUERIES):
    """One split's per-query arrays: hits[i] 1 puts query i's first match at rank 1, else 2."""
    ap = [0.9 if h else 0.3 for h in hits] if ap is None else ap
    return {"split": split, "query": list(queries), "first_match_rank": [1 if h else 2 for h in hits], "ap": ap}


def _hits(rank1):
    """20 queries' hits giving rank-1 `rank1` (percent): the first ones hit."""
    k = int(round(rank1 / 5))
    return [1] * k + [0] * (20 - k)


def _record(**overrides):
    """A complete, valid run record (the shape run_one writes); per_query from rank1 and mAP
    (20 queries) unless given."""
    base = {
        "study": "benchmark", "run": "synthetic_world_ssn3d_semi-supervised_shared_lambda0.1_seed0",
        "dataset": "synthetic_world", "model": "ssn3d", "strategy": "semi-supervised",
        "shared_classifier": True, "lambda_ssn": 0.1, "seed": 0, "profile": "cpu", "epochs": 10,
        "rank1": 40.0, "rank5": 60.0, "rank10": 70.0, "rank20": 90.0, "mAP": 45.0, "ap_definition": "standard",
        "protocol": {"aggregate": "single query/gallery set"}, "cmc": [40.0] * 4 + [60.0] * 5 + [70.0] * 10 + [90.0],
        "chance_rank1": 3.1, "num_query": 32, "num_gallery": 55, "wall_time_s": 12.0, "device": "cpu",
        "loaded_from_checkpoint": False, "config": "bench_synthetic_frozen_cpu", "overrides": [],
        "backbone": "resnet18-layer2", "input_size": [64, 32], "clip_len": 4, "config_lambda_ssn": 0.1,
        "first_triplet_loss": 0.8, "final_triplet_loss": 0.3, "first_ssn_loss": 2.2, "final_ssn_loss": 1.7,
        "ssn_num_parts": 9,
    }
    record = {**base, **overrides}
    if "per_query" not in overrides:
        hits = _hits(record["rank1"])
        record["per_query"] = [_per_query(hits, [record["mAP"] / 100] * len(hits))]
    return record


# ---------------------------------------------------------------- specs -> configs

def test_ssn3d_spec_becomes_engine_overrides_and_config():
    spec = RunSpec.from_dict({"dataset": "synthetic_world", "strategy": "unsupervised",
                              "shared_classifier": False, "lambda_ssn": 0.5, "seed": 3})
    assert spec.engine_overrides() == ["model.name=ssn3d", "train.seed=3", "model.strategy=unsupervised",
                                       "model.shared_classifier=false", "loss.lambda_ssn=0.5"]
    config = bm.run_config(spec, "bench_smoke", ["train.epochs=2"])
    assert (config.model.strategy, config.model.shared_classifier, config.lambda_ssn()) == ("unsupervised", False, 0.5)
    assert (config.train.seed, config.train.epochs) == (3, 2)


def test_baseline_spec_drops_ssn_settings():
    spec = RunSpec.from_dict({"dataset": "synthetic_world", "model": "tp", "strategy": "unsupervised",
                              "shared_classifier": False, "lambda_ssn": 1.0})
    assert (spec.strategy, spec.shared_classifier, spec.lambda_ssn) == (None, None, None)
    assert spec.engine_overrides() == ["model.name=tp", "train.seed=0"]
    assert bm.run_config(spec, "bench_smoke").model.name == "tp"


def test_lambda_none_is_the_datasets_paper_value():
    spec = RunSpec.from_dict({"dataset": "synthetic_world"})
    assert not any(o.startswith("loss.lambda_ssn") for o in spec.engine_overrides())
    assert bm.run_config(spec, "bench_smoke").lambda_ssn() == 0.1


@pytest.mark.parametrize("spec, words", [
    ({"dataset": "mars", "stratgy": "unsupervised"}, "unknown keys ['stratgy']"),
    ({"model": "ssn3d"}, "names no dataset"),
    ({"dataset": "mars", "model": "resnet"}, "not a benchmark model"),
    ({"dataset": "mars", "strategy": "weakly"}, "not an SSN strategy"),
    ({"dataset": "mars", "lambda_ssn": -0.1}, "lambda_ssn must be a number >= 0"),
    ({"dataset": "mars", "shared_classifier": "yes"}, "shared_classifier must be true or false"),
    ({"dataset": "mars", "seed": -1}, "seed must be an integer >= 0"),
    ({"dataset": "mars", "overrides": "train.epochs=2"}, "list of 'section.key=value' strings"),
    ({"dataset": "mars", "keypoint_drop": 1.0}, "keypoint_drop must be a fraction of frames"),
    ({"dataset": "mars", "strategy": "unsupervised", "keypoint_drop": 0.5}, "the unsupervised SSN does not read"),
    ({"dataset": "mars", "model": "tp", "keypoint_drop": 0.5}, "which 'tp' does not read"),
])
def test_bad_specs_fail_with_the_fix(spec, words):
    with pytest.raises(BenchmarkError, match=words.replace("[", r"\[").replace("]", r"\]")):
        RunSpec.from_dict(spec)


def test_dataset_without_base_config_names_the_parameter_to_set():
    with pytest.raises(BenchmarkError, match=r"no base config for dataset 'mars'.*configs="):
        bm.base_config("mars", "smoke")
    assert bm.base_config("mars", "smoke", {"mars": "mars"}) == "mars"
    with pytest.raises(BenchmarkError, match="unknown profile"):
        bm.base_config("mars", "gpu")


def test_base_config_of_another_dataset_is_refused():
    with pytest.raises(BenchmarkError, match="reads dataset 'synthetic_world'"):
        bm.run_config(RunSpec.from_dict({"dataset": "pku_reid_subset"}), "bench_smoke")


def test_runs_parameter_takes_missing_keys_from_the_single_run():
    single = {"dataset": "synthetic_world", "model": "ssn3d", "strategy": "semi-supervised",
              "shared_classifier": True, "lambda_ssn": None, "seed": 7}
    assert bm.specs_from_parameters({**single, "runs": None}) == [RunSpec.from_dict(single)]
    specs = bm.specs_from_parameters({**single, "runs": [{"model": "tp"}, {"strategy": "unsupervised", "seed": 1}]})
    assert [(s.model, s.strategy, s.seed) for s in specs] == [("tp", None, 7), ("ssn3d", "unsupervised", 1)]
    with pytest.raises(BenchmarkError, match="runs must be a list"):
        bm.specs_from_parameters({**single, "runs": {"model": "tp"}})


def test_seeds_repeat_every_spec_per_dataset():
    runs = [{"dataset": "synthetic_world"}, {"dataset": "pku_reid_subset", "model": "tp", "seed": 5}]
    specs = bm.specs_from_parameters({"runs": runs, "seeds": [0, 1]})
    assert [(s.dataset, s.seed) for s in specs] == [("synthetic_world", 0), ("synthetic_world", 1),
                                                  ("pku_reid_subset", 0), ("pku_reid_subset", 1)]
    # a mapping gives each dataset its own seeds; a dataset it leaves out keeps the spec's seed
    specs = bm.specs_from_parameters({"runs": runs, "seeds": {"synthetic_world": [3, 4, 5]}})
    assert [(s.dataset, s.seed) for s in specs] == [("synthetic_world", 3), ("synthetic_world", 4),
                                                  ("synthetic_world", 5), ("pku_reid_subset", 5)]
    for bad in ([], [1, 1], "0,1", {"synthetic_world": []}):
        with pytest.raises(BenchmarkError, match="seeds"):
            bm.specs_from_parameters({"runs": runs, "seeds": bad})


def test_run_all_refuses_a_bad_worker_count():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(BenchmarkError, match="workers"):
            bm.run_all([], "cpu", workers=bad)


def test_splits_are_blocks_each_with_its_own_queries():
    """Two splits with their own query names: each split's difference is one replicate. Split 0:
    a 60 vs b 40; split 1: a 70 vs b 40 -> effect 25, and the t interval over the two split
    differences (20, 30): mean 25, se 5, 1 df -> 25 +- 12.706 * 5."""
    def runs(model, ranks):
        return [_record(run=f"{model}_split", model=model, strategy=None, shared_classifier=None, lambda_ssn=None,
                        dataset="pku_reid_subset", rank1=sum(ranks) / 2, mAP=50.0,
                        per_query=[_per_query(_hits(r1), [0.5] * 20, split=k, queries=[f"s{k}q{i}" for i in range(20)])
                                   for k, r1 in enumerate(ranks)])
                for _ in (0,)]
    cmp = bm.compare_settings(runs("tp", (60.0, 70.0)), runs("c3d", (40.0, 40.0)))["rank1"]
    assert cmp.effect == pytest.approx(25.0) and cmp.n["splits"] == 2 and cmp.n["queries"] == 40
    assert cmp.low == pytest.approx(25.0 - 12.706 * 5.0, abs=0.01)
    assert cmp.high == pytest.approx(25.0 + 12.706 * 5.0, abs=0.01)
    assert cmp.verdict == "inconclusive" and "What would decide it" in cmp.reason


# ---------------------------------------------------------------- run names

def test_pose_failures_become_the_data_override_and_their_own_run_name():
    spec = RunSpec.from_dict({"dataset": "synthetic_world", "strategy": "supervised", "keypoint_drop": 0.46})
    assert spec.engine_overrides()[-1] == "data.keypoint_drop=0.46"
    assert bm.run_config(spec, "bench_smoke").data.keypoint_drop == 0.46
    plans = bm.plan_runs([spec, {"dataset": "synthetic_world", "strategy": "supervised"},
                          {"dataset": "synthetic_world", "strategy": "supervised", "keypoint_drop": 0.0}], "smoke")
    assert [p.name.endswith("kpdrop0.46_seed0") for p in plans] == [True, False]    # 0 is the table as it is


def test_run_names_are_unique_per_spec_and_equal_for_equal_runs():
    specs = [{"dataset": "synthetic_world"}, {"dataset": "synthetic_world", "strategy": "unsupervised"},
             {"dataset": "synthetic_world", "shared_classifier": False},
             {"dataset": "synthetic_world", "lambda_ssn": 0.0}, {"dataset": "synthetic_world", "lambda_ssn": 1.0},
             {"dataset": "synthetic_world", "seed": 1}, {"dataset": "synthetic_world", "model": "tp"},
             {"dataset": "synthetic_world", "model": "c3d"}, {"dataset": "synthetic_world", "model": "st-attention"},
             {"dataset": "synthetic_world", "overrides": ["train.epochs=2"]},
             {"dataset": "synthetic_world", "overrides": ["train.epochs=3"]}]
    names = [p.name for p in bm.plan_runs(specs, "smoke")]
    assert len(names) == len(specs) == len(set(names))
    assert all("/" not in n and " " not in n for n in names)
    # the same run written three ways is planned once
    same = [{"dataset": "synthetic_world", "model": "tp"},
            {"dataset": "synthetic_world", "model": "tp", "strategy": "unsupervised"},
            {"dataset": "synthetic_world", "model": "tp", "lambda_ssn": 0.5}]
    assert len(bm.plan_runs(same, "smoke")) == 1
    assert len(bm.plan_runs([{"dataset": "synthetic_world"}, {"dataset": "synthetic_world", "lambda_ssn": 0.1}],
                            "smoke")) == 1
    # notebook-wide overrides change the run, so its name
    plain, tuned = (bm.plan_runs([{"dataset": "synthetic_world"}], "smoke", overrides=o)[0].name
                    for o in ([], ["optim.lr=1e-4"]))
    assert plain != tuned


def test_planned_runs_keep_order_and_the_main_lambda():
    plans = bm.plan_runs([{"dataset": "synthetic_world", "model": "c3d"},
                          {"dataset": "synthetic_world", "strategy": "supervised", "lambda_ssn": 1.0}], "smoke")
    assert [p.spec.model for p in plans] == ["c3d", "ssn3d"]
    assert [p.main_lambda for p in plans] == [0.1, 0.1]            # the base config's, not the sweep point
    assert plans[1].overrides[-1] == "loss.lambda_ssn=1.0"
    assert list(bm.plan_table(plans)["lambda"].fillna(-1)) == [-1, 1.0]     # a baseline has no lambda


# ---------------------------------------------------------------- records

def test_record_is_written_with_every_key_and_read_by_the_table_renderer(tmp_path):
    path = bm.write_record(_record(mAP=45.123456789), tmp_path)
    stored = json.loads(path.read_text())
    assert set(bm.RECORD_KEYS) <= set(stored) and set(RUN_KEYS) <= set(stored)
    assert stored["mAP"] == 45.1235                         # rounded for stable diffs
    assert stored["per_query"][0]["ap"][0] == 0.4512 and stored["per_query"][0]["first_match_rank"][:9] == [1] * 8 + [2]
    assert not list(tmp_path.glob("*.tmp"))
    table = render_markdown("table1", load_runs([path]))
    assert "semi-supervised (lambda 0.1)" in table and "45.1" in table


@pytest.mark.parametrize("change, words", [
    ({"mAP": 100.5}, "mAP = 100.5 is not a percentage"),
    ({"rank1": -1.0}, "rank1 = -1.0 is not a percentage"),
    ({"rank5": 30.0}, "decrease"),
])
def test_records_with_impossible_numbers_are_refused(tmp_path, change, words):
    with pytest.raises(BenchmarkError, match=words):
        bm.write_record(_record(**change), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("per_query, words", [
    ([_per_query(_hits(45.0))], "rank1 from the per-query arrays is 45.0000, the record's 40.0000"),
    ([_per_query(_hits(40.0), [0.5] * 20)], "mAP from the per-query arrays is 50.0000, the record's 45.0000"),
    ([{**_per_query(_hits(40.0), [0.45] * 20), "ap": [0.45] * 19}], "per-query arrays of different lengths"),
    ([], "one entry per split"),
])
def test_records_whose_per_query_arrays_disagree_are_refused(tmp_path, per_query, words):
    with pytest.raises(BenchmarkError, match=words):
        bm.write_record(_record(per_query=per_query), tmp_path)


def test_split_record_is_the_mean_of_its_splits_per_query_numbers(tmp_path):
    """rank-1 30 and 50 over two splits: the record's 40; mAP 0.40 and 0.50: 45."""
    splits = [_per_query(_hits(30.0), [0.4] * 20, split=0), _per_query(_hits(50.0), [0.5] * 20, split=1)]
    bm.write_record(_record(per_query=splits), tmp_path)
    with pytest.raises(BenchmarkError, match="rank1 from the per-query arrays is 40.0000, the record's 50.0000"):
        bm.write_record(_record(rank1=50.0, per_query=splits), tmp_path)


def test_record_missing_a_key_is_refused(tmp_path):
    record = _record()
    del record["ap_definition"]
    with pytest.raises(BenchmarkError, match=r"lacks \['ap_definition'\]"):
        bm.write_record(record, tmp_path)


def test_short_cmc_is_padded_with_full_matches():
    assert bm._padded_cmc([50.0, 75.0, 100.0], 5) == [50.0, 75.0, 100.0, 100.0, 100.0]
    assert bm._padded_cmc(list(range(30)), 20) == list(range(20))


# ---------------------------------------------------------------- orderings and sweeps

def _baseline(model, **overrides):
    return _record(model=model, strategy=None, shared_classifier=None, lambda_ssn=None, config_lambda_ssn=None,
                   run=f"synthetic_world_{model}_seed0", **overrides)


def test_orderings_compare_the_paper_pairs_at_the_main_lambda():
    records = [_record(rank1=50.0), _record(strategy="unsupervised", rank1=55.0),
               _record(shared_classifier=False, rank1=30.0), _baseline("tp", rank1=45.0),
               _baseline("c3d", rank1=50.04),
               _record(lambda_ssn=1.0, rank1=99.0)]          # a sweep point must not stand in for lambda 0.1
    table = bm.orderings(records).set_index("paper's ordering")
    assert table.loc["semi-supervised > unsupervised", "ours agrees"] == "no"
    assert table.loc["shared > not shared", "ours agrees"] == "yes"
    assert table.loc["SSN3D > TP (temporal pooling)", "ours agrees"] == "yes"
    assert table.loc["SSN3D > C3D (unaligned 3D conv)", "ours agrees"] == "tie"
    assert table.loc["SSN3D > TP (temporal pooling)", "rank1 (first)"] == 50.0
    assert "unsupervised > supervised" not in table.index    # no supervised run: no row


def test_tables_1_to_5_show_the_main_lambda_and_fig3_the_sweep(tmp_path):
    records = [_record(), _record(lambda_ssn=1.0, rank1=20.0, run="sweep1"), _baseline("tp"),
               _record(dataset="pku_reid_subset", lambda_ssn=0.5, run="pku_only_at_0.5")]
    paths = [bm.write_record(r, tmp_path) for r in records]
    runs = load_runs(paths)
    kept = bm.at_main_lambda(runs)
    assert sorted(kept["file"].map(lambda f: f.split("/")[-1])) == sorted(
        [f"{records[0]['run']}.json", "synthetic_world_tp_seed0.json", "pku_only_at_0.5.json"])
    tables = bm.render_tables(paths).split("### ")
    table1, fig3 = tables[1], tables[4]
    assert "lambda 1)" not in table1 and "lambda 0.5)" in table1     # a dataset's only lambda is kept
    assert "lambda = 1" in fig3 and "lambda = 0.1" in fig3


def test_lambda_sweeps_keep_datasets_with_two_or_more_lambdas():
    records = [_record(lambda_ssn=lam, rank1=r) for lam, r in ((0.0, 20.0), (0.1, 40.0), (1.0, 30.0))]
    records += [_record(dataset="pku_reid_subset", lambda_ssn=0.1), _record(model="tp", lambda_ssn=None)]
    sweeps = bm.lambda_sweeps(records)
    assert list(sweeps["dataset"].unique()) == ["synthetic_world"]
    assert sweeps["lambda_ssn"].tolist() == [0.0, 0.1, 1.0] and sweeps["rank1"].tolist() == [20.0, 40.0, 30.0]
    with pytest.raises(BenchmarkError, match="two or more lambdas"):
        bm.plot_lambda(bm.lambda_sweeps(records[3:]))


# ---------------------------------------------------------------- end to end

def test_tiny_run_trains_writes_its_record_and_is_loaded_back(tmp_path, monkeypatch):
    """bench_smoke cut to 2 epochs: trains, evaluates, writes the record; the second call loads
    the checkpoint instead of training and reports the same numbers."""
    monkeypatch.setenv("SSN3D_REPORTS", str(tmp_path / "reports"))
    plans = bm.plan_runs([{"dataset": "synthetic_world"}, {"dataset": "synthetic_world", "model": "tp"}],
                         "smoke", overrides=["train.epochs=2"])
    first = bm.run_all(plans[:1], "smoke", progress=False)[0]
    out = tmp_path / "reports" / "smoke" / "benchmark"
    stored = json.loads((out / f"{plans[0].name}.json").read_text())
    bm.check_record(stored)
    assert stored["epochs"] == 2 and stored["profile"] == "smoke" and not stored["loaded_from_checkpoint"]
    assert len(stored["cmc"]) == 20 and stored["num_query"] > 0
    assert (tmp_path / "reports" / "runs" / "smoke" / "benchmark" / plans[0].name / "checkpoints" / "last.pt").is_file()

    assert len(stored["per_query"]) == 1 and len(stored["per_query"][0]["query"]) == stored["num_query"]
    again = bm.run_one(plans[0], "smoke")
    assert again["loaded_from_checkpoint"]
    assert {k: again[k] for k in ("rank1", "mAP", "cmc", "per_query")} == {
        k: stored[k] for k in ("rank1", "mAP", "cmc", "per_query")}

    # a run finished before evaluations kept per-query arrays: its checkpoint is evaluated again
    last = tmp_path / "reports" / "runs" / "smoke" / "benchmark" / plans[0].name / "checkpoints" / "last.pt"
    payload = load_checkpoint(last)
    del payload["final_eval"]["per_query"]
    save_checkpoint(last, payload)
    old = bm.run_one(plans[0], "smoke")
    assert old["loaded_from_checkpoint"] and old["per_query"] == stored["per_query"]

    tables = bm.render_tables([out / f"{plans[0].name}.json"], "# header")
    assert tables.startswith("# header") and "paper Table 1" in tables and "synthetic world" in tables
    fig = bm.plot_cmc([first])
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2      # the run and the chance line


def test_summary_lists_runs_orderings_claims_and_both_times(tmp_path):
    records = [_record(wall_time_s=30.0), _baseline("tp", rank1=20.0, wall_time_s=10.0, loaded_from_checkpoint=True)]
    path = bm.write_summary(records, "cpu", {"seed": 0}, 5.0, tmp_path)
    summary = json.loads(path.read_text())
    assert summary["runs"] == [r["run"] for r in records]
    assert (summary["wall_time_s"], summary["runs_wall_time_s"], summary["trained_now"]) == (5.0, 40.0, 1)
    assert not [k for k in summary if k.endswith("seconds") or k == "training_time_s"]
    assert summary["orderings"]["rank1"][0]["ours agrees"] == "yes"     # SSN3D 40.0 > TP 20.0
    claims = by_name(Claim.from_dict(c) for c in summary["claims"])   # the report reads them back as they are
    assert claims == by_name(bm.benchmark_claims(records, "cpu"))
    tp = claims["tables3-5_ssn3d_vs_tp_synthetic_world"]
    assert tp.comparison["effect"] == pytest.approx(20.0) and tp.holds is None   # one seed decides nothing
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- claims

def test_paired_scores_align_queries_by_name_and_drop_queries_without_a_match():
    """a: q0 hit, q1 no match, q2 at rank 3; b lists q2, q0, q1: q2 hit, q0 at rank 2, q1 no match."""
    a = _record(per_query=[{"split": None, "query": ["q0", "q1", "q2"], "first_match_rank": [1, 0, 3],
                            "ap": [1.0, None, 0.5]}])
    b = _record(per_query=[{"split": None, "query": ["q2", "q0", "q1"], "first_match_rank": [1, 2, 0],
                            "ap": [1.0, 0.5, None]}])
    scores = bm.paired_scores([a], [b])
    block = scores["blocks"][None]
    assert block["hits_a"].tolist() == [[1.0, 0.0]] and block["hits_b"].tolist() == [[0.0, 1.0]]
    assert block["ap_a"].tolist() == [[1.0, 0.5]] and block["ap_b"].tolist() == [[0.5, 1.0]]
    assert (scores["queries"], scores["splits"], scores["seeds_a"], scores["seeds_b"]) == (2, 1, 1, 1)
    other = _record(per_query=[{"split": None, "query": ["q0", "q1", "q9"], "first_match_rank": [1, 0, 3],
                                "ap": [1.0, None, 0.5]}])
    with pytest.raises(BenchmarkError, match="test queries differ"):
        bm.paired_scores([a], [other])
    moved = _record(per_query=[{"split": None, "query": ["q0", "q1", "q2"], "first_match_rank": [1, 2, 0],
                                "ap": [1.0, 0.5, None]}])
    with pytest.raises(BenchmarkError, match="without a true match differ"):
        bm.paired_scores([a], [moved])
    with pytest.raises(BenchmarkError, match="different splits"):
        bm.paired_scores([a], [_record(per_query=[{**b["per_query"][0], "split": 3}])])


def _seeds(hits_per_seed, **overrides):
    """One record per seed, each with its own hits (APs follow the hits)."""
    return [_record(seed=k, rank1=5.0 * sum(h), mAP=100 * (0.9 * sum(h) + 0.3 * (20 - sum(h))) / 20,
                    per_query=[_per_query(h)], **overrides) for k, h in enumerate(hits_per_seed)]


def test_one_seed_is_inconclusive_and_says_what_would_decide():
    """20 queries: semi-supervised hits all 20, unsupervised none: +100 points, yet one training
    seed per setting leaves seed-to-seed noise unmeasured."""
    records = _seeds([[1] * 20]) + _seeds([[0] * 20], strategy="unsupervised")
    claim = by_name(bm.benchmark_claims(records, "cpu"))["table1_semi_vs_unsupervised_synthetic_world"]
    assert claim.verdict == "inconclusive" and claim.holds is None
    assert claim.comparison["effect"] == pytest.approx(100.0)
    assert claim.comparison["n"] == {"queries": 20, "seeds_a": 1, "seeds_b": 1}
    assert "1 training seed(s)" in claim.reason and "about 12 seeds per setting" in claim.reason
    assert claim.detail.startswith("semi-supervised rank-1 100.0 vs unsupervised 0.0: effect +100.0 points")


def test_what_would_decide_scales_the_mde_to_ten_points():
    """One seed, MDE 21 from 32 queries: 32 x (21/10)^2 = 141.1, so 142 queries; seeds_needed
    at SD 8.7: 2 x (2.80 x 8.7 / 10)^2 = 11.9, so 12. Three replicates with MDE 20: 3 x 4 = 12."""
    cmp = Comparison(0.0, -15.0, 15.0, 7.5, 21.0, {"queries": 32}, "inconclusive")
    one = bm.what_would_decide(cmp, queries=32, replicates=1)
    assert "about 12 seeds per setting" in one and "about 142 queries" in one and "MDE of 21.0 points" in one
    three = bm.what_would_decide(Comparison(0.0, -15.0, 15.0, 7.1, 20.0, {}, "inconclusive"), 32, 3)
    assert "with 3 replicates per setting; 10 needs about 12" in three
    powered = Comparison(1.0, -2.0, 4.0, 3.0, 8.4, {}, "inconclusive")
    assert "the interval bounds what remains" in bm.what_would_decide(powered, 32, 4)


def test_two_seeds_decide_a_clear_win_and_a_clear_loss():
    win, lose = [1] * 18 + [0] * 2, [0] * 18 + [1] * 2
    records = (_seeds([win, win]) + _seeds([lose, lose], strategy="unsupervised")
               + _seeds([win, win], strategy="supervised"))
    claims = by_name(bm.benchmark_claims(records, "cpu"))
    semi = claims["table1_semi_vs_unsupervised_synthetic_world"]
    assert (semi.verdict, semi.holds) == ("reproduced", True) and semi.comparison["low"] > 0
    assert semi.comparison["effect"] == pytest.approx(80.0)
    unsup = claims["table1_unsupervised_vs_supervised_synthetic_world"]       # the supervised SSN won here
    assert (unsup.verdict, unsup.holds) == ("contradicted", False) and unsup.comparison["high"] < 0
    assert unsup.comparison["n"] == {"queries": 20, "seeds_a": 2, "seeds_b": 2}


def test_a_rank1_tie_stays_inconclusive_whatever_mAP_says():
    """The same hits on every query (two seeds each): rank-1 effect exactly 0; the unsupervised
    runs' APs are lower, which the detail reports but which decides nothing."""
    hits = [1] * 10 + [0] * 10
    semi = _seeds([hits, hits])
    unsup = [_record(seed=k, strategy="unsupervised", rank1=50.0, mAP=30.0,
                     per_query=[_per_query(hits, [0.3] * 20)]) for k in range(2)]
    claim = by_name(bm.benchmark_claims(semi + unsup, "cpu"))["table1_semi_vs_unsupervised_synthetic_world"]
    assert claim.comparison["effect"] == 0.0 and (claim.comparison["low"], claim.comparison["high"]) == (0.0, 0.0)
    assert claim.verdict == "inconclusive" and claim.holds is None and "includes 0" in claim.reason
    assert "mAP 60.0 vs 30.0: effect +30.0 points" in claim.detail and "not deciding" in claim.detail


def test_splits_are_replicates_like_seeds():
    """PKU on two splits, one seed: two replicates per setting, so the rule can decide; n names the
    splits. Both splits differ by +80 points: no spread between the split differences."""
    win, lose = [1] * 18 + [0] * 2, [0] * 18 + [1] * 2

    def on_splits(hits, **kw):
        return _record(dataset="pku_reid_subset", rank1=5.0 * sum(hits), mAP=100 * (0.9 * 18 + 0.3 * 2) / 20
                       if sum(hits) == 18 else 100 * (0.9 * 2 + 0.3 * 18) / 20,
                       per_query=[_per_query(hits, split=k) for k in (0, 1)], **kw)

    claims = by_name(bm.benchmark_claims([on_splits(win), _baseline("tp", **{
        "dataset": "pku_reid_subset", "rank1": 10.0, "mAP": 100 * (0.9 * 2 + 0.3 * 18) / 20,
        "per_query": [_per_query(lose, split=k) for k in (0, 1)]})], "cpu"))
    tp = claims["tables3-5_ssn3d_vs_tp_pku_reid_subset"]
    assert tp.comparison["n"] == {"queries": 40, "splits": 2, "seeds_a": 1, "seeds_b": 1}
    assert tp.comparison["effect"] == pytest.approx(80.0) and tp.comparison["low"] == pytest.approx(80.0)
    assert tp.verdict == "reproduced" and "splits' paired differences" in tp.comparison["method"]
    assert tp.data == "PKU-Reid subset; profile cpu"


def test_each_ssn3d_row_says_whether_its_ssn_learnt():
    """N = 9 parts: learnt means a final SSN loss under 0.1 log 9 = 0.22."""
    records = [_record(final_ssn_loss=0.15), _record(strategy="unsupervised", final_ssn_loss=1.39),
               _record(strategy="supervised", ssn_num_parts=None, first_ssn_loss=0.0, final_ssn_loss=0.0)]
    claims = by_name(bm.benchmark_claims(records, "cpu"))
    first = claims["table1_semi_vs_unsupervised_synthetic_world"].detail
    assert "Semi-supervised's SSN learnt: final SSN loss 0.15 of log 9 = 2.20 (learnt means under 0.22)" in first
    assert "unsupervised's SSN did not learn: final SSN loss 1.39" in first
    assert "supervised has no SSN loss" in claims["table1_unsupervised_vs_supervised_synthetic_world"].detail
    assert "SSN" not in claims.get("tables3-5_ssn3d_vs_tp_synthetic_world", Claim("x", "", "", None)).detail


def test_claims_compare_the_paper_pairs_and_name_their_data():
    records = [_record(rank1=60.0), _record(strategy="unsupervised", rank1=40.0),
               _baseline("tp", rank1=70.0), _record(dataset="pku_reid_subset", run="pku")]
    claims = by_name(bm.benchmark_claims(records, "cpu"))
    table1 = claims["table1_semi_vs_unsupervised_synthetic_world"]
    assert (table1.source, table1.data) == ("Table 1", "synthetic world; profile cpu")
    assert "+5.8 on iLIDS-VID" in table1.statement and table1.comparison["effect"] == pytest.approx(20.0)
    assert claims["tables3-5_ssn3d_vs_tp_synthetic_world"].comparison["effect"] == pytest.approx(-10.0)
    assert "table2_shared_vs_not_shared_synthetic_world" not in claims      # no per-frame classifier run
    assert not [n for n in claims if n.endswith("pku_reid_subset")]        # one run compares nothing
    # the paper's own datasets were not run: their claims are listed, not testable, with the reason
    absolute = [c for c in claims.values() if c.comparison is None]
    assert [c.source for c in absolute] == ["Tables 3-5", "Table 1", "Table 2", "Fig. 3"]
    assert all("not on this machine" in c.reason and c.paper_claim and c.holds is None for c in absolute)
    assert bm.benchmark_claims([], "cpu") == []


def test_lambda_claims_pit_the_small_lambda_against_each_other():
    sweep = [_record(lambda_ssn=0.0, rank1=30.0), _record(lambda_ssn=0.1, rank1=40.0),
             _record(lambda_ssn=1.0, rank1=35.0)]
    claims = by_name(bm.benchmark_claims(sweep, "cpu"))
    assert sorted(n for n in claims if n.startswith("fig3_lambda")) == [
        "fig3_lambda0.1_vs_0_synthetic_world", "fig3_lambda0.1_vs_1_synthetic_world"]
    assert claims["fig3_lambda0.1_vs_0_synthetic_world"].comparison["effect"] == pytest.approx(10.0)
    assert claims["fig3_lambda0.1_vs_1_synthetic_world"].detail.startswith("lambda 0.1 rank-1 40.0 vs lambda 1 35.0")
    no_small = by_name(bm.benchmark_claims([sweep[0], sweep[2]], "cpu"))
    assert not [n for n in no_small if n.startswith(("fig3_lambda", "fig3_ssn_loss"))]


def test_the_ssn_loss_converges_at_the_small_lambda_only_when_every_run_ends_under_a_tenth_of_log_n(tmp_path):
    log9 = math.log(9)
    fast = [_record(lambda_ssn=lam, seed=seed, final_ssn_loss=loss * log9, rank1=40.0)
            for lam in (0.0, 0.1) for seed, loss in enumerate((0.02, 0.04, 0.03))]
    claim = by_name(bm.benchmark_claims(fast, "cpu"))["fig3_ssn_loss_converges_at_lambda0.1_synthetic_world"]
    # margins 8, 6, 7 points of log N: mean 7, t interval over the 3 runs
    assert claim.paper_claim and claim.verdict == "reproduced" and claim.comparison["effect"] == pytest.approx(7.0)
    assert claim.comparison["n"] == {"run per seed": 1, "seeds": 3}
    assert "Final SSN loss at lambda 0.1 in % of log N per run: 2%, 4%, 3%" in claim.detail
    slow = [dict(r, final_ssn_loss=r["final_ssn_loss"] + 0.38 * log9) for r in fast]   # 40-42% of log N
    claim = by_name(bm.benchmark_claims(slow, "cpu"))["fig3_ssn_loss_converges_at_lambda0.1_synthetic_world"]
    assert claim.verdict == "contradicted" and claim.comparison["effect"] == pytest.approx(10.0 - 41.0)
    # what metrics.json stores reads back as the same claims (the report reads the stored ones)
    stored = json.loads(bm.write_summary(slow, "cpu", {}, 1.0, tmp_path).read_text())["claims"]
    assert [Claim.from_dict(c) for c in stored] == bm.benchmark_claims(slow, "cpu")
    scattered = [dict(r, final_ssn_loss=r["final_ssn_loss"] * 15) for r in fast]   # 30-60%: too few runs
    claim = by_name(bm.benchmark_claims(scattered, "cpu"))["fig3_ssn_loss_converges_at_lambda0.1_synthetic_world"]
    assert claim.verdict == "inconclusive" and "more runs would narrow it" in claim.reason


def test_a_run_on_a_paper_dataset_drops_the_not_testable_rows():
    records = [_record(dataset="mars", run="m1"),
               _record(dataset="mars", strategy="unsupervised", rank1=10.0, run="m2")]
    claims = bm.benchmark_claims(records, "full")
    assert [c.name for c in claims] == ["table1_semi_vs_unsupervised_mars"]
    assert claims[0].comparison["effect"] == pytest.approx(30.0) and claims[0].data == "MARS; profile full"


# ---------------------------------------------------------------- the paper's reason for Table 1

WIN, LOSE = [1] * 18 + [0] * 2, [0] * 18 + [1] * 2


def _pose_runs(semi_failed, drop=0.46):
    """Two seeds each: semi-supervised and supervised with all keypoints (both hit 18 of 20), and
    with the keypoints of `drop` of the frames removed (supervised then hits 2, semi-supervised
    `semi_failed`)."""
    return (_seeds([WIN, WIN]) + _seeds([WIN, WIN], strategy="supervised")
            + _seeds([LOSE, LOSE], strategy="supervised", keypoint_drop=drop)
            + _seeds([semi_failed, semi_failed], keypoint_drop=drop))


def test_pose_failure_runs_stay_out_of_the_tables_orderings_and_the_papers_rows():
    records = _pose_runs(LOSE) + _seeds([LOSE, LOSE], strategy="unsupervised")
    claims = by_name(bm.benchmark_claims(records, "cpu"))
    unsup = claims["table1_unsupervised_vs_supervised_synthetic_world"]
    assert unsup.comparison["effect"] == pytest.approx(-80.0) and unsup.comparison["n"]["seeds_b"] == 2
    assert claims["table1_semi_vs_unsupervised_synthetic_world"].comparison["effect"] == pytest.approx(80.0)
    assert bm.orderings(records).set_index("paper's ordering").loc["unsupervised > supervised", "rank1 (second)"] == 90
    table1 = render_markdown("table1", pd.DataFrame(records))
    assert "90.0 ± 0.0 (n=2)" in table1 and "10.0 ± 0.0 (n=2)" in table1 and "(n=4)" not in table1
    assert "no pose in 46% of frames" in bm.label(records[4])


def test_pose_failures_hurt_the_supervised_ssn_and_widen_the_semi_supervised_lead():
    """Supervised: 90 with all keypoints, 10 without a pose in 46% of frames: +80. Semi minus
    supervised: 90 - 90 = 0 with all keypoints, 90 - 10 = +80 with failures: the lead grows by 80."""
    claims = by_name(bm.benchmark_claims(_pose_runs(WIN), "cpu"))
    hurt = claims["table1_pose_failures_hurt_supervised_synthetic_world_drop0.46"]
    assert (hurt.verdict, hurt.source, hurt.paper_claim) == ("reproduced", "Table 1", True)
    assert hurt.comparison["effect"] == pytest.approx(80.0) and "46% of the frames" in hurt.statement
    grows = claims["table1_pose_failures_widen_semi_lead_synthetic_world_drop0.46"]
    assert grows.verdict == "reproduced" and grows.comparison["effect"] == pytest.approx(80.0)
    assert grows.comparison["n"] == {"queries": 20, "seeds_a": 2, "seeds_b": 2}
    assert "+80.0 points with no pose in 46% of frames, +0.0 with all keypoints" in grows.detail


def test_a_lead_that_does_not_grow_is_inconclusive_and_missing_settings_give_no_row():
    """Semi-supervised also falls to 10 with the failures: its lead is 0 both ways, a tie."""
    claims = by_name(bm.benchmark_claims(_pose_runs(LOSE), "cpu"))
    grows = claims["table1_pose_failures_widen_semi_lead_synthetic_world_drop0.46"]
    assert grows.comparison["effect"] == 0.0 and grows.verdict == "inconclusive" and "includes 0" in grows.reason
    without_semi = by_name(bm.benchmark_claims(_pose_runs(LOSE)[:6], "cpu"))
    assert "table1_pose_failures_hurt_supervised_synthetic_world_drop0.46" in without_semi
    assert not [n for n in without_semi if "widen" in n]
    with pytest.raises(BenchmarkError, match="same number of seeds"):
        bm.benchmark_claims(_pose_runs(WIN)[:-1], "cpu")
