"""GPU readiness check (`make gpu-check`): every GPU path of the engine, the benchmarks and the
study notebooks, briefly, on one GPU, in about 5 minutes.

NOT YET RUN ON A GPU. It was written on a machine without one and exercised there only with
--cpu (fp32 and bf16 steps at a tiny size, a gloo torchrun, a tiny bench_models run); the fp16
GradScaler, channels_last on cuDNN, NCCL and the notebooks on CUDA have never executed, so its
first GPU run may still find faults in this script as well as in the code it checks.

What it runs (each part on its own; a failure is recorded and the next part still runs):
1. train: the engine's train() on the paper's model and input (RunConfig defaults: SSN3D,
   semi-supervised, ResNet-50 to layer3, 256 x 128, T = 4, 8 identities x 4 clips) over a
   synthetic world rendered at 256 x 128, a few steps and one evaluation each in fp32, bf16
   autocast, fp16 autocast with GradScaler, and bf16 with channels_last: steps/s, clips/s,
   peak GPU memory, finite losses.
2. ddp: `torchrun --standalone --nproc-per-node 1 -m ssn3dlib train` with the same config
   (one process, NCCL, since the engine picks NCCL on CUDA).
3. bench: benchmarks/bench_models.py --device cuda (TP and SSN3D, fp32 and bf16, fewer
   repeats): train clips/s, peak memory, the bf16 speed-up, SSN3D's step against TP's (the
   backbone with temporal pooling, nothing more).
4. notebooks: each study notebook at its smoke size on CUDA (device=cuda where its parameters
   cell has `device`; the full profile's train.amp / channels_last overrides where it has
   `overrides`): the notebooks' GPU code paths, not their full-profile datasets.

Prints a table and writes reports/perf/gpu_check.json (with --cpu: reports/runs/gpu_check_cpu.json,
scratch, never committed).

Run: ``python benchmarks/gpu_check.py [--cpu] [--skip PART ...]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from ssn3dlib import REPO_ROOT
from ssn3dlib.engine import load_config, read_metrics, save_config, train
from ssn3dlib.paths import reports_dir

HERE = Path(__file__).resolve().parent
PARTS = ("train", "ddp", "bench", "notebooks")
#: (name, train.amp, train.channels_last)
PRECISIONS = (("fp32", "none", False), ("bf16", "bf16", False), ("fp16+GradScaler", "fp16", False),
              ("bf16 channels_last", "bf16", True))


def world_config(cpu: bool) -> dict:
    """A synthetic world with enough training identities for the paper's batch (8 x 4)."""
    size = [64, 32] if cpu else [256, 128]
    return dict(seed=0, num_identities=8 if cpu else 24, frames_per_tracklet=[8, 12], image_size=size,
                static_crops=0)


def run_config(world_root: Path, cpu: bool, steps: int):
    """The paper's defaults on the check's world; --cpu: a model and batch a CPU runs in seconds."""
    overrides = [f"data.root={world_root}", "train.epochs=1", f"train.max_steps_per_epoch={steps}",
                 "train.eval_every=1", "train.log_every_steps=1", "train.tensorboard=false", "eval.clip_len=8",
                 f"train.device={'cpu' if cpu else 'cuda'}"]
    if cpu:
        overrides += ["data.size=[64, 32]", "data.identities_per_batch=2", "data.instances_per_identity=2",
                      "data.num_workers=0", "eval.num_workers=0", "model.backbone=resnet18-layer2",
                      "model.hidden=32", "model.part_dim=16", "model.embedding_dim=64"]
    return load_config({"data": {"name": "synthetic_world", "world": world_config(cpu)}}, overrides)


def _finite_losses(run_dir: Path) -> dict:
    log = read_metrics(run_dir)
    steps = log[log["kind"] == "step"]
    losses = [c for c in steps.columns if c.startswith("loss")]
    values = steps[losses].to_numpy(dtype=float)
    return dict(steps_logged=int(len(steps)), final_loss=float(steps["loss"].iloc[-1]),
                losses_finite=bool(len(steps) and math.isfinite(values.sum())))


