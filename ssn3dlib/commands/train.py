"""`ssn3d train --config FILE [section.key=value ...]`: train a model (resumes by default).

Multi-GPU (or multi-process CPU with gloo): launch the same command under torchrun,
    torchrun --nproc-per-node 4 -m ssn3dlib train --config configs/mars.yaml
"""
from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser):
    parser.add_argument("--config", required=True,
                        help="a YAML file, or the name of one in configs/ (e.g. synthetic_cpu)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. optim.lr=1e-4 train.epochs=3 data.options.split=2")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="where config.yaml, checkpoints/ and metrics.jsonl go "
                             "(default: reports/runs/train/<config name>)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start over instead of continuing from checkpoints/last.pt")
    parser.add_argument("--all-splits", action="store_true",
                        help="split protocols (iLIDS-VID, PRID, PKU): one run per split, report the mean")
    parser.add_argument("--check-images", action="store_true",
                        help="decode every frame of the dataset once before training and stop at the first "
                             "unreadable one (a bad frame is otherwise found only when a batch draws it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def default_run_dir(config_arg: str) -> Path:
    from ..paths import reports_dir

    return reports_dir() / "runs" / "train" / Path(config_arg).stem


def run(args) -> int:
    from ..engine import load_config, train, train_splits

    run_dir = args.run_dir or default_run_dir(args.config)
    config = load_config(args.config, args.overrides)
    options = dict(resume=args.resume, progress=not args.quiet, check_images=args.check_images)
    if args.all_splits:
        summary = train_splits(config, run_dir, **options)
        print(json.dumps({k: v for k, v in summary.items() if k != "per_split"}, indent=2))
        return 0
    result = train(config, run_dir, **options)
    from ..engine.distributed import launch_environment

    if launch_environment()["rank"] != 0:
        return 0  # under torchrun, rank 0 reports
    if result.final is not None:
        f = result.final
        print(f"{result.epochs} epochs, {result.train_seconds:.0f} s on {result.device}: rank-1 "
              f"{f['rank1']:.1f}  rank-5 {f['rank5']:.1f}  mAP {f['mAP']:.1f} ({f['ap_definition']} AP)")
    print(f"run: {result.run_dir}")
    return 0
