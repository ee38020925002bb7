"""`ssn3d data ACTION`: dataset tools.

- verify NAME --root DIR: check a dataset tree against data_manifests/NAME.yaml.
- synth --root DIR [...]: write a synthetic video re-ID world (ssn3dlib.data.synthetic).
- pseudolabel (--images DIR | --dataset NAME --root DIR) --out CSV: MediaPipe Pose keypoints for
  a folder of crops or a dataset's tracklets, resumable (runs in the pose environment, see
  ssn3dlib.data.pseudolabel).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_verify(sub)
    _add_synth(sub)
    _add_pseudolabel(sub)
    return parser


def run(args) -> int:
    return {"verify": verify, "synth": synth, "pseudolabel": pseudolabel}[args.action](args)



# ============================================================================ verify

def _with_protocol_check() -> str:
    from ..data.readers import DATASETS

    return ", ".join(n for n, i in DATASETS.items() if i.protocol_check)


def _add_verify(sub):
    from ..data.readers import DATASETS

    with_splits = ", ".join(f"{n} 0..{i.num_splits - 1}" for n, i in DATASETS.items() if i.num_splits)
    verify = sub.add_parser("verify", help="check a dataset tree against data_manifests/NAME.yaml")
    verify.add_argument("name", help=f"dataset name: {', '.join(DATASETS)}")
    verify.add_argument("--root", type=Path, required=True, help="the dataset's root folder")
    verify.add_argument("--split", type=int, default=None, help=f"split index ({with_splits})")
    verify.add_argument("--gallery", default=None, help="MARS gallery protocol: official | gallery-only")
    verify.add_argument("--decode", choices=["all", "none"], default="all",
                        help="decode every image (default) or only check that files exist")
    verify.add_argument("--manifest", type=Path, default=None,
                        help="compare with this manifest file instead of data_manifests/NAME.yaml "
                             "(e.g. for a custom subset, or one `ssn3d data synth --write-manifest` wrote)")
    verify.add_argument("--protocol-only", action="store_true",
                        help=f"check only the protocol files, no images needed ({_with_protocol_check()})")


def _print_counts(counts):
    print(f"{'split':8s} {'identities':>10s} {'tracklets':>10s} {'images':>10s}")
    for split, c in counts.items():
        print(f"{split:8s} {c['identities']:>10d} {c['tracklets']:>10d} {c['images']:>10d}")


def verify(args) -> int:
    from ..data.layout import check_images_readable, require_paths
    from ..data.manifests import count_mismatches, load_manifest, total_mismatches, unchecked_counts
    from ..data.readers import dataset_info, read_dataset

    manifest = load_manifest(args.manifest or args.name)
    info = dataset_info(args.name)
    if args.protocol_only:
        if info.protocol_check is None:
            raise InputError(f"--protocol-only applies to {_with_protocol_check()} only")
        summary, bad = info.protocol_check(args.root, manifest)
        print(summary)
        return _report(args.name, bad)
    # Every path the manifest lists, before the reader (whose own checks may list fewer).
    require_paths(args.name, args.root, manifest.get("required", []))
    options = {k: v for k, v in (("split", args.split), ("gallery", args.gallery)) if v is not None}
    try:
        dataset = read_dataset(args.name, args.root, **options)
    except TypeError as err:  # an option this reader does not take
        raise InputError(f"{args.name} does not take {options}: {err}") from None
    if args.decode == "all":
        print(f"decoded {check_images_readable(dataset.all_frames())} images")
    print(f"{manifest['title']} at {dataset.root}  protocol: {dataset.protocol}")
    _print_counts(dataset.counts())
    expected = dict(manifest["counts"])
    for (key, value), section in info.protocol_counts.items():  # e.g. MARS's gallery-only counts
        if dataset.protocol.get(key) == value:
            expected.update(manifest[section])
    skipped = unchecked_counts(expected, manifest.get("totals"))
    if skipped:
        print("not checked (null in the manifest): " + ", ".join(skipped))
    return _report(args.name, count_mismatches(dataset, expected) + total_mismatches(dataset, manifest.get("totals")))


def _report(name, mismatches) -> int:
    if mismatches:
        raise InputError(f"{name} does not match its manifest:\n  " + "\n  ".join(mismatches))
    print(f"ok: {name} matches its manifest")
    return 0


# ============================================================================ synth

#: option -> (WorldConfig field, parser, metavar, help). Defaults come from WorldConfig itself.
_SYNTH_OPTIONS = {
    "--seed": ("seed", int, "S", "random seed: the same options always write the same files"),
    "--identities": ("num_identities", int, "N", "number of identities (half train, half test)"),
    "--cameras": ("num_cameras", int, "C", "number of cameras"),
    "--tracklets": ("tracklets_per_identity_per_camera", "range", "MIN,MAX",
                    "tracklets per identity and camera (one number: always that many)"),
    "--frames": ("frames_per_tracklet", "range", "MIN,MAX", "frames per tracklet (one number: always that many)"),
    "--image-size": ("image_size", "size", "H,W", "crop height and width"),
    "--misalignment": ("misalignment", float, "LEVEL", "box jitter and drift, 0 (none) .. 1 (severe)"),
    "--occlusion-rate": ("occlusion_rate", float, "R", "fraction of frames with an occluder (default 0.3 x LEVEL)"),
    "--similar-fraction": ("similar_identity_fraction", float, "F", "fraction of look-alike identities, 0 .. 0.5"),
    "--train-fraction": ("train_fraction", float, "F", "fraction of identities used for training"),
    "--crops": ("static_crops", int, "N", "static single-frame crops for the attention study"),
}


def _int_pair(text: str):
    """'16,48' -> (16, 48); '16' -> 16 (WorldConfig validates the values)."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or MIN,MAX, got {text!r}") from None
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected an integer or MIN,MAX, got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _size(text: str):
    value = _int_pair(text)
    if not isinstance(value, tuple):
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH, got {text!r}")
    return value


