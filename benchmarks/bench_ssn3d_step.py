"""Profile of an SSN3D training step against TP's, and of the eq. 3 window sum alone.

Why: bench_models.py measures that an SSN3D step costs about 2x TP's CPU time for 1.5x its
forward FLOPs; this script says where the time goes. Every model gets the same backbone,
input (128 x 64, 8 clips x T = 4) and training step as in bench_models.py (forward,
L_tri + lambda L_SSN, backward, Adam step); "ssn3d" is the paper's semi-supervised SSN3D
with 2 labelled frames per clip fed beside the clips, "ssn3d-no-labelled" the same network
on the clips alone.

Part 1, the step. Its wall and CPU times (best of N, unprofiled) give the ratios to TP
measured in the same run. One more step runs under torch.profiler with a label per stage,
put on from outside the model (the model code is untouched): backbone (clip frames;
labelled frames apart), SSN 1st round (classifier over every window + softmax, eq. 1-2),
eq. 3 window sum, SSN 2nd round + loss (eq. 4), per-part 3D blocks, fusion (TP: its head),
triplet loss, optimizer step; what no label covers is "other". Backward time goes to the
stage whose forward op created the autograd node (the profiler's sequence numbers), so each
stage's share is forward + backward. Shares are of the profiled step; the profiler's
overhead is a few percent of it.

Part 2, the window sum alone at the Amber study's setting (3 x 120 x 160 RGB paintings,
19 x 19 valid windows, N = 9 parts, batch 4) and at the models' settings: forward + backward
of each formulation (the grouped conv, an unfold + bmm reference, FFT in float64 and in
float32), its speed-up over the conv, and its largest difference from the conv and from the
exact (float64) sum, values and both gradients, relative to each tensor's largest magnitude.

On a shared 2-core machine other processes move wall times; times are best of N, CPU-time
ratios are the ones to quote, and the load average is saved beside them.

Run: ``python benchmarks/bench_ssn3d_step.py [--backbones ...] [--repeats N]``.
Writes ``reports/perf/ssn3d_step.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_models import PAPER, VARIANTS, make_batch, train_step, training_loss
from torch.profiler import ProfilerActivity, profile, record_function

import ssn3dlib.models.ssn as ssn_module
from ssn3dlib.losses import SSN3DObjective
from ssn3dlib.models import build_model, weighted_window_sum
from ssn3dlib.models.ssn import window_sum_method
from ssn3dlib.paths import reports_dir
from ssn3dlib.profiling import best_time, count_flops

from bench_metrics import TORCH_THREADS, machine_info

BASELINE = "tp"
MODELS = ("tp", "ssn3d", "ssn3d-no-labelled")
STAGES = ("backbone", "backbone: labelled frames", "ssn 1st round + softmax", "eq. 3 window sum",
          "ssn 2nd round + loss", "per-part 3d blocks", "fusion / head", "triplet loss",
          "optimizer step", "other")
PREFIX = "stage:"
#: The Amber Abstract study's window sum (amber_abstract.py: 120 x 160 RGB, k = 19, N = 9, batch 4).
AMBER = dict(batch=4, channels=3, size=(120, 160), parts=9, window=19)


# -- part 1: the step ------------------------------------------------------------------

def _labelled(fn, name_of):
    """fn wrapped in a profiler label; name_of(call_index) names the call's stage."""
    calls = [0]

    def wrapper(*args, **kwargs):
        name = name_of(calls[0])
        calls[0] += 1
        with record_function(PREFIX + name):
            return fn(*args, **kwargs)
    wrapper.reset = lambda: calls.__setitem__(0, 0)
    return wrapper


