"""The trainer end to end at tiny scale on CPU: a run killed at any point and resumed ends
with the same weights and metrics as an uninterrupted one; bad input fails before training."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from ssn3dlib import REPO_ROOT, cli
from ssn3dlib.engine import CheckpointError, ConfigError, evaluate, load_checkpoint, read_metrics, train
from ssn3dlib.engine.trainer import run_paths

from engine_helpers import comparable, same_weights, tiny_config


class Crash(Exception):
    """Stands in for a kill between two checkpoints."""


def crash_at(step):
    def on_step(record):
        if record["step"] == step:
            raise Crash(step)
    return on_step


def records(run_dir):
    return read_metrics(run_dir).to_dict("records")


@pytest.fixture(scope="module")
def reference(tiny_world, tmp_path_factory):
    """An uninterrupted run: 2 epochs, evaluated after each."""
    run_dir = tmp_path_factory.mktemp("reference")
    result = train(tiny_config(tiny_world), run_dir, progress=False)
    return result, load_checkpoint(result.paths["last"])["model"], records(run_dir)


def test_reference_run_writes_the_run_layout_and_learns(reference):
    result, _, log = reference
    paths = run_paths(result.run_dir)
    assert all(paths[k].is_file() for k in ("config", "last", "best", "metrics"))
    kinds = [r["kind"] for r in log]
    assert kinds.count("epoch") == 2 and kinds.count("eval") == 2
    steps = [r for r in log if r["kind"] == "step"]
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))
    assert steps[-1]["triplet"] < steps[0]["triplet"]
    assert result.epochs == 2 and result.final["epoch"] == 2
    assert 0 <= result.final["mAP"] <= 100 and result.final["rank1"] <= result.final["rank5"]
    assert load_checkpoint(paths["best"])["epoch"] == result.best_epoch


def test_evaluate_reproduces_the_trainers_final_numbers(reference):
    result, _, _ = reference
    metrics = evaluate(result.paths["last"], progress=False)
    for key in ("rank1", "rank5", "rank10", "rank20", "mAP", "cmc"):
        assert metrics[key] == result.final[key]
    assert (metrics["dataset"], metrics["model"], metrics["strategy"], metrics["epochs"]) == \
        ("synthetic_world", "ssn3d", "semi-supervised", 2)
    assert metrics["ap_definition"] == "standard" and metrics["device"].startswith("cpu")


@pytest.mark.parametrize("every, crash_step", [(1, 4), (0, 3)], ids=["mid-epoch-checkpoint", "epoch-end-only"])
def test_crash_and_resume_gives_the_uninterrupted_result(reference, tiny_world, tmp_path, every, crash_step):
    """Crash after global step `crash_step` (its checkpoint not yet written); resume with
    2 DataLoader workers: same weights and metrics as the uninterrupted 0-worker run."""
    _, ref_weights, ref_log = reference
    config = tiny_config(tiny_world, f"train.checkpoint_every_steps={every}")
    with pytest.raises(Crash):
        train(config, tmp_path, progress=False, on_step=crash_at(crash_step))
    saved = load_checkpoint(run_paths(tmp_path)["last"])
    assert saved["global_step"] == crash_step - 1           # the last checkpoint before the crash
    result = train(tiny_config(tiny_world, f"train.checkpoint_every_steps={every}", "data.num_workers=2"),
                   tmp_path, progress=False)
    assert result.resumed_from["global_step"] == crash_step - 1
    assert same_weights(load_checkpoint(result.paths["last"])["model"], ref_weights)
    assert comparable(records(tmp_path)) == comparable(ref_log)


def test_sigkill_at_any_moment_then_resume(reference, tiny_world, tmp_path):
    """The real thing: `ssn3d train` in a subprocess, SIGKILLed once a mid-run checkpoint exists."""
    _, ref_weights, ref_log = reference
    last = run_paths(tmp_path)["last"]
    cmd = [sys.executable, "-m", "ssn3dlib", "train", "--config", "synthetic_tiny", f"data.root={tiny_world}",
           "train.tensorboard=false", "train.checkpoint_every_steps=1", "--run-dir", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_at = load_checkpoint(last)
    assert killed_at["global_step"] < ref_log[-1]["step"], "killed too late to test anything"
    result = train(tiny_config(tiny_world, "train.checkpoint_every_steps=1"), tmp_path, progress=False)
    assert result.resumed_from is not None
    assert same_weights(load_checkpoint(result.paths["last"])["model"], ref_weights)
    assert comparable(records(tmp_path)) == comparable(ref_log)


def test_a_finished_run_is_returned_not_retrained(reference, tiny_world):
    result, ref_weights, ref_log = reference
    again = train(tiny_config(tiny_world), result.run_dir, progress=False,
                  on_step=lambda record: pytest.fail("trained again"))
    assert again.final == result.final and again.resumed_from["epoch"] == 2
    assert comparable(records(result.run_dir)) == comparable(ref_log)


def test_resuming_with_another_model_or_recipe_is_refused(reference, tiny_world):
    run_dir = reference[0].run_dir
    with pytest.raises(CheckpointError, match="model.name: checkpoint 'ssn3d', here 'tp'"):
        train(tiny_config(tiny_world, "model.name=tp"), run_dir, progress=False)
    with pytest.raises(ConfigError, match="config differs in optim.lr"):
        train(tiny_config(tiny_world, "optim.lr=1e-3"), run_dir, progress=False)


@pytest.mark.parametrize("overrides, error, message", [
    (["data.world=null", "data.root=/nonexistent/world"], ConfigError, "/nonexistent/world does not exist"),
    (["data.clip_len=13"], ConfigError, "longer than every training tracklet"),
    (["data.clip_len=10", "data.short=error"], ConfigError, "data.short is 'error'"),
    (["data.keypoints=null"], ConfigError, "needs keypoints"),
    (["data.keypoints=missing.csv"], ConfigError, "missing.csv does not exist"),
    (["train.amp=fp16"], ConfigError, "fp16 needs a CUDA device"),
    (["data.identities_per_batch=9"], ValueError, "identities cannot fill batches"),
    (["data.options.split=1"], ConfigError, "do not fit the 'synthetic_world' reader"),
])
def test_bad_input_fails_before_training(tiny_world, tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        train(tiny_config(tiny_world, *overrides), tmp_path, progress=False,
              on_step=lambda record: pytest.fail("training started"))


@pytest.mark.parametrize("variant", [["train.amp=bf16"], ["train.channels_last=true"],
                                     ["model.name=tp"], ["model.name=c3d"], ["model.name=st-attention"],
                                     ["model.strategy=unsupervised", "model.shared_classifier=false"]],
                         ids=lambda v: ",".join(v))
def test_other_models_and_the_gpu_code_paths_train_on_cpu(tiny_world, tmp_path, variant):
    """bf16 autocast and channels_last are GPU settings, but their code paths run on the CPU too."""
    threads = torch.get_num_threads()
    result = train(tiny_config(tiny_world, "train.epochs=1", *variant), tmp_path, progress=False)
    steps = read_metrics(tmp_path).query("kind == 'step'")
    assert result.final["epoch"] == 1 and steps["loss"].notna().all() and len(steps) >= 1
    assert torch.get_num_threads() == threads        # the run's train.num_threads=1 is not left behind


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_one_fails_clearly(tiny_world, tmp_path):
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        train(tiny_config(tiny_world, "train.device=cuda"), tmp_path, progress=False)


def test_cli_evaluate_writes_json_and_train_reports_config_errors(reference, tmp_path, capsys):
    result = reference[0]
    out = tmp_path / "eval.json"
    assert cli.main(["evaluate", "--checkpoint", str(result.paths["best"]), "--out", str(out), "--quiet"]) == 0
    written = json.loads(out.read_text())
    assert written["mAP"] == result.best["mAP"] and written["epochs"] == result.best_epoch
    assert cli.main(["train", "--config", "synthetic_tiny", "optim.lrr=1", "--run-dir", str(tmp_path)]) == 2
    assert "did you mean 'optim.lr'" in capsys.readouterr().err


def test_channels_last_clips_give_channels_last_frames_without_copying_values():
    from ssn3dlib.engine.trainer import _channels_last_clips

    clips = torch.randn(2, 4, 3, 16, 8)
    laid_out = _channels_last_clips(clips)
    frames = laid_out.flatten(0, 1)                 # what the backbone sees
    assert torch.equal(laid_out, clips)
    assert frames.is_contiguous(memory_format=torch.channels_last) and frames.data_ptr() == laid_out.data_ptr()
