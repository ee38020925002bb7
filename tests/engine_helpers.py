"""Shared pieces of the engine tests: the shipped tiny config pointed at the session's tiny
synthetic world (the `tiny_world` fixture of conftest.py), and comparisons of runs."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ssn3dlib.engine import load_config
from ssn3dlib.engine.trainer import TIMING_KEYS


def tiny_config(world: Path, *overrides: str):
    """configs/synthetic_tiny.yaml on the session's world, with overrides."""
    return load_config("synthetic_tiny", [f"data.root={world}", "train.tensorboard=false", *overrides])


def comparable(records):
    """metrics.jsonl records without their timings (which differ between any two runs)."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS and not (isinstance(v, float) and math.isnan(v))}
            for r in records]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