@contextmanager
def stage_labels(model, optimizer, objective_holder):
    """Label each stage of the step from outside the model; undone on exit."""
    patched, resets = [], []

    def patch(owner, attr, name_of):
        own = attr in vars(owner)  # an instance attribute (or module global) to put back as it was
        original = getattr(owner, attr)
        wrapper = _labelled(original, name_of)
        patched.append((owner, attr, own, original))
        setattr(owner, attr, wrapper)
        resets.append(wrapper.reset)

    patch(model.backbone, "forward", lambda i: "backbone" if i % 2 == 0 or not hasattr(model, "ssn")
          else "backbone: labelled frames")
    if hasattr(model, "ssn"):
        patch(model.ssn, "forward", lambda i: "ssn 1st round + softmax")
        patch(model.ssn, "_loss", lambda i: "ssn 2nd round + loss")
        patch(ssn_module, "weighted_window_sum", lambda i: "eq. 3 window sum")
        patch(model.aggregator, "forward", lambda i: "per-part 3d blocks")
    head = model.fusion if hasattr(model, "fusion") else model.head
    patch(head, "forward", lambda i: "fusion / head")
    patch(optimizer, "step", lambda i: "optimizer step")
    patch(objective_holder, "objective", lambda i: "triplet loss")
    try:
        yield resets
    finally:
        for owner, attr, own, original in reversed(patched):
            if own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)  # the instance attribute goes; the class method shows again


def stage_times(events) -> dict:
    """Seconds per stage (forward + backward) from the profiler's events of one step."""
    stage_events = [e for e in events if e.name.startswith(PREFIX)]
    ranges = sorted(((e.time_range.start, e.time_range.end, e.name[len(PREFIX):]) for e in stage_events),
                    key=lambda r: (r[0], -r[1]))

    def innermost(start, end):
        best = None
        for s, e, name in ranges:
            if s <= start and end <= e and (best is None or e - s < best[1] - best[0]):
                best = (s, e, name)
        return best

    forward = defaultdict(float)
    for s, e, name in ranges:  # exclusive time: less the stages nested inside
        forward[name] += e - s
        parent = innermost_strict(ranges, s, e)
        if parent is not None:
            forward[parent[2]] -= e - s
    # Autograd nodes: a forward op's sequence number -> the innermost stage around it.
    seq_stage = {}
    for ev in events:
        if ev.sequence_nr >= 0 and not ev.name.startswith("autograd::engine") and ev.cpu_parent is not None:
            hit = innermost(ev.time_range.start, ev.time_range.end)
            if hit is not None:
                seq_stage.setdefault(ev.sequence_nr, hit[2])
    backward = defaultdict(float)
    for ev in events:
        if ev.name.startswith("autograd::engine::evaluate_function") and ev.cpu_parent is None:
            backward[seq_stage.get(ev.sequence_nr, "other")] += ev.time_range.end - ev.time_range.start
    top = [e for e in events if e.cpu_parent is None and not e.name.startswith("ProfilerStep")]
    total = max(e.time_range.end for e in top) - min(e.time_range.start for e in top)
    us = 1e-6
    out = {name: dict(forward_s=forward.get(name, 0.0) * us, backward_s=backward.get(name, 0.0) * us)
           for name in STAGES}
    labelled = sum(v["forward_s"] + v["backward_s"] for v in out.values())
    out["other"]["forward_s"] += max(total * us - labelled, 0.0)  # unlabelled ops, gaps, zero_grad
    for v in out.values():
        v["total_s"] = v["forward_s"] + v["backward_s"]
    return dict(stages=out, total_s=total * us)


def innermost_strict(ranges, s, e):
    """The smallest stage range strictly containing [s, e]."""
    best = None
    for ps, pe, name in ranges:
        if (ps, pe) != (s, e) and ps <= s and e <= pe and (best is None or pe - ps < best[1] - best[0]):
            best = (ps, pe, name)
    return best


class ObjectiveHolder:
    def __init__(self, objective):
        self.objective = objective

    def __call__(self, output, pids):
        return self.objective(output, pids)


