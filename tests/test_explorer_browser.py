"""The attention explorer where users use it: JupyterLab in headless Chromium, driven with
Playwright (choose a split, an identity, a frame, a part; two checkpoints side by side).

Needs Debian's chromium (/usr/bin/chromium, or $SSN3D_CHROMIUM) and the playwright package
(its own browser download is not used); skipped without them, except under `make test`, which
installs Chromium (`make browser`) and makes them required. The screenshot goes to
$SSN3D_BROWSER_SCREENSHOT when set (else the test's tmp folder) for a person to look at.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

try:
    from playwright import sync_api
except ImportError:   # reported by _missing()
    sync_api = None

CHROMIUM = Path(os.environ.get("SSN3D_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
TOKEN = "ssn3d-browser-test"


def _missing() -> list:
    missing = [] if CHROMIUM.is_file() else [f"no Chromium at {CHROMIUM} (make browser, or apt-get install chromium)"]
    if sync_api is None:
        missing.append("playwright is not installed (pip install -e .[test])")
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        missing.append("JupyterLab is not installed beside this Python")
    return missing


# `make test` installs Chromium and sets SSN3D_REQUIRE_BROWSER=1: there a missing piece fails the
# test instead of skipping it, so CI cannot pass without having driven the explorer.
if _missing() and os.environ.get("SSN3D_REQUIRE_BROWSER") == "1":
    pytestmark = pytest.mark.usefixtures("_fail_missing_browser")
else:
    pytestmark = pytest.mark.skipif(bool(_missing()), reason="; ".join(_missing()))


@pytest.fixture
def _fail_missing_browser():
    pytest.fail("SSN3D_REQUIRE_BROWSER=1 but " + "; ".join(_missing()))


def _notebook(checkpoints):
    source = ("from ssn3dlib.explorer import AttentionExplorer, load_run\n"
              f"runs = [load_run(p) for p in {[str(p) for p in checkpoints]!r}]\n"
              "explorer = AttentionExplorer(runs, clip_frames=3)\n"
              "explorer.widget()")
    return {"cells": [{"cell_type": "code", "execution_count": None, "id": "explorer", "metadata": {},
                       "outputs": [], "source": source}],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


def _accept_dialogs(page):
    """Accept any modal JupyterLab shows while starting (a kernel choice: the notebook's own kernel
    is the default), so that it cannot swallow the clicks that follow."""
    dialogs = page.locator(".jp-Dialog")
    while dialogs.count():
        print("accepting JupyterLab dialog:", dialogs.first.inner_text().replace("\n", " | "))
        dialogs.first.locator(".jp-Dialog-button.jp-mod-accept").first.click()
        page.wait_for_timeout(500)


def _quiet_settings(config_dir: Path) -> None:
    """No news or update toast over the notebook (the machine may be offline anyway)."""
    folder = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, tiny_checkpoint):
    """A JupyterLab server on a local port over a folder holding explorer.ipynb (two runs:
    the tiny checkpoint and an unsupervised variant of it, so the rows differ in words)."""
    from ssn3dlib.engine.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(tiny_checkpoint)
    payload["config"]["model"]["strategy"] = "unsupervised"
    other = save_checkpoint(tmp_path / "unsupervised.pt", payload)
    (tmp_path / "explorer.ipynb").write_text(json.dumps(_notebook([tiny_checkpoint, other])))
    _quiet_settings(tmp_path / "cfg")
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    log = open(tmp_path / "lab.log", "w")
    command = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root"]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_the_explorer_redraws_in_jupyterlab(lab, tmp_path):
    shot = Path(os.environ.get("SSN3D_BROWSER_SCREENSHOT", tmp_path / "explorer.png"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{lab}/lab/tree/explorer.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        prompt = page.locator(".jp-Cell .jp-InputPrompt").first
        for _ in range(6):   # a command given before the kernel session is wired up is dropped: give it again
            _accept_dialogs(page)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            try:
                page.wait_for_function("el => !/\\[ \\]/.test(el.textContent)", arg=prompt.element_handle(),
                                       timeout=10_000)
                break
            except sync_api.TimeoutError:
                continue
        image = page.locator(".widget-output img").first
        try:
            image.wait_for(timeout=90_000)
        except sync_api.TimeoutError:
            page.screenshot(path=str(shot.with_name("failed_" + shot.name)), full_page=True)
            raise

        def new_image(before):
            """Wait until the output shows another image than `before` (it is briefly empty between)."""
            page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel);"
                                   " return i && i.getAttribute('src') !== old; }",
                                   arg=[".widget-output img", before], timeout=60_000)

        def dropdown(description):
            return page.locator(".widget-dropdown", has=page.locator("label", has_text=description)).locator("select")

        def select(description, index):
            """Choose the index-th option of the ipywidgets dropdown with this description."""
            before = image.get_attribute("src")
            chooser = dropdown(description)
            chooser.select_option(value=chooser.locator("option").nth(index).get_attribute("value"))
            new_image(before)

        def chosen(description):
            return dropdown(description).locator("option:checked").inner_text()

        query_tracklet = chosen("tracklet")
        select("split", index=1)                                  # query -> gallery: the reported bug
        assert chosen("tracklet") != query_tracklet and chosen("split") == "gallery"
        select("identity", index=1)
        select("part", index=2)
        slider = page.locator(".widget-slider", has=page.locator("label", has_text="first frame"))
        before = image.get_attribute("src")
        slider.locator(".ui-slider-handle, .noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        new_image(before)
        page.wait_for_timeout(500)
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count()
        text = page.locator(".jp-OutputArea-output").all_inner_texts()
        browser.close()
    assert not errors, errors
    assert stderr == 0 and not any("Traceback" in t for t in text), text
    assert shot.stat().st_size > 10_000
