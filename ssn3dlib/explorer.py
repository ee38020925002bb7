"""The attention explorer: a trained SSN3D checkpoint, a dataset, and the N attention maps and
part windows over any tracklet's frames; two checkpoints side by side.

One loader, one forward pass, one window grid, whatever shows the maps:
- `load_model(checkpoint)` rebuilds the model and its run config (refusing a model without
  attention maps, by its capabilities); `load_run` adds the dataset it was trained on;
- `frame_maps` runs frames through the model as at test time; `clip_attention` adds the
  images and the window grid (`LoadedModel.window_grid`, the toolkit's `WindowGrid`);
- `attention_figure(runs, split, tracklet, frames, part)` returns a matplotlib figure (what the
  report and static notebooks use): one row per run, named in words (model, strategy, dataset,
  seed), one part highlighted at a time with the others faint; `attention_strip` shows one
  part's map over a clip's frames;
- `AttentionExplorer(runs).widget()` is an ipywidgets panel for JupyterLab (split, identity,
  tracklet, first frame, part) whose controls and figure are both views of one `ExplorerState`:
  every change goes through `AttentionExplorer.set`, which makes the state consistent and redraws.

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
    name labels its figure rows; by default the run in words (model, strategy, dataset, seed:
    `engine.evaluator.run_title`).
    """
    from .engine.build import build_model
    from .engine.checkpoint import load_checkpoint, unwrap
    from .engine.config import load_config
    from .engine.evaluator import run_title

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
    return LoadedModel(name or run_title(config), model, config)


def load_run(checkpoint: Union[str, Path], name: Optional[str] = None, dataset_root: Optional[str] = None,
             progress: bool = False, dataset: Optional[VideoReIDDataset] = None) -> LoadedRun:
    """`load_model` and the dataset the checkpoint was trained on, or `dataset`: other tracklets to
    look at through the same model (e.g. real video, ``data.mot.tracklet_dataset``)."""
    from .engine.build import prepare_dataset

    loaded = load_model(checkpoint, name, dataset_root)
    if dataset is None:
        dataset = prepare_dataset(loaded.config.data, progress=progress)
    return LoadedRun(loaded.name, loaded.model, loaded.config, dataset)


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


def row_labels(runs: Sequence[LoadedModel]) -> List[str]:
    """Each run's name, one part per line (" · " separates model, dataset and seed); runs whose
    names coincide are numbered, so two rows are always told apart."""
    names = [r.name for r in runs]
    labels = [n.replace(" · ", "\n") for n in names]
    return [f"{label}\n(run {i + 1})" if names.count(names[i]) > 1 else label for i, label in enumerate(labels)]


def attention_figure(runs: Sequence[LoadedRun], split: str = "query", tracklet: int = 0,
                     frames: Sequence[int] = (0, 1, 2, 3), part: Optional[int] = None, width: float = 1.7):
    """One row per checkpoint (labelled in words, see `row_labels`), one panel per frame: the
    part windows at the maps' peaks over the frame; with `part` given, that part's map is
    overlaid and its window drawn bold while the other parts are faint. Panels are `width`
    inches wide, their height follows the input size, and the margins are fixed in inches
    (no dead space). The same tracklet index of the same split is used for every run (runs must
    share a dataset for a side-by-side comparison to mean anything: checked by tracklet name)."""
    if not runs:
        raise ValueError("give at least one loaded run")
    tracks = [r.tracklets(split) for r in runs]
    if not 0 <= tracklet < len(tracks[0]):
        raise ValueError(f"tracklet {tracklet} outside the {len(tracks[0])} {split} tracklets")
    names = {t[tracklet].name for t in tracks}
    if len(names) > 1:
        raise ValueError(f"the runs index different tracklets ({sorted(names)}): compare runs on one dataset")
    parts = runs[0].part_names
    if part is not None and not 0 <= part < len(parts):
        raise ValueError(f"part {part} does not exist; the model has parts 0..{len(parts) - 1}")
    frames = [f for f in frames if f < len(tracks[0][tracklet])] or [0]
    h, w = runs[0].config.data.size
    panel_h, title_h = width * h / w, 0.22                    # inches: one image, its frame title
    left, head, foot = 0.55, 0.32, 0.3                          # row labels, figure title, legend
    fig_w, fig_h = left + width * len(frames) + 0.05, head + (panel_h + title_h) * len(runs) + foot
    fig, axes = new_figure(fig_w, fig_h, nrows=len(runs), ncols=len(frames), squeeze=False)
    for row, (run, label) in enumerate(zip(runs, row_labels(runs))):
        images, maps, extent, window_px = clip_attention(run, tracks[row][tracklet], frames)
        for j, f in enumerate(frames):
            ax = axes[row, j]
            ap.parts_on_image(ax, images[j], maps[j], run.part_names, extent, window_size=window_px,
                              contours=part is not None, highlight=part)
            ax.set_title(f"frame {f}", fontsize=7, pad=2)
        axes[row, 0].set_ylabel(label, fontsize=7)
    colors = ap.part_colors(len(parts))
    handles = [Patch(color=c if part in (None, i) else (*c[:3], 0.25), label=n)
               for i, (c, n) in enumerate(zip(colors, parts))]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 9), fontsize=6, frameon=False,
               handlelength=1.0, columnspacing=0.8, bbox_to_anchor=(0.5, 0.0))
    t = tracks[0][tracklet]
    shown = "all parts' windows" if part is None else f"part {parts[part]!r} (others faint)"
    fig.suptitle(f"{split} tracklet {t.name} (pid {t.pid}, camera {t.camid}): {shown}", fontsize=8,
                 y=1 - 0.06 / fig_h)
    fig.subplots_adjust(left=left / fig_w, right=1 - 0.05 / fig_w, top=1 - (head + title_h) / fig_h,
                        bottom=foot / fig_h, wspace=0.04, hspace=title_h / panel_h)
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


