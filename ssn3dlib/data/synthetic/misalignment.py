"""Misalignment: the per-frame detection box of a tracklet, and its crop in the scene.

box_track draws smooth drift plus jitter of the box's position, scale and aspect; the
misalignment level only scales these unit draws, so 0 gives the same box in every frame
and every level shows the same person, background and gait. crop_box turns one frame's
box into scene pixels around the person's pelvis.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from .config import Geometry

MAX_SHIFT, MAX_SCALE = 0.25, 0.20   # box shift (fraction of w/h) and scale change at misalignment 1


def _drift(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth unit-amplitude drift: two slow sinusoids with random periods and phases."""
    t = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    for _ in range(2):
        period, amp, phase = rng.uniform(12, 60), rng.uniform(0.4, 1.0), rng.uniform(0, 2 * math.pi)
        out += amp * np.sin(2 * math.pi * t / period + phase)
    return out / 2


def box_track(n: int, misalignment: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame box (dx, dy, scale, aspect): dx, dy in fractions of the box width/height.

    The unit draws do not depend on `misalignment`, which only scales them: 0 gives the
    same box in every frame, 1 shifts up to 25 % of the box and scales by up to +-20 %.
    """
    drift = np.stack([_drift(n, rng) for _ in range(3)])
    jitter = np.clip(rng.standard_normal((4, n)), -2.5, 2.5)
    m = misalignment
    dx = np.clip(m * (0.15 * drift[0] + 0.05 * jitter[0]), -MAX_SHIFT, MAX_SHIFT)
    dy = np.clip(m * (0.12 * drift[1] + 0.04 * jitter[1]), -MAX_SHIFT, MAX_SHIFT)
    scale = np.clip(1 + m * (0.13 * drift[2] + 0.04 * jitter[2]), 1 - MAX_SCALE, 1 + MAX_SCALE)
    aspect = 1 + m * 0.03 * jitter[3]
    return np.stack([dx, dy, scale, aspect], axis=1)


def crop_box(geo: Geometry, track_row: np.ndarray) -> Tuple[float, float, float, float]:
    dx, dy, scale, aspect = track_row
    cx, cy = geo.hip[0] + dx * geo.box_w, geo.hip[1] + dy * geo.box_h
    bw, bh = geo.box_w * scale * aspect, geo.box_h * scale
    return cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2


def box_offset_sds(misalignment: float, image_size: Tuple[int, int] = (128, 64), frames: int = 12,
                   tracks: int = 2000, seed: int = 0) -> dict:
    """How far this level's boxes sit from the person's unjittered box, in the units a real
    detector is measured in (``ssn3dlib.data.mot.box_offsets``: centre offsets in box heights,
    log of the height ratio): the SD over frames (``per_frame``) and over consecutive-frame
    changes (``frame_to_frame``) of dx, dy and log_scale, from `tracks` sampled box tracks of
    `frames` frames (the knob scales unit draws, so the SDs are linear in the level up to the
    clipping at MAX_SHIFT / MAX_SCALE)."""
    from ..mot import box_offsets

    geo = Geometry.for_size(*image_size)
    x0, y0, x1, y1 = crop_box(geo, np.array([0.0, 0.0, 1.0, 1.0]))
    rng = np.random.default_rng(seed)
    per_frame, changes = [], []
    for _ in range(tracks):
        boxes = np.array([crop_box(geo, row) for row in box_track(frames, misalignment, rng)])
        off = box_offsets(boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1],
                          x0, y0, x1 - x0, y1 - y0)
        stacked = np.stack([off["dx"], off["dy"], off["log_scale"]], axis=1)
        per_frame.append(stacked)
        changes.append(np.diff(stacked, axis=0))
    keys = ("dx", "dy", "log_scale")
    return {name: dict(zip(keys, np.concatenate(rows).std(axis=0, ddof=1).tolist()))
            for name, rows in (("per_frame", per_frame), ("frame_to_frame", changes))}
