"""Attention-map drawing: window geometry, image handling, and the figures' layout."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ssn3dlib.attention_plots import (
    attention_grid,
    extent_from_centres,
    overlay_map,
    parts_on_image,
    single_map_figure,
    to_display_image,
    window_centres,
)
from ssn3dlib.figures import new_figure
from ssn3dlib.models import keypoints_to_windows


@pytest.mark.parametrize("image_size, feature_size, window, padding", [
    ((128, 64), (16, 8), 3, 0),      # the pedestrian study: stride 8, valid windows
    ((120, 60), (15, 8), 3, 0),      # the paper's 60 x 120 crops (width rounds up)
    ((16, 16), (16, 16), 3, 1),      # no backbone, padded windows
    ((120, 160), (120, 160), 19, 0),  # Amber Abstract's raw-pixel windows
])
def test_window_centres_invert_keypoints_to_windows(image_size, feature_size, window, padding):
    gh = feature_size[0] + 2 * padding - window + 1
    gw = feature_size[1] + 2 * padding - window + 1
    ys, xs = window_centres((gh, gw), image_size, feature_size, window, padding)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    xy = torch.tensor(np.stack([xx, yy], -1), dtype=torch.float32).reshape(1, -1, 2)
    windows, _ = keypoints_to_windows(xy, torch.ones(1, xy.shape[1], dtype=torch.bool), image_size,
                                      feature_size, window, padding)
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    np.testing.assert_array_equal(windows[0, :, 0].numpy(), rows.ravel())
    np.testing.assert_array_equal(windows[0, :, 1].numpy(), cols.ravel())


def test_window_centres_at_stride_8_by_hand():
    ys, xs = window_centres((14, 6), (128, 64), (16, 8), 3, 0)
    # window 0 is centred on feature cell 1, which covers pixels 8..15: centre 11.5
    assert xs[0] == pytest.approx(11.5) and ys[0] == pytest.approx(11.5)
    assert xs[-1] == pytest.approx(51.5) and ys[-1] == pytest.approx(115.5)


def test_window_centres_refuse_a_grid_of_another_map():
    with pytest.raises(ValueError, match="not the window grid"):
        window_centres((16, 8), (128, 64), (16, 8), 3, 0)


def test_extent_spans_half_a_cell_beyond_the_outer_centres():
    left, right, bottom, top = extent_from_centres(np.array([11.5, 19.5, 27.5]), np.array([11.5, 19.5]))
    assert (left, right, bottom, top) == (7.5, 23.5, 31.5, 7.5)


def test_display_image_accepts_chw_tensors_and_uint8_and_refuses_normalised_input():
    chw = torch.rand(3, 8, 4)
    out = to_display_image(chw)
    assert out.shape == (8, 4, 3)
    np.testing.assert_allclose(out[..., 1], chw[1].numpy())
    assert to_display_image(np.full((8, 4, 3), 255, np.uint8)).max() == 1.0
    with pytest.raises(ValueError, match="normalisation"):
        to_display_image(torch.randn(3, 8, 4) * 3)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_display_image(np.zeros((8, 4)))


def test_overlay_places_the_map_at_its_extent():
    fig, ax = new_figure(2, 3)
    overlay_map(ax, torch.rand(3, 128, 64), np.random.rand(14, 6), extent=(7.5, 55.5, 119.5, 7.5))
    assert ax.images[1].get_extent() == [7.5, 55.5, 119.5, 7.5]
    assert ax.get_xlim() == (-0.5, 63.5)  # the whole image stays in view
    plt.close(fig)


def test_attention_grid_layout_and_argument_checks():
    images = [torch.rand(3, 32, 16) for _ in range(3)]
    maps = [np.random.rand(4, 6, 2) for _ in range(3)]
    fig = attention_grid(images, maps, ["a", "b", "c", "d"], titles=["x", "y", "z"],
                         keypoints=[np.full((4, 2), np.nan)] * 3, peaks=[np.zeros((4, 2))] * 3)
    assert len(fig.axes) == 5 * 3
    assert fig.axes[3].get_ylabel() == "a"  # row 1, column 0: the first part
    plt.close(fig)
    with pytest.raises(ValueError, match="part names"):
        attention_grid(images, maps, ["a", "b"])
    with pytest.raises(ValueError, match="one maps array per image"):
        attention_grid(images, maps[:2], ["a", "b", "c", "d"])


def test_parts_on_image_finds_each_maps_peak_and_draws_its_window():
    maps = np.zeros((3, 14, 6))
    cells = [(0, 0), (7, 3), (13, 5)]
    for i, (r, c) in enumerate(cells):
        maps[i, r, c] = 1.0
    ys, xs = window_centres((14, 6), (128, 64), (16, 8))
    fig, ax = new_figure(2, 3)
    peaks = parts_on_image(ax, torch.rand(3, 128, 64), maps, ["p", "q", "r"], extent_from_centres(ys, xs),
                           window_size=24)
    np.testing.assert_allclose(peaks, [[xs[c], ys[r]] for r, c in cells])
    assert len(ax.patches) == 3 and ax.patches[1].get_width() == 24
    plt.close(fig)


def test_single_map_figure_has_one_panel_with_its_title():
    fig = single_map_figure(torch.rand(3, 32, 16), np.random.rand(6, 2), "head", keypoint=(3, 4), peak=(5, 6))
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "head"
    plt.close(fig)
