"""The synthetic video re-ID world: identities, cameras, tracklets, misalignment, the tree.

Every random choice comes from its own numpy stream keyed by (seed, purpose, ids), so a
tracklet's person, background and phase do not change when the misalignment or the
occlusion rate changes (only its boxes and occluders do), and the same config always
writes byte-identical files, whatever the number of worker processes.

Geometry: a frame is a scene rendered at SS x the crop resolution; the person's pelvis
stays at the scene centre (walk in place, the background scrolls for side views), and
the crop is the (jittered) box resampled to the crop size with Lanczos, which also
anti-aliases. Keypoints are in continuous crop pixel coordinates: the crop's top-left
corner is (0, 0) and pixel (i, j) covers [i, i+1) x [j, j+1).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from ..layout import DatasetLayoutError
from ..tracklets import Tracklet, VideoReIDDataset
from . import pedestrian as ped
from .pedestrian import KEYPOINT_NAMES, Appearance

NAME = "synthetic_world"
FORMAT_VERSION = 1
SS = 2                      # supersampling of the scene relative to the crop
BOX_MARGIN = 1.15           # box height / reference person height
MAX_SHIFT, MAX_SCALE = 0.25, 0.20   # box shift (fraction of w/h) and scale change at misalignment 1
SPLITS = ("train", "query", "gallery")
VISIBILITY_DOC = {"1": "visible", "0.5": "self-occluded (behind another body part or on the far side "
                  "of the body); coordinates exact", "0": "hidden by an occluder or outside the crop"}
_REGENERATE = "generate it with generate_world(WorldConfig(...), root)"

# Stream tags: one independent random stream per purpose.
_IDENTITY, _TWINS, _CAMERA, _TRACK, _BOX, _OCCLUSION, _NOISE, _QUERY, _CROPS = range(1, 10)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


# ============================================================================ config

@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a world; the same config always gives the same files."""

    seed: int = 0
    num_identities: int = 60
    num_cameras: int = 2
    tracklets_per_identity_per_camera: Tuple[int, int] = (1, 2)   # (min, max), or one int
    frames_per_tracklet: Tuple[int, int] = (16, 48)               # (min, max), or one int
    image_size: Tuple[int, int] = (128, 64)                       # (height, width)
    misalignment: float = 0.3        # 0 = the same box in every frame, 1 = severe jitter and drift
    occlusion_rate: Optional[float] = None   # fraction of frames with an occluder; None = 0.3 * misalignment
    similar_identity_fraction: float = 0.2   # identities that copy another and differ in one attribute
    train_fraction: float = 0.5
    static_crops: int = 128

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "seed", _check_int("seed", self.seed, 0, 2**63 - 1))
        set_(self, "num_identities", _check_int("num_identities", self.num_identities, 2, 9999))
        set_(self, "num_cameras", _check_int("num_cameras", self.num_cameras, 2, 9))
        set_(self, "tracklets_per_identity_per_camera",
             _check_pair("tracklets_per_identity_per_camera", self.tracklets_per_identity_per_camera, 1, 99))
        set_(self, "frames_per_tracklet", _check_pair("frames_per_tracklet", self.frames_per_tracklet, 1, 9999))
        set_(self, "image_size", _check_image_size(self.image_size))
        set_(self, "misalignment", _check_float("misalignment", self.misalignment, 0.0, 1.0))
        if self.occlusion_rate is not None:
            set_(self, "occlusion_rate", _check_float("occlusion_rate", self.occlusion_rate, 0.0, 1.0))
        set_(self, "similar_identity_fraction",
             _check_float("similar_identity_fraction", self.similar_identity_fraction, 0.0, 0.5))
        set_(self, "train_fraction", _check_float("train_fraction", self.train_fraction, 0.0, 1.0))
        n_train = round(self.num_identities * self.train_fraction)
        if not 1 <= n_train <= self.num_identities - 1:
            raise ValueError(f"WorldConfig.train_fraction must leave at least one identity for train and "
                             f"one for test (num_identities={self.num_identities}), got {self.train_fraction!r}")
        set_(self, "static_crops", _check_int("static_crops", self.static_crops, 0, 99999))

    @property
    def effective_occlusion_rate(self) -> float:
        return occlusion_for(self.misalignment, self.occlusion_rate)

    def to_dict(self) -> Dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: Dict) -> "WorldConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown WorldConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)


def occlusion_for(misalignment: float, occlusion_rate: Optional[float]) -> float:
    """Occlusions rise with severity unless set explicitly."""
    return 0.3 * misalignment if occlusion_rate is None else occlusion_rate


def _check_int(name, value, lo, hi) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"WorldConfig.{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _check_float(name, value, lo, hi) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not lo <= value <= hi:
        raise ValueError(f"WorldConfig.{name} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _check_pair(name, value, lo, hi) -> Tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
          and lo <= value[0] <= value[1] <= hi)
    if not ok:
        raise ValueError(f"WorldConfig.{name} must be an integer or a (min, max) pair with "
                         f"{lo} <= min <= max <= {hi}, got {value!r}")
    return int(value[0]), int(value[1])


def _check_image_size(value) -> Tuple[int, int]:
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
          and 32 <= value[0] <= 384 and 16 <= value[1] <= 256 and 1.5 <= value[0] / value[1] <= 3.0)
    if not ok:  # the scene is rendered at 4 x 2 x this size: keep memory reasonable
        raise ValueError("WorldConfig.image_size must be (height, width) with height in [32, 384], width in "
                         f"[16, 256] and height/width in [1.5, 3.0], got {value!r}")
    return int(value[0]), int(value[1])


# ============================================================================ plan

