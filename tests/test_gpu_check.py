"""benchmarks/gpu_check.py (`make gpu-check`) has not yet run on a GPU; its --cpu mode runs the
script's own logic here (training steps, a one-process gloo torchrun, the JSON and the table),
about 15 s, so the script is not broken before its first GPU run."""
from __future__ import annotations

import json
import subprocess
import sys

from ssn3dlib import REPO_ROOT


def test_gpu_check_script_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--steps", "2",
                           "--skip", "bench", "notebooks", "--output", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    status = {(r["part"], r["name"]): r["status"] for r in record["rows"]}
    assert status[("train", "fp32")] == status[("train", "bf16")] == "ok"
    assert status[("train", "fp16+GradScaler")] == "skipped"           # CUDA only
    (ddp,) = [r for r in record["rows"] if r["part"] == "ddp"]
    assert ddp["status"] == "ok" and ddp["final_loss_minus_fp32_run"] == 0.0   # one process = no DDP on CPU
    assert "fp32" in proc.stdout and "all ok" in proc.stdout
