"""The study batch runner on a tiny notebook set in tmp_path, executed by the real kernel.

Each tiny notebook appends its stem to a log file, so the tests see what ran and in which order.
"""
import hashlib
import json
import os

import nbformat
import pytest

from ssn3dlib.cli import main
from ssn3dlib.studies.batch import (
    WIDGET_VIEW,
    BatchError,
    NotebookFailed,
    discover_notebooks,
    in_profile,
    plan_batch,
    refresh_notebooks,
    run_batch,
    select_notebooks,
    strip_run_metadata,
)


def _notebook(log, stem, *cells):
    """A notebook whose parameters cell sets `greeting`/`profile` and whose cells log and print."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell('greeting = "hello"\nprofile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    logging = nbformat.v4.new_code_cell(f"with open({str(log)!r}, 'a') as f:\n    f.write({stem!r} + '\\n')")
    shout = nbformat.v4.new_code_cell(f"print(greeting, profile, {stem!r})")
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), params, logging, shout]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


@pytest.fixture
def world(tmp_path, monkeypatch):
    """notebooks/ with 01_alpha, 2_beta, 10_gamma (numeric != lexical order) and an unnumbered scratch;
    a stand-in package tree for the resume rule; reports under tmp_path."""
    monkeypatch.setenv("SSN3D_REPORTS", str(tmp_path / "reports"))
    notebooks, log = tmp_path / "notebooks", tmp_path / "ran.log"
    notebooks.mkdir()
    for stem in ("01_alpha", "2_beta", "10_gamma", "scratch"):
        nbformat.write(_notebook(log, stem), notebooks / f"{stem}.ipynb")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "module.py").write_text("x = 1\n")
    old = os.path.getmtime(notebooks / "01_alpha.ipynb") - 100  # library older than every source
    os.utime(package / "module.py", (old, old))

    class World:
        root, reports = tmp_path, tmp_path / "reports"

        @staticmethod
        def ran():
            return log.read_text().split() if log.exists() else []

        @staticmethod
        def run(**kwargs):
            return run_batch(kwargs.pop("profile", "smoke"), notebooks, package_root=package,
                             progress=False, **kwargs)

        @staticmethod
        def plan(**kwargs):
            return {p.notebook.stem: p.reason
                    for p in plan_batch(kwargs.pop("profile", "smoke"), notebooks, package_root=package, **kwargs)}

    World.notebooks, World.package = notebooks, package
    return World


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


def _later(path, than):
    """Make `path` newer than `than` (mtime), as an edit would."""
    t = os.path.getmtime(than) + 10
    os.utime(path, (t, t))


def _edit(path):
    """Touch `path` now: newer than every copy executed so far, older than the next ones."""
    os.utime(path)


def test_discovery_orders_by_number_and_ignores_unnumbered(world):
    assert [nb.stem for nb in discover_notebooks(world.notebooks)] == ["01_alpha", "2_beta", "10_gamma"]
    nbformat.write(_notebook(world.root / "x.log", "02_clash"), world.notebooks / "02_clash.ipynb")
    with pytest.raises(BatchError, match="share a number.*02_clash.*2_beta"):
        discover_notebooks(world.notebooks)


def test_only_accepts_stems_and_numbers_and_rejects_unknown_names(world):
    found = discover_notebooks(world.notebooks)
    assert [nb.stem for nb in select_notebooks(found, ["10", "01_alpha"])] == ["01_alpha", "10_gamma"]
    assert [nb.stem for nb in select_notebooks(found, ["02"])] == ["2_beta"]
    with pytest.raises(BatchError, match="'7'.*available: 01_alpha, 2_beta, 10_gamma"):
        select_notebooks(found, ["7"])


def test_batch_runs_in_order_into_runs_dir_and_never_touches_sources(world):
    before = _digest(world.notebooks)
    result = world.run()
    assert result.ok and world.ran() == ["01_alpha", "2_beta", "10_gamma"]
    assert _digest(world.notebooks) == before
    runs = world.reports / "runs" / "smoke"
    executed = nbformat.read(runs / "2_beta.ipynb", as_version=4)
    assert executed.cells[3].outputs[0].text == "hello smoke 2_beta\n"
    record = json.loads((runs / "batch.json").read_text())
    assert [(n["notebook"], n["status"]) for n in record["notebooks"]] == [
        ("01_alpha", "ok"), ("2_beta", "ok"), ("10_gamma", "ok")]
    assert all(n["wall_s"] > 0 and n["started"] <= n["finished"] for n in record["notebooks"])

    # Resume: nothing is stale, so nothing runs.
    assert world.run().records[1].status == "skipped" and world.ran() == ["01_alpha", "2_beta", "10_gamma"]
    # An edited source reruns only that notebook; a library change makes every notebook stale.
    _edit(world.notebooks / "2_beta.ipynb")
    assert [r.status for r in world.run().records] == ["skipped", "ok", "skipped"]
    assert world.ran()[3:] == ["2_beta"]
    _edit(world.package / "module.py")
    assert world.plan() == {stem: "module.py changed" for stem in ("01_alpha", "2_beta", "10_gamma")}


def test_force_and_only_rerun_just_the_named_up_to_date_notebook(world):
    world.run(only=["01"])
    assert world.ran() == ["01_alpha"]
    assert world.run(only=["01_alpha"]).records[0].status == "skipped"
    result = world.run(only=["1"], force=True)
    assert [(r.notebook, r.status, r.reason) for r in result.records] == [("01_alpha", "ok", "--force")]
    assert world.ran() == ["01_alpha", "01_alpha"]


def test_failure_names_notebook_and_cell_and_stops_the_batch(world, capsys):
    nbformat.write(_notebook(world.root / "ran.log", "2_beta", "# compute the thing\nraise ValueError('boom')"),
                   world.notebooks / "2_beta.ipynb")
    code = main(["studies", "run", "--profile", "smoke", "--notebooks", str(world.notebooks)])
    err = capsys.readouterr().err
    assert code == 1
    assert ("notebook 2_beta.ipynb failed\n  cell: 4 (0-based, markdown cells counted; In [4] in the "
            "executed copy)\n  first line: # compute the thing\n  error: ValueError: boom") in err
    partial = world.reports / "runs" / "smoke" / "2_beta.ipynb"
    assert f"partial executed notebook: {partial}" in err and partial.is_file()
    assert world.ran() == ["01_alpha", "2_beta"]  # 10_gamma never started
    record = json.loads((world.reports / "runs" / "smoke" / "batch.json").read_text())
    assert record["status"] == "failed"
    assert [n["status"] for n in record["notebooks"]] == ["ok", "failed", "not run"]
    # The partial copy is newer than its source but must not count as done.
    assert world.plan()["2_beta"] == "last run failed or was interrupted"


def test_failure_index_counts_source_cells_when_parameters_are_injected(world):
    cpu = world.notebooks / "params" / "cpu"
    cpu.mkdir(parents=True)
    nbformat.write(_notebook(world.root / "ran.log", "01_alpha", "x = 1", "1 / 0"), world.notebooks / "01_alpha.ipynb")
    (cpu / "01_alpha.yaml").write_text("greeting: hi\n")
    failure = world.run(profile="cpu", only=["01"]).failure
    assert isinstance(failure, NotebookFailed)
    assert "cell: 5 (0-based, markdown cells counted; In [6] in the executed copy)\n  first line: 1 / 0" in str(failure)
    assert "error: ZeroDivisionError" in str(failure)


def test_a_dead_kernel_is_a_failure_that_names_its_cell(world):
    nbformat.write(_notebook(world.root / "ran.log", "10_gamma", "import os\nos._exit(1)"),
                   world.notebooks / "10_gamma.ipynb")
    failure = world.run(only=["10"]).failure
    assert "cell: 4 " in str(failure) and "first line: import os" in str(failure)
    assert "DeadKernelError" in str(failure)
    # papermill marks this copy finished without exception; the runner's stamp says otherwise
    assert world.plan(only=["10"]) == {"10_gamma": "last run failed or was interrupted"}


def test_profile_parameter_file_values_reach_the_notebook(world):
    cpu = world.notebooks / "params" / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "01_alpha.yaml").write_text("greeting: from yaml\n")  # profile is filled in
    assert world.run(profile="cpu", only=["01"]).ok
    executed = nbformat.read(world.reports / "runs" / "cpu" / "01_alpha.ipynb", as_version=4)
    assert executed.cells[4].outputs[0].text == "from yaml cpu 01_alpha\n"
    assert executed.metadata.papermill.parameters == {"greeting": "from yaml", "profile": "cpu"}
    # Changed values make the copy stale even though it is newer than the file.
    (cpu / "01_alpha.yaml").write_text("greeting: other\n")
    _later(world.reports / "runs" / "cpu" / "01_alpha.ipynb", cpu / "01_alpha.yaml")
    assert world.plan(profile="cpu", only=["01"]) == {"01_alpha": "parameters changed"}


@pytest.mark.parametrize("content, message", [
    (None, r"no parameter file for the cpu profile at .*2_beta\.yaml"),
    ("greting: typo\n", "sets greting, which the parameters cell of 2_beta.ipynb does not define"),
    ("- a list\n", "must be a YAML mapping"),
    ("profile: full\n", "sets profile: 'full' but lies under params/cpu/"),
])
def test_bad_or_missing_parameter_files_stop_before_anything_runs(world, content, message):
    cpu = world.notebooks / "params" / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "01_alpha.yaml").write_text("profile: cpu\n")
    if content is not None:
        (cpu / "2_beta.yaml").write_text(content)
    with pytest.raises(BatchError, match=message):
        world.run(profile="cpu")
    assert world.ran() == []


def test_refresh_stores_default_outputs_without_injection_or_run_metadata(world):
    smoke = world.notebooks / "params" / "smoke"
    smoke.mkdir(parents=True)
    (smoke / "01_alpha.yaml").write_text("greeting: ignored by refresh\n")
    refresh_notebooks(["01"], world.notebooks, progress=False)
    stored = nbformat.read(world.notebooks / "01_alpha.ipynb", as_version=4)
    assert stored.cells[3].outputs[0].text == "hello smoke 01_alpha\n"
    assert stored.cells[1].metadata.tags == ["parameters"]
    assert len(stored.cells) == 4 and not any("injected-parameters" in c.metadata.get("tags", []) for c in stored.cells)
    assert not {"papermill", "ssn3d_batch"} & set(stored.metadata)
    assert not any({"papermill", "execution"} & set(c.metadata) for c in stored.cells)
    assert (world.reports / "runs" / "smoke" / "01_alpha.ipynb").is_file()
    # A second refresh of unchanged code gives the same bytes: no churn in the diff.
    first = (world.notebooks / "01_alpha.ipynb").read_bytes()
    refresh_notebooks(["01_alpha"], world.notebooks, progress=False)
    assert (world.notebooks / "01_alpha.ipynb").read_bytes() == first
    assert world.ran() == ["01_alpha", "01_alpha"]


def test_strip_run_metadata_drops_timings_widget_ids_and_refuses_injected_cells():
    source = nbformat.v4.new_notebook(metadata={"language_info": {"name": "python"}})
    executed = nbformat.v4.new_notebook(metadata={"papermill": {"duration": 1.5}, "ssn3d_batch": {"status": "ok"}})
    bar = nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "ab12"}, "text/plain": "100%"})
    cell = nbformat.v4.new_code_cell("loop()", outputs=[bar])
    cell.metadata.update(papermill={"duration": 0.1}, execution={"iopub.status.busy": "t"}, tags=[])
    tagged = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})
    executed.cells = [tagged, cell]
    stripped = strip_run_metadata(executed, source)
    assert stripped.metadata == {"language_info": {"name": "python"}}
    assert stripped.cells[1].metadata == {} and stripped.cells[0].metadata.tags == ["parameters"]
    assert stripped.cells[1].outputs[0].data == {"text/plain": "100%"}
    executed.cells.insert(1, nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}))
    with pytest.raises(BatchError, match="injected-parameters"):
        strip_run_metadata(executed, source)


def test_refresh_of_a_failing_notebook_leaves_its_source_alone(world):
    path = world.notebooks / "2_beta.ipynb"
    nbformat.write(_notebook(world.root / "ran.log", "2_beta", "assert False, 'claim broken'"), path)
    before = path.read_bytes()
    with pytest.raises(NotebookFailed, match="AssertionError: claim broken"):
        refresh_notebooks(["2"], world.notebooks, progress=False)
    assert path.read_bytes() == before


def test_cli_dry_run_lists_the_plan_and_bad_names_exit_2(world, capsys):
    args = ["--notebooks", str(world.notebooks)]
    assert main(["studies", "run", "--profile", "smoke", "--only", "2", "--dry-run", *args]) == 0
    assert capsys.readouterr().out == "2_beta: run: no executed copy yet\n"
    assert main(["studies", "refresh", "99_nothing", *args]) == 2
    assert "no numbered notebook matches '99_nothing'" in capsys.readouterr().err
    assert main(["studies", "run", "--profile", "full", *args]) == 2
    err = capsys.readouterr().err  # every missing file is listed at once, not one per attempt
    assert all(f"params/full/{stem}.yaml" in err for stem in ("01_alpha", "2_beta", "10_gamma"))
    assert world.ran() == []


def test_a_partial_profile_runs_only_the_notebooks_with_a_parameter_file(world):
    extended = world.notebooks / "params" / "extended"
    extended.mkdir(parents=True)
    (extended / "2_beta.yaml").write_text("greeting: more seeds\n")
    assert list(world.plan(profile="extended")) == ["2_beta"]
    with pytest.raises(BatchError, match=r"01_alpha is not part of the extended profile \(no .*01_alpha\.yaml\)"):
        world.plan(profile="extended", only=["01", "2"])
    assert world.run(profile="extended").ok
    assert world.ran() == ["2_beta"]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "extended", "full"])
def test_every_committed_parameter_file_fits_its_notebooks_parameters_cell(profile):
    # papermill parses the parameters cell line by line: a name it cannot parse (a comment with
    # '=' in it once hid `overrides`) makes the batch refuse the profile's file before it runs
    from ssn3dlib.paths import notebooks_dir
    from ssn3dlib.studies.batch import load_parameters

    covered = [nb for nb in discover_notebooks(notebooks_dir()) if in_profile(nb, profile, notebooks_dir())]
    assert len(covered) >= 3
    for notebook in covered:
        values, path = load_parameters(notebook, profile, notebooks_dir())
        assert profile == "smoke" or path is not None, notebook.stem
        assert values.get("profile", profile) == profile
