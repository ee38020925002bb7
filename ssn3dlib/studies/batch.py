"""The study batch: run the numbered notebooks through papermill under one profile.

Sources (``notebooks/NN_*.ipynb``) are never executed in place: executed copies go to
``reports/runs/<profile>/<stem>.ipynb`` and the last batch is recorded in
``reports/runs/<profile>/batch.json``. ``refresh_notebooks`` regenerates a source's stored
outputs (what nbval compares against) from a smoke run, then copies the executed notebook
over the source without papermill's churning run metadata.

Resume rule (``plan_batch``): a notebook is up to date, and skipped, when its executed copy
 - exists and was stamped ``ok`` by this runner after papermill finished without error
   (a failed, killed or interrupted run leaves no such stamp),
 - was run with the parameters the profile gives now, and
 - is newer than the source notebook, its parameter file (when there is one) and every file
   of the ``ssn3dlib`` package (any library change may change any study, so it reruns all).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import nbformat
import yaml
from tqdm.auto import tqdm

from .. import PACKAGE_ROOT
from ..errors import UserError
from ..paths import (
    PROFILES,
    notebooks_dir as default_notebooks_dir,
    profile_params_file,
    profile_runs,
    reports_dir,
)

NOTEBOOK_NAME = re.compile(r"^(?P<number>\d+)_(?P<name>.+)\.ipynb$")
INJECTED_TAG = "injected-parameters"
BATCH_RECORD = "batch.json"
#: Notebook metadata key the runner stamps on an executed copy: {"status": "ok" | "failed"}.
#: Papermill's own metadata cannot tell a dead kernel from success, so resume trusts only this.
RUN_STAMP = "ssn3d_batch"


class BatchError(UserError):
    """Invalid batch input (unknown notebook, bad or missing parameter file); the message says the fix."""


class NotebookFailed(UserError):
    """A notebook raised while executing; the message names the notebook, the cell and the exception
    (exit 1: the notebook's code failed, not the command's input)."""

    exit_code = 1

    def __init__(self, message: str, output: Path):
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class StudyNotebook:
    number: int
    stem: str
    path: Path


@dataclass
class PlannedRun:
    notebook: StudyNotebook
    parameters: Dict
    params_file: Optional[Path]
    output: Path
    reason: Optional[str]  # why it must run; None = up to date, skipped

    @property
    def up_to_date(self) -> bool:
        return self.reason is None


@dataclass
class NotebookRecord:
    notebook: str
    status: str  # ok | skipped | failed | not run
    reason: str = ""
    wall_s: Optional[float] = None
    started: Optional[str] = None
    finished: Optional[str] = None
    output: str = ""
    error: Optional[str] = None


@dataclass
class BatchResult:
    profile: str
    records: List[NotebookRecord] = field(default_factory=list)
    failure: Optional[NotebookFailed] = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def discover_notebooks(notebooks: Path) -> List[StudyNotebook]:
    """The numbered notebooks of a folder, by number (so 10_x runs after 2_y)."""
    found = []
    for path in sorted(Path(notebooks).glob("*.ipynb")):
        match = NOTEBOOK_NAME.match(path.name)
        if match:
            found.append(StudyNotebook(int(match["number"]), path.stem, path))
    found.sort(key=lambda nb: nb.number)
    numbers = [nb.number for nb in found]
    clashes = sorted({nb.stem for nb in found if numbers.count(nb.number) > 1})
    if clashes:
        raise BatchError(f"notebooks share a number, so their order is undefined: {', '.join(clashes)}; "
                         "renumber them")
    return found


def select_notebooks(notebooks: Sequence[StudyNotebook], only: Iterable[str] = ()) -> List[StudyNotebook]:
    """The notebooks named in `only` (stems like 02_amber_abstract or numbers like 2 / 02), in batch order."""
    only = list(only)
    if not only:
        return list(notebooks)
    chosen = set()
    for name in only:
        hits = [nb.stem for nb in notebooks
                if name in (nb.stem, nb.path.name) or (name.isdigit() and int(name) == nb.number)]
        if not hits:
            available = ", ".join(nb.stem for nb in notebooks) or "none"
            raise BatchError(f"no numbered notebook matches {name!r}; give a stem or a number "
                             f"(available: {available})")
        chosen.update(hits)
    return [nb for nb in notebooks if nb.stem in chosen]


def _selected(notebooks: Optional[Path], names: Iterable[str]) -> Tuple[Path, List[StudyNotebook]]:
    """The notebooks folder (default: the package's) and the numbered notebooks chosen in it."""
    notebooks = Path(notebooks or default_notebooks_dir())
    selected = select_notebooks(discover_notebooks(notebooks), names)
    if not selected:
        raise BatchError(f"no numbered notebooks (NN_name.ipynb) in {notebooks}")
    return notebooks, selected


def load_parameters(notebook: StudyNotebook, profile: str, notebooks: Path):
    """(parameters, file or None) of one notebook under one profile, checked against its parameters cell.

    smoke without a file means the notebook's own defaults (nothing injected); cpu and full
    need a file, since their whole point is different values; a partial profile (extended)
    covers only the notebooks that have one (`in_profile`).
    """
    import papermill

    path = profile_params_file(notebook.stem, profile, notebooks)
    if not path.is_file():
        if profile == "smoke":
            return {}, None
        raise BatchError(f"{notebook.stem}: no parameter file for the {profile} profile at {path}; "
                         f"create it (a YAML mapping, e.g. `profile: {profile}`) or leave the notebook "
                         "out with --only")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BatchError(f"{path} is not valid YAML: {err}") from err
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise BatchError(f"{path} must be a YAML mapping of parameter names to values, "
                         f"not {type(values).__name__}")
    declared = papermill.inspect_notebook(str(notebook.path))
    if values and not declared:
        raise BatchError(f"{notebook.path.name} has no cell tagged 'parameters', so {path} cannot be "
                         "applied; tag the notebook's first code cell 'parameters'")
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise BatchError(f"{path} sets {', '.join(unknown)}, which the parameters cell of "
                         f"{notebook.path.name} does not define (it has {', '.join(declared)}); "
                         "fix the name or add it to the parameters cell")
    if values.get("profile", profile) != profile:
        raise BatchError(f"{path} sets profile: {values['profile']!r} but lies under params/{profile}/; "
                         f"set profile: {profile}")
    if profile != "smoke" and "profile" in declared:
        values.setdefault("profile", profile)  # outputs must land in this profile's study_dir
    return values, path


def in_profile(notebook: StudyNotebook, profile: str, notebooks: Path) -> bool:
    """Whether a profile runs this notebook (`paths.profile_runs`)."""
    return profile_runs(notebook.stem, profile, notebooks)


def runs_dir(profile: str) -> Path:
    return reports_dir() / "runs" / profile


def newest_file(root: Path) -> Optional[Path]:
    """The most recently modified file under root, caches excluded."""
    files = [p for p in Path(root).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return max(files, key=lambda p: p.stat().st_mtime, default=None)


def _stale_reason(output: Path, parameters: Dict, inputs: Sequence[Path]) -> Optional[str]:
    if not output.is_file():
        return "no executed copy yet"
    try:
        metadata = nbformat.read(output, as_version=4).metadata
    except Exception:  # an unreadable copy (e.g. killed mid-write) is simply redone
        return "executed copy unreadable"
    if metadata.get(RUN_STAMP, {}).get("status") != "ok":
        return "last run failed or was interrupted"
    if (metadata.get("papermill", {}).get("parameters") or {}) != parameters:
        return "parameters changed"
    built = output.stat().st_mtime
    for path in inputs:
        if path.stat().st_mtime > built:
            return f"{path.name} changed"
    return None


def plan_batch(profile: str, notebooks: Optional[Path] = None, only: Iterable[str] = (),
               force: bool = False, package_root: Path = PACKAGE_ROOT) -> List[PlannedRun]:
    """What a batch would run and why; every parameter file is checked before anything runs."""
    if profile not in PROFILES:
        raise BatchError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    only = list(only)
    notebooks, selected = _selected(notebooks, only)
    library = newest_file(package_root)
    plans, problems = [], []
    for nb in selected:
        if not in_profile(nb, profile, notebooks):
            if only:        # named on purpose: say why it cannot run, with the rest of the problems
                problems.append(f"{nb.stem} is not part of the {profile} profile (no "
                                f"{profile_params_file(nb.stem, profile, notebooks)}); run it under another profile")
            continue
        try:
            parameters, source_params = load_parameters(nb, profile, notebooks)
        except BatchError as err:  # collect them all: one round of fixes, not one per run
            problems.append(str(err))
            continue
        output = runs_dir(profile) / nb.path.name
        inputs = [p for p in (nb.path, source_params, library) if p is not None]
        reason = "--force" if force else _stale_reason(output, parameters, inputs)
        plans.append(PlannedRun(nb, parameters, source_params, output, reason))
    if problems:
        raise BatchError("\n".join(problems))
    return plans


def _first_line(source: str) -> str:
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= 80 else line[:77] + "..."


def _source_cell_index(plan: PlannedRun, executed_index: int) -> Optional[int]:
    """Index in the source notebook of a cell of the executed copy; None for papermill's injected cell."""
    source = nbformat.read(plan.notebook.path, as_version=4)
    tagged = [i for i, c in enumerate(source.cells) if "parameters" in c.metadata.get("tags", [])]
    if not (plan.parameters and tagged):
        return executed_index
    injected_at = tagged[0] + 1  # papermill puts its cell right after the parameters cell
    if executed_index == injected_at:
        return None
    return executed_index - 1 if executed_index > injected_at else executed_index


def _cell_left_running(output: Path):
    """(index, cell) of the cell a crashed kernel was executing, from papermill's partial copy."""
    try:
        cells = nbformat.read(output, as_version=4).cells
    except Exception:
        return None
    for index, cell in enumerate(cells):
        state, timing = cell.metadata.get("papermill", {}), cell.metadata.get("execution", {})
        # a dead kernel leaves its cell "completed": started, but without nbclient's reply time
        started_unanswered = (cell.cell_type == "code" and state.get("start_time")
                              and "shell.execute_reply" not in timing)
        if state.get("exception") or state.get("status") == "running" or started_unanswered:
            return index, cell
    return None


def _failure_message(plan: PlannedRun, err: Exception) -> str:
    """Names the notebook, the failing cell (source index and first line) and the exception."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        failed = err.cell_index, err.exec_count, err.source
        what = f"{err.ename}: {err.evalue}"
    else:  # the kernel died or never started: papermill's partial copy says where it was
        hit = _cell_left_running(plan.output)
        failed = (hit[0], hit[1].get("execution_count"), hit[1].source) if hit else None
        what = f"{type(err).__name__}: {err}".strip()
    where = " before any cell ran (kernel start-up)"
    if failed:
        index, exec_count, source = failed
        count = f"In [{exec_count}]" if exec_count is not None else "never numbered"
        index = _source_cell_index(plan, index)
        if index is None:
            where = f"\n  cell: the injected-parameters cell ({count}) from {plan.params_file}"
        else:
            where = (f"\n  cell: {index} (0-based, markdown cells counted; {count} in the executed copy)"
                     f"\n  first line: {_first_line(source)}")
    return (f"notebook {plan.notebook.path.name} failed{where}\n"
            f"  error: {what}\n"
            f"  partial executed notebook: {plan.output}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def execute(plan: PlannedRun, progress: bool = True) -> None:
    """One notebook through papermill; the kernel runs in the notebooks folder, output in the runs dir."""
    import papermill

    plan.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(plan.notebook.path), str(plan.output),
                                   parameters=plan.parameters or None, progress_bar=progress,
                                   cwd=str(plan.notebook.path.parent))
    except Exception as err:  # kernel errors, dead kernels, missing kernels: all named the same way
        message = _failure_message(plan, err)
        _stamp(plan.output, {"status": "failed", "error": message})
        raise NotebookFailed(message, plan.output) from err
    _stamp(plan.output, {"status": "ok"})


def _stamp(output: Path, stamp: Dict) -> None:
    if output.is_file():
        nb = nbformat.read(output, as_version=4)
        nb.metadata[RUN_STAMP] = stamp
        nbformat.write(nb, output)


def write_batch_record(result: BatchResult, started: str, path: Path) -> None:
    record = {"profile": result.profile, "status": "ok" if result.ok else "failed",
              "started": started, "finished": _now(),
              "notebooks": [vars(r) for r in result.records]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def run_batch(profile: str, notebooks: Optional[Path] = None, only: Iterable[str] = (),
              force: bool = False, package_root: Path = PACKAGE_ROOT, progress: bool = True) -> BatchResult:
    """Run the selected notebooks in order, skipping up-to-date ones; stop at the first failure.

    batch.json is rewritten after every notebook, so an interrupted batch leaves a record.
    """
    plans = plan_batch(profile, notebooks, only, force, package_root)
    result = BatchResult(profile)
    started = _now()
    record_path = runs_dir(profile) / BATCH_RECORD
    result.records = [NotebookRecord(p.notebook.stem, "not run", p.reason or "up to date",
                                     output=str(p.output)) for p in plans]
    bar = tqdm(plans, desc=f"studies [{profile}]", unit="notebook", disable=not progress)
    for plan, record in zip(bar, result.records):
        bar.set_postfix_str(plan.notebook.stem)
        if plan.up_to_date:
            record.status = "skipped"
            tqdm.write(f"{plan.notebook.stem}: up to date, skipped ({plan.output})")
            continue
        tqdm.write(f"{plan.notebook.stem}: running ({plan.reason})")
        record.started = _now()
        tic = time.perf_counter()
        try:
            execute(plan, progress=progress)
            record.status = "ok"
        except NotebookFailed as failure:
            record.status, record.error, result.failure = "failed", str(failure), failure
        finally:
            record.wall_s = round(time.perf_counter() - tic, 1)
            record.finished = _now()
            write_batch_record(result, started, record_path)
        tqdm.write(f"{plan.notebook.stem}: {record.status} in {record.wall_s:.1f} s")
        if result.failure:
            break
    bar.close()
    write_batch_record(result, started, record_path)
    return result


def summary_table(result: BatchResult) -> str:
    rows = [("notebook", "status", "wall", "why")]
    rows += [(r.notebook, r.status, "-" if r.wall_s is None else f"{r.wall_s:.1f} s", r.reason)
             for r in result.records]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    total = sum(r.wall_s or 0 for r in result.records)
    return "\n".join(lines + [f"total {total:.1f} s"])


# ---------------------------------------------------------------- refresh of stored outputs

#: Run metadata that changes on every execution; dropped so refreshed sources diff only on outputs.
CHURNING_CELL_METADATA = ("papermill", "execution")
#: Widget views (tqdm.auto bars in a kernel) carry a random model id and no stored state;
#: their text/plain fallback is what a stored notebook can show.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_run_metadata(executed: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The executed notebook's cells and outputs under the source's own notebook metadata,
    without per-run timings and widget ids."""
    if any(INJECTED_TAG in c.metadata.get("tags", []) for c in executed.cells):
        raise BatchError("the executed notebook has an injected-parameters cell; refresh stores "
                         "the notebook's own defaults only")
    for cell in executed.cells:
        for key in CHURNING_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:  # papermill adds empty tags to every cell
            del cell.metadata["tags"]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and len(data) > 1:
                del data[WIDGET_VIEW]
    executed.metadata = source.metadata
    for key in ("papermill", RUN_STAMP):  # in case a source was once executed in place
        executed.metadata.pop(key, None)
    return executed


def refresh_notebooks(names: Iterable[str] = (), notebooks: Optional[Path] = None,
                      progress: bool = True) -> List[Path]:
    """Regenerate the stored outputs of source notebooks from a smoke run with their defaults.

    Each notebook executes to reports/runs/smoke/ (never in place); only a run that succeeded
    is copied over its source. The first failure raises NotebookFailed, leaving that source as it was.
    """
    notebooks, selected = _selected(notebooks, names)
    refreshed = []
    for nb in tqdm(selected, desc="refresh", unit="notebook", disable=not progress):
        # No parameters at all: the stored outputs must be what nbval gets from the source as is.
        plan = PlannedRun(nb, {}, None, runs_dir("smoke") / nb.path.name, "refresh")
        tic = time.perf_counter()
        before = nb.path.read_bytes()
        execute(plan, progress=progress)
        if nb.path.read_bytes() != before:  # edited while it ran: copying back would lose the edit
            raise BatchError(f"{nb.path} changed while it was being executed; nothing was copied "
                             f"over it, run the refresh again")
        source = nbformat.reads(before.decode(), as_version=4)
        executed = strip_run_metadata(nbformat.read(plan.output, as_version=4), source)
        nbformat.write(executed, nb.path)
        tqdm.write(f"{nb.stem}: refreshed from {plan.output} in {time.perf_counter() - tic:.1f} s")
        refreshed.append(nb.path)
    return refreshed
