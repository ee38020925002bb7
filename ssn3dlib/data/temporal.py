"""Temporal sampling: which frames of a tracklet form a clip (kept apart from spatial transforms).

Training (paper: T = 4 frames, stride 8, random start) with the standard fallbacks of
AP3D's TemporalRandomCrop for short tracklets; testing cuts the whole tracklet into
consecutive clips of up to 32 frames whose features are averaged.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import InputError

SHORT_POLICIES = ("fallback", "error")


def train_clip_indices(num_frames: int, clip_len: int = 4, stride: int = 8,
                       rng: np.random.Generator = None, short: str = "fallback") -> List[int]:
    """Sorted frame indices of one training clip.

    - num_frames >= (clip_len - 1) * stride + 1: clip_len frames `stride` apart from a
      uniformly random start.
    - clip_len <= num_frames < that span: clip_len distinct frames at random, in order.
    - num_frames < clip_len: frames drawn with replacement, in order (repeats), unless
      short="error", which refuses such tracklets.
    """
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got clip_len={clip_len}, stride={stride}")
    if num_frames < 1:
        raise ValueError("cannot sample a clip from an empty tracklet")
    if short not in SHORT_POLICIES:
        raise ValueError(f"short must be one of {SHORT_POLICIES}, got {short!r}")
    rng = rng if rng is not None else np.random.default_rng()
    span = (clip_len - 1) * stride + 1
    if num_frames >= span:
        start = int(rng.integers(0, num_frames - span + 1))
        return list(range(start, start + span, stride))
    if num_frames >= clip_len:
        return sorted(rng.choice(num_frames, size=clip_len, replace=False).tolist())
    if short == "error":
        raise InputError(f"tracklet of {num_frames} frames is shorter than the clip length {clip_len}; "
                         f"lower clip_len or use short='fallback' (frames are then repeated)")
    return sorted(rng.choice(num_frames, size=clip_len, replace=True).tolist())


def evaluation_clip_indices(num_frames: int, clip_len: int = 32) -> List[List[int]]:
    """Every frame once, in consecutive clips of clip_len; the last clip holds the remainder."""
    if clip_len < 1:
        raise ValueError(f"clip_len must be >= 1, got {clip_len}")
    if num_frames < 1:
        raise ValueError("cannot cut clips from an empty tracklet")
    return [list(range(s, min(s + clip_len, num_frames))) for s in range(0, num_frames, clip_len)]
