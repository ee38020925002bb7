"""Planning a world without rendering a frame: every choice that defines it.

The identities (a fraction of each split are look-alikes of another identity), the
cameras (scene, viewing direction, colour cast, exposure, blur, noise) with their
background panoramas, the tracklets (split, length, walking direction, gait phase,
background scroll) and the static crops, each drawn from its own random stream of the
config. plan_world caches the plan per config, so rendering one tracklet for a figure
costs no more than the plan.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from . import pedestrian as ped
from .backgrounds import _panorama
from .config import _CAMERA, _CROPS, _IDENTITY, _QUERY, _TRACK, _TWINS, Geometry, WorldConfig, _rng
from .pedestrian import Appearance


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
