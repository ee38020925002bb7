"""The attention explorer: a trained SSN3D checkpoint, a dataset, and the N attention maps and
part windows over any tracklet's frames; two checkpoints side by side.

Two faces, one code path:
- `attention_figure(runs, split, tracklet, frames)` returns a matplotlib figure (what the report
  and static notebooks use);
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

SPLITS = ("query", "gallery", "train")


@dataclass
class LoadedRun:
    """A model rebuilt from a checkpoint, its run config and its dataset."""

    name: str
    model: torch.nn.Module
    config: object            # ssn3dlib.engine.RunConfig
    dataset: VideoReIDDataset

    @property
    def part_names(self) -> List[str]:
        n = self.config.model.num_parts
        for names in PART_SETS.values():
            if len(names) == n:
                return list(names)
        return [f"part {i + 1}" for i in range(n)]

    def tracklets(self, split: str) -> List[Tracklet]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self.dataset, split)


def load_run(checkpoint: Union[str, Path], name: Optional[str] = None, dataset_root: Optional[str] = None,
             progress: bool = False) -> LoadedRun:
    """Rebuild the model of an engine checkpoint (on CPU) and read the dataset it was trained on.

    dataset_root overrides the config's data.root (e.g. the dataset lives elsewhere on this machine).
    """
    from .engine.build import build_model, prepare_dataset
    from .engine.checkpoint import load_checkpoint, unwrap
    from .engine.config import load_config

    payload = load_checkpoint(checkpoint)
    config = load_config(payload["config"], [f"data.root={dataset_root}"] if dataset_root else [])
    if config.model.name != "ssn3d":
        raise ValueError(f"{checkpoint} holds a {config.model.name!r} model, which has no attention maps; "
                         f"the explorer shows SSN3D checkpoints")
    if config.model.strategy == "supervised":
        raise ValueError(f"{checkpoint} was trained with the supervised strategy: its parts come from "
                         f"keypoints, not attention maps, so there is nothing to explore")
    model = build_model(config)
    unwrap(model).load_state_dict(payload["model"])
    model.eval()
    dataset = prepare_dataset(config.data, progress=progress)
    label = name or f"{Path(checkpoint).parent.parent.name}/{Path(checkpoint).name}"
    return LoadedRun(label, model, config, dataset)


def _display(clip: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (clip * std + mean).clamp(0, 1)


@torch.no_grad()
def clip_attention(run: LoadedRun, tracklet: Tracklet, frames: Sequence[int]):
    """Images (T, 3, H, W) in 0..1, maps (T, N, h, w) and the plot extent of the window grid
    for the given frame indices of one tracklet (one clip through the model)."""
    if not frames or max(frames) >= len(tracklet) or min(frames) < 0:
        raise ValueError(f"frames {list(frames)} outside tracklet {tracklet.name} of {len(tracklet)} frames")
    transform = ClipTransform.test(tuple(run.config.data.size))
    clip = transform.apply([read_frame(tracklet.frames[i]) for i in frames])
    out = run.model(clip[None])
    maps = out.maps[0]                                           # (T, N, gh, gw)
    feature_size = run.model.backbone(clip[:1]).shape[-2:]
    ys, xs = ap.window_centres(maps.shape[-2:], clip.shape[-2:], feature_size,
                               run.config.model.window, run.config.model.padding)
    window_px = run.config.model.window * clip.shape[-1] / feature_size[-1]
    return _display(clip), maps, ap.extent_from_centres(ys, xs), window_px


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
        import matplotlib.pyplot as plt

        split = w.Dropdown(options=list(SPLITS), value="query", description="split")
        pid = w.Dropdown(description="identity")
        track = w.Dropdown(description="tracklet")
        start = w.IntSlider(value=0, min=0, max=0, description="first frame")
        part = w.Dropdown(options=[("all (windows only)", -1)] + [(n, i) for i, n in enumerate(self.runs[0].part_names)],
                          value=-1, description="part")
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
            fig = attention_figure(self.runs, split.value, track.value, frames,
                                   None if part.value < 0 else part.value)
            # Replace the output's content directly: works in JupyterLab and outside a kernel alike.
            out.outputs = ()
            out.append_display_data(fig)
            plt.close(fig)

        split.observe(fill_pids, "value")
        pid.observe(fill_tracks, "value")
        for control in (track, start, part):
            control.observe(redraw, "value")
        fill_pids()
        fill_tracks()
        redraw()
        return w.VBox([w.HBox([split, pid]), w.HBox([track, start, part]), out])