def _add_synth(sub):
    from ..data.synthetic import WorldConfig

    defaults = WorldConfig()
    synth = sub.add_parser("synth", help="write a synthetic video re-ID world (walking pedestrians, exact keypoints)",
                           description="Write a synthetic video re-ID world under --root; the defaults are "
                                       "those of data_manifests/synthetic_world.yaml.")
    synth.add_argument("--root", type=Path, required=True, help="output folder (empty, or pass --overwrite)")
    types = {"range": _int_pair, "size": _size}
    for option, (field, kind, metavar, help_text) in _SYNTH_OPTIONS.items():
        default = getattr(defaults, field)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        synth.add_argument(option, dest=field, type=types.get(kind, kind), default=argparse.SUPPRESS,
                           metavar=metavar, help=help_text if default is None else f"{help_text} (default {shown})")
    synth.add_argument("--workers", type=int, default=None,
                       help="render processes (default: up to 8 for a large world, 1 for a small one); "
                            "the files do not depend on it")
    synth.add_argument("--overwrite", action="store_true",
                       help="replace what --root holds (another world, or a half-written one)")
    synth.add_argument("--write-manifest", type=Path, default=None, metavar="YAML",
                       help="also write a manifest with this world's parameters and counts, for "
                            "`ssn3d data verify synthetic_world --manifest YAML`")


def world_config(args):
    """The WorldConfig of parsed `synth` options; options not given keep WorldConfig's defaults."""
    from ..data.synthetic import WorldConfig

    fields = {spec[0] for spec in _SYNTH_OPTIONS.values()}
    return WorldConfig(**{k: v for k, v in vars(args).items() if k in fields})


def synth(args) -> int:
    from ..data.synthetic import generate_world
    from ..data.synthetic.writing import _stored_config

    try:
        config = world_config(args)
    except ValueError as err:  # name the option the user typed, not the dataclass field
        message = str(err)
        for option, (field, *_) in _SYNTH_OPTIONS.items():
            message = message.replace(f"WorldConfig.{field} ", f"{option} ")
        raise InputError(message) from None
    root = args.root
    if root.exists() and not root.is_dir():
        raise InputError(f"--root {root} is a file; choose a folder")
    if root.is_dir() and any(root.iterdir()) and not args.overwrite:
        if _stored_config(root) != config.to_dict():  # same config: generate_world keeps or repairs it
            what = "a synthetic world of another config" if (root / "world.yaml").is_file() else "other files"
            raise InputError(f"--root {root} is not empty (it holds {what}); choose an empty folder or pass "
                             f"--overwrite to replace it")
        print(f"{root} already holds a world of this config: checking it instead of writing it again")
    generate_world(config, root, progress=True, workers=args.workers, overwrite=args.overwrite)
    if args.write_manifest:
        print(f"manifest for this world: {write_world_manifest(config, args.write_manifest)}")
    return 0


