"""reports/REPORT.md (and REPORT.html): every claim of the paper beside our number, assembled
from the studies' metrics.json files (their tables and figures beside).

Every study lists its claims in its metrics.json under ``claims``, as records of the toolkit's
``Claim`` (``ssn3dlib.studies.toolkit.claims``); the report reads that list as it is, with no
per-study code. Each row says: the paper's statement or number, ours (the claim's detail), the
data and profile it came from, and a verdict: "reproduced", "not reproduced", or "not testable
here" with the reason. A study's own checks (``paper_claim`` false) are labelled apart and hold
or fail, never counted as the paper's. Claims are read, never recomputed: the notebooks compute
and assert them; a missing metrics.json (or one without a claims list) gives a "not run" row
naming the command that produces it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from ..paths import reports_dir, study_dir
from ..studies.toolkit import METRICS_FILE, WALL_TIME_KEY, Claim, claims_from_records, read_json
from ..studies.toolkit.records import RUNS_WALL_TIME_KEY
from . import paper
from .tables import load_runs, render_markdown

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE, NOT_RUN = ("reproduced", "not reproduced", "not testable here",
                                                     "not run")
#: Verdicts of a study's own checks (paper_claim false): they hold or fail, and are not the paper's.
HOLDS, FAILS = "holds", "fails"
#: Added to the source of a study's own check.
EXTRA_CHECK = " (our extra check)"


@dataclass(frozen=True)
class Row:
    """One line of the report's claims table."""

    source: str          # paper figure / table
    paper: str           # the paper's statement or number
    ours: str            # our number or finding
    data: str            # data and profile it came from
    verdict: str
    reason: str = ""

    @classmethod
    def of(cls, claim: Claim) -> "Row":
        if claim.holds is None:
            verdict = NOT_TESTABLE
        elif claim.paper_claim:
            verdict = REPRODUCED if claim.holds else NOT_REPRODUCED
        else:
            verdict = HOLDS if claim.holds else FAILS
        source = claim.source if claim.paper_claim else claim.source + EXTRA_CHECK
        return cls(source, claim.statement, claim.detail, claim.data, verdict, claim.reason)


@dataclass(frozen=True)
class Study:
    name: str            # study_dir name
    notebook: str
    title: str
    figure: str          # the paper's figure / tables it reproduces


STUDIES = (
    Study("random_maps", "01_random_maps", "Random data", "Fig. 5"),
    Study("amber_abstract", "02_amber_abstract", "Amber Abstract (unsupervised parts)", "Fig. 6"),
    Study("pedestrians", "03_pedestrians", "Pedestrians (semi-supervised attention)", "Fig. 4"),
    Study("benchmark", "04_benchmark", "Video re-ID benchmarks", "Tables 1-5, Fig. 3"),
    Study("misalignment", "05_misalignment", "Misalignment (the central claim)", "Sec. 3 claim"),
)
#: Figures that are not a notebook's: the attention explorer's views of benchmark checkpoints.
EXPLORER = Study("explorer", "04_benchmark", "Attention explorer views (SSN3D checkpoints of notebook 04)",
                 "Fig. 4 style")


def _not_run(study: Study, profile: str, why: str = "") -> Row:
    return Row(study.figure, "", "", "", NOT_RUN,
               f"{why}run `ssn3d studies run --profile {profile} --only {study.notebook}`")


def study_claims(study: Study, profile: str) -> List[Row]:
    """The rows of one study: its metrics.json's claims, or one "not run" row saying why not."""
    metrics = read_json(study_dir(study.name, profile, create=False) / METRICS_FILE)
    if metrics is None:
        return [_not_run(study, profile)]
    records = metrics.get("claims")
    if not isinstance(records, list):
        return [_not_run(study, profile, f"its {METRICS_FILE} holds no claims list (an older notebook wrote it); ")]
    if not records:
        return [_not_run(study, profile, "it found nothing to test; ")]
    try:
        claims = claims_from_records(records)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{study.name}/{METRICS_FILE}: {err}") from None
    return [Row.of(c) for c in claims]