@dataclass(frozen=True)
class Geometry:
    """Scene and box sizes in scene (supersampled) pixels."""

    height: int            # crop size
    width: int
    box_h: float           # unjittered box
    box_w: float
    scene_w: int
    scene_h: int
    hip: Tuple[float, float]
    s_ref: float           # reference person height
    pano_w: int

    @classmethod
    def for_size(cls, height: int, width: int) -> "Geometry":
        box_h, box_w = SS * height, SS * width
        # Room for the largest jittered box (shift + scale) around the centred person.
        scene_w, scene_h = 2 * box_w, 2 * box_h
        return cls(height, width, box_h, box_w, scene_w, scene_h, (scene_w / 2, scene_h / 2),
                   box_h / BOX_MARGIN, 8 * scene_w)


@dataclass(frozen=True)
class Camera:
    camid: int
    scene: str
    horizon: float          # scene row where the ground starts
    base_yaw: float         # the walking direction this camera mostly sees
    gain: Tuple[float, float, float]
    brightness: float
    contrast: float
    haze: float
    blur: float
    noise: float

    def describe(self) -> Dict:
        d = asdict(self)
        d["base_yaw_deg"] = round(math.degrees(d.pop("base_yaw")), 1)
        return {k: (round(v, 3) if isinstance(v, float) else [round(x, 3) for x in v] if isinstance(v, tuple)
                    else v) for k, v in d.items()}


@dataclass(frozen=True)
class TrackletPlan:
    name: str
    split: str
    pid: int
    camid: int
    index: int
    n_frames: int
    yaw: float
    phase0: float
    bg_offset: float
    scroll: float           # background motion, scene pixels per frame

    @property
    def folder(self) -> str:
        return f"{self.split}/{self.pid:04d}/{self.name}"


@dataclass(frozen=True)
class CropPlan:
    index: int
    pid: int
    camid: int
    yaw: float
    phase: float
    bg_offset: float


@dataclass
class WorldPlan:
    config: WorldConfig
    geometry: Geometry
    identities: Dict[int, Appearance]
    look_alikes: List[Dict]
    train_pids: List[int]
    test_pids: List[int]
    cameras: Dict[int, Camera]
    panoramas: Dict[int, Image.Image] = field(repr=False)
    tracklets: List[TrackletPlan]
    crops: List[CropPlan]

    def tracklet(self, pid: int, camid: int, index: int = 0) -> TrackletPlan:
        for t in self.tracklets:
            if (t.pid, t.camid, t.index) == (pid, camid, index):
                return t
        raise ValueError(f"no tracklet for pid {pid}, camera {camid}, index {index} in this world "
                         f"(pids 1..{self.config.num_identities}, cameras 1..{self.config.num_cameras})")


@lru_cache(maxsize=4)
def plan_world(config: WorldConfig) -> WorldPlan:
    """Every choice that defines the world, without rendering a frame (cached per config)."""
    geo = Geometry.for_size(*config.image_size)
    identities, look_alikes, train, test = _plan_identities(config)
    cameras = {c: _plan_camera(config.seed, c, geo) for c in range(1, config.num_cameras + 1)}
    panoramas = {c: _panorama(config.seed, cam, geo) for c, cam in cameras.items()}
    tracklets = _plan_tracklets(config, geo, identities, cameras, set(train))
    crops = _plan_crops(config, geo, cameras)
    return WorldPlan(config, geo, identities, look_alikes, train, test, cameras, panoramas, tracklets, crops)


