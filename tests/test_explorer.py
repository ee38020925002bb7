"""The attention explorer: a checkpoint's maps over a tracklet, side by side, and its widget."""
import pytest
import torch

from ssn3dlib.engine import load_config, train
from ssn3dlib.explorer import AttentionExplorer, attention_figure, clip_attention, load_run

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


def test_models_without_maps_are_refused(tmp_path, checkpoint):
    from ssn3dlib.engine.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(checkpoint)
    payload["config"]["model"]["name"] = "tp"
    save_checkpoint(tmp_path / "tp.pt", payload)
    with pytest.raises(ValueError, match="no attention maps"):
        load_run(tmp_path / "tp.pt")
