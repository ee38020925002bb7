"""Attention maps drawn on their images: reusable by any study or explorer.

Inputs are generic: an image (tensor or array, (3, H, W) or (H, W, 3), floats in 0..1 or
uint8), attention maps (N, h, w) over a grid of window positions, and part names. Where a
map cell lies on the image is given by an ``extent`` (left, right, bottom, top) in image
pixels; ``window_centres`` computes it for an SSN's window grid.

Geometry (the inverse of ``ssn3dlib.models.ssn.keypoints_to_windows``): window (r, c) of
a k x k grid with padding p over a feature map of (h_f, w_f) is centred on feature cell
(r + (k-1)/2 - p, c + (k-1)/2 - p); feature cell j covers image pixels
[j * s, (j+1) * s) with s = image size / feature size (the backbone stride), so its centre
is pixel coordinate (j + 0.5) * s - 0.5, in the convention where pixel i's centre is i.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.patches import Rectangle

from .figures import new_figure

Extent = Tuple[float, float, float, float]


def window_centres(grid_size: Sequence[int], image_size: Sequence[int], feature_size: Sequence[int],
                   window: int = 3, padding: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel (ys, xs) of the centres of the window grid's rows and columns (see module doc)."""
    (gh, gw), (ih, iw), (fh, fw) = grid_size, image_size, feature_size
    if gh != fh + 2 * padding - window + 1 or gw != fw + 2 * padding - window + 1:
        raise ValueError(f"a {gh}x{gw} grid is not the window grid of a {fh}x{fw} feature map with "
                         f"window {window} and padding {padding}")
    offset = (window - 1) / 2 - padding
    ys = (np.arange(gh) + offset + 0.5) * ih / fh - 0.5
    xs = (np.arange(gw) + offset + 0.5) * iw / fw - 0.5
    return ys, xs


def extent_from_centres(ys: np.ndarray, xs: np.ndarray) -> Extent:
    """matplotlib imshow extent (left, right, bottom, top) of a grid with these cell centres."""
    dy = ys[1] - ys[0] if len(ys) > 1 else 1.0
    dx = xs[1] - xs[0] if len(xs) > 1 else 1.0
    return xs[0] - dx / 2, xs[-1] + dx / 2, ys[-1] + dy / 2, ys[0] - dy / 2


