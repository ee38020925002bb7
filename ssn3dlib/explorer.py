"""The attention explorer: a trained SSN3D checkpoint, a dataset, and the N attention maps and
part windows over any tracklet's frames; two checkpoints side by side.

One loader, one forward pass, one window grid, whatever shows the maps:
- `load_model(checkpoint)` rebuilds the model and its run config (refusing a model without
  attention maps, by its capabilities); `load_run` adds the dataset it was trained on;
- `frame_maps` runs frames through the model as at test time; `clip_attention` adds the
  images and the window grid (`LoadedModel.window_grid`, the toolkit's `WindowGrid`);
- `attention_figure(runs, split, tracklet, frames)` returns a matplotlib figure (what the report
  and static notebooks use); `attention_strip` shows one part's map over a clip's frames;
- `AttentionExplorer(runs).widget()` is an ipywidgets panel for JupyterLab (split, identity,
  tracklet, first frame, part) that redraws the same figure.

    from ssn3dlib.explorer import load_run, AttentionExplorer
    a, b = load_run("reports/runs/cpu/benchmark/<run>/checkpoints/best.pt"), load_run("...")
    AttentionExplorer([a, b]).widget()
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from matplotlib.patches import Patch

from . import attention_plots as ap
from .data.clip_dataset import read_frame
from .data.keypoints import PART_SETS
from .data.tracklets import Tracklet, VideoReIDDataset
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform
from .figures import new_figure
from .studies.toolkit.window_grid import WindowGrid

SPLITS = ("query", "gallery", "train")


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint (eval mode, CPU) and its run config."""

    name: str
    model: torch.nn.Module
    config: object            # ssn3dlib.engine.RunConfig

    @property
    def part_names(self) -> List[str]:
        """The parts of data.part_set when the maps were trained against its keypoints; unnamed
        ("part i") when they were not (unsupervised maps are in no particular order)."""
        n = self.config.model.num_parts
        named = self.config.model.capabilities().keypoints_in_training
        names = PART_SETS.get(self.config.data.part_set) if named else None
        return list(names) if names is not None and len(names) == n else [f"part {i}" for i in range(n)]

    @property
    def window_grid(self) -> WindowGrid:
        """Where the SSN's windows lie on an input image of data.size."""
        return WindowGrid.of(self.model.ssn, self.model.backbone, self.config.data.size)


@dataclass
class LoadedRun(LoadedModel):
    """A loaded model and the dataset it was trained on."""

    dataset: Optional[VideoReIDDataset] = None

    def tracklets(self, split: str) -> List[Tracklet]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self.dataset, split)


def load_model(checkpoint: Union[str, Path], name: Optional[str] = None,
               dataset_root: Optional[str] = None) -> LoadedModel:
    """Rebuild the model of an engine checkpoint (on CPU, eval mode) with its run config; refuses
    a model whose capabilities include no attention maps.

    dataset_root overrides the config's data.root (e.g. the dataset lives elsewhere on this machine).
    """
    from .engine.build import build_model
    from .engine.checkpoint import load_checkpoint, unwrap
    from .engine.config import load_config

    payload = load_checkpoint(checkpoint)
    config = load_config(payload["config"], [f"data.root={dataset_root}"] if dataset_root else [])
    caps = config.model.capabilities()
    if not caps.attention_maps:
        if caps.ssn:
            raise ValueError(f"{checkpoint} was trained with the {config.model.strategy} strategy: its parts come "
                             f"from keypoints, not attention maps, so there is nothing to explore")
        raise ValueError(f"{checkpoint} holds a {config.model.name!r} model, which has no attention maps; "
                         f"the explorer shows SSN3D checkpoints")
    model = build_model(config)
    unwrap(model).load_state_dict(payload["model"])
    model.eval()
    label = name or f"{Path(checkpoint).parent.parent.name}/{Path(checkpoint).name}"
    return LoadedModel(label, model, config)


