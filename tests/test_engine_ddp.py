"""DDP on CPU: two gloo processes launched by torchrun (about 30 s on the 2-core machine) train
the tiny config to the end, and every rank ends with the same model."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssn3dlib import REPO_ROOT
from ssn3dlib.engine import load_checkpoint, read_metrics

from engine_helpers import same_weights

WORKER = Path(__file__).with_name("engine_ddp_worker.py")


def test_two_gloo_processes_train_and_agree_on_weights(tiny_world, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(WORKER), str(tiny_world), str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)      # torchrun and both workers
        output, _ = proc.communicate()
        pytest.fail("torchrun did not finish in 300 s:\n" + output[-3000:])
    assert proc.returncode == 0, output[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert same_weights(ranks[0]["state"], ranks[1]["state"])              # parameters and BN buffers
    assert same_weights(load_checkpoint(tmp_path / "checkpoints" / "last.pt")["model"], ranks[0]["state"])
    assert ranks[0]["final"] == ranks[1]["final"] and ranks[0]["final"]["epoch"] == 2
    log = read_metrics(tmp_path)
    assert (log["kind"] == "eval").sum() == 2                               # only rank 0 writes
    assert log.loc[log["kind"] == "step", "step"].is_unique
