"""Where an SSN's window grid lies on its input image, and where its maps peak.

The grid comes from the model itself: the backbone's feature map for the input size
(``Backbone.feature_size``, the size the network really produces) and the SSN's window grid
over it (``SelfSeparatedNetwork.grid_size``). Geometry in ``ssn3dlib.attention_plots``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np
import torch

from ...attention_plots import Extent, extent_from_centres, window_centres


@dataclass(frozen=True)
class WindowGrid:
    """The k x k window grid (padding p) of an SSN over a (h_f, w_f) feature map of an
    (H, W) input image."""

    image_size: Tuple[int, int]
    feature_size: Tuple[int, int]
    window: int = 3
    padding: int = 0

    @classmethod
    def of(cls, ssn, backbone, image_size: Sequence[int]) -> "WindowGrid":
        """The grid of `ssn` behind `backbone` (None: the SSN sees the image itself)."""
        image_size = tuple(int(v) for v in image_size)
        feature_size = tuple(backbone.feature_size(image_size)) if backbone is not None else image_size
        return cls(image_size, feature_size, ssn.window, ssn.padding)

    @property
    def size(self) -> Tuple[int, int]:
        """(rows, columns) of window positions."""
        (fh, fw), k, p = self.feature_size, self.window, self.padding
        return fh + 2 * p - k + 1, fw + 2 * p - k + 1

    @property
    def centres(self) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel (ys, xs) of the window rows' and columns' centres."""
        return window_centres(self.size, self.image_size, self.feature_size, self.window, self.padding)

    @property
    def extent(self) -> Extent:
        """imshow extent that lays a map over its image."""
        return extent_from_centres(*self.centres)

    @property
    def window_pixels(self) -> float:
        """Side of one window in input pixels (k feature cells)."""
        return self.window * self.image_size[0] / self.feature_size[0]

    def all_centres(self) -> np.ndarray:
        """(rows * columns, 2) pixel (x, y) of every window centre, row-major."""
        ys, xs = self.centres
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel()], axis=1)

    def peak_pixels(self, maps) -> np.ndarray:
        """(..., N, 2) pixel (x, y) of the centre of each map's peak window."""
        if tuple(maps.shape[-2:]) != self.size:
            raise ValueError(f"maps over a {tuple(maps.shape[-2:])} grid do not match this {self.size} window grid")
        return self.all_centres()[flat_peaks(maps)]


def flat_peaks(maps) -> np.ndarray:
    """(...) row-major index of each (..., h', w') map's argmax window (the first on ties)."""
    arr = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    return arr.reshape(*arr.shape[:-2], -1).argmax(-1)


def peak_windows(maps) -> np.ndarray:
    """(..., 2) int (row, col) of each (..., h', w') map's argmax window."""
    flat = flat_peaks(maps)
    return np.stack(np.divmod(flat, maps.shape[-1]), axis=-1)
