"""`ssn3d demo`: a few-minute CPU demonstration of the model until the studies exist.

1. The SSN alone on random maps (a small version of paper Fig. 5): Gaussian and
   uniform noise separate into parts, all-ones maps cannot.
2. SSN3D at the paper's input (256 x 128, T = 4, ResNet-50 up to layer3): one
   training forward/backward, the shapes of every stage, parameters and time.
"""
from __future__ import annotations

import time
from pathlib import Path


def add_arguments(parser):
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <repo>/reports/demo)")
    parser.add_argument("--steps", type=int, default=300, help="SSN training steps per run")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args) -> int:
    import torch

    from ..figures import new_figure, save_figure
    from ..losses import SSN3DObjective
    from ..models import SSN3D
    from ..paths import reports_dir
    from ..studies.random_maps import DISTRIBUTIONS, distribution_of, train_ssn_on_random_maps
    from ..studies.toolkit import write_metrics

    out = (args.out or reports_dir() / "demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs = [train_ssn_on_random_maps(dist, num_parts=3, steps=args.steps, batch=32, channels=32,
                                     size=12, hidden=128, seed=args.seed) for dist in DISTRIBUTIONS]
    fig, ax = new_figure(6, 3.5)
    for r in runs:
        ax.plot(r.losses, label=distribution_of(r))
    ax.axhline(runs[0].log_n, color="grey", ls="--", lw=1, label="log N")
    ax.set(xlabel="iteration", ylabel="SSN loss", title="SSN on random 32x12x12 maps, N = 3")
    ax.legend()
    fig.tight_layout()
    figure = save_figure(fig, out / "ssn_random_maps.png")

    torch.manual_seed(args.seed)
    model = SSN3D(strategy="unsupervised")
    clips = torch.randn(4, 4, 3, 256, 128)
    pids = torch.tensor([0, 0, 1, 1])
    start = time.perf_counter()
    output = model(clips)
    losses = SSN3DObjective(lambda_ssn=0.1)(output, pids)
    losses["loss"].backward()
    seconds = time.perf_counter() - start

    metrics = {
        "random_maps": {distribution_of(r): {"final_loss": round(r.final_loss(), 4),
                                         "log_n": round(r.log_n, 4),
                                         "step_below_10pct_log_n": r.first_step_below(0.1)}
                        for r in runs},
        "ssn3d_paper_input": {"clip": list(clips.shape), "maps": list(output.maps.shape),
                              "embedding": list(output.embedding.shape),
                              "parameters": sum(p.numel() for p in model.parameters())},
    }
    write_metrics(metrics, out)
    for r in runs:
        print(f"{distribution_of(r):8s} final SSN loss {r.final_loss():.3f} (log N = {r.log_n:.3f})")
    print(f"SSN3D paper input {tuple(clips.shape)} -> maps {tuple(output.maps.shape)} -> "
          f"embedding {tuple(output.embedding.shape)}; {metrics['ssn3d_paper_input']['parameters']:,} "
          f"parameters; one train step {seconds:.1f} s on CPU")
    print(f"wrote {figure} and {out / 'metrics.json'}")
    return 0
