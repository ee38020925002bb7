"""reports/REPORT.md (and REPORT.html): every claim of the paper beside our measured effect,
assembled from the studies' metrics.json files (their tables and figures beside).

Every study lists its claims in its metrics.json under ``claims``, as records of the toolkit's
``Claim`` (``ssn3dlib.studies.toolkit.claims``); the report reads that list as it is, with no
per-study code. A claim with a ``comparison`` (``statistics.Comparison.to_dict()``) shows its
effect with the 95% interval, n (units, seeds or splits), minimum detectable effect and the
verdict of ``statistics.verdict_rule``: reproduced, contradicted or inconclusive (with what
would decide it). A paper claim without a comparison has no verdict: it is shown as "no interval
yet" and counted apart, never as reproduced or not; one the data cannot test is "not testable
here" with its reason. A study's own checks (``paper_claim`` false) follow the same rule as
holds / fails / inconclusive, labelled and counted apart from the paper's claims. Claims are
read, never recomputed: the studies compute them from per-unit records they keep beside their
metrics.json; a missing metrics.json (or one without a claims list) gives a "not run" row
naming the command that produces it.

One report shows the committed profiles (``paths.REPORTED_PROFILES``): the cpu profile's claims,
which `make report` regenerates within its 20 minutes, then the extended profile's, read from
the committed records of `ssn3d studies run --profile extended` (the larger designs of the
studies that have them), each in its own table with its own verdict counts.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import InputError
from ..paths import (
    PARTIAL_PROFILES,
    REPORTED_PROFILES,
    CheckoutRequired,
    profile_runs,
    report_root,
    reports_dir,
    study_dir,
)
from ..studies.toolkit import METRICS_FILE, WALL_TIME_KEY, Claim, claims_from_records, read_json
from ..studies.toolkit.records import FINDINGS_KEY, RUNS_WALL_TIME_KEY
from ..studies.toolkit.statistics import (
    CONFIDENCE,
    CONTRADICTED,
    INCONCLUSIVE,
    MIN_SEEDS,
    POWER,
    REPRODUCED,
    Comparison,
    mde_factor,
    optional_comparison,
)
from . import paper
from .tables import load_runs, render_markdown

#: Verdicts of a paper claim without a measured effect (no comparison).
NO_INTERVAL, NOT_TESTABLE, NOT_RUN = "no interval yet", "not testable here", "not run"
#: Verdicts of a study's own checks (paper_claim false) with a comparison: reproduced and
#: contradicted become holds and fails; they are not the paper's.
HOLDS, FAILS = "holds", "fails"
CHECK_VERDICTS = {REPRODUCED: HOLDS, CONTRADICTED: FAILS, INCONCLUSIVE: INCONCLUSIVE}
#: Every verdict a row can carry, in the order the counts list them.
ORDER = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, HOLDS, FAILS, NO_INTERVAL, NOT_TESTABLE, NOT_RUN)
#: Added to the source of a study's own check.
EXTRA_CHECK = " (our extra check)"
#: The effect, n and MDE cells of a row without a comparison.
NONE = "–"


def _signed(x: float) -> str:
    return f"{x:+.1f}"


def format_effect(cmp: Comparison) -> str:
    """'+8.0 [+3.1, +12.9]': the effect and its 95% interval."""
    return f"{_signed(cmp.effect)} [{_signed(cmp.low)}, {_signed(cmp.high)}]"


def format_n(n: Dict[str, int]) -> str:
    """'37 queries, 2 seeds each' from a comparison's n ({unit: .., seeds_a: .., seeds_b: ..},
    {unit: .., seeds: ..}, or any other counts such as splits)."""
    parts = []
    for key, value in n.items():
        if key == "seeds_b" and "seeds_a" in n:
            continue
        if key == "seeds_a" and "seeds_b" in n:
            a, b = n["seeds_a"], n["seeds_b"]
            parts.append(f"{a} seed{'s' * (a != 1)} each" if a == b else f"{a} vs {b} seeds")
        else:
            parts.append(f"{value} {key.replace('_', ' ')}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    """One line of the report's claims table; effect, n and mde are NONE without a comparison."""

    source: str          # paper figure / table
    paper: str           # the paper's statement or number
    ours: str            # our number or finding (the claim's detail)
    data: str            # data and profile it came from
    verdict: str
    reason: str = ""
    effect: str = NONE   # effect [95% CI]
    n: str = NONE
    mde: str = NONE
    paper_claim: bool = True

    @property
    def key(self) -> tuple:
        """What makes two measured rows the same result, whichever profile measured it."""
        return self.source, self.paper, self.effect, self.n, self.mde, self.verdict

    @classmethod
    def of(cls, claim: Claim) -> "Row":
        cmp = optional_comparison(claim.comparison)
        source = claim.source if claim.paper_claim else claim.source + EXTRA_CHECK
        common = dict(source=source, paper=claim.statement, ours=claim.detail, data=claim.data,
                      paper_claim=claim.paper_claim)
        if cmp is None:
            if claim.holds is None:
                return cls(verdict=NOT_TESTABLE, reason=claim.reason, **common)
            return cls(verdict=NO_INTERVAL, **common)     # the legend says why: no verdict without one
        verdict = cmp.verdict if claim.paper_claim else CHECK_VERDICTS[cmp.verdict]
        reason = (claim.reason or cmp.reason) if cmp.verdict == INCONCLUSIVE else ""   # the study's: what decides it
        return cls(verdict=verdict, reason=reason, effect=format_effect(cmp), n=format_n(cmp.n),
                   mde=f"{cmp.mde:.1f}", **common)


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
#: Figures that are not a notebook's: the attention explorer's views and the ranked lists of
#: the benchmark's checkpoints.
EXPLORER = Study("explorer", "04_benchmark", "Attention explorer views (SSN3D checkpoints of notebook 04)",
                 "Fig. 4 style")
