"""Profiling helpers: parameter counts, activation bytes, peak memory, timing, and the model benchmark."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ssn3dlib.models import SSN3D
from ssn3dlib.profiling import (
    MB,
    PeakMemory,
    affine_fit,
    autocast,
    best_time,
    count_flops,
    count_parameters,
    model_state_tensors,
    module_output_bytes,
    parameter_bytes,
    saved_tensor_bytes,
)

REPO = Path(__file__).resolve().parents[1]


def test_parameter_count_is_the_sum_over_modules(tiny_ssn3d_kwargs):
    model = SSN3D(**tiny_ssn3d_kwargs)
    per_module = sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False))
    assert count_parameters(model) == per_module
    parts = [model.backbone, model.ssn, model.aggregator, model.fusion]
    assert count_parameters(model) == sum(count_parameters(p) for p in parts)
    assert parameter_bytes(model) == 4 * per_module


def test_shared_parameters_are_counted_once():
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)   # 16 weights + 4 biases each
    second.weight = first.weight                      # tied: one tensor in two modules
    assert count_parameters(nn.Sequential(first, second)) == 16 + 4 + 4
    assert count_parameters(nn.Sequential(first, first)) == 20
    first.bias.requires_grad_(False)
    assert count_parameters(first, trainable_only=True) == 16


def test_module_outputs_of_a_conv_are_its_output_size_in_bytes():
    conv = nn.Conv2d(3, 8, kernel_size=3)
    x = torch.randn(2, 3, 10, 6)
    _, outputs = module_output_bytes(conv, lambda: conv(x))
    assert outputs == 2 * 8 * 8 * 4 * 4          # B x C_out x (10-2) x (6-2) x 4 bytes


def test_flops_of_a_linear_and_a_grouped_conv_are_two_per_multiply_add():
    _, linear = count_flops(lambda: nn.Linear(8, 4)(torch.randn(3, 8)))
    assert linear == 2 * 3 * 8 * 4
    conv = nn.Conv2d(6, 4, kernel_size=3, groups=2)      # each output sees 3 input channels
    _, grouped = count_flops(lambda: conv(torch.randn(2, 6, 5, 5)))
    assert grouped == 2 * (2 * 4 * 3 * 3) * 3 * 3 * 3    # 2 x outputs x (C_in/g x k x k)


def test_saved_tensors_of_two_convs_are_the_first_output():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 3))
    x = torch.randn(2, 3, 10, 6)
    out, saved = saved_tensor_bytes(lambda: net(x), exclude=model_state_tensors(net) + [x])
    # The second conv keeps its input (the first conv's output) for its weight gradient;
    # the first conv's input x and both weights are excluded.
    assert saved == 2 * 8 * 8 * 4 * 4
    _, with_state = saved_tensor_bytes(lambda: net(x))
    assert with_state == saved + x.numel() * 4 + parameter_bytes(net) - 8 * 4 - 4 * 4  # no biases saved
    out.sum().backward()                          # the graph is intact after counting
    assert net[0].weight.grad is not None


def test_a_tensor_saved_twice_is_counted_once():
    x = torch.randn(100, requires_grad=True)
    _, saved = saved_tensor_bytes(lambda: (x * x).sum())
    assert saved == 400
    _, nothing = saved_tensor_bytes(lambda: (x * x).sum(), exclude=[x])
    assert nothing == 0
    with torch.no_grad():
        _, no_graph = saved_tensor_bytes(lambda: (x * x).sum())
    assert no_graph == 0


def test_ssn3d_activations_are_linear_in_the_batch(tiny_ssn3d_kwargs):
    model = SSN3D(strategy="unsupervised", **tiny_ssn3d_kwargs)

    def saved(b):
        clips = torch.randn(b, 4, 3, 64, 32)
        _, nbytes = saved_tensor_bytes(lambda: model(clips), exclude=model_state_tensors(model) + [clips])
        return nbytes

    slope, intercept = affine_fit(2, saved(2), 4, saved(4))
    assert slope > 0 and abs(intercept) < 0.01 * slope
    assert saved(6) == pytest.approx(intercept + 6 * slope, rel=1e-3)


def test_affine_fit_needs_two_points():
    assert affine_fit(1, 3, 3, 7) == (2, 1)
    with pytest.raises(ValueError, match="two different"):
        affine_fit(2, 1, 2, 5)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_cpu_peak_memory_sees_a_transient_tensor():
    # A fresh process: in a long pytest run the allocator reuses pages freed by earlier
    # tests, so RSS would not grow (PeakMemory's docstring: measure CPU peaks in fresh processes).
    code = ("import torch; from ssn3dlib.profiling import PeakMemory\n"
            "with PeakMemory('cpu') as peak:\n"
            f"    big = torch.ones({50 * MB // 4}); del big\n"
            "print(peak.peak_bytes, peak.absolute_bytes)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    peak_bytes, absolute_bytes = int(out[0]), int(out[1])
    assert 45 * MB < peak_bytes < 200 * MB
    assert absolute_bytes >= peak_bytes


def test_peak_memory_refuses_other_devices():
    with pytest.raises(ValueError, match="cpu or cuda"):
        PeakMemory("meta").__enter__()


def test_best_time_keeps_the_fastest_run_and_counts_cpu_time():
    calls = []
    timing = best_time(lambda: calls.append(sum(range(20000))), repeats=3, warmup=2)
    assert len(calls) == 5
    assert 0 < timing.wall_s < 1 and 0 < timing.cpu_s < 1
    with pytest.raises(ValueError, match="repeats"):
        best_time(lambda: None, repeats=0)


def test_bf16_autocast_training_step_runs(tiny_ssn3d_kwargs):
    """The benchmark's AMP path (bf16 autocast), exercised on CPU."""
    model = SSN3D(strategy="unsupervised", **tiny_ssn3d_kwargs)
    with autocast("cpu", torch.bfloat16):
        out = model(torch.randn(2, 4, 3, 64, 32))
    assert out.embedding.dtype == torch.bfloat16
    out.embedding.float().pow(2).mean().backward()
    with autocast("cpu", None):
        assert model(torch.randn(2, 4, 3, 64, 32)).embedding.dtype == torch.float32