@dataclass
class ExplorerState:
    """What the explorer shows; the controls are a view of it, and so is the figure."""

    split: str = "query"
    pid: Optional[int] = None
    tracklet: Optional[int] = None       # index into the split's tracklets
    start: int = 0                       # first frame
    part: Optional[int] = None           # highlighted part; None: all parts' windows


class AttentionExplorer:
    """ipywidgets panel over `attention_figure`: split, identity, tracklet, first frame, part.

    Every control change goes through one place (`set`): the state is updated, whatever depends
    on the changed value is made consistent (a new split chooses its first identity, a new
    identity its first tracklet, a shorter tracklet clamps the first frame), the controls are
    rewritten from the state and the figure is redrawn from it, always, also when a dependent
    value happens to stay equal. `drawn` records the state the figure shows."""

    def __init__(self, runs: Sequence[LoadedRun], clip_frames: int = 4, width: float = 1.7):
        self.runs = list(runs)
        self.clip_frames = clip_frames
        self.width = width
        # the splits that hold tracklets (real video has no gallery or training set)
        self.splits = [s for s in SPLITS if self.runs[0].tracklets(s)]
        if not self.splits:
            raise ValueError(f"{self.runs[0].name}: its dataset has no tracklet in any split; nothing to show")
        self.state = ExplorerState(split=self.splits[0])
        self.drawn: Optional[ExplorerState] = None
        self.controls = {}
        self.output = None
        self._syncing = False

    # ------------------------------------------------------------------ state
    def _tracklets(self, split: str) -> List[Tracklet]:
        return self.runs[0].tracklets(split)

    def pids(self, split: str) -> List[int]:
        return sorted({t.pid for t in self._tracklets(split)})

    def tracklet_options(self, split: str, pid: int):
        return [(f"{t.name} (camera {t.camid}, {len(t)} frames)", i)
                for i, t in enumerate(self._tracklets(split)) if t.pid == pid]

    def frames(self) -> List[int]:
        n = len(self._tracklets(self.state.split)[self.state.tracklet])
        return list(range(self.state.start, min(n, self.state.start + self.clip_frames)))

    def set(self, **changes) -> None:
        """Change the state (split, pid, tracklet, start, part), make it consistent, show it."""
        s = self.state
        unknown = set(changes) - set(vars(s))
        if unknown:
            raise ValueError(f"unknown explorer setting(s) {sorted(unknown)}; use {sorted(vars(s))}")
        for key, value in changes.items():
            setattr(s, key, value)
        if s.split not in self.splits:
            raise ValueError(f"split must be one of {self.splits} (those with tracklets), got {s.split!r}")
        pids = self.pids(s.split)
        if "split" in changes and "pid" not in changes or s.pid not in pids:
            s.pid = pids[0]
        options = [i for _, i in self.tracklet_options(s.split, s.pid)]
        if {"split", "pid"} & set(changes) and "tracklet" not in changes or s.tracklet not in options:
            s.tracklet = options[0]
        if {"split", "pid", "tracklet"} & set(changes) and "start" not in changes:
            s.start = 0
        s.start = max(0, min(s.start, len(self._tracklets(s.split)[s.tracklet]) - 1))
        self._show_controls()
        self.redraw()

    def figure(self):
        s = self.state
        return attention_figure(self.runs, s.split, s.tracklet, self.frames(), s.part, width=self.width)

    def redraw(self) -> None:
        if self.output is not None:
            show_figure(self.output, self.figure())
            self.drawn = ExplorerState(**vars(self.state))

    # ------------------------------------------------------------------ widgets
    def _show_controls(self) -> None:
        """Write the state into the controls without their events coming back into `set`."""
        if not self.controls:
            return
        s, c = self.state, self.controls
        self._syncing = True
        try:
            c["split"].value = s.split
            c["pid"].options = self.pids(s.split)
            c["pid"].value = s.pid
            c["tracklet"].options = self.tracklet_options(s.split, s.pid)
            c["tracklet"].value = s.tracklet
            c["start"].max = len(self._tracklets(s.split)[s.tracklet]) - 1
            c["start"].value = s.start
            c["part"].value = -1 if s.part is None else s.part
        finally:
            self._syncing = False

    def _on_change(self, key: str):
        def handler(change):
            if self._syncing:
                return
            value = change["new"]
            self.set(**{key: None if key == "part" and value < 0 else value})
        return handler

    def widget(self):
        import ipywidgets as w

        wide = w.Layout(width="32em")   # room for "<name> (camera C, N frames)" without cutting it
        style = {"description_width": "5.5em"}
        parts = [(n, i) for i, n in enumerate(self.runs[0].part_names)]
        self.controls = {
            "split": w.Dropdown(options=list(self.splits), description="split", style=style),
            "pid": w.Dropdown(description="identity", style=style),
            "tracklet": w.Dropdown(description="tracklet", layout=wide, style=style),
            "start": w.IntSlider(min=0, max=0, description="first frame", style=style),
            "part": w.Dropdown(options=[("all (windows only)", -1)] + parts, value=-1, description="part",
                               style=style),
        }
        self.output = w.Output()
        for key, control in self.controls.items():
            control.observe(self._on_change(key), "value")
        self.set(split=self.state.split)
        c = self.controls
        return w.VBox([w.HBox([c["split"], c["pid"], c["part"]]), w.HBox([c["tracklet"], c["start"]]), self.output])
