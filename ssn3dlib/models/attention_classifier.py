"""The attention classifier f of eq. 1: k x k conv (C -> K), ReLU, linear K -> N.

The same module does both rounds of the "two-round classification":
applied densely over a feature map it scores every k x k window (1st round),
applied to a single k x k part feature it scores that part (2nd round).
"""
from __future__ import annotations

import torch
from torch import nn


class AttentionClassifier(nn.Module):
    """Scores k x k x C windows against N part labels.

    Args:
        in_channels: C, channels of the feature map.
        num_parts: N, number of part labels.
        window: k, window side.
        hidden: K, channels of the k x k convolution (paper: 512).
    """

    def __init__(self, in_channels: int, num_parts: int, window: int = 3, hidden: int = 512):
        super().__init__()
        if min(in_channels, num_parts, window, hidden) < 1:
            raise ValueError(
                f"AttentionClassifier needs positive sizes, got in_channels={in_channels}, "
                f"num_parts={num_parts}, window={window}, hidden={hidden}")
        self.in_channels = in_channels
        self.num_parts = num_parts
        self.window = window
        # No padding here: the SSN pads the feature map itself, so that the windows
        # it sums (eq. 3) are exactly the windows this convolution scores.
        self.conv = nn.Conv2d(in_channels, hidden, kernel_size=window, bias=True)
        self.relu = nn.ReLU(inplace=True)
        # The K -> N linear map as a 1 x 1 conv so it runs densely over positions.
        self.fc = nn.Conv2d(hidden, num_parts, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, H - k + 1, W - k + 1) raw scores (no softmax).

        With H = W = k this is the 2nd round: one score vector per part feature.
        """
        return self.fc(self.relu(self.conv(x)))