def test_model_benchmark_end_to_end(tmp_path):
    """A tiny run of benchmarks/bench_models.py: ratios to TP, a consistent memory table."""
    cmd = [sys.executable, "bench_models.py", "--backbone", "resnet18-layer2", "--input", "64", "32",
           "--table-input", "64", "32", "--table-clips", "4", "8", "--repeats", "1", "--warmup", "1",
           "--test-clip-len", "4", "--models", "tp", "ssn3d", "--output-dir", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "models_cpu.json").read_text())
    rows = {r["variant"]: r for r in report["results"]}
    assert set(rows) == {"tp", "ssn3d"}
    assert rows["tp"]["step_time_vs_tp"] == 1.0
    assert rows["ssn3d"]["parameters"] > rows["tp"]["parameters"]
    assert rows["ssn3d"]["peak_step_mb"] > 0 and rows["ssn3d"]["test_clips_per_s"] > 0
    table = json.loads((tmp_path / "memory_table.json").read_text())["rows"]
    for row in table:
        assert row["total_mb"] == pytest.approx(row["input_mb"] + row["fwd_bwd_mb"] + row["parameter_mb"])
        assert abs(row["saved_intercept_mb"]) < 0.01 * row["saved_mb"]
    tp, ssn3d = table
    # 32 clips x 4 frames of 3 x 64 x 32 fp32, plus ssn3d's 2 labelled frames per clip (+ keypoints).
    assert tp["input_mb"] == pytest.approx((32 * 4 * 3 * 64 * 32 * 4 + 32 * 8) / MB)
    assert ssn3d["input_mb"] > 1.5 * tp["input_mb"]
    assert "| ssn3d |" in (tmp_path / "memory_table.md").read_text()


def test_model_benchmark_rejects_a_batch_the_triplet_loss_cannot_use(tmp_path):
    cmd = [sys.executable, "bench_models.py", "--clips", "2", "--output-dir", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "P x K" in done.stderr
