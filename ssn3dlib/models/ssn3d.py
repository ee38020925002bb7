"""SSN3D: backbone -> SSN per frame -> per-part 3D conv -> concat -> fusion (SPEC section 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import nn

from .backbones import Backbone, build_backbone
from .capabilities import ModelCapabilities
from .common import EmbeddingHead, VideoOutput, check_clips
from .part_aggregator import GroupedConv3dBlock
from .ssn import SelfSeparatedNetwork, check_strategy, keypoints_to_windows


@dataclass
class Keypoints:
    """Keypoints in input-image pixels: xy (..., N, 2) as (x, y), visible (..., N) bool."""

    xy: torch.Tensor
    visible: torch.Tensor


@dataclass
class LabelledFrames:
    """Well-labelled frames fed beside the clips in semi-supervised training.

    images (L, 3, H, W) with keypoints (L, N, ...); frame_index (L,) picks the
    classifier of non-shared SSNs (default: 0, 1, 2, ... cycling).
    """

    images: torch.Tensor
    keypoints: Keypoints
    frame_index: Optional[torch.Tensor] = None


class SSN3D(nn.Module):
    """The full SSN3D video re-ID model.

    Args:
        backbone: a Backbone or a name for build_backbone (paper: "resnet50-layer3").
        num_parts: N (paper: 9). window, padding, hidden: SSN window k, padding, K.
        strategy: "unsupervised", "semi-supervised" (paper default) or "supervised".
        shared_classifier: one attention classifier for all frames (paper) or one per
            clip position ("non-shared" ablation, `train_clip_len` classifiers).
        part_dim: D, output of each part's 3D block. embedding_dim: E (paper: 1024).
        backbone_weights: pretrained weights request, see build_backbone.
    """

    def __init__(self, backbone: Union[Backbone, str] = "resnet50-layer3", num_parts: int = 9,
                 window: int = 3, padding: int = 0, hidden: int = 512,
                 strategy: str = "semi-supervised", shared_classifier: bool = True,
                 train_clip_len: int = 4, part_dim: int = 256, embedding_dim: int = 1024,
                 backbone_weights=None):
        super().__init__()
        self.backbone = backbone if isinstance(backbone, Backbone) else build_backbone(
            backbone, weights=backbone_weights)
        self.ssn = SelfSeparatedNetwork(
            self.backbone.out_channels, num_parts, window=window, padding=padding, hidden=hidden,
            strategy=strategy, num_classifiers=1 if shared_classifier else train_clip_len)
        self.aggregator = GroupedConv3dBlock(num_parts, self.backbone.out_channels, part_dim)
        self.fusion = EmbeddingHead(num_parts * part_dim, embedding_dim)

    @classmethod
    def capabilities(cls, strategy: str = "semi-supervised", **_: Any) -> ModelCapabilities:
        """What SSN3D built with these arguments needs and gives: only the strategy matters."""
        check_strategy(strategy)
        supervised = strategy == "supervised"  # parts are keypoint windows: no attention, no SSN loss
        return ModelCapabilities(
            keypoints_in_training=strategy != "unsupervised", keypoints_at_test=supervised,
            ssn=True, ssn_loss=not supervised, attention_maps=not supervised,
            unused_parameters=supervised,  # the attention classifier gets no gradient
            parts=True, train_clip_len=True)

    @property
    def strategy(self) -> str:
        return self.ssn.strategy

    def _windows(self, keypoints: Keypoints, image_size, feature_size):
        return keypoints_to_windows(keypoints.xy, keypoints.visible, image_size, feature_size,
                                    self.ssn.window, self.ssn.padding)

    def forward(self, clips: torch.Tensor, keypoints: Optional[Keypoints] = None,
                labelled: Optional[LabelledFrames] = None) -> VideoOutput:
        """clips (B, T, 3, H, W) -> VideoOutput.

        keypoints: per clip frame, (B, T, N, 2) / (B, T, N); required by the supervised
        strategy, ignored otherwise. labelled: extra labelled frames that feed the
        semi-supervised SSN loss only (the paper's two well-labelled frames per tracklet).
        """
        check_clips(clips)
        b, t = clips.shape[:2]
        image_size = clips.shape[-2:]
        feats = self.backbone(clips.flatten(0, 1))                    # (B*T, C, h, w)
        feature_size = feats.shape[-2:]
        frame_index = torch.arange(t, device=clips.device).repeat(b)
        n = self.ssn.num_parts

        kp_windows = kp_visible = is_labelled = None
        if self.strategy == "supervised":
            if keypoints is None:
                raise ValueError("the supervised strategy needs keypoints for every clip frame")
            kp_windows, kp_visible = self._windows(keypoints, image_size, feature_size)
            kp_windows, kp_visible = kp_windows.reshape(b * t, n, 2), kp_visible.reshape(b * t, n)
        n_clip_frames = b * t
        if self.strategy == "semi-supervised" and labelled is not None and self.training:
            # Labelled frames join the same SSN pass; their part features are used for
            # the SSN loss only, never for the clip embeddings.
            extra = self.backbone(labelled.images)
            lab_windows, lab_visible = self._windows(labelled.keypoints, image_size, feature_size)
            n_lab = extra.shape[0]
            lab_index = (labelled.frame_index if labelled.frame_index is not None
                         else torch.arange(n_lab, device=clips.device))
            feats = torch.cat([feats, extra])
            frame_index = torch.cat([frame_index, lab_index.to(clips.device).long()])
            kp_windows = torch.cat([lab_windows.new_zeros(n_clip_frames, n, 2), lab_windows])
            kp_visible = torch.cat([lab_visible.new_zeros(n_clip_frames, n), lab_visible])
            is_labelled = torch.cat([torch.zeros(n_clip_frames, dtype=torch.bool, device=clips.device),
                                     torch.ones(n_lab, dtype=torch.bool, device=clips.device)])

        out = self.ssn(feats, keypoint_windows=kp_windows, keypoint_visible=kp_visible,
                       labelled=is_labelled, frame_index=frame_index)
        parts = out.parts[:n_clip_frames]                             # (B*T, N, C, k, k)
        parts = parts.reshape(b, t, *parts.shape[1:]).permute(0, 2, 3, 1, 4, 5)  # (B, N, C, T, k, k)
        part_vectors = self.aggregator(parts)                         # (B, N, D)
        embedding = self.fusion(part_vectors.flatten(1))
        maps = None
        if out.maps is not None:
            maps = out.maps[:n_clip_frames].reshape(b, t, *out.maps.shape[1:])
        return VideoOutput(embedding=embedding, ssn_loss=out.loss, maps=maps)