def measure_model(key: str, backbone: str, args) -> dict:
    variant = next(v for v in VARIANTS if v.key == key)
    torch.manual_seed(args.seed)
    model = build_model(variant.model, backbone=backbone, **variant.kwargs).train()
    num_parts = getattr(getattr(model, "ssn", None), "num_parts", 9)
    batch = make_batch(variant, args.clips, args.clip_len, tuple(args.input), num_parts, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=PAPER["lr"], weight_decay=PAPER["weight_decay"])
    objective = ObjectiveHolder(SSN3DObjective(lambda_ssn=PAPER["lambda_ssn"]))

    def step():
        train_step(model, optimizer, objective, batch, None)

    timing = best_time(step, args.repeats, warmup=1)
    _, flops = count_flops(lambda: training_loss(model, objective, batch, None))
    best = None
    for _ in range(args.profile_repeats):  # best of N profiled steps too
        with stage_labels(model, optimizer, objective) as resets:
            for reset in resets:
                reset()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
        times = stage_times(prof.events())
        if best is None or times["total_s"] < best["total_s"]:
            best = times
    grid = None
    if hasattr(model, "ssn"):
        feats = model.backbone.feature_size(tuple(args.input)) if hasattr(model.backbone, "feature_size") else None
        grid = None if feats is None else list(model.ssn.grid_size(feats))
    return dict(model=key, backbone=backbone, step_s=timing.wall_s, step_cpu_s=timing.cpu_s,
                forward_gflops=flops / 1e9, ssn_grid=grid, profiled=best)


def add_ratios(rows: list) -> None:
    base = {r["backbone"]: r for r in rows if r["model"] == BASELINE}
    for r in rows:
        b = base[r["backbone"]]
        r["step_time_vs_tp"] = r["step_s"] / b["step_s"]
        r["step_cpu_time_vs_tp"] = r["step_cpu_s"] / b["step_cpu_s"]
        r["forward_flops_vs_tp"] = r["forward_gflops"] / b["forward_gflops"]
        p, bp = r["profiled"], b["profiled"]
        p["total_vs_tp"] = p["total_s"] / bp["total_s"]
        for s in p["stages"].values():
            s["share"] = s["total_s"] / p["total_s"]
            s["of_tp_step"] = s["total_s"] / bp["total_s"]  # this stage in units of TP's whole step


def print_step(rows: list) -> None:
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        sub = [r for r in rows if r["backbone"] == backbone]
        print(f"\n== {backbone}, {sub[0]['input'][0]} x {sub[0]['input'][1]}, {sub[0]['clips']} clips x "
              f"T = {sub[0]['clip_len']} ==")
        print(f"{'model':<19}{'step s':>8}{'cpu s':>8}{'wall/tp':>9}{'cpu/tp':>8}{'flops/tp':>9}{'prof/tp':>9}")
        for r in sub:
            print(f"{r['model']:<19}{r['step_s']:>8.3f}{r['step_cpu_s']:>8.3f}{r['step_time_vs_tp']:>8.2f}x"
                  f"{r['step_cpu_time_vs_tp']:>7.2f}x{r['forward_flops_vs_tp']:>8.2f}x"
                  f"{r['profiled']['total_vs_tp']:>8.2f}x")
        header = "".join(f"{r['model']:>24}" for r in sub)
        print(f"\n{'stage (fwd+bwd): share of the step | x TP step':<34}{header}")
        for name in STAGES:
            cells = "".join(f"{100 * r['profiled']['stages'][name]['share']:>13.1f}% |"
                            f"{r['profiled']['stages'][name]['of_tp_step']:>7.2f}x" for r in sub)
            print(f"{name:<34}{cells}")
        print(f"{'profiled step s':<34}" + "".join(f"{r['profiled']['total_s']:>24.3f}" for r in sub))


# -- part 2: the window sum ------------------------------------------------------------

def window_sum_unfold(x, weights, window):
    """Reference: the B x C*k*k x H'W' unfolded windows times the weights (eq. 3 as written)."""
    b, c = x.shape[:2]
    n = weights.shape[1]
    windows = F.unfold(x, window)
    return torch.bmm(weights.flatten(2), windows.transpose(1, 2)).reshape(b, n, c, window, window)


