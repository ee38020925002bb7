"""REPORT.md: every study's claims list read as it is, with a verdict; missing studies named with their command."""
import json

import pytest

from ssn3dlib.figures import new_figure, save_figure
from ssn3dlib.reporting.report import (
    FAILS,
    HOLDS,
    NOT_REPRODUCED,
    NOT_RUN,
    NOT_TESTABLE,
    REPRODUCED,
    collect_claims,
    write_report,
)
from ssn3dlib.studies.toolkit import Claim, claims_to_records


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("SSN3D_REPORTS", str(tmp_path))
    return tmp_path


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def metrics(reports, study, *claims, **extra):
    write(reports / study / "metrics.json", {"profile": "cpu", "claims": claims_to_records(claims), **extra})


def bench_run(reports, name, **kw):
    run = dict(dataset="synthetic_world", model="ssn3d", strategy="semi-supervised", shared_classifier=True,
               lambda_ssn=0.1, seed=0, profile="cpu", epochs=2, rank1=50.0, rank5=60.0, rank10=70.0, rank20=80.0,
               mAP=40.0, ap_definition="standard")
    write(reports / "benchmark" / f"{name}.json", {**run, **kw})


def test_every_study_is_read_from_its_claims_list(reports):
    metrics(reports, "random_maps",
            Claim("fast", "Fig. 5", "the loss falls fast", True, "6/6 runs", "random maps; profile cpu"),
            Claim("ones", "Fig. 5", "all-ones never converges", False, "fell", "random maps; profile cpu"))
    metrics(reports, "pedestrians",
            Claim("beats_chance", "Fig. 4", "maps find parts", True, "PCK 0.40 >= 2 x chance 0.10", "PKU crops"),
            Claim("beats_prior", "Fig. 4", "", False, "PCK 0.40 < prior 0.50", "PKU crops", paper_claim=False),
            Claim("prior_control", "Fig. 4", "", True, "PCK 0.60 > prior 0.50", "synthetic", paper_claim=False))
    metrics(reports, "benchmark",
            Claim("table1_mars", "Table 1", "semi-supervised is best", None, "no run", "MARS",
                  reason="the images are not on this machine"))
    write(reports / "misalignment" / "metrics.json", {"profile": "cpu", "claims": {"old": {"holds": True}}})
    claims = collect_claims("cpu")
    verdicts = {k: [c.verdict for c in v] for k, v in claims.items()}
    assert verdicts == {"random_maps": [REPRODUCED, NOT_REPRODUCED], "amber_abstract": [NOT_RUN],
                        "pedestrians": [REPRODUCED, FAILS, HOLDS], "benchmark": [NOT_TESTABLE],
                        "misalignment": [NOT_RUN]}
    fast = claims["random_maps"][0]
    assert (fast.source, fast.paper, fast.ours, fast.data) == ("Fig. 5", "the loss falls fast", "6/6 runs",
                                                               "random maps; profile cpu")
    assert "--only 02_amber_abstract" in claims["amber_abstract"][0].reason
    extra = claims["pedestrians"][1]                   # our own check: labelled apart, never the paper's
    assert (extra.source, extra.paper) == ("Fig. 4 (our extra check)", "not in the paper")
    assert claims["benchmark"][0].reason == "the images are not on this machine"
    old = claims["misalignment"][0].reason             # a metrics.json of the old layout is not read as claims
    assert "no claims list" in old and "--only 05_misalignment" in old


def test_a_malformed_claim_names_its_study(reports):
    write(reports / "amber_abstract" / "metrics.json",
          {"claims": [{**Claim("a", "Fig. 6", "x", True).to_dict(), "verdict": "reproduced"}]})
    with pytest.raises(ValueError, match=r"amber_abstract/metrics.json: claim 'a' has unknown keys \['verdict'\]"):
        collect_claims("cpu")


def test_report_files_link_figures_render_tables_and_times(reports):
    fig, ax = new_figure(2, 2)
    ax.plot([0, 1])
    save_figure(fig, reports / "random_maps" / "curves.png")
    metrics(reports, "random_maps", wall_time_s=42.0)
    metrics(reports, "benchmark", Claim("t", "Table 1", "semi | best", False, "ours", "synthetic world; profile cpu"),
            wall_time_s=100.0, runs_wall_time_s=90.0)
    bench_run(reports, "a")
    md, html = write_report("cpu")
    text = md.read_text()
    assert "![curves](random_maps/curves.png)" in text
    assert "Wall time of the cpu run: 42 s." in text
    assert "Wall time of the cpu run: 100 s (its trainings: 90 s in total;" in text
    assert "| Table 1 | semi \\| best | ours | synthetic world; profile cpu | not reproduced |" in text
    assert "### Learning strategy of the SSN (paper Table 1)" in text
    assert text.count("| " + NOT_RUN) == 4                              # 02, 03, 05 and the empty 01 claims
    assert "Verdicts: 4 not run, 1 not reproduced." in text
    assert "<table>" in html.read_text() and 'src="random_maps/curves.png"' in html.read_text()
