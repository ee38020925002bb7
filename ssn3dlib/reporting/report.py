"""reports/REPORT.md (and REPORT.html): every claim of the paper beside our number, assembled
from the studies' metrics.json files and the benchmark run JSONs.

Each claim row says: the paper's statement or number, ours, the data and profile it came from,
and a verdict: "reproduced", "not reproduced", or "not testable here" with the reason. Claims
are read, never recomputed: the notebooks compute and assert them; a missing metrics.json
gives a "not run" row naming the command that produces it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import pandas as pd

from ..data.registry import dataset_title
from ..paths import reports_dir, study_dir
from . import paper
from .tables import at_main_lambda, load_runs, render_markdown

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE, NOT_RUN = ("reproduced", "not reproduced", "not testable here",
                                                     "not run")


@dataclass
class Claim:
    source: str          # paper figure / table
    paper: str           # the paper's statement or number
    ours: str            # our number or finding
    data: str            # data and profile it came from
    verdict: str
    reason: str = ""


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


def _verdict(holds: Optional[bool]) -> str:
    return NOT_TESTABLE if holds is None else REPRODUCED if holds else NOT_REPRODUCED


def _data_label(metrics: Dict[str, Any], default: str) -> str:
    return f"{default}; profile {metrics.get('profile', '?')}"


def _generic_claims(source: str, claims: Dict[str, Any], data: str) -> List[Claim]:
    """claims = {name: {paper|test, holds, detail}} (the layout of studies 01 and 02)."""
    rows = []
    for name, c in claims.items():
        if not isinstance(c, dict) or "holds" not in c:
            continue
        statement = c.get("paper") or name.replace("_", " ")
        if "not in the paper" in statement:       # our own control: never counted as the paper's
            rows.append(Claim(f"{source} (our extra check)", statement, c.get("detail") or c.get("test") or "",
                              data, "holds" if c["holds"] else "fails"))
            continue
        rows.append(Claim(source, statement, c.get("detail") or c.get("test") or "", data, _verdict(c["holds"]),
                          "" if c["holds"] is not None else c.get("reason", "")))
    return rows


def random_maps_claims(m: Dict[str, Any]) -> List[Claim]:
    return _generic_claims("Fig. 5", m.get("claims", {}), _data_label(m, "random maps"))


def amber_claims(m: Dict[str, Any]) -> List[Claim]:
    return _generic_claims("Fig. 6", m.get("claims", {}), _data_label(m, "generated abstract paintings"))


def pedestrian_claims(m: Dict[str, Any]) -> List[Claim]:
    """claims.<dataset>.<name> = {holds, test, paper_claim}; checks with paper_claim false are
    our own additions and are labelled so, never counted as the paper's."""
    rows = []
    labels = {"real": "PKU-Reid crops (MediaPipe keypoints)", "synthetic": "synthetic crops (exact keypoints)"}
    for dataset, claims in m.get("claims", {}).items():
        if not isinstance(claims, dict):
            continue
        d = m.get("datasets", {}).get(dataset, {})
        pck = d.get("pck", {}).get("unlabelled", {})
        numbers = ", ".join(f"{k} {v['overall']:.2f}" for k, v in pck.items()
                            if isinstance(v, dict) and v.get("overall") is not None)
        stability = ", ".join(f"{k} {v:.2f}" for k, v in (d.get("stability") or {}).items() if v is not None)
        for name, c in claims.items():
            if not isinstance(c, dict) or "holds" not in c:
                continue
            ours = c.get("test", name) + (f". PCK on unlabelled crops: {numbers}" if numbers else "")
            if "stable" in name and stability:
                ours += f"; cross-seed peak agreement: {stability}"
            data = _data_label(m, labels.get(dataset, dataset))
            if c.get("paper_claim", True):
                rows.append(Claim("Fig. 4", m.get("paper_claim", name.replace("_", " ")), ours, data,
                                  _verdict(c["holds"])))
            else:
                rows.append(Claim("Fig. 4 (our extra check)", "not in the paper", ours, data,
                                  "holds" if c["holds"] else "fails"))
    return rows


def misalignment_claims(m: Dict[str, Any]) -> List[Claim]:
    rows = []
    for metric, v in m.get("verdicts", {}).items():
        verdict = {"supported": REPRODUCED, "partly supported": NOT_REPRODUCED,
                   "not supported": NOT_REPRODUCED}.get(v.get("verdict"), NOT_TESTABLE)
        rows.append(Claim("central claim", "3D convolution on unaligned parts degrades with misalignment; "
                                           "SSN alignment recovers it",
                          v.get("statement", ""), _data_label(m, f"synthetic world, {metric}"), verdict,
                          "" if verdict == REPRODUCED else f"our verdict: {v.get('verdict')}"))
    return rows


def _ordering(frame: pd.DataFrame, key: str, expected_first) -> tuple:
    """(text, verdict): settings ordered by mean rank-1, mAP breaking ties; the paper's
    winner must be strictly first (a tie on both is not a reproduction)."""
    means = frame.groupby(key)[["rank1", "mAP"]].mean().sort_values(["rank1", "mAP"], ascending=False)
    text = "rank-1/mAP " + " > ".join(f"{k} {r:.1f}/{m:.1f}" for k, (r, m) in means.iterrows())
    first = means.iloc[0]
    strict = len(means) < 2 or tuple(first) != tuple(means.iloc[1])
    return text, _verdict(means.index[0] == expected_first and strict)


