"""The package as a user installs it: a wheel built from the checkout's files, installed into a
fresh virtual environment, run from a folder outside the checkout.

Marked `wheel` (about 20 s on 2 cores: one wheel build, a few `ssn3d` processes that each import
torch, a one-epoch tiny training). It stays in `make test`; `-m "not wheel"` leaves it out.
Nothing is downloaded: the fresh environment reuses the running environment's installed
dependencies (torch and the rest) through a .pth file naming its site-packages, which
appends that folder to sys.path after the fresh environment's own site-packages, so `ssn3dlib`
is imported from the wheel and everything else from the running environment. The checkout's
editable install is not picked up: .pth files in an appended folder are not executed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from ssn3dlib import REPO_ROOT

pytestmark = pytest.mark.wheel

# configs/synthetic_tiny.yaml's world, as `ssn3d data synth` options.
TINY_WORLD = ["--seed", "0", "--identities", "8", "--frames", "8,12", "--image-size", "64,32", "--crops", "0"]


def _checkout_files() -> list[str]:
    """What a clean clone of the working tree holds: tracked files and untracked, not ignored ones."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean clone has")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                         capture_output=True, check=True).stdout
    return sorted(set(out.decode().split("\0")) - {""})


def _copy_checkout(dest: Path) -> Path:
    """The checkout's files (symbolic links kept as links) in `dest`, so the build writes nothing into it."""
    for rel in _checkout_files():
        src, dst = REPO_ROOT / rel, dest / rel
        if not os.path.lexists(src):   # deleted in the working tree, not yet in git
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of the fresh environment, its ssn3d script, environment variables for running them)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = _copy_checkout(tmp / "source")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(pip + ["wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                          "-w", str(tmp / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("ssn3d_study-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_running_env_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: the running environment's ssn3d-study (seen through the .pth) is left alone.
    subprocess.run(pip + ["--python", str(python), "install", "--quiet", "--no-index", "--no-deps",
                          "--ignore-installed", str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SSN3D_REPORTS", "SSN3D_DATA_ROOT", "PYTHONPATH")}
    env.update(SSN3D_CACHE=str(tmp / "cache"), PYTHONNOUSERSITE="1")
    return python, venv / "bin" / "ssn3d", env, site


def _run(cmd, cwd: Path, env, expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, (f"{[str(c) for c in cmd[1:]]} exited {proc.returncode}:\n"
                                       f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _package_files(site: Path) -> set:
    return {p.relative_to(site) for p in (site / "ssn3dlib").rglob("*") if "__pycache__" not in p.parts}


def test_wheel_runs_outside_the_checkout(installed, tmp_path):
    python, ssn3d, env, site = installed
    work = tmp_path / "work"
    work.mkdir()
    shipped = _package_files(site)
    imported = _run([python, "-c", "import ssn3dlib; print(ssn3dlib.__file__)"], work, env).stdout.strip()
    assert Path(imported).parent == site / "ssn3dlib", f"ssn3dlib imported from {imported}, not from the wheel"
    for folder in ("configs", "data_manifests", "data_labels"):   # package data, not the checkout's folders
        assert not (site / "ssn3dlib" / folder).is_symlink() and any((site / "ssn3dlib" / folder).iterdir())

    assert "models:" in _run([ssn3d, "info"], work, env).stdout

    # data synth writes its manifest from the packaged synthetic_world.yaml; data verify reads it back.
    _run([ssn3d, "data", "synth", "--root", "world", *TINY_WORLD, "--write-manifest", "world.yaml"], work, env)
    verified = _run([ssn3d, "data", "verify", "synthetic_world", "--root", "world", "--manifest", "world.yaml"],
                    work, env)
    assert "ok: synthetic_world matches its manifest" in verified.stdout
    # Every registered dataset's manifest and every shipped config loads, and the labels are there.
    _run([python, "-c", "from ssn3dlib.data.manifests import load_manifest\n"
                        "from ssn3dlib.data.readers import DATASETS\n"
                        "from ssn3dlib.engine.config import CONFIG_DIR, load_config\n"
                        "from ssn3dlib.paths import labels_dir\n"
                        "assert [load_manifest(name) for name in DATASETS]\n"
                        "assert [load_config(p.stem) for p in CONFIG_DIR.glob('*.yaml')]\n"
                        "assert (labels_dir() / 'mot17_mini_mediapipe.csv').is_file()"], work, env)

    # A named config from the package; the run goes under the working directory.
    _run([ssn3d, "train", "--config", "synthetic_tiny", f"data.root={work / 'world'}", "train.epochs=1",
          "train.tensorboard=false", "--quiet"], work, env)
    run_dir = work / "reports" / "runs" / "train" / "synthetic_tiny"
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir / "metrics.jsonl").is_file()
    evaluated = _run([ssn3d, "evaluate", "--checkpoint", run_dir / "checkpoints" / "last.pt", "--quiet",
                      "--out", "eval.json"], work, env)
    assert "mAP" in evaluated.stdout and (work / "eval.json").is_file()
    _run([ssn3d, "extract", "--checkpoint", run_dir / "checkpoints" / "last.pt", "--dataset", "synthetic_world",
          "--splits", "query", "--out", "features.npz", "--quiet"], work, env)
    _run([ssn3d, "visrank", "--checkpoint", run_dir / "checkpoints" / "last.pt", "--out", "ranks.png",
          "--num-queries", "2", "--topk", "3", "--quiet"], work, env)
    assert (work / "features.npz").is_file() and (work / "ranks.png").is_file()

    # The study batch needs the repository's notebooks and says so.
    studies = _run([ssn3d, "studies", "run", "--profile", "smoke", "--dry-run"], work, env, expect=2)
    assert "needs a source checkout" in studies.stderr

    assert _package_files(site) == shipped, "a command wrote into the installed package"
    assert not (site / "reports").exists() and not (site.parent / "shared").exists()
