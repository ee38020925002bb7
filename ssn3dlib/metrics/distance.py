"""Query x gallery distance matrices for re-ID evaluation.

Why chunked: a full ``(num_q, num_g, dim)`` broadcast is far too large, and
even the ``num_q x num_g`` matmul temporaries are worth bounding on a GPU that
also holds a model. Each chunk of queries is multiplied against the whole
gallery and copied straight into a preallocated float32 numpy result.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

#: Accepted values of the ``metric`` argument.
METRICS = ("euclidean", "cosine")


def _as_feature_tensor(features: Any, name: str, device: Optional[torch.device]) -> torch.Tensor:
    """numpy or torch features as a float32 2-D tensor on ``device``."""
    if not isinstance(features, torch.Tensor):
        features = torch.as_tensor(np.asarray(features))
    if features.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_items x dim), got shape {tuple(features.shape)}")
    return features.detach().to(device=device, dtype=torch.float32)


def _euclidean(gallery: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Distance via |q|^2 + |g|^2 - 2 q.g (clamped: rounding can go below 0)."""
    gallery_sq = gallery.pow(2).sum(dim=1)

    def chunk_distance(q: torch.Tensor) -> torch.Tensor:
        sq = torch.addmm(gallery_sq.unsqueeze(0), q, gallery.t(), beta=1.0, alpha=-2.0)
        sq += q.pow(2).sum(dim=1, keepdim=True)
        return sq.clamp_(min=0).sqrt_()

    return chunk_distance


def _cosine(gallery: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """1 - cosine similarity of L2-normalised features."""
    gallery_n = F.normalize(gallery, dim=1)

    def chunk_distance(q: torch.Tensor) -> torch.Tensor:
        return 1.0 - F.normalize(q, dim=1) @ gallery_n.t()

    return chunk_distance


def _is_positive_int(value: Any) -> bool:
    """bool is an int subclass; reject it so chunk_size=True is not silently 1."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


_METRIC_FACTORIES = {"euclidean": _euclidean, "cosine": _cosine}


@torch.no_grad()
def compute_distance(
    query_features: Any,
    gallery_features: Any,
    metric: str = "euclidean",
    chunk_size: int = 4096,
    device: Optional[Union[str, torch.device]] = None,
) -> np.ndarray:
    """Distance matrix ``num_q x num_g`` as float32 numpy.

    ``metric``: "euclidean" (not squared) or "cosine" (1 - cosine similarity).
    Features may be numpy arrays or CPU/GPU tensors; ``device`` defaults to
    the query tensor's device (CPU for numpy). Queries are processed
    ``chunk_size`` at a time so intermediates stay ``chunk_size x num_g``.
    """
    if metric not in _METRIC_FACTORIES:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if not _is_positive_int(chunk_size):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if device is None:
        device = query_features.device if isinstance(query_features, torch.Tensor) else "cpu"
    device = torch.device(device)
    query = _as_feature_tensor(query_features, "query_features", device)
    gallery = _as_feature_tensor(gallery_features, "gallery_features", device)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"feature dims differ: query has {query.shape[1]}, gallery has {gallery.shape[1]}"
        )

    chunk_distance = _METRIC_FACTORIES[metric](gallery)
    out = np.empty((query.shape[0], gallery.shape[0]), dtype=np.float32)
    for start in range(0, query.shape[0], chunk_size):
        stop = min(start + chunk_size, query.shape[0])
        out[start:stop] = chunk_distance(query[start:stop]).cpu().numpy()
    return out
