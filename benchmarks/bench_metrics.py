"""Benchmark of re-ID evaluation at MARS scale: distances, fast CMC/mAP, reference loop.

Why: evaluation runs after every epoch and in every notebook, so its cost at
the real MARS size (1980 queries x 11310 gallery tracks, official protocol) matters, and the fast
ranking must keep giving exactly the reference loop's numbers. Features are
synthetic (identity centroid + noise, tuned to a trained-model-like CMC); the
protocol (pids, cameras, junk -1, distractors 0) is the official MARS one when
its files are available, else a synthetic one with the same sizes.

Run: ``python benchmarks/bench_metrics.py [--repeats N] [--synthetic]``.
Writes ``reports/perf/metrics_benchmark.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from ssn3dlib.data.readers.mars import GALLERY_PROTOCOLS, read_protocol
from ssn3dlib.metrics import compute_distance, evaluate_rank
from ssn3dlib.metrics.rank import AP_DEFINITIONS
from ssn3dlib.metrics.reference import evaluate_rank_reference
from ssn3dlib.paths import data_root, reports_dir

FEATURE_DIM = 1024
TORCH_THREADS = 2
# MARS test split sizes (tracks_test_info.mat / query_IDX.mat).
MARS_SIZES = dict(tracks=12180, queries=1980, ids=636, junk=870, distractors=3248, cameras=6)


class Protocol(NamedTuple):
    """Test tracks' labels and which of them are queries; ``source`` says where it came from."""

    pids: np.ndarray
    camids: np.ndarray
    query_idx: np.ndarray
    gallery_idx: np.ndarray
    source: str


def _shown(path: Path) -> str:
    """A data path as recorded: relative to $SSN3D_DATA_ROOT when inside it (no machine's paths in reports)."""
    try:
        return "$SSN3D_DATA_ROOT/" + str(Path(path).resolve().relative_to(data_root()))
    except ValueError:
        return str(path)


def load_mars_protocol(info_dir: Path, gallery: str) -> Optional[Protocol]:
    """The MARS test protocol as the dataset reader builds it, or None when the files are absent.

    Junk (pid -1) tracks are dropped like the reader does; "official" keeps the queries
    in the gallery (1980 x 11310), "gallery-only" does not (1980 x 9330).
    """
    if not (info_dir / "query_IDX.mat").is_file():
        return None
    protocol = read_protocol(info_dir)
    tracks = protocol["track_test_info"]  # start, end, pid, camid
    query_idx = protocol["query_IDX"] - 1  # 1-based in the .mat file
    keep = tracks[:, 2] != -1
    if gallery == "gallery-only":
        keep[query_idx] = False
    return Protocol(
        pids=tracks[:, 2].astype(np.int64),
        camids=tracks[:, 3].astype(np.int64),
        query_idx=query_idx,
        gallery_idx=np.flatnonzero(keep),
        source=f"MARS {gallery} ({_shown(info_dir)})",
    )


def synthetic_protocol(rng: np.random.Generator) -> Protocol:
    """Random labels with the MARS test split's sizes (ids, junk, distractors, cameras)."""
    s = MARS_SIZES
    num_id_tracks = s["tracks"] - s["junk"] - s["distractors"]
    extra = rng.integers(1, s["ids"] + 1, num_id_tracks - s["ids"])
    id_pids = np.concatenate([np.arange(1, s["ids"] + 1), extra])  # every id at least once
    pids = np.concatenate([id_pids, np.full(s["junk"], -1), np.zeros(s["distractors"], np.int64)])
    camids = rng.integers(1, s["cameras"] + 1, size=s["tracks"])
    query_idx = np.sort(rng.choice(num_id_tracks, size=s["queries"], replace=False))
    return Protocol(
        pids=pids,
        camids=camids,
        query_idx=query_idx,
        gallery_idx=np.setdiff1d(np.arange(s["tracks"]), query_idx),
        source="synthetic (MARS sizes)",
    )


