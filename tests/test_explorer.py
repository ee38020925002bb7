"""The attention explorer: a checkpoint's maps over a tracklet, side by side, and its widget."""
import pytest
import torch

from ssn3dlib.data.clip_dataset import read_frame
from ssn3dlib.engine import load_config, train
from ssn3dlib.engine.checkpoint import load_checkpoint, save_checkpoint
from ssn3dlib.explorer import (
    AttentionExplorer,
    attention_figure,
    attention_strip,
    clip_attention,
    frame_maps,
    load_model,
    load_run,
)
from ssn3dlib.studies.toolkit import WindowGrid

TINY = ["train.epochs=1", "train.max_steps_per_epoch=1", "train.eval_every=0", "data.world.num_identities=4",
        "model.num_parts=6", "data.part_set=pedestrian6"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSN3D_CACHE", str(cache))
        result = train(load_config("synthetic_tiny", TINY), tmp_path_factory.mktemp("run"), resume=False,
                       progress=False)
        yield result.paths["last"]


def test_maps_are_distributions_over_the_window_grid(checkpoint):
    run = load_run(checkpoint)
    assert run.part_names == ["head", "hand", "knee1", "knee2", "foot1", "foot2"]
    track = run.dataset.query[0]
    images, maps, extent, window_px = clip_attention(run, track, [0, 1, 2])
    assert images.shape[0] == 3 and images.min() >= 0 and images.max() <= 1
    assert maps.shape[:2] == (3, 6)
    assert torch.allclose(maps.flatten(2).sum(-1), torch.ones(3, 6), atol=1e-5)
    left, right, bottom, top = extent
    assert 0 <= left < right <= images.shape[-1] and 0 <= top < bottom <= images.shape[-2]
    with pytest.raises(ValueError, match="outside tracklet"):
        clip_attention(run, track, [len(track)])


def test_the_window_grid_is_the_models_own(checkpoint):
    run = load_model(checkpoint)
    grid = run.window_grid
    size = tuple(run.config.data.size)
    assert grid == WindowGrid.of(run.model.ssn, run.model.backbone, size)
    # the backbone's real feature map for this input size, not a rounded guess
    assert grid.feature_size == tuple(run.model.backbone(torch.zeros(1, 3, *size)).shape[-2:])
    track = load_run(checkpoint).dataset.query[0]
    images, maps, extent, window_px = clip_attention(run, track, [0, 1])
    assert tuple(maps.shape[-2:]) == grid.size and extent == grid.extent and window_px == grid.window_pixels
    assert torch.equal(frame_maps(run, [read_frame(f) for f in track.frames[:2]]), maps)   # one forward path
    fig = attention_strip(images, maps, 1, extent, "part 1")
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="part 6 does not exist"):
        attention_strip(images, maps, 6, extent)


def test_side_by_side_figure_has_one_row_per_checkpoint(checkpoint):
    a, b = load_run(checkpoint, name="A"), load_run(checkpoint, name="B")
    fig = attention_figure([a, b], "gallery", 0, frames=[0, 1], part=2)
    assert len(fig.axes) == 2 * 4
    assert fig.axes[1].get_title() == "knee1"
    fig = attention_figure([a], "query", 0, frames=[0, 1, 2, 99])   # frames past the end are dropped
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="tracklet 999 outside"):
        attention_figure([a], "query", 999)
    with pytest.raises(ValueError, match="split must be one of"):
        attention_figure([a], "val", 0)


def test_widget_draws_and_redraws(checkpoint):
    run = load_run(checkpoint)
    panel = AttentionExplorer([run], clip_frames=2).widget()
    controls, out = panel.children[1], panel.children[2]
    assert len(out.outputs) == 1
    part = controls.children[2]
    part.value = 1
    assert len(out.outputs) == 1                 # cleared and redrawn, not appended


def _variant(checkpoint, path, **model):
    payload = load_checkpoint(checkpoint)
    payload["config"]["model"].update(model)
    save_checkpoint(path, payload)
    return path


def test_models_without_maps_are_refused(tmp_path, checkpoint):
    with pytest.raises(ValueError, match="no attention maps"):
        load_run(_variant(checkpoint, tmp_path / "tp.pt", name="tp"))
    with pytest.raises(ValueError, match="supervised strategy: its parts come from keypoints"):
        load_model(_variant(checkpoint, tmp_path / "sup.pt", strategy="supervised"))


def test_only_maps_trained_on_keypoints_are_named(tmp_path, checkpoint):
    unsup = load_model(_variant(checkpoint, tmp_path / "unsup.pt", strategy="unsupervised"))
    assert unsup.part_names == [f"part {i}" for i in range(6)]