def window_sum_fft32(x, weights, window):
    """The FFT formulation in float32 throughout (faster, about as exact as the conv)."""
    size = x.shape[-2:]
    prod = torch.fft.rfft2(weights, s=size).conj().unsqueeze(2) * torch.fft.rfft2(x, s=size).unsqueeze(1)
    return torch.fft.irfft2(prod, s=size)[..., :window, :window]


FORMULATIONS = {
    "conv": lambda x, w, k: weighted_window_sum(x, w, k, method="conv"),
    "unfold": window_sum_unfold,
    "fft64": lambda x, w, k: weighted_window_sum(x, w, k, method="fft"),
    "fft32": window_sum_fft32,
}


def _run(fn, x, weights, window, grad):
    x, weights = x.detach().requires_grad_(), weights.detach().requires_grad_()
    out = fn(x, weights, window)
    out.backward(grad)
    return out.detach(), x.grad, weights.grad


def measure_window_sum(name: str, batch, channels, size, parts, window, repeats, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    grid = (size[0] - window + 1, size[1] - window + 1)
    x = torch.randn(batch, channels, *size, generator=g)
    weights = torch.randn(batch, parts, *grid, generator=g).flatten(2).softmax(-1).reshape(batch, parts, *grid)
    grad = torch.randn(batch, parts, channels, window, window, generator=g)
    exact = _run(FORMULATIONS["conv"], x.double(), weights.double(), window, grad.double())
    ref = _run(FORMULATIONS["conv"], x, weights, window, grad)
    rows = {}
    for method, fn in FORMULATIONS.items():
        timing = best_time(lambda fn=fn: _run(fn, x, weights, window, grad), repeats, warmup=1)
        got = _run(fn, x, weights, window, grad)

        def rel(a, b):
            return [float((p.double() - q.double()).abs().max() / q.double().abs().max()) for p, q in zip(a, b)]
        equal = True
        for p, q in zip(got, ref):  # the unit test's rule (tests/test_ssn.py)
            try:
                torch.testing.assert_close(p, q, rtol=1e-5, atol=4e-6 * q.abs().max().item())
            except AssertionError:
                equal = False
        rows[method] = dict(fwd_bwd_s=timing.wall_s, fwd_bwd_cpu_s=timing.cpu_s,
                            max_rel_diff_vs_conv=dict(zip(("values", "d_x", "d_weights"), rel(got, ref))),
                            max_rel_err_vs_float64=dict(zip(("values", "d_x", "d_weights"), rel(got, exact))),
                            equal_to_conv=equal)
    for r in rows.values():
        r["speedup_vs_conv"] = rows["conv"]["fwd_bwd_s"] / r["fwd_bwd_s"]
    return dict(setting=name, batch=batch, channels=channels, size=list(size), parts=parts, window=window,
                grid=list(grid), auto_method=window_sum_method(channels, size, window), formulations=rows)


def _with_method(window_sum, x, weights, window, method):
    return window_sum(x, weights, window, method=method)


def amber_ssn_step(repeats: int, hidden: int) -> dict:
    """The Amber study's whole SSN training step with the old (conv) and the auto window sum.

    hidden: K of the classifier (the study's cpu profile: 32; its default and the paper's: 512).
    """
    from ssn3dlib.studies.amber_abstract import build_ssn
    g = torch.Generator().manual_seed(0)
    x = torch.randn(AMBER["batch"], AMBER["channels"], *AMBER["size"], generator=g)
    out = {}
    for method in ("conv", "auto"):
        ssn = build_ssn(AMBER["parts"], AMBER["window"], hidden).train()
        optimizer = torch.optim.Adam(ssn.parameters(), lr=1e-3, weight_decay=5e-4)
        original = ssn_module.weighted_window_sum

        def step(ssn=ssn, optimizer=optimizer):
            optimizer.zero_grad(set_to_none=True)
            ssn(x, with_loss=True).loss.backward()
            optimizer.step()
        ssn_module.weighted_window_sum = partial(_with_method, original, method=method)
        try:
            timing = best_time(step, repeats, warmup=1)
        finally:
            ssn_module.weighted_window_sum = original
        out[method] = dict(step_s=timing.wall_s, step_cpu_s=timing.cpu_s)
    out["speedup"] = out["conv"]["step_s"] / out["auto"]["step_s"]
    return dict(hidden=hidden) | out


def print_window_sums(rows: list) -> None:
    for r in rows:
        print(f"\n== eq. 3 window sum, {r['setting']}: B={r['batch']} C={r['channels']} {r['size'][0]} x "
              f"{r['size'][1]}, k={r['window']} (grid {r['grid'][0]} x {r['grid'][1]}), N={r['parts']}; "
              f"auto picks {r['auto_method']} ==")
        print(f"{'formulation':<10}{'fwd+bwd ms':>11}{'speed-up':>10}{'equal':>7}"
              f"{'  max rel diff vs conv (y, dx, dw)':<38}{'max rel err vs float64':<30}")
        for method, f in r["formulations"].items():
            d = " ".join(f"{v:.1e}" for v in f["max_rel_diff_vs_conv"].values())
            e = " ".join(f"{v:.1e}" for v in f["max_rel_err_vs_float64"].values())
            print(f"{method:<10}{1e3 * f['fwd_bwd_s']:>11.1f}{f['speedup_vs_conv']:>9.2f}x"
                  f"{'yes' if f['equal_to_conv'] else 'no':>7}  {d:<36}{e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=[PAPER["backbone"], "resnet18-layer2"])
    parser.add_argument("--input", type=int, nargs=2, default=[128, 64], metavar=("H", "W"))
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--clip-len", type=int, default=PAPER["clip_len"])
    parser.add_argument("--repeats", type=int, default=3, help="timed steps, best kept")
    parser.add_argument("--profile-repeats", type=int, default=2, help="profiled steps, fastest kept")
    parser.add_argument("--window-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=TORCH_THREADS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-step", action="store_true")
    parser.add_argument("--skip-window-sum", action="store_true")
    parser.add_argument("--output", type=Path, default=reports_dir() / "perf" / "ssn3d_step.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(args.threads)
    load_start, start = os.getloadavg(), time.perf_counter()
    # The output path is where this file lies, not a setting: recording it would commit this machine's paths.
    report = dict(machine=machine_info(), config={k: v for k, v in vars(args).items() if k != "output"})
    if not args.skip_step:
        rows = []
        for backbone in args.backbones:
            for key in MODELS:
                print(f"step: {backbone} {key} ...", flush=True)
                row = measure_model(key, backbone, args)
                rows.append(row | dict(input=list(args.input), clips=args.clips, clip_len=args.clip_len))
        add_ratios(rows)
        print_step(rows)
        report["step"] = rows
    if not args.skip_window_sum:
        settings = [("amber", AMBER)]
        for backbone, (c, size) in (("resnet50-layer3", (1024, (8, 4))), ("resnet18-layer2", (128, (16, 8)))):
            # SSN3D's window sum at 128 x 64: clip frames + 2 labelled frames per clip.
            settings.append((f"ssn3d {backbone}", dict(batch=args.clips * (args.clip_len + 2), channels=c,
                                                       size=size, parts=9, window=3)))
        report["window_sum"] = [measure_window_sum(name, s["batch"], s["channels"], s["size"], s["parts"],
                                                   s["window"], args.window_repeats) for name, s in settings]
        print_window_sums(report["window_sum"])
        report["amber_ssn_step"] = [amber_ssn_step(args.repeats, hidden) for hidden in (32, 512)]
        for a in report["amber_ssn_step"]:
            print(f"Amber SSN training step (batch 4, K = {a['hidden']}): conv window sum "
                  f"{a['conv']['step_s']:.3f} s, auto ({window_sum_method(3, AMBER['size'], AMBER['window'])}) "
                  f"{a['auto']['step_s']:.3f} s: {a['speedup']:.2f}x")
    report |= dict(loadavg_start=load_start, loadavg_end=os.getloadavg(),
                   elapsed_s=time.perf_counter() - start, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    print(f"\nload average start {load_start}, end {report['loadavg_end']}; torch threads "
          f"{torch.get_num_threads()}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