def _plan_identities(config: WorldConfig):
    """Appearances; within each split a fraction are look-alikes of another identity there."""
    pids = list(range(1, config.num_identities + 1))
    n_train = round(config.num_identities * config.train_fraction)
    train, test = pids[:n_train], pids[n_train:]
    identities = {pid: ped.sample_appearance(_rng(config.seed, _IDENTITY, pid)) for pid in pids}
    look_alikes = []
    rng = _rng(config.seed, _TWINS)
    for group in (train, test):
        n_twins = min(int(round(config.similar_identity_fraction * len(group))), len(group) // 2)
        order = [group[i] for i in rng.permutation(len(group))]
        twins, bases = order[:n_twins], order[n_twins:]
        for twin, base in zip(twins, rng.permutation(bases)[:n_twins]):
            attribute = ped.MUTABLE_ATTRIBUTES[int(rng.integers(len(ped.MUTABLE_ATTRIBUTES)))]
            identities[twin] = ped.mutate_appearance(identities[int(base)], attribute, rng)
            look_alikes.append({"pid": int(twin), "look_alike_of": int(base), "differs_in": attribute})
    look_alikes.sort(key=lambda d: d["pid"])
    return identities, look_alikes, train, test


_SCENES = ("street", "park", "plaza", "indoor")
_BASE_YAWS = (math.pi / 2, 0.0, math.pi / 4, 3 * math.pi / 4)
_CASTS = ((1.08, 1.0, 0.86), (0.9, 0.98, 1.1), (0.95, 1.06, 0.9), (1.0, 1.0, 1.0), (1.06, 0.96, 1.02))


def _plan_camera(seed: int, camid: int, geo: Geometry) -> Camera:
    """Each camera: its own scene, viewing direction, colour cast, exposure, blur and noise."""
    rng = _rng(seed, _CAMERA, camid)
    kind = _SCENES[(camid - 1 + seed) % len(_SCENES)]
    cast = np.array(_CASTS[int(rng.integers(len(_CASTS)))])
    gain = 1 + (cast - 1) * rng.uniform(0.5, 1.3) + rng.normal(0, 0.015, 3)
    hip_y = geo.hip[1]
    return Camera(
        camid=camid, scene=kind,
        horizon=float(hip_y + geo.s_ref * rng.uniform(-0.3, 0.25)),
        base_yaw=float(_BASE_YAWS[(camid - 1) % len(_BASE_YAWS)] + rng.uniform(-0.15, 0.15)),
        gain=tuple(float(g) for g in gain),
        brightness=float(rng.uniform(0.78, 1.15)), contrast=float(rng.uniform(0.8, 1.05)),
        haze=float(rng.uniform(0, 22)), blur=float(rng.uniform(0.3, 0.9)), noise=float(rng.uniform(1.5, 5.0)),
    )


def _tracklet_yaw(rng: np.random.Generator, cam: Camera) -> float:
    """People cross a camera in one of its two directions."""
    return cam.base_yaw + (math.pi if rng.random() < 0.5 else 0.0) + float(rng.normal(0, 0.08))


def scroll_speed(app: Appearance, yaw: float, geo: Geometry) -> float:
    """Background motion per frame that keeps the stance foot roughly fixed on the ground."""
    span = (ped.THIGH + ped.SHIN) * math.sin(app.stride)
    speed = 2 * span / math.pi * geo.s_ref * app.height * app.cadence
    return speed * math.sin(yaw)


def _bg_offset(rng: np.random.Generator, geo: Geometry, scroll: float, n: int) -> float:
    """Start so the whole walk stays inside the panorama when it can."""
    travel = abs(scroll) * n
    room = max(0.0, geo.pano_w - geo.scene_w - travel - 1)
    start = float(rng.uniform(0, room))
    return start + travel if scroll < 0 else start


def _plan_tracklets(config, geo, identities, cameras, train_set) -> List[TrackletPlan]:
    plans = []
    lo, hi = config.tracklets_per_identity_per_camera
    f_lo, f_hi = config.frames_per_tracklet
    query_rng = _rng(config.seed, _QUERY)
    for pid, app in identities.items():
        query_cam = int(query_rng.integers(1, config.num_cameras + 1))
        for camid, cam in cameras.items():
            rng = _rng(config.seed, _TRACK, pid, camid)
            for k in range(int(rng.integers(lo, hi + 1))):
                n = int(rng.integers(f_lo, f_hi + 1))
                yaw = _tracklet_yaw(rng, cam)
                scroll = scroll_speed(app, yaw, geo)
                if pid in train_set:
                    split = "train"
                else:  # test identities: the first tracklet of one camera is the query
                    split = "query" if (camid == query_cam and k == 0) else "gallery"
                plans.append(TrackletPlan(f"{pid:04d}_c{camid}_t{k:02d}", split, pid, camid, k, n, yaw,
                                          float(rng.uniform(0, 2 * math.pi)), _bg_offset(rng, geo, scroll, n),
                                          scroll))
    return sorted(plans, key=lambda t: t.folder)


def _plan_crops(config, geo, cameras) -> List[CropPlan]:
    """Static crops: identities cycle in a shuffled order, cameras, views and phases vary."""
    rng = _rng(config.seed, _CROPS)
    order = rng.permutation(np.arange(1, config.num_identities + 1))
    crops = []
    for i in range(config.static_crops):
        camid = int(rng.integers(1, config.num_cameras + 1))
        crops.append(CropPlan(i, int(order[i % len(order)]), camid, _tracklet_yaw(rng, cameras[camid]),
                              float(rng.uniform(0, 2 * math.pi)),
                              float(rng.uniform(0, geo.pano_w - geo.scene_w - 1))))
    return crops


# ============================================================================ backgrounds

def _panorama(seed: int, cam: Camera, geo: Geometry) -> Image.Image:
    """A wide background strip (wall above the horizon, ground below) for one camera."""
    rng = _rng(seed, _CAMERA, cam.camid, 1)
    w, h, hz = geo.pano_w, geo.scene_h, int(cam.horizon)
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    unit = geo.s_ref  # objects are sized relative to a person
    {"street": _street, "park": _park, "plaza": _plaza, "indoor": _indoor}[cam.scene](draw, rng, w, h, hz, unit)
    return Image.fromarray(_texture(np.asarray(img, np.float32), rng, hz))


def _rgb(rng, base, amount=14):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in base)


def _ground_rows(hz: int, h: int, first: float) -> List[int]:
    """Seam rows that spread out towards the camera (a hint of perspective)."""
    rows, k = [], 1
    while True:
        y = int(hz + first * k ** 1.45)
        if y >= h:
            return rows
        rows.append(y)
        k += 1