def check_train(args, work: Path) -> list:
    rows = []
    for name, amp, channels_last in PRECISIONS:
        if args.cpu and amp == "fp16":
            rows.append(dict(part="train", name=name, status="skipped", note="fp16 needs CUDA (GradScaler)"))
            continue
        if args.cpu and channels_last:
            rows.append(dict(part="train", name=name, status="skipped", note="channels_last is for cuDNN"))
            continue
        config = load_config(run_config(work / "world", args.cpu, args.steps),
                             [f"train.amp={amp}", f"train.channels_last={str(channels_last).lower()}"])
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = train(config, work / "runs" / name.replace(" ", "_"), resume=False, progress=False)
        wall = time.perf_counter() - start
        losses = _finite_losses(result.run_dir)
        clips = config.data.identities_per_batch * config.data.instances_per_identity
        steps_s = losses["steps_logged"] / result.train_seconds if result.train_seconds else None
        rows.append(dict(part="train", name=name, status="ok" if losses["losses_finite"] else "FAILED",
                         device=result.device, wall_s=round(wall, 2), train_s=round(result.train_seconds, 2),
                         steps_per_s=steps_s and round(steps_s, 3), clips_per_s=steps_s and round(steps_s * clips, 2),
                         peak_mem_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1)
                         if torch.cuda.is_available() else None,
                         rank1=result.final and round(result.final["rank1"], 2), **losses,
                         note=f"{clips} clips x T={config.data.clip_len} at {config.data.size[0]}x"
                              f"{config.data.size[1]}, {config.model.backbone}"))
    return rows


def _run(cmd, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)


def check_ddp(args, work: Path, single: list) -> list:
    """One torchrun process on the fp32 config: its losses should match the single-process fp32 run's."""
    config = run_config(work / "world", args.cpu, args.steps)
    config_file = save_config(config, work / "ddp.yaml")
    run_dir = work / "runs" / "ddp"
    start = time.perf_counter()
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                 "-m", "ssn3dlib", "train", "--config", config_file, "--run-dir", run_dir, "--no-resume", "--quiet"],
                timeout=args.part_timeout, cwd=work)
    row = dict(part="ddp", name=f"torchrun 1 process ({'gloo' if args.cpu else 'nccl'})",
               wall_s=round(time.perf_counter() - start, 2), returncode=proc.returncode)
    if proc.returncode == 0:
        row.update(_finite_losses(run_dir))
        row["status"] = "ok" if row["losses_finite"] else "FAILED"
        fp32 = next((r for r in single if r["name"] == "fp32" and "final_loss" in r), None)
        if fp32:   # exact on CPU; cuDNN's nondeterministic kernels may move it a little on a GPU
            row["final_loss_minus_fp32_run"] = row["final_loss"] - fp32["final_loss"]
    else:
        row.update(status="FAILED", note=(proc.stdout + proc.stderr)[-1500:])
    return [row]


def check_bench(args, work: Path) -> list:
    out = work / "bench"
    cmd = [sys.executable, HERE / "bench_models.py", "--models", "tp", "ssn3d", "--output-dir", out]
    if args.cpu:
        cmd += ["--device", "cpu", "--input", "64", "32", "--backbone", "resnet18-layer2", "--repeats", "1",
                "--warmup", "0", "--table-input", "64", "32", "--table-clips", "4", "8"]
    else:
        cmd += ["--device", "cuda", "--precisions", "fp32", "bf16", "--repeats", "5", "--warmup", "2"]
    start = time.perf_counter()
    proc = _run(cmd, timeout=args.part_timeout, cwd=HERE)
    wall = round(time.perf_counter() - start, 2)
    report_file = out / f"models_{'cpu' if args.cpu else 'cuda'}.json"
    if proc.returncode != 0 or not report_file.is_file():
        return [dict(part="bench", name="bench_models.py", status="FAILED", wall_s=wall,
                     note=(proc.stdout + proc.stderr)[-1500:])]
    report = json.loads(report_file.read_text())
    clips = report["config"]["clips"]
    step_s = {(r["variant"], r["precision"]): r["step_s"] for r in report["results"]}
    rows = []
    for r in report["results"]:
        fp32 = step_s.get((r["variant"], "fp32"))
        rows.append(dict(part="bench", name=f"{r['variant']} {r['precision']}", status="ok", step_s=r["step_s"],
                         clips_per_s=round(clips / r["step_s"], 2), peak_mem_mb=round(r["peak_step_mb"], 1),
                         step_vs_tp=round(r["step_time_vs_tp"], 3), peak_memory_vs_tp=round(r["peak_memory_vs_tp"], 3),
                         amp_speedup=round(fp32 / r["step_s"], 3) if fp32 and r["precision"] != "fp32" else None))
    rows.append(dict(part="bench", name="bench_models.py total", status="ok", wall_s=wall, report=report))
    return rows


