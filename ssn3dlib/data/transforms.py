"""Spatial transforms for clips: one set of random parameters per clip, applied to every frame
and to the frame's keypoints (kept apart from temporal sampling, as in AP3D).

Coordinate conventions:
- Keypoint tables hold *continuous* pixel coordinates: (0, 0) is the image's top-left corner
  and pixel (i, j) covers [j, j+1) x [i, i+1) (MediaPipe's normalised x * width, the
  synthetic world's tables).
- The model's `keypoints_to_windows` takes *pixel-index* coordinates (the centre of pixel
  (i, j) is (j, i)). `transform_keypoints` converts: index = continuous - 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClipParams:
    """The random draw shared by every frame of one clip."""

    flip: bool = False
    offset: Tuple[int, int] = (0, 0)             # (top, left) of the crop in the padded image
    erase: Optional[Tuple[int, int, int, int]] = None   # (top, left, height, width)


@dataclass(frozen=True)
class ClipTransform:
    """Resize to `size` = (H, W), then (training) horizontal flip, pad-and-crop translation and
    random erasing, all drawn once per clip; then scale to [0, 1] and normalise.

    Defaults follow AP3D's video pipeline (resize + flip); `pad` and `erasing_prob` are off
    by default because translating frames is itself a misalignment (the misalignment study's
    knob must stay the only source).
    """

    size: Tuple[int, int] = (256, 128)
    flip_prob: float = 0.0
    pad: int = 0
    erasing_prob: float = 0.0
    erasing_area: Tuple[float, float] = (0.02, 0.2)
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        h, w = self.size
        if h < 1 or w < 1:
            raise ValueError(f"image size must be positive, got {self.size}")
        for name in ("flip_prob", "erasing_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")

    @classmethod
    def train(cls, size=(256, 128), **kwargs) -> "ClipTransform":
        return cls(size=tuple(size), flip_prob=kwargs.pop("flip_prob", 0.5), **kwargs)

    @classmethod
    def test(cls, size=(256, 128)) -> "ClipTransform":
        return cls(size=tuple(size))

    def sample(self, rng: np.random.Generator) -> ClipParams:
        h, w = self.size
        flip = bool(rng.random() < self.flip_prob) if self.flip_prob > 0 else False
        offset = (self.pad, self.pad)
        if self.pad > 0:
            offset = (int(rng.integers(0, 2 * self.pad + 1)), int(rng.integers(0, 2 * self.pad + 1)))
        erase = None
        if self.erasing_prob > 0 and rng.random() < self.erasing_prob:
            area = rng.uniform(*self.erasing_area) * h * w
            aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
            eh = int(min(h, round(np.sqrt(area * aspect))))
            ew = int(min(w, round(np.sqrt(area / aspect))))
            erase = (int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1)), eh, ew)
        return ClipParams(flip=flip, offset=offset, erase=erase)

    def apply(self, frames: Sequence[torch.Tensor], params: ClipParams = ClipParams()) -> torch.Tensor:
        """uint8 frames (3, h_i, w_i) of any sizes -> float clip (T, 3, H, W), normalised."""
        h, w = self.size
        clip = torch.stack([TF.resize(f, [h, w], antialias=True) for f in frames])
        if params.flip:
            clip = TF.horizontal_flip(clip)
        if self.pad > 0:
            clip = TF.pad(clip, [self.pad], fill=0)
            clip = TF.crop(clip, params.offset[0], params.offset[1], h, w)
        clip = TF.normalize(clip.float().div_(255.0), list(self.mean), list(self.std))
        if params.erase is not None:
            top, left, eh, ew = params.erase
            clip[..., top:top + eh, left:left + ew] = 0.0
        return clip

    def transform_keypoints(self, xy: np.ndarray, source_sizes: Sequence[Tuple[int, int]],
                            params: ClipParams = ClipParams()) -> np.ndarray:
        """Continuous keypoints (T, N, 2) of frames of sizes (h_i, w_i) -> pixel-index
        keypoints (T, N, 2) of the transformed clip. Geometry only: swapping left and right
        part labels on a flip is the caller's job (`keypoints.flip_permutation`)."""
        h, w = self.size
        xy = np.asarray(xy, dtype=np.float64).copy()
        scale = np.array([[w / sw, h / sh] for sh, sw in source_sizes], dtype=np.float64)
        xy *= scale[:, None, :]
        if params.flip:
            xy[..., 0] = w - xy[..., 0]
        if self.pad > 0:
            xy[..., 0] += self.pad - params.offset[1]
            xy[..., 1] += self.pad - params.offset[0]
        return xy - 0.5