VISRANK = Study("visrank", "04_benchmark", "Ranked lists of the worst queries (SSN3D checkpoints of notebook 04)",
                "`ssn3d visrank`")
CHECKPOINT_VIEWS = (EXPLORER, VISRANK)


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
        return [Row.of(c) for c in claims_from_records(records)]
    except (TypeError, ValueError) as err:          # unknown keys in a claim or its comparison
        raise InputError(f"{study.name}/{METRICS_FILE}: {err}") from None


def in_profile(study: Study, profile: str) -> bool:
    """Whether a profile covers a study: every profile covers every study, except a partial one
    (extended), which covers the studies with a parameter file under it (in a checkout) or with
    outputs on disk."""
    if profile not in PARTIAL_PROFILES or (study_dir(study.name, profile, create=False) / METRICS_FILE).is_file():
        return True
    try:
        return profile_runs(study.notebook, profile)
    except CheckoutRequired:        # a wheel install: no notebooks, only what is on disk
        return False


def collect_claims(profile: str = "cpu") -> Dict[str, List[Row]]:
    """{study name: rows} of the studies the profile covers, in the studies' order."""
    return {study.name: study_claims(study, profile) for study in STUDIES if in_profile(study, profile)}


def report_profiles(profile: str) -> Tuple[str, ...]:
    """The profiles one report shows: both committed ones for either, else the profile alone."""
    return REPORTED_PROFILES if profile in REPORTED_PROFILES else (profile,)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def how_to_read() -> List[str]:
    """The report's opening section: the verdict rule (statistics.py's), n, MDE and the other labels."""
    conf, power = round(100 * CONFIDENCE), round(100 * POWER)
    return [
        "## How to read a verdict", "",
        "Each claim compares two settings (or one setting against a fixed reference such as chance) in the "
        "paper's direction: the effect is setting a minus setting b (percentage points for rates such as "
        f"rank-1, mAP or PCK), with its {conf}% interval. Both settings are scored on the same test units "
        "(queries, crops, paintings) and their training seeds (or splits) pair up; the interval is Student's "
        "t for the paired differences in a seeds x units design (variance from the two-way ANOVA mean "
        "squares, Satterthwaite degrees of freedom: few seeds give few degrees of freedom and a wide "
        "interval), or over the splits of a split protocol, each split one replicate "
        "(`ssn3dlib/studies/toolkit/statistics.py`).", "",
        f"- **{REPRODUCED}**: the {conf}% interval excludes 0 on the paper's side;",
        f"- **{CONTRADICTED}**: it excludes 0 on the other side;",
        f"- **{INCONCLUSIVE}**: it includes 0 (a tie always does), or a setting has fewer than {MIN_SEEDS} "
        "training seeds: one training seed decides nothing, since seed-to-seed noise is then unmeasured "
        "(unless all of the design's randomness is in the test units). The verdict cell says what would "
        "decide it. No tie-breaks by a second metric.",
        "- **n**: the test units and the training seeds (or splits) behind the effect.",
        f"- **MDE**, minimum detectable effect: the true effect the design finds with {power}% power at the "
        f"{100 - conf}% level: (t_0.975 + t_0.8) standard errors of the effect at its degrees of freedom "
        f"({mde_factor():.2f} when they are many). A difference smaller than the MDE is within this design's noise.",
        f"- **{NO_INTERVAL}**: the study records no effect with its interval for this claim, so it has no "
        "verdict; its numbers are in \"we find\". **" + NOT_TESTABLE + "**: the data or hardware is not here "
        "(the cell says which profile has it). **" + NOT_RUN + "**: the study's notebook has not run.",
        f"- Our own checks (controls, stricter tests; source marked \"{EXTRA_CHECK.strip()}\") follow the "
        f"same rule as **{HOLDS}** / **{FAILS}** / **{INCONCLUSIVE}** and are counted apart from the paper's "
        "claims.",
        "- Each comparison is stored with its claim in the study's `metrics.json` (`claims[].comparison`, with "
        "its method); the study keeps the per-unit scores it came from (per query: first-true-match rank "
        "and AP; per crop or painting: the hit) in its records under `reports/`, and "
        "`ssn3dlib.studies.toolkit.statistics.compare` (or `against_reference`) recomputes it from them.",
    ]


