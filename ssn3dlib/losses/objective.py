"""The training objective of eq. 6: L = L_tri + lambda * L_SSN."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch

from ..models.common import VideoOutput
from .triplet import batch_hard_triplet_loss


@dataclass
class SSN3DObjective:
    """Combine the triplet loss on embeddings with the weighted SSN loss.

    lambda_ssn must stay small (paper: L_SSN converges very fast); a run's default is its
    dataset's (DatasetInfo.lambda_ssn, via RunConfig.lambda_ssn). Models without an SSN (the
    baselines) simply get the triplet loss.
    """

    lambda_ssn: float = 0.1
    margin: float = 0.3

    def __post_init__(self):
        if self.lambda_ssn < 0:
            raise ValueError(f"lambda_ssn must be >= 0, got {self.lambda_ssn}")
        if self.margin < 0:
            raise ValueError(f"triplet margin must be >= 0, got {self.margin}")

    def __call__(self, output: VideoOutput, pids: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Returns {"loss", "triplet", "ssn"}; "loss" is what to backpropagate."""
        triplet = batch_hard_triplet_loss(output.embedding.float(), pids, self.margin)
        ssn = output.ssn_loss if output.ssn_loss is not None else triplet.new_zeros(())
        return {"loss": triplet + self.lambda_ssn * ssn, "triplet": triplet, "ssn": ssn}