def write_world_manifest(config, path: Path) -> Path:
    """data_manifests/synthetic_world.yaml with this config's parameters and counts."""
    import yaml

    from ..data.manifests import load_manifest
    from ..data.synthetic import plan_world
    from ..data.synthetic.writing import world_counts

    manifest = load_manifest("synthetic_world")
    counts = world_counts(plan_world(config))
    manifest["parameters"] = config.to_dict()
    manifest["counts"] = {split: counts[split] for split in ("train", "query", "gallery")}
    manifest["counts_crops"] = counts["crops"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


# ============================================================================ pseudolabel

def _add_pseudolabel(sub):
    pose = sub.add_parser(
        "pseudolabel", help="MediaPipe Pose keypoints for a folder of crops (needs the pose environment)",
        description="Label body keypoints with MediaPipe Pose 0.10.14 as the reference "
                    "pku_reid_subset/keypoints_mediapipe.csv was made. Needs mediapipe, which needs "
                    "numpy<2: run it with .venv-pose/bin/python -m ssn3dlib (make pose-env).")
    source = pose.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path,
                        help="folder the table's image paths are relative to (e.g. a dataset root)")
    source.add_argument("--dataset", help="label a registered dataset's tracklets (with --root)")
    pose.add_argument("--root", type=Path, help="with --dataset: the dataset's root folder")
    pose.add_argument("--frames-per-tracklet", type=int, default=4, metavar="K",
                      help="with --dataset: frames spread over each training tracklet (default 4; training "
                           "uses the best-visible 2)")
    pose.add_argument("--test-frames", action="store_true",
                      help="with --dataset: every query and gallery frame too (the supervised strategy)")
    pose.add_argument("--out", type=Path, required=True,
                      help="keypoint table to write (CSV); a killed run resumes from it (OUT.progress lists "
                           "what it has done)")
    pose.add_argument("--glob", default="**/*.jpg", help="which files under --images to label (default '**/*.jpg')")
    pose.add_argument("--workers", type=int, default=1, help="pose-model processes (default 1)")
    pose.add_argument("--min-detection-confidence", type=float, default=0.5,
                      help="MediaPipe's person detection threshold (default 0.5, as the reference)")
    pose.add_argument("--compare", type=Path, default=None, metavar="CSV",
                      help="print how closely the new table reproduces this reference table")
    pose.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def pseudolabel(args) -> int:
    from ..data.keypoints import read_keypoint_table
    from ..data.pseudolabel import (
        compare_tables,
        dataset_frames,
        find_images,
        label_images,
        load_pose_model,
        progress_path,
    )

    resuming = args.out.exists() and progress_path(args.out).is_file() and not args.overwrite
    if args.out.exists() and not (args.overwrite or resuming):
        raise InputError(f"{args.out} exists; pass --overwrite to replace it")
    if not 0 <= args.min_detection_confidence <= 1:
        raise InputError(f"--min-detection-confidence must lie in 0..1, got {args.min_detection_confidence}")
    if args.dataset and args.root is None:
        raise InputError("--dataset needs --root, the dataset's folder")
    reference = read_keypoint_table(args.compare) if args.compare else None
    load_pose_model(args.min_detection_confidence).close()   # no MediaPipe: say so before any work
    if args.dataset:
        from ..data.readers import read_dataset

        root = args.root
        images = dataset_frames(read_dataset(args.dataset, root), args.frames_per_tracklet, args.test_frames)
        print(f"{len(images)} frames of {args.dataset} at {root}: {args.frames_per_tracklet} per training "
              f"tracklet{' and every test frame' if args.test_frames else ''}")
    else:
        root = args.images
        images = find_images(root, args.glob)
        print(f"{len(images)} images under {root} match {args.glob!r}")
    if args.overwrite:
        progress_path(args.out).unlink(missing_ok=True)
        args.out.unlink(missing_ok=True)
    elif resuming:
        print(f"resuming {args.out} ({progress_path(args.out)} lists what is done)")
    label_images(root, images, args.out, workers=args.workers,
                 min_detection_confidence=args.min_detection_confidence)
    table = read_keypoint_table(args.out)
    with_pose = table["image"].nunique()
    print(f"{with_pose} of {len(images)} images got a pose ({with_pose / max(len(images), 1):.1%}); "
          f"wrote {len(table)} rows to {args.out}")
    if reference is not None:
        _print_comparison(compare_tables(table, reference), args.compare)
    return 0


def _print_comparison(c, reference_path) -> None:
    print(f"against {reference_path}: images with a pose {c['images_mine']} here, {c['images_reference']} "
          f"there, {c['images_both']} in both")
    print(f"median distance on images both labelled: {c['median_distance_px']:.3f} px; "
          f"visibility correlation {c['visibility_corr']:.4f}")
    for name, d in c["per_keypoint_median_px"].items():
        print(f"  {name:15s} {d:.3f} px")
