"""`ssn3d visrank --checkpoint FILE --out PNG [--queries worst|random|IDS] [--topk 10]`: ranked
lists of a checkpoint on its dataset's test split (ssn3dlib.reporting.visrank)."""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=Path, required=True, help="a checkpoints/last.pt or best.pt")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--queries", default="worst",
                        help="worst (default: latest first true match), random, or comma-separated query "
                             "tracklet names or indices")
    parser.add_argument("--num-queries", type=int, default=4, help="rows for worst/random (default 4)")
    parser.add_argument("--topk", type=int, default=10, help="gallery tracklets per query (default 10)")
    parser.add_argument("--frames", type=int, default=3, help="frames shown per tracklet (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --queries random")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="data/eval overrides, e.g. data.root=/data/MARS eval.metric=cosine")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run(args) -> int:
    from ..errors import InputError
    from ..figures import save_figure
    from ..paths import output_file
    from ..reporting.visrank import visrank

    output_file(args.out, (".png", ".jpg", ".pdf", ".svg"))
    for option in ("num_queries", "topk", "frames"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    fig, lists = visrank(args.checkpoint, args.queries, topk=args.topk, count=args.num_queries,
                         frames=args.frames, overrides=args.overrides, device=args.device, seed=args.seed,
                         progress=not args.quiet)
    save_figure(fig, args.out)
    for r in lists:
        print(f"query {r.query}: first true match at rank {r.first_match_rank or '-'}; top {len(r.gallery)}: "
              + " ".join({"match": "+", "false": "-", "junk": "j"}[v] for v in r.verdict))
    print(f"wrote {args.out}")
    return 0
