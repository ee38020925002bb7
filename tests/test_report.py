"""REPORT.md: every study's claims with a verdict, missing studies named with their command."""
import json

import pytest

from ssn3dlib.figures import new_figure, save_figure
from ssn3dlib.reporting.report import (NOT_REPRODUCED, NOT_RUN, NOT_TESTABLE, REPRODUCED, collect_claims,
                                       write_report)


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("SSN3D_REPORTS", str(tmp_path))
    return tmp_path


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def bench_run(reports, name, **kw):
    run = dict(dataset="synthetic_world", model="ssn3d", strategy="semi-supervised", shared_classifier=True,
               lambda_ssn=0.1, seed=0, profile="cpu", epochs=2, rank1=50.0, rank5=60.0, rank10=70.0, rank20=80.0,
               mAP=40.0, ap_definition="standard")
    write(reports / "benchmark" / f"{name}.json", {**run, **kw})


def test_claims_from_each_study_layout(reports):
    write(reports / "random_maps" / "metrics.json", {"profile": "cpu", "claims": {
        "noise_converges": {"paper": "the loss falls fast", "holds": True, "detail": "6/6 runs"},
        "ones_stay_at_log_n": {"paper": "all-ones never converges", "holds": False, "detail": "fell"}}})
    write(reports / "pedestrians" / "metrics.json", {"profile": "cpu", "paper_claim": "maps find parts",
        "datasets": {"real": {"pck": {"unlabelled": {"semi-supervised": {"overall": 0.4}, "chance": {"overall": 0.1}}}}},
        "claims": {"real": {"semi_beats_chance": {"holds": True, "test": "PCK >= 2 x chance", "paper_claim": True},
                            "beats_prior": {"holds": False, "test": "PCK > prior", "paper_claim": False}},
                   "agrees_with_paper": True}})
    write(reports / "misalignment" / "metrics.json", {"profile": "cpu", "verdicts": {
        "mAP": {"verdict": "partly supported", "statement": "C3D degrades; no recovery"}}})
    bench_run(reports, "a", rank1=60.0)
    bench_run(reports, "b", strategy="unsupervised", rank1=40.0)
    bench_run(reports, "c", model="tp", strategy=None, rank1=70.0)
    claims = collect_claims("cpu")
    verdicts = {k: [c.verdict for c in v] for k, v in claims.items()}
    assert verdicts["random_maps"] == [REPRODUCED, NOT_REPRODUCED]
    assert verdicts["amber_abstract"] == [NOT_RUN]
    assert "--only 02_amber_abstract" in claims["amber_abstract"][0].reason
    assert verdicts["pedestrians"] == [REPRODUCED, "fails"]
    assert claims["pedestrians"][0].data.startswith("PKU-Reid")
    assert "semi-supervised 0.40, chance 0.10" in claims["pedestrians"][0].ours
    assert claims["pedestrians"][1].paper == "not in the paper"
    assert verdicts["misalignment"] == [NOT_REPRODUCED]
    bench = {c.source: c for c in claims["benchmark"] if c.data.startswith("synthetic")}
    assert bench["Table 1"].verdict == REPRODUCED
    assert "semi-supervised 60.0/40.0 > unsupervised 40.0/40.0" in bench["Table 1"].ours
    assert bench["Tables 3-5"].verdict == NOT_REPRODUCED                # TP beat SSN3D here
    absolute = [c for c in claims["benchmark"] if c.verdict == NOT_TESTABLE]
    assert absolute and "not on this machine" in absolute[0].reason


def test_report_files_link_figures_and_render_tables(reports):
    fig, ax = new_figure(2, 2)
    ax.plot([0, 1])
    save_figure(fig, reports / "random_maps" / "curves.png")
    write(reports / "random_maps" / "metrics.json", {"profile": "cpu", "wall_time_s": 42.0, "claims": {}})
    bench_run(reports, "a")
    md, html = write_report("cpu")
    text = md.read_text()
    assert "![curves](random_maps/curves.png)" in text
    assert "Wall time of the cpu run: 42 s." in text
    assert "### Learning strategy of the SSN (paper Table 1)" in text
    assert text.count("| " + NOT_RUN) >= 3                              # 02, 03, 05 and the empty 01 claims
    assert "<table>" in html.read_text() and 'src="random_maps/curves.png"' in html.read_text()


def test_a_tie_is_not_a_reproduction(reports):
    bench_run(reports, "a", rank1=50.0, mAP=40.0)
    bench_run(reports, "b", strategy="unsupervised", rank1=50.0, mAP=40.0)
    table1 = [c for c in collect_claims("cpu")["benchmark"] if c.source == "Table 1" and c.data.startswith("synth")]
    assert table1[0].verdict == NOT_REPRODUCED
    bench_run(reports, "b", strategy="unsupervised", rank1=50.0, mAP=30.0)    # mAP breaks the tie
    table1 = [c for c in collect_claims("cpu")["benchmark"] if c.source == "Table 1" and c.data.startswith("synth")]
    assert table1[0].verdict == REPRODUCED