def verdict_counts(claims: Dict[str, List[Row]]) -> List[str]:
    """One line for the paper's claims and one for our own checks: how many rows carry each verdict."""
    def line(rows: List[Row]) -> str:
        counts = Counter(r.verdict for r in rows)
        return ", ".join(f"{counts[v]} {v}" for v in ORDER if counts[v]) or "none"

    rows = [r for group in claims.values() for r in group]
    return [f"- The paper's claims: {line([r for r in rows if r.paper_claim])}.",
            f"- Our own checks: {line([r for r in rows if not r.paper_claim])}."]


def _claims_table(claims: Dict[str, List[Row]]) -> List[str]:
    lines = ["| # | source | the paper says | we find (data, profile) | effect [95% CI] | n | MDE | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    number = 0
    for rows in claims.values():
        for c in rows:
            number += 1
            ours = c.ours + (f" ({c.data})" if c.data else "")
            verdict = f"**{c.verdict}**" + (f": {c.reason}" if c.reason else "")
            lines.append(f"| {number} | {_cell(c.source)} | {_cell(c.paper)} | {_cell(ours)} | {_cell(c.effect)} "
                         f"| {_cell(c.n)} | {_cell(c.mde)} | {_cell(verdict)} |")
    return lines


#: What each committed profile's table is, for its heading.
PROFILE_HEADINGS = {
    "cpu": "cpu profile: regenerated by `make report` (`ssn3d studies run --profile cpu`, at most 20 minutes "
           "on 2 cores)",
    "extended": "extended profile: the larger designs (more seeds, splits, training levels and backbones), "
                "from the committed records of `ssn3d studies run --profile extended` (about an hour on 2 "
                "cores, resumable); `make report` does not rerun them",
}


def _study_section(study: Study, profile: str, root: Path) -> List[str]:
    folder = study_dir(study.name, profile, create=False)
    lines = [f"Notebook `notebooks/{study.notebook}.ipynb`, {profile} profile; outputs in "
             f"`{os.path.relpath(folder, root)}/`."]
    metrics = read_json(folder / METRICS_FILE) or {}
    wall, trained = metrics.get(WALL_TIME_KEY), metrics.get(RUNS_WALL_TIME_KEY)
    if wall is not None:
        lines.append(f"Wall time of the {profile} run: {float(wall):.0f} s"
                     + (f" (its trainings: {float(trained):.0f} s in total; runs found finished on disk "
                        f"are loaded, not retrained)" if trained else "") + ".")
    findings = metrics.get(FINDINGS_KEY) or []
    if findings:
        lines += ["", "Findings:", *(f"- {_cell(f)}" for f in findings)]
    if study.name == "benchmark":
        listed = metrics.get("runs")        # this run's records only, never a stale file beside them
        files = ([folder / f"{run}.json" for run in listed] if isinstance(listed, list) else
                 [p for p in sorted(folder.glob("*.json")) if p.name != METRICS_FILE])
        files = [p for p in files if p.is_file()]
        if files:
            runs = load_runs(files)
            for table in paper.TABLES:
                lines += ["", render_markdown(table, runs)]
    for image in sorted(folder.glob("*.png")):
        lines += ["", f"![{image.stem}]({os.path.relpath(image, root)})"]
    return lines


def render_report(profile: str = "cpu", root: Optional[Path] = None) -> str:
    """The markdown report of the profile (with its companion committed profile, see
    `report_profiles`); image links are relative to the report's folder (`paths.report_root`)."""
    root = Path(root) if root is not None else report_root(profile)
    profiles = report_profiles(profile)
    claims = {p: collect_claims(p) for p in profiles}
    claims = {p: c for p, c in claims.items() if c}
    titles = " and ".join(claims) or profile
    lines = [f"# SSN3D study report ({titles} profile{'s' if len(claims) > 1 else ''})", "",
             f"Regenerated by `ssn3d studies run --profile {profile}` from the studies' `metrics.json` files; "
             "do not edit by hand.", ""]
    for p, rows in claims.items():
        lines += [f"Verdicts, {p} profile:", *verdict_counts(rows), ""]
    lines += [*how_to_read(), ""]
    shown: set = set()                 # rows an earlier table shows
    for p, rows in claims.items():
        heading = PROFILE_HEADINGS.get(p, f"{p} profile")
        # a row the profile before already shows with the same numbers (the same run, seeds and test
        # units in both profiles) is not repeated: the larger profile's table shows what it adds
        fresh = {study: [r for r in group if r.effect == NONE or r.key not in shown] for study, group in rows.items()}
        repeated = sum(len(group) for group in rows.values()) - sum(len(group) for group in fresh.values())
        lines += [f"## Claims, {heading}", ""]
        if repeated:
            lines += [f"{repeated} row(s) that the table above already shows with the same numbers are not "
                      f"repeated.", ""]
        lines += [*_claims_table(fresh), ""]
        shown |= {r.key for group in rows.values() for r in group}
    for study in STUDIES + CHECKPOINT_VIEWS:
        sections = []
        for p in profiles:
            folder = study_dir(study.name, p, create=False)
            if not folder.is_dir() or (study in CHECKPOINT_VIEWS and not any(folder.glob("*.png"))):
                continue
            if study in STUDIES and p not in claims:
                continue
            sections.append((p, _study_section(study, p, root)))
        if study in STUDIES and not sections:
            sections = [(profile, [f"Notebook `notebooks/{study.notebook}.ipynb`: not run."])]
        if not sections:
            continue
        lines += [f"## {study.title} ({study.figure})"]
        for p, section in sections:
            lines += ([""] if len(sections) == 1 else ["", f"### {p} profile", ""]) + section
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def benchmark_checkpoints(profile: str = "cpu") -> List[Tuple[str, Path]]:
    """(run name, last.pt) of the benchmark's semi-supervised shared SSN3D runs at their main
    lambda, seed 0: one per dataset (the checkpoints the report's views show). A dataset trained
    over its protocol's splits (PKU with all_splits) shows its first split."""
    from ..engine.trainer import run_paths, split_run_dir

    runs_root = reports_dir() / "runs" / profile / "benchmark"
    records = study_dir("benchmark", profile, create=False)
    out = []
    for run_dir in sorted(runs_root.glob("*_ssn3d_semi-supervised_shared_*_seed0")):
        run = run_dir.name
        ckpt = next((c for c in (run_paths(run_dir)["last"], run_paths(split_run_dir(run_dir, 0))["last"])
                     if c.is_file()), None)
        if ckpt is None:
            continue
        record = read_json(records / f"{run}.json") or {}
        if record.get("lambda_ssn") != record.get("config_lambda_ssn", record.get("lambda_ssn")):
            continue          # a Fig. 3 sweep run: the main-lambda run already shows this dataset
        out.append((run, ckpt))
    return out


def explorer_figures(profile: str = "cpu") -> List[Path]:
    """Attention explorer views of `benchmark_checkpoints` (one per dataset), saved under
    <study_dir("explorer")>; none when no such checkpoint exists."""
    from ..explorer import attention_figure, load_run

    def draw(run, ckpt):
        return attention_figure([load_run(ckpt)], "query", 0, frames=[0, 1, 2, 3])   # rows named in words

    return _checkpoint_views(EXPLORER, profile, draw)


def visrank_figures(profile: str = "cpu", topk: int = 8, count: int = 3) -> List[Path]:
    """Ranked lists of the worst queries of `benchmark_checkpoints` (one per dataset), saved
    under <study_dir("visrank")>; none when no such checkpoint exists."""
    from .visrank import visrank

    return _checkpoint_views(VISRANK, profile, lambda run, ckpt: visrank(ckpt, "worst", topk=topk, count=count,
                                                                         progress=False)[0])


def _checkpoint_views(study: Study, profile: str, draw) -> List[Path]:
    """draw(run, checkpoint) -> figure for each benchmark checkpoint, saved as <run>.png; a run
    whose dataset or file is gone is skipped with the reason printed."""
    import matplotlib.pyplot as plt

    from ..engine.checkpoint import CheckpointError
    from ..figures import save_figure

    out = []
    for run, ckpt in benchmark_checkpoints(profile):
        try:
            fig = draw(run, ckpt)
        except (ValueError, OSError, CheckpointError) as err:   # dataset gone: skip, say why
            print(f"{study.name} view of {run} skipped: {err}")
            continue
        out.append(save_figure(fig, study_dir(study.name, profile) / f"{run}.png"))
        plt.close(fig)
    return out


def write_report(profile: str = "cpu") -> List[Path]:
    """Draw the profile's checkpoint views, then write REPORT.md and REPORT.html in
    `paths.report_root(profile)` (reports/ for both committed profiles); returns both paths."""
    import markdown

    root = report_root(profile)
    root.mkdir(parents=True, exist_ok=True)
    explorer_figures(profile)
    visrank_figures(profile)
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
