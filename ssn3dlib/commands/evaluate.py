"""`ssn3d evaluate --checkpoint FILE [section.key=value ...]`: CMC and mAP of a checkpoint
under its dataset's protocol (overrides change evaluation settings, e.g. eval.ap=mars-official)."""
from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=Path, required=True, help="a checkpoints/last.pt or best.pt")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="evaluation overrides, e.g. eval.ap=mars-official data.root=/data/MARS")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run(args) -> int:
    from ..engine import evaluate
    from ..paths import output_file

    if args.out is not None:
        output_file(args.out, (".json",))
    result = evaluate(args.checkpoint, args.overrides, device=args.device, progress=not args.quiet)
    print(f"{result['dataset']} / {result['model']} ({result['epochs']} epochs): "
          + "  ".join(f"{k} {result[k]:.1f}" for k in ("rank1", "rank5", "rank10", "rank20", "mAP"))
          + f"  [{result['ap_definition']} AP, {result['num_query']} queries x {result['num_gallery']} gallery]")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0