def check_notebooks(args, work: Path) -> list:
    import papermill
    import yaml

    def _yaml(path: Path) -> dict:
        return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}

    notebooks = REPO_ROOT / "notebooks"
    if not notebooks.is_dir():
        return [dict(part="notebooks", name="-", status="skipped", note="no checkout notebooks/")]
    rows = []
    (work / "notebooks").mkdir()
    for path in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        if args.notebooks and not any(path.stem.startswith(n) for n in args.notebooks):
            continue
        declared = papermill.inspect_notebook(str(path))
        params, full = (_yaml(notebooks / "params" / profile / f"{path.stem}.yaml") for profile in ("smoke", "full"))
        full_overrides = full.get("overrides", [])
        if "device" in declared:
            params["device"] = "cpu" if args.cpu else "cuda"
        if "overrides" in declared:
            params["overrides"] = [*full_overrides, f"train.device={'cpu' if args.cpu else 'cuda'}"]
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(path), str(work / "notebooks" / path.name), parameters=params or None,
                                       progress_bar=False, cwd=str(notebooks),
                                       execution_timeout=args.part_timeout)
            status, note = "ok", ""
        except Exception as err:  # recorded; the next notebook still runs
            status, note = "FAILED", str(err)[-1500:]
        rows.append(dict(part="notebooks", name=path.stem, status=status, wall_s=round(time.perf_counter() - start, 2),
                         parameters=params, note=note))
    return rows


def print_table(rows: list) -> None:
    cols = ("part", "name", "status", "wall_s", "steps_per_s", "clips_per_s", "peak_mem_mb", "amp_speedup",
            "step_vs_tp", "final_loss", "final_loss_minus_fp32_run")
    shown = [c for c in cols if any(r.get(c) is not None for r in rows)]
    table = [[("" if r.get(c) is None else str(r.get(c)))[:40] for c in shown] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(shown)]
    print("  ".join(c.ljust(w) for c, w in zip(shown, widths)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="exercise the script on CPU at a tiny size (no fp16, gloo)")
    parser.add_argument("--skip", nargs="+", choices=PARTS, default=[], help="parts to leave out")
    parser.add_argument("--steps", type=int, default=6, help="training steps per precision (default 6)")
    parser.add_argument("--notebooks", nargs="+", default=[], metavar="PREFIX",
                        help="only the notebooks whose names start so (e.g. 01 04); default all")
    parser.add_argument("--part-timeout", type=float, default=240, help="seconds for one subprocess or notebook")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("error: no CUDA device here; run this on a GPU machine, or pass --cpu to exercise the script",
              file=sys.stderr)
        return 2
    output = args.output or (reports_dir() / ("runs/gpu_check_cpu.json" if args.cpu else "perf/gpu_check.json"))
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        os.environ["SSN3D_CACHE"] = str(work / "cache")        # the notebooks' worlds too, not ~/.cache
        os.environ["SSN3D_REPORTS"] = str(work / "reports")    # smoke outputs of the notebooks
        from ssn3dlib.data.synthetic import WorldConfig, generate_world

        generate_world(WorldConfig.from_dict(world_config(args.cpu)), work / "world", progress=False)
        checks = dict(train=check_train, ddp=lambda a, w: check_ddp(a, w, rows), bench=check_bench,
                      notebooks=check_notebooks)
        for part in PARTS:
            if part in args.skip:
                continue
            part_start = time.perf_counter()
            try:
                rows += checks[part](args, work)
            except Exception:  # one part's fault must not hide the others
                rows.append(dict(part=part, name="-", status="FAILED", note=traceback.format_exc()[-2000:]))
            print(f"[{part}] {time.perf_counter() - part_start:.0f} s", flush=True)
    device = "cpu" if args.cpu else torch.cuda.get_device_name(0)
    record = dict(device=device, torch=torch.__version__, cuda=torch.version.cuda,
                  cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None,
                  total_s=round(time.perf_counter() - started, 1), ok=all(r["status"] != "FAILED" for r in rows),
                  rows=rows)
    print_table(rows)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"{'all ok' if record['ok'] else 'FAILURES above'} in {record['total_s']} s; wrote {output}")
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
