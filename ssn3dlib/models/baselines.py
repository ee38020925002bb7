"""Baselines sharing SSN3D's backbone interface, for the ablations and the misalignment study.

- TemporalPooling ("tp"): average of globally pooled frame features.
- UnalignedConv3d ("c3d"): 3D conv over whole, unaligned frame feature maps: the
  misalignment problem the paper attacks (same block as SSN3D's, one group).
- SpatialTemporalAttention ("st-attention"): 2D spatial attention per frame, then
  1D temporal attention across frames, in the spirit of seed 002 ("Not 3D Re-ID").
"""
from __future__ import annotations

from typing import Any, Union

import torch
from torch import nn

from .backbones import Backbone, build_backbone
from .capabilities import ModelCapabilities
from .common import EmbeddingHead, VideoOutput, check_clips
from .part_aggregator import GroupedConv3dBlock


class _FrameBackboneModel(nn.Module):
    """Runs the backbone on every frame; subclasses aggregate (B, T, C, h, w)."""

    def __init__(self, backbone: Union[Backbone, str], backbone_weights=None):
        super().__init__()
        self.backbone = backbone if isinstance(backbone, Backbone) else build_backbone(
            backbone, weights=backbone_weights)

    @classmethod
    def capabilities(cls, **_: Any) -> ModelCapabilities:
        """A plain embedding: no keypoints, no SSN, no maps, whatever the arguments."""
        return ModelCapabilities()

    def frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips)
        b, t = clips.shape[:2]
        feats = self.backbone(clips.flatten(0, 1))
        return feats.reshape(b, t, *feats.shape[1:])


class TemporalPooling(_FrameBackboneModel):
    def __init__(self, backbone: Union[Backbone, str] = "resnet50-layer3",
                 embedding_dim: int = 1024, backbone_weights=None):
        super().__init__(backbone, backbone_weights)
        self.head = EmbeddingHead(self.backbone.out_channels, embedding_dim)

    def forward(self, clips: torch.Tensor, **_) -> VideoOutput:
        feats = self.frame_features(clips)                      # (B, T, C, h, w)
        return VideoOutput(embedding=self.head(feats.mean(dim=(1, 3, 4))))


class UnalignedConv3d(_FrameBackboneModel):
    def __init__(self, backbone: Union[Backbone, str] = "resnet50-layer3", hidden: int = 512,
                 embedding_dim: int = 1024, backbone_weights=None):
        super().__init__(backbone, backbone_weights)
        self.aggregator = GroupedConv3dBlock(1, self.backbone.out_channels, hidden)
        self.head = EmbeddingHead(hidden, embedding_dim)

    def forward(self, clips: torch.Tensor, **_) -> VideoOutput:
        feats = self.frame_features(clips).transpose(1, 2)      # (B, C, T, h, w)
        return VideoOutput(embedding=self.head(self.aggregator(feats.unsqueeze(1)).flatten(1)))


class SpatialTemporalAttention(_FrameBackboneModel):
    def __init__(self, backbone: Union[Backbone, str] = "resnet50-layer3", reduction: int = 16,
                 embedding_dim: int = 1024, backbone_weights=None):
        super().__init__(backbone, backbone_weights)
        c = self.backbone.out_channels
        mid = max(c // reduction, 8)
        # Spatial: a score per position from 2D convs; softmax over positions.
        self.spatial = nn.Sequential(nn.Conv2d(c, mid, 1), nn.ReLU(inplace=True), nn.Conv2d(mid, 1, 1))
        # Temporal: a score per frame from 1D convs over neighbouring frames; softmax over T.
        self.temporal = nn.Sequential(nn.Conv1d(c, mid, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv1d(mid, 1, 1))
        self.head = EmbeddingHead(c, embedding_dim)

    def forward(self, clips: torch.Tensor, **_) -> VideoOutput:
        feats = self.frame_features(clips)                      # (B, T, C, h, w)
        b, t, c, h, w = feats.shape
        flat = feats.reshape(b * t, c, h, w)
        spatial = self.spatial(flat).flatten(1).softmax(dim=1)  # (B*T, h*w)
        frame_vectors = torch.einsum("nl,ncl->nc", spatial, flat.flatten(2)).reshape(b, t, c)
        temporal = self.temporal(frame_vectors.transpose(1, 2)).squeeze(1).softmax(dim=1)  # (B, T)
        clip_vector = torch.einsum("bt,btc->bc", temporal, frame_vectors)
        return VideoOutput(embedding=self.head(clip_vector))