def load_run(checkpoint: Union[str, Path], name: Optional[str] = None, dataset_root: Optional[str] = None,
             progress: bool = False) -> LoadedRun:
    """`load_model` and the dataset the checkpoint was trained on."""
    from .engine.build import prepare_dataset

    loaded = load_model(checkpoint, name, dataset_root)
    return LoadedRun(loaded.name, loaded.model, loaded.config,
                     prepare_dataset(loaded.config.data, progress=progress))


def _forward(loaded: LoadedModel, frames: Sequence[torch.Tensor]):
    """(clip (T, 3, H, W) as the model saw it, maps (T, N, h', w')) of uint8 frames (3, h, w)."""
    clip = ClipTransform.test(tuple(loaded.config.data.size)).apply(list(frames))
    with torch.no_grad():
        maps = loaded.model(clip[None]).maps[0]
    grid = loaded.window_grid
    if tuple(maps.shape[-2:]) != grid.size:
        raise ValueError(f"{loaded.name}: maps over a {tuple(maps.shape[-2:])} grid, but the model's window "
                         f"grid for {tuple(loaded.config.data.size)} inputs is {grid.size}")
    return clip, maps


def frame_maps(loaded: LoadedModel, frames: Sequence[torch.Tensor]) -> torch.Tensor:
    """(T, N, h', w') attention maps of uint8 frames (3, h, w), through the model as one clip,
    preprocessed as at test time. With a shared classifier a frame's maps do not depend on
    the other frames of the clip, so any frames may go through together."""
    return _forward(loaded, frames)[1]


