"""Batch-hard triplet loss, eq. 5 (Hermans, Beyer & Leibe 2017 with the paper's sqrt(d) scaling)."""
from __future__ import annotations

import torch


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """(B, d) -> (B, B) euclidean distances; the clamp keeps sqrt's gradient finite at 0."""
    sq = features.pow(2).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * features @ features.t()
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet_loss(features: torch.Tensor, pids: torch.Tensor, margin: float = 0.3,
                            reduction: str = "mean") -> torch.Tensor:
    """Eq. 5: for each anchor, [m + max_pos ||f_i - f_p|| / sqrt(d) - min_neg ||f_i - f_n|| / sqrt(d)]_+.

    The paper writes a sum over the batch; `reduction="mean"` (default) divides by B
    so the loss scale does not depend on the batch size. Anchors without a positive
    or without a negative in the batch contribute no term; a batch with no valid
    anchor is an error (the identity sampler must give K >= 2 clips per identity).
    """
    if features.dim() != 2 or pids.shape != features.shape[:1]:
        raise ValueError(f"features must be (B, d) and pids (B,), got {tuple(features.shape)} "
                         f"and {tuple(pids.shape)}")
    if margin < 0:
        raise ValueError(f"triplet margin must be >= 0, got {margin}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    dist = pairwise_euclidean(features) / features.shape[1] ** 0.5
    same = pids[:, None] == pids[None, :]
    eye = torch.eye(len(pids), dtype=torch.bool, device=features.device)
    positive = same & ~eye
    valid = positive.any(dim=1) & (~same).any(dim=1)
    if not valid.any():
        raise ValueError("no anchor in the batch has both a positive and a negative: sample at "
                         "least 2 identities with at least 2 clips each (P x K sampler)")
    hardest_pos = dist.masked_fill(~positive, float("-inf")).max(dim=1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(dim=1).values
    terms = (margin + hardest_pos - hardest_neg).clamp_min(0)[valid]
    if reduction == "none":
        return terms
    return terms.sum() if reduction == "sum" else terms.mean()
