"""Per-part 3D convolution blocks (SPEC section 2).

Each of the N parts has its own block (no weight sharing between parts). The N
blocks are one grouped Conv3d (groups = N): mathematically N independent blocks,
but a single kernel launch instead of N. With no grouping (N = 1) the same block
is the "C3D" baseline's aggregator over whole, unaligned feature maps.
"""
from __future__ import annotations

import torch
from torch import nn


class GroupedConv3dBlock(nn.Module):
    """N independent blocks: 1x1x1 reduce C -> D, then 3x3x3 conv D -> D, global pool.

    Input (B, N, C, T, h, w); output (B, N, D). The 3x3x3 conv pads by 1 in time
    and space, so any clip length T >= 1 and any h, w work (train T = 4, test T = 32).
    """

    def __init__(self, num_groups: int, in_channels: int, out_channels: int):
        super().__init__()
        n, c, d = num_groups, in_channels, out_channels
        self.num_groups, self.in_channels, self.out_channels = n, c, d
        self.layers = nn.Sequential(
            nn.Conv3d(n * c, n * d, kernel_size=1, groups=n, bias=False),
            nn.BatchNorm3d(n * d),
            nn.ReLU(inplace=True),
            nn.Conv3d(n * d, n * d, kernel_size=3, padding=1, groups=n, bias=False),
            nn.BatchNorm3d(n * d),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c, t, h, w = x.shape
        if (n, c) != (self.num_groups, self.in_channels):
            raise ValueError(f"expected (B, {self.num_groups}, {self.in_channels}, T, h, w), "
                             f"got {tuple(x.shape)}")
        y = self.layers(x.reshape(b, n * c, t, h, w))
        return y.mean(dim=(2, 3, 4)).reshape(b, n, self.out_channels)
