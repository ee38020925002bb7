"""Benchmark of SSN3D and the baselines: training step, peak memory, test speed, memory table.

Why: SSN3D adds an SSN and N per-part 3D blocks on top of the backbone that TP, C3D and
2D+1D attention share; what that costs in time and memory, relative to TP in the same
run, is a claim a reader should not have to take on trust. On a shared CPU the wall
times move with other processes' load; the ratios of CPU times (all threads of the
measuring process) hardly do, so those are the ratios to quote from a busy machine.
Every model gets the same backbone, input and training step (forward, L_tri + lambda
L_SSN, backward, Adam step); SSN3D is semi-supervised with a shared classifier and is
measured twice: with the paper's two labelled frames per clip fed beside the clips
("ssn3d"), and on the clips alone ("ssn3d-no-labelled").

Each model is measured in a fresh process: on CPU the peak resident set of its first
training step is its full peak only there (the C allocator keeps freed pages).

The memory table is at the paper's input (256 x 128, T = 4, 32 clips = 8 identities x 4,
ResNet-50 to layer3): autograd's saved tensors are counted exactly at two batch sizes and
extended linearly to 32 clips, after checking that the line's intercept is negligible.

CPU default: the paper's backbone at 128 x 64 (a quarter of its pixels), 4 clips of
T = 4 (2 identities x 2, the smallest batch the triplet loss accepts), best of 3: near
5 minutes on an idle 2-core machine. ``--device cuda``: the paper's scale (256 x 128,
32 clips), fp32 and bf16 autocast, best of 20 after 3 warm-up steps.

Run: ``python benchmarks/bench_models.py [--device cuda] [--repeats N] [...]``.
Writes ``reports/perf/models_<device>.json`` and ``reports/perf/memory_table[_cuda].{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from ssn3dlib.losses import SSN3DObjective
from ssn3dlib.models import Keypoints, LabelledFrames, build_model
from ssn3dlib.paths import reports_dir
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
    tensor_bytes,
)

from bench_metrics import TORCH_THREADS, machine_info

PAPER = dict(input=(256, 128), clip_len=4, clips=32, clips_per_id=4, test_clip_len=32,
             backbone="resnet50-layer3", lambda_ssn=0.1, lr=3e-4, weight_decay=5e-4)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
#: Seed 002's memory table (MB): their batch is not stated; 9.00-9.19 MB of input is
#: 24 frames of 3 x 256 x 128 in fp32, against our 128 (+64 labelled) frames.
SEED_002 = {"GLTR": (9.00, 214.11, 94.47, 317.59), "M3D": (9.00, 1213.83, 104.58, 1327.41),
            "VPRT": (9.19, 153.92, 290.58, 453.69), "Not 3D Re-ID": (9.19, 171.92, 290.58, 471.69)}


@dataclass(frozen=True)
class Variant:
    """One row: a model from build_model with its options and its training input."""

    key: str
    model: str
    kwargs: dict = field(default_factory=dict)
    labelled_per_clip: int = 0   # semi-supervised SSN3D: labelled frames fed beside each clip
    test_time: bool = True       # False where the test-time network is another row's


SSN3D_PAPER = dict(strategy="semi-supervised", shared_classifier=True)
VARIANTS = (
    Variant("tp", "tp"),
    Variant("ssn3d", "ssn3d", SSN3D_PAPER, labelled_per_clip=2),
    Variant("ssn3d-no-labelled", "ssn3d", SSN3D_PAPER, test_time=False),
    Variant("c3d", "c3d"),
    Variant("st-attention", "st-attention"),
)
BASELINE = "tp"


@dataclass(frozen=True)
class Config:
    device: str
    backbone: str
    input: tuple
    clips: int
    clip_len: int
    precisions: tuple
    repeats: int
    warmup: int
    test_clips: int
    test_clip_len: int
    table_input: tuple
    table_clips: tuple
    channels_last: bool
    threads: int
    seed: int


@dataclass
class Batch:
    clips: torch.Tensor
    pids: torch.Tensor
    labelled: Optional[LabelledFrames]

    def tensors(self) -> list:
        extra = [] if self.labelled is None else [self.labelled.images, self.labelled.keypoints.xy,
                                                   self.labelled.keypoints.visible]
        return [self.clips, self.pids, *extra]


def identity_labels(clips: int, device) -> torch.Tensor:
    """P x K labels as the paper's sampler gives them (K = 4 clips per identity, or 2 for 4 clips)."""
    per_id = min(PAPER["clips_per_id"], clips // 2)
    if clips < 4 or clips % per_id:
        raise ValueError(f"the triplet loss needs P x K clips with P, K >= 2; {clips} clips do not "
                         f"split so: use 4, 8, 12, ... clips")
    return torch.arange(clips // per_id, device=device).repeat_interleave(per_id)


def make_batch(variant: Variant, clips: int, clip_len: int, image: tuple, num_parts: int,
               device) -> Batch:
    h, w = image
    labelled = None
    if variant.labelled_per_clip:
        n = clips * variant.labelled_per_clip
        xy = torch.rand(n, num_parts, 2, device=device) * torch.tensor([w, h], device=device)
        labelled = LabelledFrames(
            images=torch.randn(n, 3, h, w, device=device),
            keypoints=Keypoints(xy=xy, visible=torch.ones(n, num_parts, dtype=torch.bool, device=device)))
    return Batch(torch.randn(clips, clip_len, 3, h, w, device=device),
                 identity_labels(clips, device), labelled)


def training_loss(model, objective, batch: Batch, dtype) -> torch.Tensor:
    with autocast(batch.clips.device, dtype):
        output = model(batch.clips, labelled=batch.labelled)
    return objective(output, batch.pids)["loss"]


def train_step(model, optimizer, objective, batch: Batch, dtype) -> None:
    optimizer.zero_grad(set_to_none=True)
    training_loss(model, objective, batch, dtype).backward()
    optimizer.step()


def build(variant: Variant, config: Config) -> torch.nn.Module:
    torch.manual_seed(config.seed)
    model = build_model(variant.model, backbone=config.backbone, **variant.kwargs).to(config.device)
    if config.channels_last:  # 2D convs only: Module.to(channels_last) rejects Conv3d's 5-D weights
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.to(memory_format=torch.channels_last)
    return model.train()


def measure_training(model, variant: Variant, config: Config, dtype) -> dict:
    """Step time (best of N) and peak memory of a training step at the benchmark input."""
    device = torch.device(config.device)
    num_parts = getattr(getattr(model, "ssn", None), "num_parts", 9)
    batch = make_batch(variant, config.clips, config.clip_len, config.input, num_parts, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=PAPER["lr"], weight_decay=PAPER["weight_decay"])
    objective = SSN3DObjective(lambda_ssn=PAPER["lambda_ssn"])

    def step():
        train_step(model, optimizer, objective, batch, dtype)

    if device.type == "cpu":
        # The first step of a fresh process is the only one whose peak RSS is complete;
        # it doubles as the warm-up.
        with PeakMemory(device) as peak:
            step()
        timing = best_time(step, config.repeats, warmup=max(config.warmup - 1, 0), device=device)
    else:
        # After warm-up: cudnn's autotuning workspaces would inflate the first step's peak.
        timing = best_time(step, config.repeats, warmup=config.warmup, device=device)
        with PeakMemory(device) as peak:
            step()
    # Forward only: torch's flop counter multiplies a grouped conv's backward by its groups
    # (fixed upstream in pytorch/pytorch#183405), which would inflate SSN3D's per-part blocks.
    _, flops = count_flops(lambda: training_loss(model, objective, batch, dtype))
    reserved = peak.reserved_bytes  # GPU only: the caching allocator's peak reservation
    return dict(step_s=timing.wall_s, step_cpu_s=timing.cpu_s, forward_gflops=flops / 1e9,
                train_clips_per_s=config.clips / timing.wall_s,
                peak_step_mb=peak.peak_bytes / MB, peak_step_mb_per_clip=peak.peak_bytes / MB / config.clips,
                peak_absolute_mb=peak.absolute_bytes / MB,
                peak_reserved_mb=None if reserved is None else reserved / MB,
                input_mb=tensor_bytes(batch.tensors()) / MB,
                # Batch-independent part of the peak: gradients + Adam's two moments.
                training_state_mb=3 * parameter_bytes(model) / MB)


def measure_test(model, config: Config, dtype) -> dict:
    """Test-time clips/s: eval mode, no autograd, the paper's 32-frame test clips."""
    device = torch.device(config.device)
    clips = torch.randn(config.test_clips, config.test_clip_len, 3, *config.input, device=device)
    model.eval()

    def forward():
        with torch.inference_mode(), autocast(device, dtype):
            model(clips)

    _, flops = count_flops(forward)  # doubles as the first warm-up run
    timing = best_time(forward, config.repeats, warmup=max(config.warmup - 1, 0), device=device)
    model.train()
    return dict(test_s=timing.wall_s, test_cpu_s=timing.cpu_s, test_gflops=flops / 1e9,
                test_clips_per_s=config.test_clips / timing.wall_s)


def count_activations(model, variant: Variant, config: Config) -> dict:
    """Saved-for-backward and module-output bytes of the training forward, per table batch size."""
    device = torch.device(config.device)
    num_parts = getattr(getattr(model, "ssn", None), "num_parts", 9)
    objective = SSN3DObjective(lambda_ssn=PAPER["lambda_ssn"])
    rows = {}
    for clips in config.table_clips:
        batch = make_batch(variant, clips, PAPER["clip_len"], config.table_input, num_parts, device)
        exclude = model_state_tensors(model) + batch.tensors()
        step = partial(count_flops, partial(training_loss, model, objective, batch, None))
        ((loss, flops), outputs), saved = saved_tensor_bytes(partial(module_output_bytes, model, step),
                                                             exclude=exclude)
        rows[clips] = dict(saved_bytes=saved, module_output_bytes=outputs,
                           input_bytes=tensor_bytes(batch.tensors()), forward_flops=flops)
        del loss
    return rows


def measure_variant(variant: Variant, config: Config, precision: str, table: bool) -> dict:
    """Everything measured for one model and precision; runs in its own process."""
    if config.device == "cpu":
        torch.set_num_threads(config.threads)
    else:
        torch.backends.cudnn.benchmark = True
    load = os.getloadavg()[0]
    model = build(variant, config)
    dtype = PRECISIONS[precision]
    result = dict(variant=variant.key, precision=precision, loadavg_1min=load,
                  parameters=count_parameters(model), parameter_mb=parameter_bytes(model) / MB)
    result.update(measure_training(model, variant, config, dtype))
    if variant.test_time:
        result.update(measure_test(model, config, dtype))
    if table:
        result["table"] = count_activations(model, variant, config)
    return result


# -- reporting --------------------------------------------------------------------------

def add_ratios(results: list) -> None:
    """Each model's step time, peak memory and test speed relative to TP in the same run."""
    for r in results:
        base = next(b for b in results if b["variant"] == BASELINE and b["precision"] == r["precision"])
        r["step_time_vs_tp"] = r["step_s"] / base["step_s"]
        r["step_cpu_time_vs_tp"] = r["step_cpu_s"] / base["step_cpu_s"]
        r["forward_flops_vs_tp"] = r["forward_gflops"] / base["forward_gflops"]
        r["peak_memory_vs_tp"] = r["peak_step_mb"] / base["peak_step_mb"]
        if "test_clips_per_s" in r:
            r["test_speed_vs_tp"] = r["test_clips_per_s"] / base["test_clips_per_s"]
            r["test_cpu_time_vs_tp"] = r["test_cpu_s"] / base["test_cpu_s"]
            r["test_flops_vs_tp"] = r["test_gflops"] / base["test_gflops"]


def memory_row(result: dict, clips: int) -> dict:
    """Table row at ``clips`` clips, linear in the batch through the two measured sizes."""
    (b1, m1), (b2, m2) = sorted(result["table"].items())[-2:]
    row = dict(model=result["variant"], parameters=result["parameters"],
               parameter_mb=result["parameter_mb"], clips=clips, measured_at_clips=[b1, b2])
    for name in ("saved_bytes", "module_output_bytes", "input_bytes"):
        slope, intercept = affine_fit(b1, m1[name], b2, m2[name])
        row[name.replace("_bytes", "_mb")] = (intercept + slope * clips) / MB
        row[name.replace("_bytes", "_mb_per_clip")] = slope / MB
        row[name.replace("_bytes", "_intercept_mb")] = intercept / MB
    slope, _ = affine_fit(b1, m1["forward_flops"], b2, m2["forward_flops"])
    row["forward_gflops_per_clip"] = slope / 1e9
    row["fwd_bwd_mb"] = row["saved_mb"]
    row["total_mb"] = row["input_mb"] + row["fwd_bwd_mb"] + row["parameter_mb"]
    row["torchsummary_fwd_bwd_mb"] = 2 * row["module_output_mb"]
    row["torchsummary_total_mb"] = row["input_mb"] + row["torchsummary_fwd_bwd_mb"] + row["parameter_mb"]
    return row


def memory_table_markdown(rows: list, config: Config) -> str:
    h, w = config.table_input
    lines = [
        f"# Memory table: {PAPER['clips']} clips x T = {PAPER['clip_len']} at {h} x {w}, "
        f"{config.backbone}, fp32, training ({config.device})",
        "",
        "| model | params (M) | params MB | input MB | fwd/bwd MB | per clip MB | total MB "
        "| fwd/bwd MB, torchsummary | total MB, torchsummary | fwd GFLOPs per clip |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['parameters'] / 1e6:.2f} | {r['parameter_mb']:.2f} | {r['input_mb']:.2f} "
            f"| {r['fwd_bwd_mb']:.2f} | {r['saved_mb_per_clip']:.2f} | {r['total_mb']:.2f} "
            f"| {r['torchsummary_fwd_bwd_mb']:.2f} | {r['torchsummary_total_mb']:.2f} "
            f"| {r['forward_gflops_per_clip']:.1f} |")
    b1, b2 = rows[0]["measured_at_clips"]
    worst = max(abs(r["saved_intercept_mb"]) for r in rows)
    lines += [
        "",
        "MB = 2^20 bytes. Total = input + fwd/bwd + params (the form of seed 002's table).",
        "- **fwd/bwd**: the tensors autograd saves in the forward pass for the backward pass "
        "(torch.autograd.graph.saved_tensors_hooks), each storage once; parameters, buffers and "
        "inputs excluded (counted in their own columns). Gradients, optimizer state and the "
        "transient buffers of the backward pass are not in it (see the measured peaks in "
        f"models_{config.device}.json).",
        f"- Counted exactly at {b1} and {b2} clips and extended linearly to {PAPER['clips']}; the "
        f"fitted line's intercept is at most {worst:.3f} MB, so activations are linear in the batch.",
        "- **fwd GFLOPs per clip**: matmuls and convolutions of the training forward "
        "(torch.utils.flop_counter, 2 per multiply-add; ssn3d's include its labelled frames); "
        "a training step is about 3 times that.",
        "- **torchsummary**: 2 x the sum of every leaf module's output (torchsummary's "
        "'Forward/backward pass size'); it misses functional ops (softmax, einsum, window sums) "
        "and counts in-place outputs again.",
        "- ssn3d's input holds the 2 labelled frames per clip of semi-supervised training "
        "(64 frames beside the 128 clip frames); ssn3d-no-labelled is the same network on the clips alone.",
        "",
        "Seed 002's table for reference (MB; their batch is not stated: 9.0-9.2 MB of input is "
        "24 frames of 3 x 256 x 128 fp32, against our 128 clip frames):",
        "",
        "| method | input MB | fwd/bwd MB | params MB | total MB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {' | '.join(f'{v:.2f}' for v in values)} |" for name, values in SEED_002.items()]
    return "\n".join(lines) + "\n"


def print_results(results: list) -> None:
    """Times, their ratios to TP (CPU time: robust to load), FLOPs, peak memory, test speed."""
    def x(value):
        return f"{value:>6.2f}x"

    print(f"\n{'model':<18}{'prec':>5}{'step s':>8}{'wall':>7}{'cpu':>7}{'flops':>7}{'clips/s':>9}"
          f"{'peak MB':>9}{'MB/clip':>8}{'mem':>7}{'test clips/s':>13}{'wall':>7}{'cpu':>7}{'flops':>7}")
    ratios = f"--- vs {BASELINE} ---"
    print(f"{'':<31}{ratios:^21}{'':<26}{'vs ' + BASELINE:>7}{'':<13}{ratios:^21}")
    for r in results:
        test = (f"{r['test_clips_per_s']:>13.2f}{x(r['test_speed_vs_tp'])}{x(r['test_cpu_time_vs_tp'])}"
                f"{x(r['test_flops_vs_tp'])}" if "test_clips_per_s" in r else "")
        print(f"{r['variant']:<18}{r['precision']:>5}{r['step_s']:>8.2f}{x(r['step_time_vs_tp'])}"
              f"{x(r['step_cpu_time_vs_tp'])}{x(r['forward_flops_vs_tp'])}{r['train_clips_per_s']:>9.2f}"
              f"{r['peak_step_mb']:>9.0f}{r['peak_step_mb_per_clip']:>8.0f}{x(r['peak_memory_vs_tp'])}{test}")
    print("wall/cpu: wall-clock and CPU-time ratios of a step (test: of clips/s and of CPU time); "
          "flops: of the forward pass; peak: rise of memory in a training step (CPU: first step "
          "of a fresh process), MB/clip = peak / clips, gradients and Adam state included")


def parse_args(argv=None) -> tuple:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--backbone", default=PAPER["backbone"])
    parser.add_argument("--input", type=int, nargs=2, metavar=("H", "W"),
                        help="training/test frame size (cpu default 128 64: a quarter of the paper's "
                             "pixels so a run stays near 5 minutes; cuda default 256 128)")
    parser.add_argument("--clips", type=int, help="training batch in clips (cpu 4 = 2 ids x 2; cuda 32)")
    parser.add_argument("--clip-len", type=int, default=PAPER["clip_len"])
    parser.add_argument("--precisions", nargs="+", choices=sorted(PRECISIONS),
                        help="cpu default fp32; cuda default fp32 bf16 (autocast)")
    parser.add_argument("--repeats", type=int, help="timed runs, best kept (cpu 3, cuda 20)")
    parser.add_argument("--warmup", type=int, help="untimed runs first (cpu 1, cuda 3)")
    parser.add_argument("--test-clips", type=int, help="test batch in 32-frame clips (cpu 1, cuda 8)")
    parser.add_argument("--test-clip-len", type=int, default=PAPER["test_clip_len"])
    parser.add_argument("--table-input", type=int, nargs=2, metavar=("H", "W"), default=PAPER["input"])
    parser.add_argument("--table-clips", type=int, nargs=2, metavar=("B1", "B2"),
                        help="batch sizes counted exactly for the memory table (cpu 4 8, cuda 16 32)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last weights (GPU)")
    parser.add_argument("--threads", type=int, default=TORCH_THREADS, help="CPU threads per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", choices=[v.key for v in VARIANTS],
                        default=[v.key for v in VARIANTS], help=f"rows to measure ({BASELINE} always)")
    parser.add_argument("--output-dir", type=Path, default=reports_dir() / "perf")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to PyTorch here")

    def pick(value, cpu, gpu):
        return value if value is not None else (gpu if cuda else cpu)

    config = Config(
        device=args.device, backbone=args.backbone,
        input=tuple(pick(args.input, (128, 64), PAPER["input"])),
        clips=pick(args.clips, 4, PAPER["clips"]), clip_len=args.clip_len,
        precisions=tuple(pick(args.precisions, ["fp32"], ["fp32", "bf16"])),
        repeats=pick(args.repeats, 3, 20), warmup=pick(args.warmup, 1, 3),
        test_clips=pick(args.test_clips, 1, 8), test_clip_len=args.test_clip_len,
        table_input=tuple(args.table_input), table_clips=tuple(pick(args.table_clips, (4, 8), (16, 32))),
        channels_last=args.channels_last, threads=args.threads, seed=args.seed)
    for clips in (config.clips, *config.table_clips):
        try:  # fail now, not in a worker, on a batch the loss cannot use
            identity_labels(clips, "cpu")
        except ValueError as err:
            parser.error(str(err))
    if len(set(config.table_clips)) != 2:
        parser.error("--table-clips needs two different batch sizes to check linearity")
    models = [BASELINE] + [m for m in args.models if m != BASELINE]
    return config, [v for v in VARIANTS if v.key in models], args.output_dir


def main(argv=None) -> None:
    config, variants, out = parse_args(argv)
    load_start = os.getloadavg()
    if config.device == "cpu":
        # Idle OpenMP threads sleep instead of spinning: on a shared machine spinning would
        # burn CPU time that then shows up in the CPU-time ratios.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tasks = [(v, p, p == config.precisions[0]) for v in variants for p in config.precisions]
    results = []
    # One fresh process per measurement: complete CPU peaks, no state carried between models.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        for variant, precision, table in (bar := tqdm(tasks, desc="models", unit="model")):
            bar.set_postfix_str(f"{variant.key} {precision}")
            results.append(pool.submit(measure_variant, variant, config, precision, table).result())
    add_ratios(results)
    print_results(results)

    device = config.device
    rows = [memory_row(r, PAPER["clips"]) for r in results if "table" in r]
    for r in results:
        r["table"] = {str(k): v for k, v in r.pop("table", {}).items()}
    out.mkdir(parents=True, exist_ok=True)
    report = dict(config=asdict(config), machine=machine_info(),
                  omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                  loadavg_start=load_start, loadavg_end=os.getloadavg(),
                  baseline=BASELINE, results=results)
    models_file = out / f"models_{device}.json"
    models_file.write_text(json.dumps(report, indent=2) + "\n")
    suffix = "" if device == "cpu" else f"_{device}"
    table_md = out / f"memory_table{suffix}.md"
    table_md.write_text(memory_table_markdown(rows, config))
    (out / f"memory_table{suffix}.json").write_text(
        json.dumps(dict(config=asdict(config), rows=rows), indent=2) + "\n")
    print("\n" + table_md.read_text())
    print(f"wrote {models_file}, {table_md} and its .json")


if __name__ == "__main__":
    main()
