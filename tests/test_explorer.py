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
    row_labels,
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
    assert len(fig.axes) == 2 * 2                      # one panel per frame: the map lies under the windows
    assert "part 'knee1' (others faint)" in fig._suptitle.get_text()
    windows = {p.get_label(): p for p in fig.axes[0].patches}
    assert windows["knee1"].get_linewidth() > windows["head"].get_linewidth()
    assert windows["knee1"].get_edgecolor()[3] == 1.0 and windows["head"].get_edgecolor()[3] < 0.5
    assert len(fig.axes[0].get_images()) == 2          # the frame, and knee1's map over it
    fig = attention_figure([a], "query", 0, frames=[0, 1, 2, 99])   # frames past the end are dropped
    assert len(fig.axes) == 3 and len(fig.axes[0].get_images()) == 1
    assert all(p.get_edgecolor()[3] == 1.0 for p in fig.axes[0].patches)
    with pytest.raises(ValueError, match="tracklet 999 outside"):
        attention_figure([a], "query", 999)
    with pytest.raises(ValueError, match="split must be one of"):
        attention_figure([a], "val", 0)
    with pytest.raises(ValueError, match="part 6 does not exist"):
        attention_figure([a], "query", 0, part=6)


def test_rows_name_their_runs_in_words(tmp_path, checkpoint):
    semi, unsup = load_run(checkpoint), load_run(_variant(checkpoint, tmp_path / "u.pt", strategy="unsupervised"))
    assert semi.name == "SSN3D semi-supervised, λ=0.1 · synthetic world · seed 0"
    fig = attention_figure([semi, unsup], "query", 0, frames=[0])
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["SSN3D semi-supervised, λ=0.1\nsynthetic world\nseed 0",
                      "SSN3D unsupervised, λ=0.1\nsynthetic world\nseed 0"]
    assert row_labels([semi, semi])[1].endswith("(run 2)")   # the same run twice: still told apart


@pytest.fixture
def drawn(monkeypatch):
    """What each redraw put in the widget's output: suptitle, frame titles, part-window widths."""
    import matplotlib.pyplot as plt

    from ssn3dlib import explorer

    figures = []

    def record(out, fig):
        figures.append({"title": fig._suptitle.get_text(), "frames": [ax.get_title() for ax in fig.axes],
                        "bold": sorted({p.get_label() for ax in fig.axes for p in ax.patches
                                        if p.get_linewidth() > 2})})
        plt.close(fig)

    monkeypatch.setattr(explorer, "show_figure", record)
    return figures


def _agree(explorer, figure):
    """The controls, the state and the last figure all show the same thing."""
    s, c = explorer.state, explorer.controls
    track = explorer.runs[0].tracklets(s.split)[s.tracklet]
    assert explorer.drawn == s
    assert (c["split"].value, c["pid"].value, c["tracklet"].value, c["start"].value) == \
        (s.split, s.pid, s.tracklet, s.start)
    assert c["part"].value == (-1 if s.part is None else s.part)
    assert track.pid == s.pid and c["tracklet"].label.startswith(f"{track.name} ")
    assert all(explorer.runs[0].tracklets(s.split)[i].pid == s.pid for _, i in c["tracklet"].options)
    assert c["start"].max == len(track) - 1
    assert figure["title"].startswith(f"{s.split} tracklet {track.name} (pid {track.pid}")
    assert figure["frames"][0] == f"frame {s.start}"
    assert figure["bold"] == ([] if s.part is None else [explorer.runs[0].part_names[s.part]])


def test_every_control_change_redraws_from_one_state(checkpoint, drawn):
    run = load_run(checkpoint)
    explorer = AttentionExplorer([run], clip_frames=2)
    explorer.widget()
    assert len(drawn) == 1
    _agree(explorer, drawn[-1])
    c = explorer.controls
    # the reported bug: query -> gallery with the same first identity and tracklet index
    first = explorer.state
    assert (first.split, first.tracklet) == ("query", 0)
    assert run.dataset.gallery[0].pid == first.pid              # the case: nothing else changes
    c["split"].value = "gallery"
    assert len(drawn) == 2 and explorer.state.split == "gallery"
    _agree(explorer, drawn[-1])
    c["part"].value = 2
    _agree(explorer, drawn[-1])
    assert "gallery tracklet" in drawn[-1]["title"] and len(drawn) == 3
    other = [p for p in c["pid"].options if p != explorer.state.pid][0]
    c["pid"].value = other
    _agree(explorer, drawn[-1])
    c["start"].value = c["start"].max
    assert len(drawn) == 5
    _agree(explorer, drawn[-1])
    c["split"].value = "train"                                   # start resets, part stays
    _agree(explorer, drawn[-1])
    assert explorer.state.start == 0 and explorer.state.part == 2
    c["part"].value = -1
    _agree(explorer, drawn[-1])
    explorer.set(split="query", pid=other if other in explorer.pids("query") else None)
    _agree(explorer, drawn[-1])
    assert len(drawn) == 8                                       # one redraw per change, never more
    with pytest.raises(ValueError, match="unknown explorer setting"):
        explorer.set(frame=3)


def test_widget_draws_and_redraws(checkpoint):
    run = load_run(checkpoint)
    panel = AttentionExplorer([run], clip_frames=2).widget()
    out = panel.children[2]
    assert len(out.outputs) == 1
    before = out.outputs[0]["data"]["image/png"]
    part = panel.children[0].children[2]
    part.value = 1
    assert len(out.outputs) == 1                 # cleared and redrawn, not appended
    assert out.outputs[0]["data"]["image/png"] != before


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


def test_real_video_tracklets_open_in_the_explorer(tmp_path, checkpoint):
    from ssn3dlib.data import mot
    from ssn3dlib.data.layout import DatasetLayoutError

    from data_fixtures import build_mot

    frames = [[(1, 4, 2, 10, 50, 1.0), (2, 30, 5, 12, 60, 1.0)] for _ in range(3)]
    root = build_mot(tmp_path / "mot", {"SEQ-A": frames}, size=(64, 70))
    video = mot.tracklet_dataset(root, tmp_path / "crops")
    assert [(t.pid, len(t)) for t in video.query] == [(0, 3), (1, 3)] and not video.gallery and not video.train
    run = load_run(checkpoint, dataset=video)
    explorer = AttentionExplorer([run], clip_frames=2)
    assert explorer.splits == ["query"] and explorer.state.split == "query"     # no gallery to offer
    explorer.set(pid=1)
    assert explorer.state.tracklet == 1 and explorer.frames() == [0, 1]
    fig = explorer.figure()
    assert fig.axes
    with pytest.raises(ValueError, match="those with tracklets"):
        explorer.set(split="gallery")
    once = build_mot(tmp_path / "once", {"SEQ-B": frames[:1]}, size=(64, 70))   # nobody seen twice
    with pytest.raises(DatasetLayoutError, match="no tracklet to show"):
        mot.tracklet_dataset(once, tmp_path / "crops_once")
