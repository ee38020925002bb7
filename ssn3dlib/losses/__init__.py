"""Losses: batch-hard triplet (eq. 5) and the combined objective (eq. 6)."""
from .objective import SSN3DObjective
from .triplet import batch_hard_triplet_loss, pairwise_euclidean

__all__ = ["batch_hard_triplet_loss", "pairwise_euclidean", "SSN3DObjective"]
