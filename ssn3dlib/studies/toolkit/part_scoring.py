"""Do attention peaks land on body parts? PCK, its references and the matching of unnamed maps.

Every rule that changes a number is an explicit argument, never a hidden choice:
- which keypoints count: ``visible_keypoints(keypoints, min_visibility)`` (visibility strictly
  above it, finite coordinates). The synthetic world writes 1 = visible, 0.5 = self-occluded
  with exact coordinates: 0.5 keeps only fully visible parts, 0 keeps self-occluded ones too;
- the radius, in input pixels (PCK@0.1h: 0.1 x image height);
- for unnamed (unsupervised) maps, which frames the map-to-part matching is fitted on: the
  caller passes those rows to ``match_parts`` and applies the permutation to the rows it scores.

Inputs: peaks (M, N, 2) pixel (x, y); keypoints (M, N, >= 2) pixel (x, y[, visibility]) with
NaN where a part has no coordinates; visible (M, N) bool; a WindowGrid for the references.
A score is ``{"overall": fraction of hits over visible (frame, part) pairs, "per_part":
{name: fraction or None}}``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .window_grid import WindowGrid

Score = Dict[str, object]


def visible_keypoints(keypoints: np.ndarray, min_visibility: float) -> np.ndarray:
    """(M, N) bool: the part has finite coordinates and visibility > min_visibility."""
    return (keypoints[..., 2] > min_visibility) & np.isfinite(keypoints[..., :2]).all(-1)


def _names(part_names: Optional[Sequence[str]], n: int) -> Sequence[str]:
    return list(part_names) if part_names is not None else [f"part {i}" for i in range(n)]


def score(hits: np.ndarray, visible: np.ndarray, part_names: Optional[Sequence[str]] = None) -> Score:
    """Mean of per-pair hits (M, N), bool or expected values in 0..1, over visible pairs."""
    counts = visible.sum(0)
    names = _names(part_names, visible.shape[1])
    per_part = {p: (float(hits[:, i].sum() / counts[i]) if counts[i] else None) for i, p in enumerate(names)}
    return {"overall": float(hits[visible].mean()) if visible.any() else None, "per_part": per_part}


def pck(peaks: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, radius: float,
        part_names: Optional[Sequence[str]] = None) -> Score:
    """Fraction of visible (frame, part) pairs whose peak lies within `radius` of the keypoint."""
    dist = np.linalg.norm(peaks - np.nan_to_num(keypoints[..., :2]), axis=-1)
    return score((dist <= radius) & visible, visible, part_names)


def _distances_to_grid(keypoints: np.ndarray, grid: WindowGrid) -> np.ndarray:
    """(M, N, G) distance of every keypoint to every window centre."""
    return np.linalg.norm(np.nan_to_num(keypoints[..., None, :2]) - grid.all_centres(), axis=-1)


def chance_pck(keypoints: np.ndarray, visible: np.ndarray, grid: WindowGrid, radius: float,
               part_names: Optional[Sequence[str]] = None) -> Score:
    """Expected PCK of a peak drawn uniformly over the window grid (exact)."""
    near = (_distances_to_grid(keypoints, grid) <= radius).mean(-1)
    return score(near * visible, visible, part_names)


def ceiling_pck(keypoints: np.ndarray, visible: np.ndarray, grid: WindowGrid, radius: float,
                part_names: Optional[Sequence[str]] = None) -> Score:
    """PCK of the window centre nearest each keypoint: the best any map on this grid can do."""
    nearest = _distances_to_grid(keypoints, grid).min(-1)
    return score((nearest <= radius) & visible, visible, part_names)


def position_prior(keypoints: np.ndarray, visible: np.ndarray, grid: WindowGrid,
                   part_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """(N, 2) one fixed peak per part, fitted on the given frames: the window centre nearest the
    part's mean visible position (what knowing only where parts usually are gives)."""
    names = _names(part_names, keypoints.shape[1])
    centres = grid.all_centres()
    out = np.zeros((keypoints.shape[1], 2))
    for i, part in enumerate(names):
        rows = visible[:, i]
        if not rows.any():
            raise ValueError(f"no fitting frame shows part {part}: no position prior; use more labelled frames")
        mean = keypoints[rows, i, :2].mean(0)
        out[i] = centres[np.linalg.norm(centres - mean, axis=1).argmin()]
    return out