def benchmark_claims(runs: pd.DataFrame, profile: str) -> List[Claim]:
    """The tables' claims, as orderings on the datasets we could run; the paper's absolute
    numbers are not testable without the real benchmarks (the `full` profile runs them)."""
    rows: List[Claim] = []
    real = [d for d in paper.DATASETS if d in set(runs.get("dataset", []))]
    if not real:
        for table, text in (("Tables 3-5", "SSN3D rank-1: iLIDS-VID 88.9, MARS 90.1, Duke 96.8"),
                            ("Table 1", "semi-supervised > unsupervised > supervised on all three datasets"),
                            ("Table 2", "shared classifiers beat per-frame classifiers by a large margin"),
                            ("Fig. 3", paper.LAMBDA["claim"])):
            rows.append(Claim(table, text, "see the CPU-scale ordering below", "iLIDS-VID, MARS, DukeMTMC-VideoReID",
                              NOT_TESTABLE, "the benchmarks' images are not on this machine and need GPUs; "
                                            "`ssn3d studies run --profile full` regenerates them"))
    sweep = runs
    runs = at_main_lambda(runs) if len(runs) else runs
    ssn = runs[runs["model"] == "ssn3d"] if len(runs) else runs
    for dataset in sorted(set(runs.get("dataset", []))):
        title = f"{dataset_title(dataset)}; profile {profile}"
        d = ssn[(ssn["dataset"] == dataset)]
        strat = d[d["shared_classifier"].astype(bool)]
        if strat["strategy"].nunique() >= 2:
            text, verdict = _ordering(strat, "strategy", "semi-supervised")
            rows.append(Claim("Table 1", "the semi-supervised strategy is the best", text, title, verdict))
        semi = d[d["strategy"] == "semi-supervised"]
        if semi["shared_classifier"].nunique() == 2:
            sharing = semi.assign(sharing=semi["shared_classifier"].map({True: "shared", False: "not shared"}))
            text, verdict = _ordering(sharing, "sharing", "shared")
            rows.append(Claim("Table 2", "shared classifiers beat per-frame classifiers", text, title, verdict))
        models = runs[(runs["dataset"] == dataset) & ((runs["model"] != "ssn3d") | (
            (runs["strategy"] == "semi-supervised") & runs["shared_classifier"].astype(bool)))]
        if models["model"].nunique() >= 2:
            text, verdict = _ordering(models, "model", "ssn3d")
            rows.append(Claim("Tables 3-5", "SSN3D outperforms the other video models", text, title, verdict))
        s = sweep[(sweep["model"] == "ssn3d") & (sweep["dataset"] == dataset)]
        lam = s[(s["strategy"] == "semi-supervised") & s["shared_classifier"].astype(bool)]
        if lam["lambda_ssn"].nunique() >= 3:
            order = lam.groupby("lambda_ssn")["rank1"].mean()
            best = float(order.idxmax())
            rows.append(Claim("Fig. 3", paper.LAMBDA["claim"],
                              "rank-1 by lambda: " + ", ".join(f"{k:g}: {v:.1f}" for k, v in order.items()),
                              title, _verdict(best <= 0.1 and best > 0)))
    return rows


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else None


def collect_claims(profile: str = "cpu") -> Dict[str, List[Claim]]:
    adapters: Dict[str, Callable[[Dict[str, Any]], List[Claim]]] = {
        "random_maps": random_maps_claims, "amber_abstract": amber_claims, "pedestrians": pedestrian_claims,
        "misalignment": misalignment_claims}
    out = {}
    for study in STUDIES:
        folder = study_dir(study.name, profile, create=False)
        if study.name == "benchmark":
            files = [p for p in sorted(folder.glob("*.json")) if p.name != "metrics.json"]
            runs = load_runs(files) if files else pd.DataFrame()
            out[study.name] = benchmark_claims(runs, profile) if files else []
        else:
            metrics = _read_json(folder / "metrics.json")
            out[study.name] = adapters[study.name](metrics) if metrics else []
        if not out[study.name]:
            out[study.name] = [Claim(study.figure, "", "", "", NOT_RUN,
                                     f"run `ssn3d studies run --profile {profile} --only {study.notebook}`")]
    return out


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
        metrics = _read_json(folder / "metrics.json") or {}
        wall = metrics.get("wall_time_s") or metrics.get("wall_seconds")
        trained = metrics.get("training_time_s") or metrics.get("sum_of_point_wall_seconds")
        if wall is not None:
            lines.append(f"Wall time of the {profile} run: {float(wall):.0f} s"
                         + (f" (its trainings: {float(trained):.0f} s in total; runs found finished on disk "
                            f"are loaded, not retrained)" if trained else "") + ".")
        if study.name == "benchmark":
            files = [p for p in sorted(folder.glob("*.json")) if p.name != "metrics.json"]
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
    from ..explorer import attention_figure, load_run
    from ..figures import save_figure

    import matplotlib.pyplot as plt

    runs_root = reports_dir() / "runs" / profile / "benchmark"
    records = study_dir("benchmark", profile, create=False)
    out = []
    for ckpt in sorted(runs_root.glob("*_ssn3d_semi-supervised_shared_*_seed0/checkpoints/last.pt")):
        run = ckpt.parents[1].name
        record = _read_json(records / f"{run}.json") or {}
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