def collect_claims(profile: str = "cpu") -> Dict[str, List[Row]]:
    """{study name: rows}, in the studies' order."""
    return {study.name: study_claims(study, profile) for study in STUDIES}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_report(profile: str = "cpu", root: Optional[Path] = None) -> str:
    """The markdown report; image links are relative to the report's folder (reports/ or
    reports/<profile>/)."""
    root = Path(root) if root is not None else (reports_dir() if profile == "cpu" else reports_dir() / profile)
    claims = collect_claims(profile)
    counts = pd.Series([c.verdict for rows in claims.values() for c in rows]).value_counts()
    lines = [f"# SSN3D study report ({profile} profile)", "",
             f"Regenerated by `ssn3d studies run --profile {profile}` from the studies' `metrics.json` files; "
             "do not edit by hand. Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "",
             "| # | source | the paper says | we find | data, profile | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    number = 0
    for rows in claims.values():
        for c in rows:
            number += 1
            verdict = c.verdict + (f" ({c.reason})" if c.reason else "")
            lines.append(f"| {number} | {_cell(c.source)} | {_cell(c.paper)} | {_cell(c.ours)} | {_cell(c.data)} "
                         f"| {_cell(verdict)} |")
    for study in STUDIES + (EXPLORER,):
        folder = study_dir(study.name, profile, create=False)
        if study is EXPLORER and not any(folder.glob("*.png")):
            continue
        lines += ["", f"## {study.title} ({study.figure})", "",
                  f"Notebook `notebooks/{study.notebook}.ipynb`; outputs in `{os.path.relpath(folder, root)}/`."]
        metrics = read_json(folder / METRICS_FILE) or {}
        wall, trained = metrics.get(WALL_TIME_KEY), metrics.get(RUNS_WALL_TIME_KEY)
        if wall is not None:
            lines.append(f"Wall time of the {profile} run: {float(wall):.0f} s"
                         + (f" (its trainings: {float(trained):.0f} s in total; runs found finished on disk "
                            f"are loaded, not retrained)" if trained else "") + ".")
        if study.name == "benchmark":
            files = [p for p in sorted(folder.glob("*.json")) if p.name != METRICS_FILE]
            if files:
                runs = load_runs(files)
                for table in paper.TABLES:
                    lines += ["", render_markdown(table, runs)]
        for image in sorted(folder.glob("*.png")):
            lines += ["", f"![{image.stem}]({os.path.relpath(image, root)})"]
    return "\n".join(lines) + "\n"


def explorer_figures(profile: str = "cpu") -> List[Path]:
    """Attention explorer views of the benchmark's semi-supervised SSN3D checkpoints (one per
    dataset), saved under <study_dir("explorer")>; none when no such checkpoint exists."""
    import matplotlib.pyplot as plt

    from ..explorer import attention_figure, load_run
    from ..figures import save_figure

    runs_root = reports_dir() / "runs" / profile / "benchmark"
    records = study_dir("benchmark", profile, create=False)
    out = []
    for ckpt in sorted(runs_root.glob("*_ssn3d_semi-supervised_shared_*_seed0/checkpoints/last.pt")):
        run = ckpt.parents[1].name
        record = read_json(records / f"{run}.json") or {}
        if record.get("lambda_ssn") != record.get("config_lambda_ssn", record.get("lambda_ssn")):
            continue          # a Fig. 3 sweep run: the main-lambda run already shows this dataset
        try:
            loaded = load_run(ckpt, name=run)
        except (ValueError, FileNotFoundError, OSError) as err:   # dataset gone: skip, say why
            print(f"explorer view of {run} skipped: {err}")
            continue
        fig = attention_figure([loaded], "query", 0, frames=[0, 1, 2, 3])
        out.append(save_figure(fig, study_dir("explorer", profile) / f"{run}.png"))
        plt.close(fig)
    return out


def write_report(profile: str = "cpu") -> List[Path]:
    """Write REPORT.md and REPORT.html beside the profile's study folders; returns both paths."""
    import markdown

    root = reports_dir() if profile == "cpu" else reports_dir() / profile
    root.mkdir(parents=True, exist_ok=True)
    explorer_figures(profile)
    text = render_report(profile, root)
    md = root / "REPORT.md"
    md.write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    html = root / "REPORT.html"
    html.write_text("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>SSN3D study report</title>"
                    "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
                    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:100%}</style>"
                    f"</head><body>\n{body}\n</body></html>\n")
    return [md, html]
