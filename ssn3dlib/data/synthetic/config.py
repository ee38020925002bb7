"""What defines a synthetic world, and what the other modules of the package share.

WorldConfig (validated and normalised once, frozen), the scene Geometry its image size
implies, the dataset name and splits, and the random streams: every random choice comes
from its own numpy stream keyed by (seed, purpose, ids), so a tracklet's person, background
and phase do not change when the misalignment or the occlusion rate changes (only its boxes
and occluders do), and the same config always writes byte-identical files, whatever the
number of worker processes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Dict, Optional, Tuple

import numpy as np

NAME = "synthetic_world"
SS = 2                      # supersampling of the scene relative to the crop
BOX_MARGIN = 1.15           # box height / reference person height
SPLITS = ("train", "query", "gallery")

# Stream tags: one independent random stream per purpose.
_IDENTITY, _TWINS, _CAMERA, _TRACK, _BOX, _OCCLUSION, _NOISE, _QUERY, _CROPS = range(1, 10)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


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
