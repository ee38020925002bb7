"""Benchmark of the training-clip loader: clips/s at the paper's input with 0, 1 and 2 workers.

Why: on a 2-core machine the loader decides whether the model ever waits for data; the
claim to check is that 2 workers keep both cores busy (close to 2x a single process) and
that the per-clip decode count stays at one per distinct image. Data: a synthetic world
(128 x 64 frames, resized to 256 x 128 as the paper's input), with keypoints and the 2
labelled frames per tracklet of the semi-supervised strategy. The baseline is the same loader
with num_workers=0 in the same run; the ratio is what to quote (machine load changes absolute rates).

Run: ``python benchmarks/bench_loader.py [--batches N]``. Writes ``reports/perf/loader_benchmark.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from ssn3dlib.data.clip_dataset import TrainClipDataset, build_train_loader, load_part_keypoints
from ssn3dlib.data.readers import read_dataset
from ssn3dlib.data.synthetic import WorldConfig, generate_world
from ssn3dlib.paths import reports_dir


def clips_per_second(dataset, workers: int, batches: int) -> float:
    loader = build_train_loader(dataset, identities_per_batch=8, instances_per_identity=4, num_workers=workers)

    def stream():
        epoch = 0
        while True:                     # epochs are short on a small world: chain them
            loader.batch_sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    iterator = stream()
    next(iterator)                      # worker start-up is not throughput
    start = time.perf_counter()
    clips = 0
    for _ in range(batches):
        clips += next(iterator).clips.shape[0]
    return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=6, help="timed batches of 8 x 4 clips per setting")
    parser.add_argument("--identities", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)           # the loader's own cost, not intra-op threading
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "world"
        generate_world(WorldConfig(num_identities=args.identities, static_crops=0), root, progress=False)
        data = read_dataset("synthetic_world", root)
        keypoints = load_part_keypoints(root / "keypoints.csv", "benchmark9", root)
        dataset = TrainClipDataset(data.train, clip_len=4, stride=8, size=(256, 128), keypoints=keypoints)
        rates = {w: clips_per_second(dataset, w, args.batches) for w in (0, 1, 2)}
    for w, r in rates.items():
        print(f"num_workers={w}: {r:7.1f} clips/s  ({r / rates[0]:.2f}x the single-process loader)")
    result = {"benchmark": "train clip loader", "input": "T=4 clips of 256x128 + 2 labelled frames, batch 8x4",
              "clips_per_s": {str(w): round(r, 2) for w, r in rates.items()},
              "speedup_vs_0_workers": {str(w): round(r / rates[0], 3) for w, r in rates.items()},
              "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
              "machine": platform.machine(), "torch": torch.__version__, "timed_batches": args.batches}
    out = reports_dir() / "perf" / "loader_benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
