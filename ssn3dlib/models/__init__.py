"""Models: backbones, the SSN, SSN3D and the baselines, built by name through build_model.

A new model is a class with a `capabilities` class method (see ModelCapabilities) and one
register_model line; the engine then builds it by name and asks it what it needs.
"""
from __future__ import annotations

from typing import Dict

from .attention_classifier import AttentionClassifier
from .backbones import KNOWN_BACKBONES, Backbone, build_backbone
from .baselines import SpatialTemporalAttention, TemporalPooling, UnalignedConv3d
from .capabilities import ModelCapabilities
from .common import EmbeddingHead, VideoOutput
from .part_aggregator import GroupedConv3dBlock
from .ssn import STRATEGIES, SelfSeparatedNetwork, SSNOutput, keypoints_to_windows, one_hot_windows, weighted_window_sum
from .ssn3d import SSN3D, Keypoints, LabelledFrames

#: Video models by name, filled by register_model.
MODELS: Dict[str, type] = {}


def register_model(name: str, cls: type) -> type:
    """Make `cls` buildable by name (build_model, configs' model.name); returns cls."""
    if name in MODELS:
        raise ValueError(f"model name {name!r} is already registered (to {MODELS[name].__name__}); "
                         f"choose another name")
    declared = getattr(cls, "capabilities", None)
    # Asked with no arguments: the capabilities of the constructor's defaults.
    if not callable(declared) or not isinstance(declared(), ModelCapabilities):
        raise TypeError(f"model class {cls.__name__} must declare a class method capabilities(**kwargs) "
                        f"returning ModelCapabilities for its constructor arguments")
    MODELS[name] = cls
    return cls


def _model_class(name: str) -> type:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from None


def build_model(name: str, **kwargs):
    """Build a video re-ID model by name (see MODELS) with its keyword arguments."""
    return _model_class(name)(**kwargs)


def model_capabilities(name: str, **kwargs) -> ModelCapabilities:
    """What model `name` built with these keyword arguments needs and gives, without building it."""
    return _model_class(name).capabilities(**kwargs)


register_model("ssn3d", SSN3D)
register_model("tp", TemporalPooling)
register_model("c3d", UnalignedConv3d)
register_model("st-attention", SpatialTemporalAttention)


__all__ = [
    "AttentionClassifier", "Backbone", "build_backbone", "KNOWN_BACKBONES", "SelfSeparatedNetwork",
    "SSNOutput", "STRATEGIES", "keypoints_to_windows", "one_hot_windows", "weighted_window_sum",
    "SSN3D", "Keypoints", "LabelledFrames", "TemporalPooling", "UnalignedConv3d",
    "SpatialTemporalAttention", "GroupedConv3dBlock", "EmbeddingHead", "VideoOutput", "MODELS",
    "ModelCapabilities", "build_model", "model_capabilities", "register_model",
]
