"""Models: backbones, the SSN, SSN3D and the baselines, built by name through build_model."""
from __future__ import annotations

from .attention_classifier import AttentionClassifier
from .backbones import KNOWN_BACKBONES, Backbone, build_backbone
from .baselines import SpatialTemporalAttention, TemporalPooling, UnalignedConv3d
from .common import EmbeddingHead, VideoOutput
from .part_aggregator import GroupedConv3dBlock
from .ssn import (STRATEGIES, SelfSeparatedNetwork, SSNOutput, keypoints_to_windows,
                  one_hot_windows, weighted_window_sum)
from .ssn3d import SSN3D, Keypoints, LabelledFrames

#: Video models by name: a new model is one more entry here.
MODELS = {
    "ssn3d": SSN3D,
    "tp": TemporalPooling,
    "c3d": UnalignedConv3d,
    "st-attention": SpatialTemporalAttention,
}


def build_model(name: str, **kwargs):
    """Build a video re-ID model by name (see MODELS) with its keyword arguments."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from None
    return cls(**kwargs)


__all__ = [
    "AttentionClassifier", "Backbone", "build_backbone", "KNOWN_BACKBONES", "SelfSeparatedNetwork",
    "SSNOutput", "STRATEGIES", "keypoints_to_windows", "one_hot_windows", "weighted_window_sum",
    "SSN3D", "Keypoints", "LabelledFrames", "TemporalPooling", "UnalignedConv3d",
    "SpatialTemporalAttention", "GroupedConv3dBlock", "EmbeddingHead", "VideoOutput", "MODELS",
    "build_model",
]