def _tiles(draw, rng, w, h, hz, color, seam, first, tile_w):
    draw.rectangle((0, hz, w, h), fill=color)
    rows = [hz] + _ground_rows(hz, h, first)
    for i, y in enumerate(rows):
        draw.line((0, y, w, y), fill=seam, width=1 + (y - hz) // 90)
        y1 = rows[i + 1] if i + 1 < len(rows) else h
        shift = rng.uniform(0, tile_w)
        for x in np.arange(shift, w, tile_w * (1 + (y - hz) / 160)):
            draw.line((x, y, x, y1), fill=seam, width=1 + (y - hz) // 90)


def _lamp_post(draw, rng, x, hz, unit, color=(40, 42, 44)):
    top = hz - unit * rng.uniform(0.9, 1.2)
    draw.rectangle((x - 3, top, x + 3, hz + 6), fill=color)
    draw.rectangle((x - 14, top - 10, x + 14, top + 2), fill=color)
    draw.rectangle((x - 11, top + 2, x + 11, top + 6), fill=(235, 230, 200))


def _bench(draw, rng, x, hz, unit, color):
    seat = hz - unit * 0.18
    draw.rectangle((x, seat - unit * 0.16, x + unit * 0.6, seat - unit * 0.12), fill=color)
    draw.rectangle((x, seat - unit * 0.08, x + unit * 0.6, seat - unit * 0.04), fill=color)
    draw.rectangle((x, seat, x + unit * 0.6, seat + unit * 0.03), fill=color)
    for lx in (x + 6, x + unit * 0.6 - 10):
        draw.rectangle((lx, seat, lx + 4, hz + 4), fill=(50, 50, 52))


def _bin(draw, rng, x, hz, unit):
    color = _rgb(rng, (60, 90, 60) if rng.random() < 0.5 else (70, 70, 74), 20)
    draw.rounded_rectangle((x, hz - unit * 0.28, x + unit * 0.16, hz + 4), radius=6, fill=color)
    draw.rectangle((x - 3, hz - unit * 0.3, x + unit * 0.16 + 3, hz - unit * 0.26), fill=(35, 35, 38))


def _street(draw, rng, w, h, hz, unit):
    facade = _rgb(rng, [(186, 170, 150), (150, 74, 58), (124, 124, 128), (204, 198, 186),
                        (92, 98, 108)][int(rng.integers(5))])
    draw.rectangle((0, 0, w, hz), fill=facade)
    if rng.random() < 0.5:  # bricks
        mortar = tuple(int(c * 0.8) for c in facade)
        for i, y in enumerate(range(hz, -12, -12)):
            draw.line((0, y, w, y), fill=mortar)
            for x in range(-(i % 2) * 13, w, 26):
                draw.line((x, y - 12, x, y), fill=mortar)
    glass, frame = _rgb(rng, (52, 62, 74)), _rgb(rng, (220, 220, 214), 20)
    spacing = int(rng.uniform(0.55, 0.8) * unit)
    for x in range(int(rng.uniform(0, spacing)), w, spacing):
        for top in np.arange(hz - unit * 0.75, -unit * 0.5, -unit * 0.62):
            box = (x, top - unit * 0.34, x + unit * 0.26, top)
            draw.rectangle(box, fill=frame)
            draw.rectangle((box[0] + 4, box[1] + 4, box[2] - 4, box[3] - 4), fill=glass)
            draw.line((box[0] + 6, box[3] - 8, box[2] - 10, box[1] + 8), fill=_rgb(rng, (90, 104, 118)), width=3)
        if rng.random() < 0.25:  # a door
            draw.rectangle((x, hz - unit * 0.5, x + unit * 0.24, hz), fill=_rgb(rng, (70, 50, 36), 20))
    draw.rectangle((0, hz - 8, w, hz + 4), fill=tuple(int(c * 0.6) for c in facade))
    pave = _rgb(rng, (128, 126, 122), 20)
    _tiles(draw, rng, w, h, hz + 4, pave, tuple(int(c * 0.75) for c in pave), 16, unit * 0.35)
    for x in rng.uniform(0, w, 6):
        (_lamp_post if rng.random() < 0.5 else _bin)(draw, rng, x, hz + 10, unit)


def _park(draw, rng, w, h, hz, unit):
    leaves = [_rgb(rng, c, 18) for c in ((46, 74, 38), (66, 98, 48), (34, 56, 32), (88, 112, 58))]
    draw.rectangle((0, 0, w, hz), fill=leaves[2])
    for _ in range(int(w / 18)):  # canopy blobs
        x, y, r = rng.uniform(0, w), rng.uniform(-20, hz - 20), rng.uniform(18, 60)
        draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=leaves[int(rng.integers(4))])
    for x in rng.uniform(0, w, int(w / 160)):  # trunks
        draw.rectangle((x, hz - unit * rng.uniform(0.4, 0.9), x + rng.uniform(8, 16), hz),
                       fill=_rgb(rng, (70, 52, 38)))
    draw.rectangle((0, hz - 30, w, hz + 10), fill=_rgb(rng, (58, 88, 44)))   # hedge
    grass, path = _rgb(rng, (86, 120, 56), 20), _rgb(rng, [(168, 148, 116), (140, 124, 104)][int(rng.integers(2))])
    draw.rectangle((0, hz + 10, w, h), fill=path)
    draw.rectangle((0, hz + 10, w, hz + 10 + unit * 0.12), fill=grass)
    for x in rng.uniform(0, w, 4):
        _bench(draw, rng, x, hz + 8, unit, _rgb(rng, (110, 78, 50), 20))
    for x in rng.uniform(0, w, 3):
        _lamp_post(draw, rng, x, hz + 8, unit)


def _plaza(draw, rng, w, h, hz, unit):
    stone = _rgb(rng, (190, 184, 172), 16)
    draw.rectangle((0, 0, w, hz), fill=stone)
    pillar = int(unit * rng.uniform(0.9, 1.4))
    for x in range(int(rng.uniform(0, pillar)), w, pillar):
        glass = _rgb(rng, (96, 116, 132), 16)
        draw.rectangle((x + 14, hz - unit * 0.95, x + pillar - 14, hz), fill=glass)
        for gx in np.arange(x + 14, x + pillar - 14, unit * 0.3):
            draw.line((gx, hz - unit * 0.95, gx, hz), fill=(60, 66, 72), width=3)
        draw.line((x + 20, hz - 10, x + pillar * 0.6, hz - unit * 0.9), fill=_rgb(rng, (150, 170, 184)), width=6)
        sign = _rgb(rng, [(170, 40, 40), (30, 80, 150), (40, 120, 60), (200, 150, 30)][int(rng.integers(4))], 20)
        draw.rectangle((x + 14, hz - unit * 1.15, x + pillar - 14, hz - unit * 1.02), fill=sign)
    ground = _rgb(rng, (170, 164, 150), 18)
    _tiles(draw, rng, w, h, hz, ground, tuple(int(c * 0.8) for c in ground), 22, unit * 0.55)
    for x in rng.uniform(0, w, 5):  # planters
        draw.rectangle((x, hz - unit * 0.15, x + unit * 0.35, hz + 6), fill=_rgb(rng, (110, 104, 96)))
        draw.ellipse((x - 6, hz - unit * 0.42, x + unit * 0.35 + 6, hz - unit * 0.1), fill=_rgb(rng, (56, 96, 46)))


def _indoor(draw, rng, w, h, hz, unit):
    wall = _rgb(rng, [(214, 206, 184), (190, 204, 206), (216, 196, 190), (200, 200, 200)][int(rng.integers(4))])
    draw.rectangle((0, 0, w, hz), fill=wall)
    for x in rng.uniform(0, w, int(w / 300) + 1):  # doors
        draw.rectangle((x, hz - unit * 0.95, x + unit * 0.42, hz), fill=_rgb(rng, (126, 90, 60), 24))
        draw.ellipse((x + unit * 0.34, hz - unit * 0.5, x + unit * 0.37, hz - unit * 0.47), fill=(200, 190, 120))
    for x in rng.uniform(0, w, int(w / 200) + 1):  # posters
        top = hz - unit * rng.uniform(0.7, 1.1)
        color = _rgb(rng, (150, 120, 110), 90)
        draw.rectangle((x, top, x + unit * 0.3, top + unit * 0.4), fill=color)
        draw.rectangle((x + 8, top + 10, x + unit * 0.3 - 8, top + unit * 0.18), fill=_rgb(rng, (230, 230, 230), 25))
    draw.rectangle((0, hz - 14, w, hz), fill=tuple(int(c * 0.45) for c in wall))  # skirting
    floor = _rgb(rng, (196, 190, 180), 20)
    _tiles(draw, rng, w, h, hz, floor, tuple(int(c * 0.82) for c in floor), 20, unit * 0.45)


def _texture(arr: np.ndarray, rng: np.random.Generator, hz: int) -> np.ndarray:
    """Low-frequency shading and fine grain, stronger on the ground."""
    h, w, _ = arr.shape
    low = rng.normal(0, 1, (max(2, h // 48), max(2, w // 48))).astype(np.float32)
    low = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC))
    arr = arr * (1 + 0.05 * low[..., None])
    grain = rng.normal(0, 1, (h, w, 1)).astype(np.float32)
    strength = np.where(np.arange(h)[:, None, None] >= hz, 9.0, 5.0).astype(np.float32)
    arr = arr + grain * strength + rng.normal(0, 2.0, (h, w, 3)).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _window(pano: Image.Image, offset: float, geo: Geometry) -> Image.Image:
    """The scene background at a scroll offset (wraps around the panorama)."""
    x = int(round(offset)) % geo.pano_w
    if x + geo.scene_w <= geo.pano_w:
        return pano.crop((x, 0, x + geo.scene_w, geo.scene_h))
    out = Image.new("RGB", (geo.scene_w, geo.scene_h))
    first = geo.pano_w - x
    out.paste(pano.crop((x, 0, geo.pano_w, geo.scene_h)), (0, 0))
    out.paste(pano.crop((0, 0, geo.scene_w - first, geo.scene_h)), (first, 0))
    return out


# ============================================================================ misalignment

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


# ============================================================================ occluders

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


# ============================================================================ rendering

@dataclass
class RenderedFrame:
    """One crop in memory: the image and its keypoints name -> (x, y, visibility)."""

    image: np.ndarray
    keypoints: Dict[str, Tuple[float, float, float]]


@lru_cache(maxsize=16)
def _shadow_mask(width: int, height: int) -> Image.Image:
    """A soft contact shadow (alpha mask) under the feet."""
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((width * 0.15, height * 0.25, width * 0.85, height * 0.75), fill=110)
    return mask.filter(ImageFilter.GaussianBlur(max(1.0, height / 5)))


def render_frame(plan: WorldPlan, pid: int, camid: int, yaw: float, phase: float, bg_offset: float,
                 box: Sequence[float], occluder: Optional[Occluder], t: int,
                 noise_rng: np.random.Generator) -> RenderedFrame:
    """Render the scene, draw the person and any occluder, crop the box, apply the camera."""
    geo, cam, app = plan.geometry, plan.cameras[camid], plan.identities[pid]
    scene = _window(plan.panoramas[camid], bg_offset, geo)
    labels = Image.new("L", scene.size, ped.BACKGROUND)
    s = geo.s_ref * app.height
    ground = geo.hip[1] + ped.ground_depth(app) * s
    sw, sh = int(0.42 * s), int(0.07 * s)
    scene.paste((12, 12, 12), (int(geo.hip[0] - sw / 2), int(ground - sh / 2)), _shadow_mask(sw, sh))
    canvas = ped.Canvas(ImageDraw.Draw(scene), ImageDraw.Draw(labels))
    points = ped.PersonRenderer(app, yaw, geo.hip, s).draw(canvas, ped.walk_pose(phase, app))
    if occluder is not None:
        _draw_occluder(canvas, occluder, t, geo)
    x0, y0, x1, y1 = box
    crop = scene.resize((geo.width, geo.height), Image.LANCZOS, box=(x0, y0, x1, y1))
    crop_labels = np.asarray(labels.resize((geo.width, geo.height), Image.NEAREST, box=(x0, y0, x1, y1)))
    image = _camera_effects(_shade_parts(np.asarray(crop, np.float32), crop_labels), cam, noise_rng)
    kx, ky = geo.width / (x1 - x0), geo.height / (y1 - y0)
    label_at = labels.load()
    keypoints = {}
    for name, (u, v, depth) in points.items():
        x, y = (u - x0) * kx, (v - y0) * ky
        iu = min(max(int(u), 0), geo.scene_w - 1)
        iv = min(max(int(v), 0), geo.scene_h - 1)
        vis = ped.keypoint_visibility(name, label_at[iu, iv], depth)
        if not (0 <= x < geo.width and 0 <= y < geo.height):
            vis = ped.HIDDEN
        keypoints[name] = (x, y, vis)
    return RenderedFrame(image, keypoints)


def _shade_parts(arr: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Flat colours look like cut-outs: darken part boundaries and light the person from above."""
    fg = labels != ped.BACKGROUND
    edge = np.zeros(labels.shape, np.float32)
    for axis in (0, 1):
        diff = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        edge[tuple(lo)] += diff
        edge[tuple(hi)] += diff
    edge = np.minimum(edge, 1.0) * fg
    soft = (edge + 0.5 * (np.roll(edge, 1, 0) + np.roll(edge, -1, 0) + np.roll(edge, 1, 1) + np.roll(edge, -1, 1))) / 3
    rows = np.linspace(1.06, 0.9, labels.shape[0], dtype=np.float32)[:, None]
    factor = np.where(fg, rows * (1 - 0.3 * np.minimum(soft, 1.0)), 1.0)
    return arr * factor[..., None]


def _camera_effects(arr: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Optics and sensor of one camera: blur, colour cast, exposure, haze, per-frame noise."""
    crop = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(cam.blur))
    arr = np.asarray(crop, np.float32)
    flicker = 1 + 0.015 * float(rng.standard_normal())
    arr = arr * (np.asarray(cam.gain, np.float32) * cam.brightness * flicker)
    arr = (arr - 128) * cam.contrast + 128 + cam.haze
    arr = arr + rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(cam.noise)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def render_tracklet(plan: WorldPlan, tp: TrackletPlan, misalignment: Optional[float] = None,
                    occlusion_rate: Optional[float] = None, n_frames: Optional[int] = None) -> List[RenderedFrame]:
    """All frames of one planned tracklet; misalignment/occlusion default to the config's."""
    config, geo = plan.config, plan.geometry
    m = config.misalignment if misalignment is None else float(misalignment)
    if occlusion_rate is None:
        occlusion_rate = occlusion_for(m, config.occlusion_rate)
    n = tp.n_frames if n_frames is None else int(n_frames)
    key = (tp.pid, tp.camid, tp.index)
    boxes = box_track(n, m, _rng(config.seed, _BOX, *key))
    (start, stop), occ_rng = _occlusion(config, tp, n, occlusion_rate)
    occluder = _sample_occluder(occ_rng, geo, plan.identities[tp.pid], tp.scroll, (start + stop - 1) / 2)
    noise = _rng(config.seed, _NOISE, *key)
    app = plan.identities[tp.pid]
    return [render_frame(plan, tp.pid, tp.camid, tp.yaw, tp.phase0 + t * app.cadence, tp.bg_offset + t * tp.scroll,
                         crop_box(geo, boxes[t]), occluder if start <= t < stop else None, t, noise)
            for t in range(n)]


def _occlusion(config: WorldConfig, tp: TrackletPlan, n: int, rate: float):
    rng = _rng(config.seed, _OCCLUSION, tp.pid, tp.camid, tp.index)
    return occlusion_run(n, rate, rng), rng


def occluded_frames(config: WorldConfig, tp: TrackletPlan, misalignment: Optional[float] = None,
                    occlusion_rate: Optional[float] = None, n_frames: Optional[int] = None) -> range:
    """The frames of a tracklet that render_tracklet draws an occluder on."""
    m = config.misalignment if misalignment is None else misalignment
    rate = occlusion_for(m, config.occlusion_rate) if occlusion_rate is None else occlusion_rate
    start, stop = _occlusion(config, tp, tp.n_frames if n_frames is None else n_frames, rate)[0]
    return range(start, stop)


def render_crop(plan: WorldPlan, cp: CropPlan) -> RenderedFrame:
    """One static crop: a single frame under the same box and occlusion rules."""
    config, geo = plan.config, plan.geometry
    rng = _rng(config.seed, _CROPS, 1, cp.index)
    box = box_track(1, config.misalignment, rng)[0]
    occluded = rng.random() < config.effective_occlusion_rate
    occluder = _sample_occluder(rng, geo, plan.identities[cp.pid], 0.0, 0.0)
    return render_frame(plan, cp.pid, cp.camid, cp.yaw, cp.phase, cp.bg_offset, crop_box(geo, box),
                        occluder if occluded else None, 0, rng)


def render_identity_frames(config: WorldConfig, pid: int, camid: int = 1, index: int = 0,
                           misalignment: Optional[float] = None, occlusion_rate: Optional[float] = None,
                           n_frames: Optional[int] = None) -> List[RenderedFrame]:
    """Frames of tracklet (pid, camid, index) of a world, in memory (for notebooks and figures).

    With another `misalignment` the same person, background and gait are shown; only the
    boxes (and, unless occlusion_rate is given, the occlusions) change.
    """
    plan = plan_world(config)
    return render_tracklet(plan, plan.tracklet(pid, camid, index), misalignment, occlusion_rate, n_frames)


# ============================================================================ writing

def _save_png(image: np.ndarray, path: Path) -> None:
    # No metadata, fixed compression: the same pixels give the same bytes.
    Image.fromarray(image).save(path, format="PNG", compress_level=6)


def _keypoint_rows(rel: str, keypoints) -> List[str]:
    return [f"{rel},{name},{x:.2f},{y:.2f},{v:g}" for name, (x, y, v) in keypoints.items()]


_WORKER: Dict[str, object] = {}


def _init_worker(config: WorldConfig, root: str) -> None:
    _WORKER["plan"], _WORKER["root"] = plan_world(config), Path(root)


def _write_tracklet(i: int) -> Tuple[List[str], int]:
    plan, root = _WORKER["plan"], _WORKER["root"]
    tp = plan.tracklets[i]
    folder = root / tp.folder
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for t, frame in enumerate(render_tracklet(plan, tp)):
        rel = f"{tp.folder}/{t:04d}.png"
        _save_png(frame.image, root / rel)
        rows += _keypoint_rows(rel, frame.keypoints)
    return rows, tp.n_frames


def _write_crop(i: int) -> Tuple[List[str], int]:
    plan, root = _WORKER["plan"], _WORKER["root"]
    rel = f"crops/{i:04d}.png"
    frame = render_crop(plan, plan.crops[i])
    _save_png(frame.image, root / rel)
    return _keypoint_rows(rel, frame.keypoints), 1


def _write_csv(path: Path, header: str, rows: Sequence[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def world_counts(plan: WorldPlan) -> Dict[str, Dict[str, int]]:
    out = {}
    for split in SPLITS:
        ts = [t for t in plan.tracklets if t.split == split]
        out[split] = {"identities": len({t.pid for t in ts}), "tracklets": len(ts),
                      "images": sum(t.n_frames for t in ts)}
    out["crops"] = {"images": len(plan.crops)}
    return out


def world_description(plan: WorldPlan) -> Dict:
    """What world.yaml records: the config, the counts and how the world was built."""
    config = plan.config
    n_images = sum(t.n_frames for t in plan.tracklets)
    return {
        "name": NAME,
        "generator": "ssn3dlib.data.synthetic.generate_world",
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "effective_occlusion_rate": round(config.effective_occlusion_rate, 6),
        "counts": world_counts(plan),
        "keypoint_rows": {"keypoints.csv": n_images * len(KEYPOINT_NAMES),
                          "crops/keypoints.csv": len(plan.crops) * len(KEYPOINT_NAMES)},
        "keypoints": list(KEYPOINT_NAMES),
        "visibility": dict(VISIBILITY_DOC),
        "coordinates": "crop pixels, continuous: (0, 0) is the top-left corner, pixel (i, j) covers [i, i+1) x [j, j+1)",
        "splits": {"train": plan.train_pids, "test": plan.test_pids},
        "look_alikes": plan.look_alikes,
        "cameras": [cam.describe() for cam in plan.cameras.values()],
    }


def _prepare_root(root: Path, overwrite: bool) -> None:
    """Empty a previous world at root; never delete a folder that is not a generated world."""
    if root.exists() and any(root.iterdir()):
        if not (root / "world.yaml").is_file() and not overwrite:
            raise ValueError(f"{root} is not empty and holds no world.yaml: refusing to write a synthetic "
                             f"world over it (choose an empty folder or pass overwrite=True)")
        (root / "world.yaml").unlink(missing_ok=True)  # first: a half-written world is never accepted
        for name in (*SPLITS, "crops"):
            shutil.rmtree(root / name, ignore_errors=True)
        for name in ("keypoints.csv", "tracklets.csv"):
            (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def _stored_config(root: Path) -> Optional[Dict]:
    try:
        return yaml.safe_load((root / "world.yaml").read_text()).get("config")
    except (OSError, AttributeError, yaml.YAMLError):
        return None


def generate_world(config: WorldConfig, root, progress: bool = True, workers: Optional[int] = None,
                   overwrite: bool = False) -> Path:
    """Write the world of `config` under `root` (see the module doc and the manifest for the tree).

    Idempotent: if root already holds a complete world of the same config it is kept as it
    is; a world of another config is replaced. Tracklets render in `workers` processes
    (default: the CPU count, at most 8; small worlds stay in this process); the files are
    the same whatever the number.
    """
    root = Path(root)
    if not overwrite and _stored_config(root) == config.to_dict():
        try:
            read_world(root)
            return root
        except (FileNotFoundError, ValueError):
            pass  # incomplete or damaged: write it again
    _prepare_root(root, overwrite)
    start = time.perf_counter()
    plan = plan_world(config)
    tracks, crops = _render_all(config, plan, root, progress, workers)
    _write_csv(root / "keypoints.csv", "image,keypoint,x,y,visibility", tracks)
    (root / "crops").mkdir(exist_ok=True)
    _write_csv(root / "crops" / "keypoints.csv", "image,keypoint,x,y,visibility", crops)
    _write_csv(root / "crops" / "crops.csv", "image,pid,camid,yaw_deg",
               [f"crops/{c.index:04d}.png,{c.pid},{c.camid},{math.degrees(c.yaw):.1f}" for c in plan.crops])
    _write_csv(root / "tracklets.csv", "tracklet,split,pid,camid,frames,yaw_deg",
               [f"{t.folder},{t.split},{t.pid},{t.camid},{t.n_frames},{math.degrees(t.yaw):.1f}"
                for t in plan.tracklets])
    description = world_description(plan)
    (root / "world.yaml").write_text(yaml.safe_dump(description, sort_keys=False))  # last: marks completion
    seconds = time.perf_counter() - start
    n = sum(t.n_frames for t in plan.tracklets) + len(plan.crops)
    if progress:
        print(f"synthetic world: {n} images in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f} frames/s) -> {root}")
    return root


def _render_all(config, plan, root: Path, progress: bool, workers: Optional[int]):
    """Render and write every tracklet and crop; keypoint rows come back in plan order."""
    total = sum(t.n_frames for t in plan.tracklets) + len(plan.crops)
    jobs = [(_write_tracklet, i) for i in range(len(plan.tracklets))] + \
           [(_write_crop, i) for i in range(len(plan.crops))]
    (root / "crops").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, unit="frame", desc="synthetic world", disable=not progress)
    results: List[Tuple[List[str], int]] = []
    if workers is None:  # a process pool costs more than it saves on a tiny world
        workers = min(8, os.cpu_count() or 1) if total >= 400 else 1
    if workers <= 1:
        _init_worker(config, str(root))
        for fn, i in jobs:
            results.append(fn(i))
            bar.update(results[-1][1])
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                 initargs=(config, str(root))) as pool:
            futures = [pool.submit(fn, i) for fn, i in jobs]
            for fut in futures:  # in submission order: the csv rows keep the plan order
                results.append(fut.result())
                bar.update(results[-1][1])
    bar.close()
    n_tracks = len(plan.tracklets)
    track_rows = [row for rows, _ in results[:n_tracks] for row in rows]
    crop_rows = [row for rows, _ in results[n_tracks:] for row in rows]
    return track_rows, crop_rows


# ============================================================================ reading

_PID_DIR = re.compile(r"\d{4}")
_TRACK_DIR = re.compile(r"(?P<pid>\d{4})_c(?P<cam>\d+)_t(?P<k>\d{2})")
_FRAME_FILE = re.compile(r"(?P<frame>\d{4})\.png")


def _read_split(root: Path, split: str) -> List[Tracklet]:
    folder = root / split
    if not folder.is_dir():
        raise DatasetLayoutError(f"{NAME}: missing folder {folder}; {_REGENERATE}")
    tracklets = []
    for pid_dir in sorted(folder.iterdir()):
        if not (pid_dir.is_dir() and _PID_DIR.fullmatch(pid_dir.name)):
            raise ValueError(f"{NAME}: unexpected entry {pid_dir} (identity folders are 4 digits); {_REGENERATE}")
        for tdir in sorted(pid_dir.iterdir()):
            match = _TRACK_DIR.fullmatch(tdir.name)
            if not (tdir.is_dir() and match and match.group("pid") == pid_dir.name):
                raise ValueError(f"{NAME}: unexpected entry {tdir} (tracklet folders are "
                                 f"{pid_dir.name}_c<cam>_t<kk>); {_REGENERATE}")
            tracklets.append(Tracklet(_frames(tdir), int(pid_dir.name), int(match.group("cam")), tdir.name))
    return tracklets


def _frames(folder: Path) -> Tuple[str, ...]:
    """Frames 0000.png .. n-1 in order; a gap means a deleted frame."""
    names = sorted(p.name for p in folder.iterdir())
    bad = [n for n in names if not _FRAME_FILE.fullmatch(n)]
    if bad:
        raise ValueError(f"{NAME}: unexpected files {bad[:3]} in {folder} (frames are NNNN.png); {_REGENERATE}")
    if not names:
        raise DatasetLayoutError(f"{NAME}: tracklet folder {folder} holds no frames; {_REGENERATE}")
    expected = [f"{i:04d}.png" for i in range(len(names))]
    if names != expected:
        missing = sorted(set(f"{i:04d}.png" for i in range(int(names[-1][:4]) + 1)) - set(names))
        raise DatasetLayoutError(f"{NAME}: frame(s) {missing[:5]} missing in {folder}; {_REGENERATE}")
    return tuple(str(folder / n) for n in names)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def read_world(root) -> VideoReIDDataset:
    """Read a generated world back as train / query / gallery tracklets, checking it first."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{NAME}: no world at {root} (folder missing); {_REGENERATE}")
    meta_path = root / "world.yaml"
    if not meta_path.is_file():
        raise DatasetLayoutError(f"{NAME}: {meta_path} missing (an incomplete or foreign folder); {_REGENERATE}")
    meta = yaml.safe_load(meta_path.read_text())
    if not isinstance(meta, dict) or "counts" not in meta or "config" not in meta:
        raise ValueError(f"{NAME}: {meta_path} lacks 'config' or 'counts'; {_REGENERATE}")
    config = WorldConfig.from_dict(meta["config"])
    splits = {split: _read_split(root, split) for split in SPLITS}
    dataset = VideoReIDDataset(NAME, root, splits["train"], splits["query"], splits["gallery"],
                               {"gallery": "gallery only", "misalignment": config.misalignment,
                                "seed": config.seed, "occlusion_rate": config.effective_occlusion_rate})
    _check_counts(root, meta, dataset)
    return dataset


def _check_counts(root: Path, meta: Dict, dataset: VideoReIDDataset) -> None:
    found = dataset.counts()
    bad = [f"{split} {k}: found {found[split][k]}, world.yaml says {v}"
           for split in SPLITS for k, v in meta["counts"][split].items() if found[split][k] != v]
    for rel, rows in meta.get("keypoint_rows", {}).items():
        path = root / rel
        if not path.is_file():
            raise DatasetLayoutError(f"{NAME}: {path} missing; {_REGENERATE}")
        if _count_lines(path) - 1 != rows:
            bad.append(f"{rel}: found {_count_lines(path) - 1} rows, world.yaml says {rows}")
    crops = len(list((root / "crops").glob("*.png"))) if (root / "crops").is_dir() else 0
    if crops != meta["counts"].get("crops", {}).get("images", 0):
        bad.append(f"crops images: found {crops}, world.yaml says {meta['counts']['crops']['images']}")
    if bad:
        raise ValueError(f"{NAME}: {root} does not match its world.yaml:\n  " + "\n  ".join(bad) +
                         f"\n{_REGENERATE}")
