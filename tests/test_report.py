"""REPORT.md: every study's claims list read as it is; a claim with a comparison shows its effect, 95%
interval, n, MDE and verdict, recomputable from the per-unit records; one without shows no verdict."""
import json
import re

import numpy as np
import pytest

from ssn3dlib.figures import new_figure, save_figure
from ssn3dlib.paths import notebooks_dir, profile_params_file
from ssn3dlib.reporting.report import (
    FAILS,
    HOLDS,
    NO_INTERVAL,
    NONE,
    NOT_RUN,
    NOT_TESTABLE,
    collect_claims,
    format_effect,
    format_n,
    render_report,
    write_report,
)
from ssn3dlib.studies.toolkit import (
    CONTRADICTED,
    INCONCLUSIVE,
    REPRODUCED,
    Claim,
    against_reference,
    claims_to_records,
    compare,
)


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


def claims_table(text):
    """{(source, the paper says): {column: cell}} from the report's claims table."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split(" | ")))) for line in lines[1:]
            if not line.startswith("| ---")]
    assert "effect [95% CI]" in header
    return {(row["source"], row["the paper says"]): row for row in rows}


def hits(n_hit, units=20, seeds=2):
    """(seeds, units) rank-1 hits: the first n_hit units matched, in every seed."""
    return [[1.0] * n_hit + [0.0] * (units - n_hit)] * seeds


def test_every_study_is_read_from_its_claims_list(reports):
    metrics(reports, "random_maps",
            Claim("fast", "Fig. 5", "the loss falls fast", True, "6/6 runs", "random maps; profile cpu"),
            Claim("ones", "Fig. 5", "all-ones never converges", False, "fell", "random maps; profile cpu"))
    metrics(reports, "pedestrians",
            Claim("beats_chance", "Fig. 4", "maps find parts", None, "PCK 0.40 vs chance 0.10", "PKU crops",
                  comparison=compare(hits(8), hits(2), unit="crops").to_dict()),
            Claim("beats_prior", "Fig. 4", "", None, "PCK 0.40 < prior 0.50", "PKU crops", paper_claim=False,
                  reason="about 80 crops would decide it (MDE 1/sqrt(n))",
                  comparison=compare(hits(8), hits(10), unit="crops").to_dict()),
            Claim("prior_control", "Fig. 4", "", True, "PCK 0.60 > prior 0.50", "synthetic", paper_claim=False))
    metrics(reports, "benchmark",
            Claim("table1_mars", "Table 1", "semi-supervised is best", None, "no run", "MARS",
                  reason="the images are not on this machine"))
    write(reports / "misalignment" / "metrics.json", {"profile": "cpu", "claims": {"old": {"holds": True}}})
    claims = collect_claims("cpu")
    verdicts = {k: [c.verdict for c in v] for k, v in claims.items()}
    assert verdicts == {"random_maps": [NO_INTERVAL, NO_INTERVAL], "amber_abstract": [NOT_RUN],
                        "pedestrians": [REPRODUCED, INCONCLUSIVE, NO_INTERVAL], "benchmark": [NOT_TESTABLE],
                        "misalignment": [NOT_RUN]}
    fast = claims["random_maps"][0]
    assert (fast.source, fast.paper, fast.ours, fast.data) == ("Fig. 5", "the loss falls fast", "6/6 runs",
                                                               "random maps; profile cpu")
    assert (fast.effect, fast.n, fast.mde) == (NONE, NONE, NONE)
    assert "--only 02_amber_abstract" in claims["amber_abstract"][0].reason
    extra = claims["pedestrians"][1]                   # our own check: labelled apart, never the paper's
    assert (extra.source, extra.paper, extra.paper_claim) == ("Fig. 4 (our extra check)", "not in the paper", False)
    assert extra.reason == "about 80 crops would decide it (MDE 1/sqrt(n))"   # the study says what decides it
    assert claims["benchmark"][0].reason == "the images are not on this machine"
    old = claims["misalignment"][0].reason             # a metrics.json of the old layout is not read as claims
    assert "no claims list" in old and "--only 05_misalignment" in old


def test_a_malformed_claim_or_comparison_names_its_study(reports):
    write(reports / "amber_abstract" / "metrics.json",
          {"claims": [{**Claim("a", "Fig. 6", "x", True).to_dict(), "verdict": "reproduced"}]})
    with pytest.raises(ValueError, match=r"amber_abstract/metrics.json: claim 'a' has unknown keys \['verdict'\]"):
        collect_claims("cpu")
    comparison = {**compare(hits(8), hits(2)).to_dict(), "p_value": 0.01}
    write(reports / "amber_abstract" / "metrics.json",
          {"claims": [{**Claim("a", "Fig. 6", "x", None).to_dict(), "comparison": comparison}]})
    with pytest.raises(ValueError, match=r"amber_abstract/metrics.json: .*p_value"):
        collect_claims("cpu")


def test_every_verdict_is_recomputed_from_the_per_unit_records(reports):
    """Per-unit scores kept beside the claims; the report's effect, interval, n, MDE and verdict are
    what compare / against_reference give on them, with the hand-known cases: a clear win, a clear
    loss, a tie, one seed, and our own check against a fixed reference."""
    per_unit = {"win": (hits(15), hits(5)), "loss": (hits(5), hits(15)), "tie": (hits(9), hits(9)),
                "one_seed": (hits(20, seeds=1), hits(0, seeds=1))}
    claims = [Claim(name, "Table 1", f"paper says {name}", None, f"we find {name}", "synthetic world",
                    comparison=compare(a, b).to_dict()) for name, (a, b) in per_unit.items()]
    claims.append(Claim("above_chance", "Fig. 4", "", None, "we find above chance", "crops", paper_claim=False,
                        comparison=against_reference(hits(9, units=12), 0.25, unit="crops").to_dict()))
    metrics(reports, "benchmark", *claims, per_unit={k: {"a": a, "b": b} for k, (a, b) in per_unit.items()},
            crops=hits(9, units=12))
    rows = {paper: row for (_, paper), row in claims_table(render_report("cpu", reports)).items()}

    stored = json.loads((reports / "benchmark" / "metrics.json").read_text())    # recompute from the file
    recomputed = {name: compare(np.array(r["a"]), np.array(r["b"])) for name, r in stored["per_unit"].items()}
    recomputed["above_chance"] = against_reference(np.array(stored["crops"]), 0.25, unit="crops")
    for name, cmp in recomputed.items():
        row = rows["not in the paper" if name == "above_chance" else f"paper says {name}"]
        assert (row["effect [95% CI]"], row["n"], row["MDE"]) == (format_effect(cmp), format_n(cmp.n),
                                                                   f"{cmp.mde:.1f}")
    verdicts = {name: rows[f"paper says {name}"]["verdict"] for name in per_unit}
    assert verdicts["win"] == f"**{REPRODUCED}**" and verdicts["loss"] == f"**{CONTRADICTED}**"
    assert rows["paper says win"]["effect [95% CI]"].startswith("+50.0 [+")           # 15/20 - 5/20
    assert rows["paper says loss"]["effect [95% CI]"].startswith("-50.0 [-")
    assert rows["paper says win"]["n"] == "20 queries, 2 seeds each"
    assert rows["paper says tie"]["effect [95% CI]"] == "+0.0 [+0.0, +0.0]"             # a tie: never broken
    assert verdicts["tie"] == f"**{INCONCLUSIVE}**: the 95% interval includes 0"
    one = rows["paper says one_seed"]                  # every unit won, still no verdict from one seed
    assert one["effect [95% CI]"] == "+100.0 [+100.0, +100.0]" and one["n"] == "20 queries, 1 seed each"
    assert one["verdict"].startswith(f"**{INCONCLUSIVE}**: 1 training seed(s) on one side")
    check = rows["not in the paper"]                   # 9/12 - 25 points, our own check
    assert check["source"] == "Fig. 4 (our extra check)" and check["verdict"] == f"**{HOLDS}**"
    assert check["effect [95% CI]"].startswith("+50.0") and check["n"] == "12 crops, 2 seeds"


def test_a_paper_claim_without_a_comparison_is_never_reproduced(reports):
    metrics(reports, "random_maps",
            Claim("old_pass", "Fig. 5", "the loss falls fast", True, "6/6 runs", "random maps"),
            Claim("old_fail", "Fig. 5", "all-ones never converges", False, "fell", "random maps"),
            Claim("old_check", "Fig. 5", "", False, "control failed", "random maps", paper_claim=False),
            Claim("lost", "Fig. 5", "no images", None, "", "", reason="the images are not here"))
    metrics(reports, "pedestrians",
            Claim("measured", "Fig. 4", "maps find parts", None, "", "",
                  comparison=compare(hits(15), hits(5), unit="crops").to_dict()),
            Claim("check", "Fig. 4", "", None, "", "", paper_claim=False,
                  comparison=compare(hits(5), hits(15), unit="crops").to_dict()))
    text = render_report("cpu", reports)
    rows = {paper: row for (_, paper), row in claims_table(text).items() if paper != "not in the paper"}
    checks = {source: row for (source, paper), row in claims_table(text).items() if paper == "not in the paper"}
    for statement in ("the loss falls fast", "all-ones never converges"):
        assert rows[statement]["verdict"] == f"**{NO_INTERVAL}**"
        assert (rows[statement]["effect [95% CI]"], rows[statement]["n"], rows[statement]["MDE"]) == (NONE,) * 3
    assert checks["Fig. 5 (our extra check)"]["verdict"] == f"**{NO_INTERVAL}**"
    assert checks["Fig. 4 (our extra check)"]["verdict"] == f"**{FAILS}**"
    assert rows["no images"]["verdict"] == f"**{NOT_TESTABLE}**: the images are not here"
    assert "- The paper's claims: 1 reproduced, 2 no interval yet, 1 not testable here, 3 not run." in text
    assert f"- Our own checks: 1 {FAILS}, 1 {NO_INTERVAL}." in text
    assert sum(row["verdict"] == f"**{REPRODUCED}**" for row in rows.values()) == 1     # only the measured one


def test_report_files_state_the_rule_link_figures_render_tables_and_times(reports):
    fig, ax = new_figure(2, 2)
    ax.plot([0, 1])
    save_figure(fig, reports / "random_maps" / "curves.png")
    metrics(reports, "random_maps", wall_time_s=42.0, findings=["No setting | converges late."])
    metrics(reports, "benchmark", Claim("t", "Table 1", "semi | best", None, "ours", "synthetic world; profile cpu",
                                        comparison=compare(hits(5), hits(15)).to_dict()),
            wall_time_s=100.0, runs_wall_time_s=90.0)
    bench_run(reports, "a")
    md, html = write_report("cpu")
    text = md.read_text()
    assert "## How to read a verdict" in text and "(2.80 when they are many)" in text
    assert "fewer than 2 training seeds: one training seed decides nothing" in text
    assert "![curves](random_maps/curves.png)" in text
    assert "Wall time of the cpu run: 42 s.\n\nFindings:\n- No setting \\| converges late." in text
    assert "Wall time of the cpu run: 100 s (its trainings: 90 s in total;" in text
    assert "| Table 1 | semi \\| best | ours (synthetic world; profile cpu) | -50.0 [" in text
    assert "### Learning strategy of the SSN (paper Table 1)" in text
    # cpu: 02, 03, 05 and the empty 01 claims; extended: one per notebook of the checkout's params/extended/
    assert text.count(f"| **{NOT_RUN}**") == 4 + len(list((notebooks_dir() / "params" / "extended").glob("*.yaml")))
    assert "- The paper's claims: 1 contradicted, 4 not run." in text and "- Our own checks: none." in text
    assert "<table>" in html.read_text() and 'src="random_maps/curves.png"' in html.read_text()


def test_the_extended_profile_stands_in_its_own_table_with_its_own_records(reports):
    cmp = compare(hits(15), hits(5)).to_dict()
    metrics(reports, "benchmark", Claim("t", "Table 1", "semi beats tp", None, "ours", "profile cpu",
                                        comparison=cmp), runs=["a"])
    bench_run(reports, "a", rank1=11.0)
    bench_run(reports, "stale", rank1=99.0, model="c3d", strategy=None)   # left by an older run: not listed
    write(reports / "extended" / "benchmark" / "metrics.json",
          {"profile": "extended", "runs": ["b"], "claims": claims_to_records(
              [Claim("t", "Table 1", "semi beats tp", None, "ours", "profile extended",
                     comparison=compare(hits(16), hits(5)).to_dict())])})
    write(reports / "extended" / "benchmark" / "b.json",
          {**json.loads((reports / "benchmark" / "a.json").read_text()), "rank1": 22.0, "profile": "extended"})
    fig, ax = new_figure(2, 2)
    save_figure(fig, reports / "extended" / "benchmark" / "cmc.png")
    same = Claim("u", "Fig. 4", "parts are found", None, "ours", "profile cpu", comparison=cmp)
    metrics(reports, "pedestrians", same)
    write(reports / "extended" / "pedestrians" / "metrics.json",
          {"profile": "extended", "claims": claims_to_records([Claim("u", "Fig. 4", "parts are found", None, "ours",
                                                                     "profile extended", comparison=cmp)])})
    md, _ = write_report("extended")                  # either committed profile writes the one report
    assert md == reports / "REPORT.md"
    text = md.read_text()
    assert text.startswith("# SSN3D study report (cpu and extended profiles)")
    assert "Verdicts, cpu profile:" in text and "Verdicts, extended profile:" in text
    cpu_table, extended_table = (part.split("\n## ")[0] for part in text.split("## Claims, ")[1:3])
    assert cpu_table.startswith("cpu profile: regenerated by `make report`")
    assert extended_table.startswith("extended profile: the larger designs")
    assert "ours (profile cpu)" in cpu_table and "ours (profile extended)" in extended_table
    assert "profile extended" not in cpu_table and "profile cpu" not in extended_table
    # the pedestrians row has the same numbers in both: shown once, and the extended table says so
    assert "parts are found" in cpu_table and "parts are found" not in extended_table
    assert "1 row(s) that the table above already shows with the same numbers are not repeated." in extended_table
    bench = text.split("## Video re-ID benchmarks")[1]
    cpu_part, extended_part = bench.split("### cpu profile")[1].split("### extended profile")
    rank1 = re.compile(r"\| semi-supervised \(lambda 0\.1\) *\| *(\d+) \|")
    assert rank1.findall(cpu_part) == ["11"]                           # only the records metrics.json lists
    assert "99" not in cpu_part
    assert rank1.findall(extended_part) == ["22"] and "![cmc](extended/benchmark/cmc.png)" in extended_part
    uncovered = [nb.stem for nb in sorted(notebooks_dir().glob("*.ipynb"))
                 if not profile_params_file(nb.stem, "extended").is_file()]
    assert uncovered and not [stem for stem in uncovered if stem in extended_table]   # the extended profile lacks them
    assert "`ssn3d studies run --profile extended --only 05_misalignment`" in extended_table
