"""The benchmark tables: seeds averaged with their spread, the paper's numbers in the right cells."""
import json

import pandas as pd
import pytest

from ssn3dlib.reporting import paper
from ssn3dlib.reporting.tables import RUN_KEYS, build_table, load_runs, render_markdown


def run(**overrides):
    base = dict(dataset="mars", model="ssn3d", strategy="semi-supervised", shared_classifier=True,
                lambda_ssn=0.1, seed=0, profile="cpu", epochs=3, rank1=50.0, rank5=70.0, rank10=80.0,
                rank20=90.0, mAP=40.0, ap_definition="standard")
    return {**base, **overrides}


def test_seeds_are_averaged_with_spread_and_paper_numbers_sit_beside():
    runs = pd.DataFrame([run(seed=0, rank1=50.0), run(seed=1, rank1=60.0),
                         run(strategy="unsupervised", rank1=30.0, mAP=20.0)])
    table = build_table("table1", runs).set_index("setting")
    semi = table.loc["semi-supervised (lambda 0.1)"]
    assert semi["rank-1 (ours)"] == "55.0 ± 7.1 (n=2)"
    assert semi["rank-1 (paper)"] == f"{paper.STRATEGY['mars']['semi-supervised']['rank1']:.1f}"
    assert table.loc["unsupervised (lambda 0.1)", "mAP (paper)"] == "67.5"


def test_tables_pick_their_runs():
    runs = pd.DataFrame([run(), run(shared_classifier=False, rank1=20.0), run(model="tp", strategy="none"),
                         run(lambda_ssn=1.0, rank1=10.0), run(dataset="synthetic_world")])
    t2 = build_table("table2", runs)
    assert set(t2["setting"]) == {"shared (lambda 0.1)", "not shared (lambda 0.1)", "shared (lambda 1)"}
    t35 = build_table("table3-5", runs)
    assert "TP (temporal pooling)" in set(t35["setting"])          # baselines carry no lambda
    assert "not shared" not in " ".join(t35["setting"])
    fig3 = build_table("fig3", runs)
    assert sorted(fig3[fig3["dataset"] == "MARS"]["setting"]) == ["lambda = 0.1", "lambda = 1"]
    synthetic = t35[t35["dataset"] == "synthetic world"]
    assert (synthetic["rank-1 (paper)"] == "–").all()              # no paper number off its datasets


def test_load_runs_refuses_incomplete_files(tmp_path):
    good = tmp_path / "a.json"
    good.write_text(json.dumps(run()))
    assert len(load_runs([good])) == 1
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({k: v for k, v in run().items() if k != "mAP"}))
    with pytest.raises(ValueError, match=r"b.json lacks \['mAP'\]"):
        load_runs([good, bad])
    assert list(load_runs([]).columns)[:len(RUN_KEYS)] == list(RUN_KEYS)


def test_markdown_rendering_names_the_table_and_empty_tables_say_so():
    text = render_markdown("table1", pd.DataFrame([run()]))
    assert text.startswith("### Learning strategy") and "| MARS" in text
    empty = render_markdown("table2", pd.DataFrame([run(model="tp")]))
    assert "No runs yet" in empty


def test_lambda_sweep_runs_stay_out_of_the_main_tables():
    runs = pd.DataFrame([run(config_lambda_ssn=0.1), run(lambda_ssn=1.0, rank1=10.0, config_lambda_ssn=0.1),
                         run(model="tp", strategy="none", config_lambda_ssn=None)])
    t1 = build_table("table1", runs)
    assert list(t1["setting"]) == ["semi-supervised (lambda 0.1)"] and t1["rank-1 (ours)"].iloc[0] == "50.0"
    assert len(build_table("fig3", runs)) == 2
