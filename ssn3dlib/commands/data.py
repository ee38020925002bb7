"""`ssn3d data verify NAME --root DIR`: check a dataset tree against its manifest."""
from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = sub.add_parser("verify", help="check a dataset tree against data_manifests/NAME.yaml")
    verify.add_argument("name", help="dataset name (a file in data_manifests/)")
    verify.add_argument("--root", type=Path, required=True, help="the dataset's root folder")
    verify.add_argument("--split", type=int, default=None, help="split index (iLIDS-VID, PRID, PKU)")
    verify.add_argument("--gallery", default=None, help="MARS gallery protocol: official | gallery-only")
    verify.add_argument("--decode", choices=["all", "none"], default="all",
                        help="decode every image (default) or only check that files exist")
    verify.add_argument("--manifest", type=Path, default=None,
                        help="compare with this manifest file instead of data_manifests/NAME.yaml "
                             "(e.g. for a custom subset)")
    verify.add_argument("--protocol-only", action="store_true",
                        help="MARS: check only the info/*.mat protocol files (no images needed)")
    return parser


def run(args) -> int:
    return {"verify": verify}[args.action](args)


def _print_counts(counts):
    print(f"{'split':8s} {'identities':>10s} {'tracklets':>10s} {'images':>10s}")
    for split, c in counts.items():
        print(f"{split:8s} {c['identities']:>10d} {c['tracklets']:>10d} {c['images']:>10d}")


def verify(args) -> int:
    from ..data.layout import DatasetLayoutError, check_images_readable
    from ..data.manifests import count_mismatches, load_manifest
    from ..data.readers import read_dataset
    from ..data.readers.mars import read_protocol

    manifest = load_manifest(args.manifest or args.name)
    try:
        if args.protocol_only:
            if args.name != "mars":
                raise ValueError("--protocol-only applies to mars only")
            info_dir = args.root / "info" if (args.root / "info").is_dir() else args.root
            protocol = read_protocol(info_dir)
            found = {"train": len(protocol["track_train_info"]), "test": len(protocol["track_test_info"]),
                     "query": len(protocol["query_IDX"])}
            print(f"mars protocol files in {info_dir}: " + ", ".join(f"{k} {v}" for k, v in found.items()))
            bad = [f"{k}: found {found[k]}, manifest says {v}" for k, v in manifest["raw_tracks"].items()
                   if found[k] != v]
            return _report(args.name, bad)
        options = {k: v for k, v in (("split", args.split), ("gallery", args.gallery)) if v is not None}
        dataset = read_dataset(args.name, args.root, **options)
        if args.decode == "all":
            frames = [f for split in (dataset.train, dataset.query, dataset.gallery) for t in split
                      for f in t.frames]
            print(f"decoded {check_images_readable(dict.fromkeys(frames))} images")
    except (DatasetLayoutError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{manifest['title']} at {dataset.root}  protocol: {dataset.protocol}")
    _print_counts(dataset.counts())
    expected = manifest["counts"]
    if args.name == "mars" and dataset.protocol.get("gallery") == "gallery-only":
        expected = {**expected, **manifest["counts_gallery_only"]}
    return _report(args.name, count_mismatches(dataset, expected))


def _report(name, mismatches) -> int:
    if mismatches:
        print(f"error: {name} does not match its manifest:\n  " + "\n  ".join(mismatches), file=sys.stderr)
        return 1
    print(f"ok: {name} matches its manifest")
    return 0
