"""A trainable 2D stage on top of a (frozen) backbone, the same for every model.

With a frozen backbone, what a model can learn is only what sits on it: TP (temporal pooling)
then holds a single linear map of globally averaged features, while C3D and SSN3D hold
convolutions, so a comparison between them measures trainable capacity as much as
aggregation. An adapter gives every model the same trainable per-frame convolution first
(3 x 3, stride 1, BatchNorm, ReLU), as fine-tuning the backbone's last stage would, so the
models differ only in how they aggregate frames and parts.
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import Backbone


class AdaptedBackbone(Backbone):
    """`backbone`, then conv 3 x 3 (C -> channels, padding 1) + BatchNorm + ReLU, trainable.

    The stride and feature size are the backbone's; out_channels becomes `channels`. The
    wrapped backbone is the attribute `base` (a FrozenBackbone keeps its memo: the adapter
    runs on the remembered features).
    """

    def __init__(self, backbone: Backbone, channels: int):
        if channels < 1:
            raise ValueError(f"adapter channels must be positive, got {channels}")
        adapter = nn.Sequential(nn.Conv2d(backbone.out_channels, channels, 3, padding=1, bias=False),
                                nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        super().__init__(adapter, channels, backbone.stride, f"{backbone.name}+adapter{channels}")
        self.base = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.base(x))

    def feature_size(self, image_size):
        return self.base.feature_size(image_size)
