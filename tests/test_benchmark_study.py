"""The benchmark study (notebook 04): run specs to engine configs, run names, run records,
orderings and the claims they become, and one tiny run end to end through the engine (trained,
then loaded back)."""
import json

import pytest

from ssn3dlib.reporting.tables import RUN_KEYS, load_runs, render_markdown
from ssn3dlib.studies import benchmark as bm
from ssn3dlib.studies.benchmark import BenchmarkError, RunSpec
from ssn3dlib.studies.toolkit import Claim, by_name


def _record(**overrides):
    """A complete, valid run record (the shape run_one writes)."""
    base = {
        "study": "benchmark", "run": "synthetic_world_ssn3d_semi-supervised_shared_lambda0.1_seed0",
        "dataset": "synthetic_world", "model": "ssn3d", "strategy": "semi-supervised",
        "shared_classifier": True, "lambda_ssn": 0.1, "seed": 0, "profile": "cpu", "epochs": 10,
        "rank1": 40.0, "rank5": 60.0, "rank10": 70.0, "rank20": 90.0, "mAP": 45.0, "ap_definition": "standard",
        "protocol": {"aggregate": "single query/gallery set"}, "cmc": [40.0] * 4 + [60.0] * 5 + [70.0] * 10 + [90.0],
        "chance_rank1": 3.1, "num_query": 32, "num_gallery": 55, "wall_time_s": 12.0, "device": "cpu",
        "loaded_from_checkpoint": False, "config": "bench_synthetic_cpu", "overrides": [],
        "backbone": "resnet18-layer2", "input_size": [64, 32], "clip_len": 4, "config_lambda_ssn": 0.1,
        "first_triplet_loss": 0.8, "final_triplet_loss": 0.3, "first_ssn_loss": 2.2, "final_ssn_loss": 1.7,
    }
    return {**base, **overrides}


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
    assert bm.specs_from_parameters({**single, "runs": None}) == [single]
    specs = bm.specs_from_parameters({**single, "runs": [{"model": "tp"}, {"strategy": "unsupervised", "seed": 1}]})
    assert [(s.model, s.strategy, s.seed) for s in specs] == [("tp", None, 7), ("ssn3d", "unsupervised", 1)]
    with pytest.raises(BenchmarkError, match="runs must be a list"):
        bm.specs_from_parameters({**single, "runs": {"model": "tp"}})


# ---------------------------------------------------------------- run names

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
    path = bm.write_record(_record(rank1=40.123456789), tmp_path)
    stored = json.loads(path.read_text())
    assert set(bm.RECORD_KEYS) <= set(stored) and set(RUN_KEYS) <= set(stored)
    assert stored["rank1"] == 40.1235                       # rounded for stable diffs
    assert not list(tmp_path.glob("*.tmp"))
    table = render_markdown("table1", load_runs([path]))
    assert "semi-supervised (lambda 0.1)" in table and "40.1" in table


@pytest.mark.parametrize("change, words", [
    ({"mAP": 100.5}, "mAP = 100.5 is not a percentage"),
    ({"rank1": -1.0}, "rank1 = -1.0 is not a percentage"),
    ({"rank5": 30.0}, "decrease"),
])
def test_records_with_impossible_numbers_are_refused(tmp_path, change, words):
    with pytest.raises(BenchmarkError, match=words):
        bm.write_record(_record(**change), tmp_path)
    assert not list(tmp_path.iterdir())


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

    again = bm.run_one(plans[0], "smoke")
    assert again["loaded_from_checkpoint"]
    assert {k: again[k] for k in ("rank1", "mAP", "cmc")} == {k: stored[k] for k in ("rank1", "mAP", "cmc")}

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
    assert claims["tables3-5_synthetic_world"].holds is True
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- claims

def test_claims_order_the_settings_and_name_their_data():
    records = [_record(rank1=60.0), _record(strategy="unsupervised", rank1=40.0),
               _baseline("tp", rank1=70.0), _record(dataset="pku_reid_subset", run="pku")]
    claims = by_name(bm.benchmark_claims(records, "cpu"))
    table1 = claims["table1_synthetic_world"]
    assert (table1.source, table1.holds, table1.data) == ("Table 1", True, "synthetic world; profile cpu")
    assert table1.detail == "rank-1/mAP semi-supervised 60.0/45.0 > unsupervised 40.0/45.0"
    assert claims["tables3-5_synthetic_world"].holds is False           # TP beat SSN3D here
    assert claims["tables3-5_synthetic_world"].detail.startswith("rank-1/mAP tp 70.0/45.0 > ssn3d 60.0/45.0")
    assert "table2_synthetic_world" not in claims                        # no per-frame classifier run
    assert not [n for n in claims if n.endswith("pku_reid_subset")]     # one run orders nothing
    # the paper's own datasets were not run: their claims are listed, not testable, with the reason
    absolute = [c for c in claims.values() if c.holds is None]
    assert [c.source for c in absolute] == ["Tables 3-5", "Table 1", "Table 2", "Fig. 3"]
    assert all("not on this machine" in c.reason and c.paper_claim for c in absolute)
    assert bm.benchmark_claims([], "cpu") == []


def test_a_tie_is_not_a_reproduction():
    tied = [_record(rank1=50.0, mAP=40.0), _record(strategy="unsupervised", rank1=50.0, mAP=40.0)]
    assert by_name(bm.benchmark_claims(tied, "cpu"))["table1_synthetic_world"].holds is False
    tied[1]["mAP"] = 30.0                                                # mAP breaks the tie
    assert by_name(bm.benchmark_claims(tied, "cpu"))["table1_synthetic_world"].holds is True


def test_lambda_claim_needs_three_lambdas_and_a_small_positive_best():
    sweep = [_record(lambda_ssn=0.0, rank1=30.0), _record(lambda_ssn=0.1, rank1=40.0)]
    assert "fig3_synthetic_world" not in by_name(bm.benchmark_claims(sweep, "cpu"))
    fig3 = by_name(bm.benchmark_claims(sweep + [_record(lambda_ssn=1.0, rank1=35.0)], "cpu"))["fig3_synthetic_world"]
    assert fig3.holds is True and fig3.detail == "rank-1 by lambda: 0: 30.0, 0.1: 40.0, 1: 35.0"
    best_at_zero = sweep + [_record(lambda_ssn=1.0, rank1=35.0)]
    best_at_zero[0]["rank1"] = 45.0
    assert by_name(bm.benchmark_claims(best_at_zero, "cpu"))["fig3_synthetic_world"].holds is False


def test_a_run_on_a_paper_dataset_drops_the_not_testable_rows():
    records = [_record(dataset="mars", run="m1"),
               _record(dataset="mars", strategy="unsupervised", rank1=10.0, run="m2")]
    claims = bm.benchmark_claims(records, "full")
    assert [c.name for c in claims] == ["table1_mars"]
    assert claims[0].holds is True and claims[0].data == "MARS; profile full"
