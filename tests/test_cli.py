"""The `ssn3d` entry point: sub-commands dispatch, the demo writes its report."""
import json
import subprocess
import sys

import pytest

from ssn3dlib.cli import main


def test_info_lists_models_and_backbones(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "ssn3d" in out and "resnet50-layer3" in out


def test_unknown_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-everything"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "ssn3dlib", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout


def test_demo_writes_figure_and_metrics(tmp_path, monkeypatch):
    assert main(["demo", "--steps", "60", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "ssn_random_maps.png").stat().st_size > 10_000
    runs = metrics["random_maps"]
    # Even 60 steps separate Gaussian noise; all-ones maps cannot move off log N.
    assert runs["gaussian"]["final_loss"] < 0.5 * runs["gaussian"]["log_n"]
    assert abs(runs["ones"]["final_loss"] - runs["ones"]["log_n"]) < 0.01
    assert metrics["ssn3d_paper_input"]["embedding"] == [4, 1024]
