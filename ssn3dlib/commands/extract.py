"""`ssn3d extract --checkpoint FILE (--images DIR | --dataset NAME) --out features.npz`: one
embedding per tracklet, as the evaluation computes them (ssn3dlib.engine.features)."""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=Path, required=True, help="a checkpoints/last.pt or best.pt")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path,
                        help="a folder of tracklets: DIR/<identity>/<tracklet>/<frames> or DIR/<tracklet>/<frames>")
    source.add_argument("--dataset", help="a registered dataset name (ssn3d info lists them)")
    parser.add_argument("--root", type=Path, default=None,
                        help="with --dataset: where it lies (default: the checkpoint's own data for its own "
                             "dataset, else $SSN3D_DATA_ROOT/NAME)")
    parser.add_argument("--splits", default="train,query,gallery",
                        help="with --dataset: which splits (default train,query,gallery)")
    parser.add_argument("--keypoints", type=Path, default=None,
                        help="keypoint table (image,keypoint,x,y,visibility) for a supervised-strategy model; "
                             "image paths relative to the folder")
    parser.add_argument("--out", type=Path, required=True, help="features file to write (.npz)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per forward pass (eval.clips_per_batch)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="eval overrides, e.g. eval.clip_len=16")
    return parser


def run(args) -> int:
    from ..engine.features import check_output, extract_features, save_features

    check_output(args.out)
    result = extract_features(args.checkpoint, images=args.images, dataset=args.dataset, root=args.root,
                              splits=[s for s in args.splits.split(",") if s], keypoints=args.keypoints,
                              batch_size=args.batch_size, device=args.device, progress=not args.quiet,
                              overrides=args.overrides)
    save_features(result, args.out)
    n, d = result.features.shape
    print(f"{n} tracklets x {d} dimensions from {result.root} -> {args.out}")
    return 0