def match_parts(peaks: np.ndarray, keypoints: np.ndarray, visible: np.ndarray,
                part_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Best one-to-one assignment of maps to parts on the given (fitting) frames: perm[i] = the
    map shown as part i, minimising the summed mean distance between map perm[i]'s peak and
    keypoint i over the frames where keypoint i is visible. Apply it as peaks[:, perm]."""
    names = _names(part_names, peaks.shape[1])
    n = peaks.shape[1]
    cost = np.zeros((n, n))
    for i in range(n):
        rows = visible[:, i]
        if not rows.any():
            raise ValueError(f"no fitting frame shows part {names[i]}: cannot match unnamed maps to it; "
                             f"fit the matching on more frames")
        cost[i] = np.linalg.norm(peaks[rows] - keypoints[rows, i, None, :2], axis=-1).mean(0)
    _, perm = linear_sum_assignment(cost)
    return perm


def peak_agreement(peaks_a: np.ndarray, peaks_b: np.ndarray, radius: float) -> float:
    """Fraction of (frame, part) pairs whose two peaks lie within radius of each other."""
    return float((np.linalg.norm(peaks_a - peaks_b, axis=-1) <= radius).mean())


def chance_agreement(grid: WindowGrid, radius: float) -> float:
    """peak_agreement of two independent peaks drawn uniformly over the grid (exact)."""
    c = grid.all_centres()
    return float((np.linalg.norm(c[:, None] - c[None], axis=-1) <= radius).mean())


def distinctness(peaks: np.ndarray) -> float:
    """Mean over frames of (distinct peak positions among the N maps) / N."""
    n = peaks.shape[1]
    return float(np.mean([len({tuple(p) for p in frame}) / n for frame in peaks]))


def part_hits(peaks: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, radius: float) -> np.ndarray:
    """(M, N) 1.0 / 0.0 per visible (frame, part): its peak within `radius` of the keypoint; NaN
    where the part is not visible (the per-pair form of ``pck``, for per-part intervals)."""
    dist = np.linalg.norm(peaks - np.nan_to_num(keypoints[..., :2]), axis=-1)
    return np.where(visible, (dist <= radius).astype(float), np.nan)


def chance_part_hits(keypoints: np.ndarray, visible: np.ndarray, grid: WindowGrid, radius: float) -> np.ndarray:
    """(M, N) expected hit of a uniformly drawn window per visible (frame, part), NaN elsewhere
    (the per-pair form of ``chance_pck``)."""
    near = (_distances_to_grid(keypoints, grid) <= radius).mean(-1)
    return np.where(visible, near, np.nan)


def follows_motion(peaks_a: np.ndarray, peaks_b: np.ndarray, keypoints_a: np.ndarray, keypoints_b: np.ndarray,
                   visible: np.ndarray, radius: float) -> np.ndarray:
    """(P, N) per pair of consecutive frames and part visible in both: 1.0 when the peak moved
    with the keypoint, i.e. |(peak_b - peak_a) - (keypoint_b - keypoint_a)| <= radius; NaN where
    not visible in both. A map that never moves scores 1 whenever the part moves less than the
    radius, so read it beside the PCK on the same frames."""
    error = (peaks_b - peaks_a) - (np.nan_to_num(keypoints_b[..., :2]) - np.nan_to_num(keypoints_a[..., :2]))
    return np.where(visible, (np.linalg.norm(error, axis=-1) <= radius).astype(float), np.nan)


def chance_follows_motion(keypoints_a: np.ndarray, keypoints_b: np.ndarray, visible: np.ndarray, grid: WindowGrid,
                          radius: float) -> np.ndarray:
    """(P, N) expected ``follows_motion`` of two independent uniformly drawn windows (exact: the
    fraction of window-centre pairs whose difference lies within the radius of the keypoint's
    displacement)."""
    centres = grid.all_centres()
    steps = (centres[None, :, :] - centres[:, None, :]).reshape(-1, 2)           # every (a, b) pair: b - a
    moved = (np.nan_to_num(keypoints_b[..., :2]) - np.nan_to_num(keypoints_a[..., :2])).reshape(-1, 2)
    near = np.concatenate([(np.linalg.norm(steps[None] - moved[k:k + 256, None], axis=-1) <= radius).mean(-1)
                           for k in range(0, len(moved), 256)]) if len(moved) else np.zeros(0)
    return np.where(visible, near.reshape(visible.shape), np.nan)   # 256 displacements at a time: bounded memory
