"""Occluders: a pole, car, board or bush drawn in front of the person.

Each tracklet has at most one run of occluded frames (occlusion_run: on average the
occlusion rate of its frames, growing with the rate from the same draws); the occluder
moves with the background and labels the pixels it covers, so the keypoints behind it
come out hidden.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from . import pedestrian as ped
from .config import Geometry
from .pedestrian import Appearance


@dataclass(frozen=True)
class Occluder:
    kind: str               # pole | car | board | bush
    color: Tuple[int, int, int]
    x: float                # scene x of its centre at frame t_mid
    y_top: float
    size: float             # width (pole, board) or length (car, bush)
    t_mid: float
    scroll: float
    seed: int


OCCLUDER_KINDS = ("pole", "car", "board", "bush")


def _sample_occluder(rng: np.random.Generator, geo: Geometry, app: Appearance, scroll: float,
                     t_mid: float) -> Occluder:
    kind = OCCLUDER_KINDS[int(rng.integers(len(OCCLUDER_KINDS)))]
    s = geo.s_ref * app.height
    ground = geo.hip[1] + ped.ground_depth(app) * s
    hx = geo.hip[0]
    if kind == "pole":
        color = [(70, 72, 76), (40, 70, 50), (190, 160, 40), (150, 150, 150)][int(rng.integers(4))]
        return Occluder(kind, color, hx + rng.uniform(-0.3, 0.3) * geo.box_w, 0.0,
                        rng.uniform(0.08, 0.16) * geo.box_w, t_mid, scroll, int(rng.integers(1 << 30)))
    if kind == "car":
        color = tuple(int(c) for c in ped.clothing_color(rng, 0.5))
        return Occluder(kind, color, hx + rng.uniform(-1.5, 1.5) * geo.box_w, ground - rng.uniform(0.22, 0.45) * s,
                        rng.uniform(3.0, 5.0) * geo.box_w, t_mid, scroll, int(rng.integers(1 << 30)))
    if kind == "board":  # a sign, a bin or a passer-by covering one side
        side = 1 if rng.random() < 0.5 else -1
        return Occluder(kind, tuple(int(c) for c in ped.clothing_color(rng, 0.5)),
                        hx + side * rng.uniform(0.25, 0.42) * geo.box_w, geo.hip[1] - rng.uniform(0.05, 0.4) * s,
                        rng.uniform(0.35, 0.6) * geo.box_w, t_mid, scroll, int(rng.integers(1 << 30)))
    return Occluder(kind, (52, 90, 44), hx + rng.uniform(-0.4, 0.4) * geo.box_w,
                    ground - rng.uniform(0.15, 0.4) * s, rng.uniform(0.9, 1.6) * geo.box_w, t_mid, scroll,
                    int(rng.integers(1 << 30)))


def _draw_occluder(canvas: ped.Canvas, occ: Occluder, t: int, geo: Geometry) -> None:
    """Draw an occluder in front of the person; it moves with the background."""
    x = occ.x - occ.scroll * (t - occ.t_mid)
    h, label = geo.scene_h, ped.OCCLUDER
    dark, light = ped.shade(occ.color, 0.65), ped.shade(occ.color, 1.25)
    if occ.kind == "pole":
        half = occ.size / 2
        canvas.polygon([(x - half, 0), (x + half, 0), (x + half, h), (x - half, h)], occ.color, label)
        canvas.draw.rectangle((x + half * 0.4, 0, x + half, h), fill=dark)
        canvas.draw.rectangle((x - half * 0.7, 0, x - half * 0.4, h), fill=light)
    elif occ.kind == "car":
        half, top = occ.size / 2, occ.y_top
        canvas.polygon([(x - half, h), (x - half, top + 20), (x - half + 30, top), (x + half - 30, top),
                        (x + half, top + 20), (x + half, h)], occ.color, label)
        canvas.draw.line((x - half + 30, top + 10, x + half - 30, top + 10), fill=light, width=5)
        canvas.draw.rectangle((x - half, top + (h - top) * 0.55, x + half, top + (h - top) * 0.7), fill=dark)
    elif occ.kind == "board":
        half, top = occ.size / 2, occ.y_top
        canvas.polygon([(x - half, h), (x - half, top + 16), (x - half + 16, top), (x + half - 16, top),
                        (x + half, top + 16), (x + half, h)], occ.color, label)
        canvas.draw.rectangle((x - half + 8, top + 30, x + half - 8, top + 44), fill=dark)
    else:  # bush: a cluster of leafy blobs
        rng = np.random.default_rng(occ.seed)
        for _ in range(14):
            bx, by = x + rng.uniform(-0.5, 0.5) * occ.size, occ.y_top + rng.uniform(0, 40)
            r = rng.uniform(0.12, 0.25) * occ.size
            color = ped.shade(occ.color, rng.uniform(0.75, 1.3))
            canvas.ellipse((bx, by + r * 0.5), r, r * 0.8, color, label)
        canvas.polygon([(x - occ.size * 0.55, h), (x - occ.size * 0.55, occ.y_top + 40),
                        (x + occ.size * 0.55, occ.y_top + 40), (x + occ.size * 0.55, h)], occ.color, label)


def occlusion_run(n: int, rate: float, rng: np.random.Generator) -> Tuple[int, int]:
    """Frames [start, stop) of the tracklet's occlusion run: on average `rate` of all frames.

    The uniform draws do not depend on `rate`, so a higher rate only adds occluded frames.
    """
    u, v = rng.random(), rng.random()
    p = min(1.0, 2 * rate)
    if rate <= 0 or u >= p:
        return 0, 0
    length = max(1, min(n, int(round(n * rate / p))))
    start = int(v * (n - length + 1))
    return start, start + length