def to_display_image(image) -> np.ndarray:
    """(H, W, 3) float array in 0..1 from a tensor/array in (3, H, W) or (H, W, 3)."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if arr.ndim != 3 or 3 not in (arr.shape[0], arr.shape[-1]):
        raise ValueError(f"an image must be (3, H, W) or (H, W, 3), got shape {arr.shape}")
    if arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255
    arr = arr.astype(np.float32)
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise ValueError(f"float images must lie in 0..1 (got {arr.min():.2f}..{arr.max():.2f}); "
                         f"undo the input normalisation before plotting")
    return arr.clip(0, 1)


def _maps_array(maps) -> np.ndarray:
    arr = maps.detach().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"attention maps must be (N, h, w) or (h, w), got shape {arr.shape}")
    return arr


def part_colors(n: int):
    """One distinct colour per part, the same for part i in every figure."""
    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def show_image(ax, image) -> np.ndarray:
    img = to_display_image(image)
    ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    return img


def overlay_map(ax, image, attention, extent: Optional[Extent] = None, alpha: float = 0.55,
                cmap: str = "jet") -> None:
    """One attention map (h, w), scaled to its own maximum, over its image.

    extent: where the map lies in image pixels (default: stretched over the whole image).
    """
    img = show_image(ax, image)
    _draw_map(ax, img, _maps_array(attention)[0], extent, alpha, cmap)


def _draw_map(ax, img: np.ndarray, att: np.ndarray, extent: Optional[Extent], alpha: float, cmap: str) -> None:
    """One map, scaled to its own maximum, over an image already shown on ax."""
    if extent is None:
        extent = (-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5)
    ax.imshow(att / max(att.max(), 1e-12), cmap=cmap, alpha=alpha, vmin=0, vmax=1, extent=extent,
              interpolation="bilinear")
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)


def draw_windows(ax, centres_xy, size: float, colors, labels: Optional[Sequence[str]] = None,
                 linewidth: float = 1.2) -> None:
    """Square windows of side `size` pixels around (x, y) centres, one colour per window."""
    for i, (x, y) in enumerate(np.asarray(centres_xy, dtype=float)):
        ax.add_patch(Rectangle((x - size / 2, y - size / 2), size, size, fill=False,
                               edgecolor=colors[i], linewidth=linewidth,
                               label=None if labels is None else labels[i]))


def draw_points(ax, points_xy, colors, visible=None, marker: str = "o", size: float = 4, edge="white") -> None:
    """Markers at (x, y) points (e.g. keypoints) with an `edge` rim; invisible ones are skipped."""
    pts = np.asarray(points_xy, dtype=float)
    for i, (x, y) in enumerate(pts):
        if (visible is None or visible[i]) and np.isfinite([x, y]).all():
            ax.plot(x, y, marker, ms=size, color=colors[i], mec=edge, mew=0.6)


def attention_grid(images: Sequence, maps: Sequence, part_names: Sequence[str],
                   extent: Optional[Extent] = None, keypoints: Optional[Sequence] = None,
                   peaks: Optional[Sequence] = None, titles: Optional[Sequence[str]] = None,
                   title: str = "", cell: Tuple[float, float] = (0.64, 1.28)):
    """A sheet like the paper's Fig. 4: one column per image, the image on top, then each
    of its N attention maps overlaid (rows named by part).

    images: M images; maps: M arrays (N, h, w); keypoints / peaks: optional M arrays of
    (N, 2) pixel (x, y) (keypoints may hold NaN where invisible), drawn as a dot / a cross.
    titles: one per image (column heads); title: the figure's; cell: (width, height) in
    inches of one panel.
    """
    if len(images) != len(maps) or not len(images):
        raise ValueError(f"need one maps array per image, got {len(images)} images and {len(maps)} maps")
    n = _maps_array(maps[0]).shape[0]
    if len(part_names) != n:
        raise ValueError(f"{len(part_names)} part names for {n} attention maps")
    m = len(images)
    head = 0.3 * bool(titles) + 0.3 * bool(title)  # inches above the panels for the titles
    height = cell[1] * (n + 1) + head
    fig, axes = new_figure(cell[0] * m + 0.6, height, nrows=n + 1, ncols=m, squeeze=False)
    colors = part_colors(n)
    for j in range(m):
        show_image(axes[0, j], images[j])
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=7)
        a = _maps_array(maps[j])
        for i in range(n):
            ax = axes[i + 1, j]
            overlay_map(ax, images[j], a[i], extent)
            if keypoints is not None:
                draw_points(ax, np.asarray(keypoints[j])[i:i + 1], ["white"], size=4)
            if peaks is not None:
                draw_points(ax, np.asarray(peaks[j])[i:i + 1], [colors[i]], marker="x", size=5)
            if j == 0:
                ax.set_ylabel(part_names[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.05 / height)
    fig.subplots_adjust(left=0.6 / (cell[0] * m + 0.6), right=0.99, top=1 - (head + 0.05) / height,
                        bottom=0.01, wspace=0.05, hspace=0.05)
    return fig


def parts_on_image(ax, image, maps, part_names: Sequence[str], extent: Optional[Extent] = None,
                   window_size: Optional[float] = None, levels: int = 3, contours: bool = True,
                   highlight: Optional[int] = None, faint: float = 0.25) -> np.ndarray:
    """All N maps on one image: each map's peak as a dot, its contours (contours=True) and,
    window_size given, the window at its peak as a box, all in the part's colour.
    highlight: one part shown in full (its map overlaid on the image, its contours, a bold
    window) and the others faint (alpha `faint`, no contours), so one part reads at a time.
    Returns the peaks (N, 2) as (x, y)."""
    img = show_image(ax, image)
    a = _maps_array(maps)
    n, gh, gw = a.shape
    if highlight is not None and not 0 <= highlight < n:
        raise ValueError(f"part {highlight} does not exist; the maps have parts 0..{n - 1}")
    if extent is None:
        extent = (-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5)
    if highlight is not None:
        _draw_map(ax, img, a[highlight], extent, alpha=0.5, cmap="jet")
    left, right, bottom, top = extent
    xs = left + (np.arange(gw) + 0.5) * (right - left) / gw
    ys = top + (np.arange(gh) + 0.5) * (bottom - top) / gh
    shown = [highlight is None or i == highlight for i in range(n)]
    colors = [c if full else (*c[:3], faint) for c, full in zip(part_colors(n), shown)]
    peaks = np.zeros((n, 2))
    for i in range(n):
        norm = a[i] / max(a[i].max(), 1e-12)
        if contours and shown[i] and gh > 1 and gw > 1 and norm.min() < 0.5:
            ax.contour(xs, ys, norm, levels=np.linspace(0.5, 0.9, levels), colors=[colors[i]],
                       linewidths=0.8)
        r, c = np.unravel_index(np.argmax(a[i]), a[i].shape)
        peaks[i] = xs[c], ys[r]
    for group, width, edge in (([i for i in range(n) if not shown[i]], 1.0, (1, 1, 1, faint)),
                               ([i for i in range(n) if shown[i]], 1.2 if highlight is None else 2.2, "white")):
        draw_points(ax, peaks[group], [colors[i] for i in group], size=3.5, edge=edge)
        if window_size is not None:
            draw_windows(ax, peaks[group], window_size, [colors[i] for i in group],
                         labels=[part_names[i] for i in group], linewidth=width)
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    return peaks


def single_map_figure(image, attention, title: str = "", extent: Optional[Extent] = None,
                      keypoint=None, peak=None, size: Tuple[float, float] = (2.4, 4.2)):
    """One image with one attention map (what an interactive picker shows)."""
    fig, ax = new_figure(*size)
    overlay_map(ax, image, attention, extent)
    if keypoint is not None:
        draw_points(ax, [keypoint], ["white"], size=6)
    if peak is not None:
        draw_points(ax, [peak], ["red"], marker="x", size=8)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
