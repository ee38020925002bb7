"""Labelling a dataset's tracklets (`ssn3d data pseudolabel --dataset`): which frames, and a run
that is killed and started again ends with the table an uninterrupted run writes.

The frame choice and the resume logic run here with a stand-in pose model; the real thing
(MediaPipe in worker processes, SIGKILL, resume) runs in the pose environment on a MARS-layout
fixture of PKU crops, and skips where either is absent.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from ssn3dlib import REPO_ROOT
from ssn3dlib.data import pseudolabel as pl
from ssn3dlib.data.readers import read_dataset
from ssn3dlib.paths import data_root

from data_fixtures import build_mars

PKU = data_root() / "pku_reid_subset"
POSE_PYTHON = REPO_ROOT / ".venv-pose" / "bin" / "python"
TRAIN_ROWS = [(12, 1, 1), (9, 1, 2), (12, 2, 1), (10, 2, 2), (3, 6, 1)]
TEST_ROWS = [(8, 3, 1), (8, 3, 2), (9, 4, 1), (7, 4, 2)]


def test_spread_frames_keep_both_ends_and_short_tracklets_whole():
    frames = [f"f{i}" for i in range(10)]
    assert pl.spread_frames(frames, 4) == ["f0", "f3", "f6", "f9"]
    assert pl.spread_frames(frames, 1) == ["f5"]
    assert pl.spread_frames(frames[:3], 4) == frames[:3]
    with pytest.raises(ValueError, match="at least 1"):
        pl.spread_frames(frames, 0)


def test_dataset_frames_are_k_per_training_tracklet_and_test_frames_on_request(tmp_path):
    dataset = read_dataset("mars", build_mars(tmp_path / "MARS", TRAIN_ROWS, TEST_ROWS, [1, 3]))
    train_only = pl.dataset_frames(dataset, 4)
    assert len(train_only) == 4 * 4 + 3 and train_only == sorted(train_only)
    assert all(f.startswith("bbox_train/") for f in train_only)
    with_test = pl.dataset_frames(dataset, 4, test=True)
    assert len(with_test) == len(train_only) + sum(n for n, _, _ in TEST_ROWS)


class _FakeModel:
    def close(self):
        pass


def _fake_labels(fail_at=None):
    """A stand-in for one image's pose: rows for every other image, a crash at `fail_at`."""
    def label_one(model, root, rel):
        if rel == fail_at:
            raise KeyboardInterrupt("killed")
        n = int(rel[1:])
        return [] if n % 2 else [(rel, "nose", n + 0.25, 2 * n, 0.5), (rel, "left_ear", n, n, 1.0)]
    return label_one


def test_a_killed_run_resumes_to_the_uninterrupted_table(tmp_path, monkeypatch):
    monkeypatch.setattr(pl, "load_pose_model", lambda *a, **k: _FakeModel())
    images = [f"i{n:03d}" for n in range(100)]
    whole = tmp_path / "whole.csv"
    monkeypatch.setattr(pl, "_label_one", _fake_labels())
    pl.label_images(tmp_path, images, whole, chunk_size=8, progress=False)
    assert not pl.progress_path(whole).exists()

    part = tmp_path / "part.csv"
    monkeypatch.setattr(pl, "_label_one", _fake_labels(fail_at="i050"))
    with pytest.raises(KeyboardInterrupt):
        pl.label_images(tmp_path, images, part, chunk_size=8, progress=False)
    done = pl.progress_path(part).read_text().split()
    assert done == images[:48]                       # six whole chunks, the seventh lost
    # A kill between a chunk's rows and its progress line: rows of images not listed as done.
    with open(part, "a") as f:
        f.write("i048,nose,1.0,1.0,0.5\n")
    monkeypatch.setattr(pl, "_label_one", _fake_labels())
    pl.label_images(tmp_path, images, part, chunk_size=8, progress=False)
    assert part.read_bytes() == whole.read_bytes()
    assert not pl.progress_path(part).exists()


def _mars_of_pku_crops(root: Path) -> Path:
    """The MARS layout with real person crops (PKU's) in place of its noise frames."""
    build_mars(root, TRAIN_ROWS, TEST_ROWS, [1, 3])
    crops = sorted(PKU.glob("images/*/*.jpg"))
    for i, frame in enumerate(sorted(root.glob("bbox_*/*/*.jpg"))):
        frame.write_bytes(crops[(7 * i) % len(crops)].read_bytes())
    return root


@pytest.mark.skipif(not POSE_PYTHON.is_file(), reason="no pose environment (make pose-env)")
@pytest.mark.skipif(not PKU.is_dir(), reason="needs ../shared/data/pku_reid_subset for real person crops")
def test_sigkilled_mediapipe_run_resumes_to_the_same_table(tmp_path):
    root = _mars_of_pku_crops(tmp_path / "MARS")

    def command(out):
        return [str(POSE_PYTHON), "-m", "ssn3dlib", "data", "pseudolabel", "--dataset", "mars", "--root", str(root),
                "--frames-per-tracklet", "4", "--test-frames", "--workers", "2", "--out", str(out)]

    whole = tmp_path / "whole.csv"
    done = subprocess.run(command(whole), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    part = tmp_path / "part.csv"
    proc = subprocess.Popen(command(part), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not (
            pl.progress_path(part).is_file() and pl.progress_path(part).stat().st_size):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)              # the command and its pose workers
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed")
    assert pl.progress_path(part).is_file()
    resumed = subprocess.run(command(part), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr[-2000:]
    assert part.read_bytes() == whole.read_bytes()
    assert pd.read_csv(whole)["image"].nunique() > 5          # real crops: MediaPipe finds people


def test_command_needs_root_with_dataset(tmp_path, capsys):
    from ssn3dlib.cli import main

    code = main(["data", "pseudolabel", "--dataset", "mars", "--out", str(tmp_path / "kp.csv")])
    assert code == 2 and "--root" in capsys.readouterr().err