def _display(clip: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (clip * std + mean).clamp(0, 1)


def clip_attention(run: LoadedModel, tracklet: Tracklet, frames: Sequence[int]):
    """Images (T, 3, H, W) in 0..1, maps (T, N, h, w), the plot extent of the window grid and
    the side of one window in pixels, for the given frame indices of one tracklet (one clip
    through the model)."""
    frames = list(frames)
    if not frames or max(frames) >= len(tracklet) or min(frames) < 0:
        raise ValueError(f"frames {frames} outside tracklet {tracklet.name} of {len(tracklet)} frames")
    clip, maps = _forward(run, [read_frame(tracklet.frames[i]) for i in frames])
    grid = run.window_grid
    return _display(clip), maps, grid.extent, grid.window_pixels


def attention_figure(runs: Sequence[LoadedRun], split: str = "query", tracklet: int = 0,
                     frames: Sequence[int] = (0, 1, 2, 3), part: Optional[int] = None,
                     cell=(1.3, 2.4)):
    """One row per checkpoint. Each row shows, for every frame, the part windows at the maps'
    peaks over the frame; with `part` given, that part's map is also overlaid on each frame.
    The same tracklet index of the same split is used for every run (runs must share a dataset
    for a side-by-side comparison to mean anything: checked by tracklet name)."""
    if not runs:
        raise ValueError("give at least one loaded run")
    tracks = [r.tracklets(split) for r in runs]
    if not 0 <= tracklet < len(tracks[0]):
        raise ValueError(f"tracklet {tracklet} outside the {len(tracks[0])} {split} tracklets")
    names = {t[tracklet].name for t in tracks}
    if len(names) > 1:
        raise ValueError(f"the runs index different tracklets ({sorted(names)}): compare runs on one dataset")
    frames = [f for f in frames if f < len(tracks[0][tracklet])] or [0]
    cols = len(frames) * (2 if part is not None else 1)
    fig, axes = new_figure(max(6.0, cell[0] * cols + 0.8), cell[1] * len(runs) + 0.9, nrows=len(runs),
                           ncols=cols, squeeze=False)
    for row, run in enumerate(runs):
        track = tracks[row][tracklet]
        images, maps, extent, window_px = clip_attention(run, track, frames)
        for j, f in enumerate(frames):
            ax = axes[row, j * (2 if part is not None else 1)]
            ap.parts_on_image(ax, images[j], maps[j], run.part_names, extent, window_size=window_px)
            ax.set_title(f"frame {f}", fontsize=7)
            if j == 0:
                ax.set_ylabel(run.name if len(run.name) <= 28 else run.name[:12] + "…" + run.name[-14:], fontsize=6)
            if part is not None:
                ap.overlay_map(axes[row, 2 * j + 1], images[j], maps[j, part], extent)
                axes[row, 2 * j + 1].set_title(run.part_names[part], fontsize=7)
    colors = ap.part_colors(len(runs[0].part_names))
    handles = [Patch(color=c, label=n) for c, n in zip(colors, runs[0].part_names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=6, frameon=False)
    fig.suptitle(f"{split} tracklet {tracks[0][tracklet].name} (pid {tracks[0][tracklet].pid}, "
                 f"camera {tracks[0][tracklet].camid})", fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.9, bottom=0.16, wspace=0.05, hspace=0.15)
    return fig


def attention_strip(images, maps, part: int, extent, title: str = "", cell=(0.9, 1.8)):
    """One part's attention map over each frame of a clip (images and maps as `clip_attention`
    returns them): does it follow the body as the box moves?"""
    if not 0 <= part < maps.shape[1]:
        raise ValueError(f"part {part} does not exist; the model has parts 0..{maps.shape[1] - 1}")
    n = len(images)
    fig, axes = new_figure(cell[0] * n + 0.4, cell[1] + 0.5, ncols=n, squeeze=False)
    for t in range(n):
        ap.overlay_map(axes[0, t], images[t], maps[t, part], extent)
        axes[0, t].set_title(f"frame {t}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.02, wspace=0.05)
    return fig


def show_figure(out, fig) -> None:
    """Replace an ipywidgets Output's content by `fig` as PNG bytes (renders whatever the
    matplotlib backend, in JupyterLab and outside a kernel alike) and close the figure."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    out.outputs = ()
    out.append_display_data(Image(data=buffer.getvalue()))


class AttentionExplorer:
    """ipywidgets panel over `attention_figure`: split, identity, tracklet, first frame, part."""

    def __init__(self, runs: Sequence[LoadedRun], clip_frames: int = 4):
        self.runs = list(runs)
        self.clip_frames = clip_frames

    def _tracklet_options(self, split: str, pid: int):
        return [(f"{t.name} (camera {t.camid}, {len(t)} frames)", i)
                for i, t in enumerate(self.runs[0].tracklets(split)) if t.pid == pid]

    def widget(self):
        import ipywidgets as w

        split = w.Dropdown(options=list(SPLITS), value="query", description="split")
        pid = w.Dropdown(description="identity")
        track = w.Dropdown(description="tracklet")
        start = w.IntSlider(value=0, min=0, max=0, description="first frame")
        parts = [(n, i) for i, n in enumerate(self.runs[0].part_names)]
        part = w.Dropdown(options=[("all (windows only)", -1)] + parts, value=-1, description="part")
        out = w.Output()

        def fill_pids(*_):
            pids = sorted({t.pid for t in self.runs[0].tracklets(split.value)})
            pid.options = pids
            pid.value = pids[0]

        def fill_tracks(*_):
            track.options = self._tracklet_options(split.value, pid.value)
            track.value = track.options[0][1]

        def redraw(*_):
            if track.value is None:
                return
            n = len(self.runs[0].tracklets(split.value)[track.value])
            start.max = max(0, n - 1)
            frames = list(range(start.value, min(n, start.value + self.clip_frames)))
            show_figure(out, attention_figure(self.runs, split.value, track.value, frames,
                                              None if part.value < 0 else part.value))

        split.observe(fill_pids, "value")
        pid.observe(fill_tracks, "value")
        for control in (track, start, part):
            control.observe(redraw, "value")
        fill_pids()
        fill_tracks()
        redraw()
        return w.VBox([w.HBox([split, pid]), w.HBox([track, start, part]), out])
