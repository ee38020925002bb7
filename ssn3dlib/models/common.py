"""Pieces every video re-ID model here shares: the output record and the embedding head."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass
class VideoOutput:
    """What a video model returns for a batch of clips.

    embedding: (B, E) clip embeddings (what the triplet loss and retrieval use).
    ssn_loss:  scalar SSN loss for models with an SSN, in training; else None.
    maps:      (B, T, N, H', W') attention maps for models with an SSN; else None.
    """

    embedding: torch.Tensor
    ssn_loss: Optional[torch.Tensor] = None
    maps: Optional[torch.Tensor] = None


class EmbeddingHead(nn.Sequential):
    """Linear projection + BatchNorm to the shared embedding size (fusion layer)."""

    def __init__(self, in_features: int, embedding_dim: int):
        super().__init__(nn.Linear(in_features, embedding_dim), nn.BatchNorm1d(embedding_dim))
        self.in_features = in_features
        self.embedding_dim = embedding_dim


def check_clips(clips: torch.Tensor) -> None:
    if clips.dim() != 5:
        raise ValueError(f"video models take clips of shape (B, T, C, H, W), got {tuple(clips.shape)}")