def synthetic_features(pids: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Identity centroid + Gaussian noise; junk and distractor tracks get their own centroid.

    noise=2.6 in 1024-d gives roughly rank-1 80% / mAP 60%, like a trained model.
    """
    identity = np.where(pids > 0, pids, -1 - np.arange(len(pids)))
    _, track_identity = np.unique(identity, return_inverse=True)
    centroids = rng.standard_normal((track_identity.max() + 1, FEATURE_DIM), dtype=np.float32)
    jitter = rng.standard_normal((len(pids), FEATURE_DIM), dtype=np.float32)
    return centroids[track_identity] + noise * jitter


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Smallest wall time over ``repeats`` runs (least disturbed by other load)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def assert_identical(fast, reference, ap: str) -> None:
    """The fast path is only useful if it reproduces the reference bit for bit."""
    assert np.array_equal(fast.cmc, reference.cmc), f"CMC differs ({ap})"
    assert np.array_equal(fast.average_precision, reference.average_precision), f"AP differs ({ap})"
    assert fast.mAP == reference.mAP and fast.num_no_match == reference.num_no_match, ap


def machine_info() -> dict:
    return dict(
        cpu_count=os.cpu_count(),
        cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        torch_threads=torch.get_num_threads(),
        processor=platform.processor() or platform.machine(),
        python=platform.python_version(),
        numpy=np.__version__,
        torch=torch.__version__,
        cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    )


def time_distances(
    query: torch.Tensor, gallery: torch.Tensor, repeats: int
) -> tuple[dict, np.ndarray]:
    """compute_distance on CPU (and on the GPU when there is one)."""
    timings = {}
    timings["cpu"], distmat = best_of(lambda: compute_distance(query, gallery), repeats)
    if torch.cuda.is_available():
        q, g = query.cuda(), gallery.cuda()
        compute_distance(q, g)  # warm-up: CUDA context and kernels
        timings["cuda"], _ = best_of(lambda: compute_distance(q, g), repeats)
    return timings, distmat


def time_rankings(distmat: np.ndarray, labels: tuple, repeats: int) -> dict:
    """Fast vs reference evaluation for both AP definitions, checked identical."""
    results = {}
    for ap in AP_DEFINITIONS:
        fast_s, fast = best_of(partial(evaluate_rank, distmat, *labels, ap=ap), repeats)
        ref_s, ref = best_of(partial(evaluate_rank_reference, distmat, *labels, ap=ap), repeats)
        assert_identical(fast, ref, ap)
        results[ap] = dict(
            fast_s=fast_s,
            reference_s=ref_s,
            speedup=ref_s / fast_s,
            rank1=float(fast.cmc[0]),
            rank5=float(fast.cmc[4]),
            rank10=float(fast.cmc[9]),
            mAP=fast.mAP,
            num_no_match=fast.num_no_match,
        )
    return results


def print_table(distance_s: dict, rankings: dict) -> None:
    print(f"\n{'step':<32}{'time [s]':>10}{'speedup':>10}{'rank-1':>9}{'mAP':>9}")
    for device, seconds in distance_s.items():
        print(f"{'compute_distance (' + device + ')':<32}{seconds:>10.3f}")
    for ap, r in rankings.items():
        scores = f"{r['rank1']:>9.2%}{r['mAP']:>9.2%}"
        print(f"{'evaluate_rank ' + ap:<32}{r['fast_s']:>10.3f}{r['speedup']:>9.1f}x{scores}")
        print(f"{'reference loop ' + ap:<32}{r['reference_s']:>10.3f}{1.0:>9.1f}x{scores}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per step; best is kept")
    parser.add_argument(
        "--synthetic", action="store_true", help="ignore the MARS files, use random labels"
    )
    parser.add_argument("--gallery", choices=sorted(GALLERY_PROTOCOLS), default="official",
                        help="MARS gallery protocol (see ssn3dlib.data.readers.mars)")
    parser.add_argument("--noise", type=float, default=2.6, help="feature noise std (sets rank-1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output",
        type=Path,
        default=reports_dir() / "perf" / "metrics_benchmark.json",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(TORCH_THREADS)
    rng = np.random.default_rng(args.seed)
    info_dir = data_root() / "mars_info"
    protocol = None if args.synthetic else load_mars_protocol(info_dir, args.gallery)
    if protocol is None:
        if not args.synthetic:
            print(f"MARS files not found under {info_dir}; using a synthetic protocol")
        protocol = synthetic_protocol(rng)
    machine = machine_info()
    num_q, num_g = len(protocol.query_idx), len(protocol.gallery_idx)
    print(f"protocol: {protocol.source}: {num_q} queries x {num_g} gallery")
    print(
        f"machine: {machine['cpu_count']} CPUs ({machine['cpus_usable']} usable), "
        f"torch threads {machine['torch_threads']}, {machine['processor']}, "
        f"cuda={machine['cuda']}"
    )

    features = torch.from_numpy(synthetic_features(protocol.pids, args.noise, rng))
    q, g = protocol.query_idx, protocol.gallery_idx
    distance_s, distmat = time_distances(features[q], features[g], args.repeats)
    labels = (protocol.pids[q], protocol.pids[g], protocol.camids[q], protocol.camids[g])
    rankings = time_rankings(distmat, labels, args.repeats)
    print_table(distance_s, rankings)

    report = dict(
        protocol=dict(
            source=protocol.source,
            num_query=len(q),
            num_gallery=len(g),
            gallery_junk=int((protocol.pids[g] == -1).sum()),
            gallery_distractors=int((protocol.pids[g] == 0).sum()),
        ),
        features=dict(dim=FEATURE_DIM, noise=args.noise, seed=args.seed),
        machine=machine,
        repeats=args.repeats,
        distance_s=distance_s,
        evaluate_rank=rankings,
        identical_to_reference=True,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
