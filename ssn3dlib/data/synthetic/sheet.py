"""The overview figure of a synthetic world: identities across cameras, and the
misalignment knob (one tracklet at misalignment 0, 0.5 and 1 with its keypoints)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
import yaml

from ...figures import new_figure, save_figure
from .config import WorldConfig
from .pedestrian import KEYPOINT_NAMES
from .plan import plan_world
from .rendering import RenderedFrame, occluded_frames, render_tracklet

SEVERITIES = (0.0, 0.5, 1.0)
STRIP_FRAMES, STRIP_STEP = 6, 3


def _config(config_or_root: Union[WorldConfig, str, Path]) -> WorldConfig:
    if isinstance(config_or_root, WorldConfig):
        return config_or_root
    path = Path(config_or_root) / "world.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: pass a WorldConfig or the root of a generated world "
                                f"(generate it with generate_world(WorldConfig(...), root))")
    return WorldConfig.from_dict(yaml.safe_load(path.read_text())["config"])


def _show(ax, frame: RenderedFrame, keypoints: bool = False) -> None:
    ax.imshow(frame.image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if keypoints:
        colors = _keypoint_colors()
        for name, (x, y, v) in frame.keypoints.items():
            if v == 1.0:
                ax.plot(x - 0.5, y - 0.5, "o", ms=2.6, color=colors[name], mec="white", mew=0.3)
            elif v == 0.5:  # self-occluded: hollow
                ax.plot(x - 0.5, y - 0.5, "o", ms=2.6, mfc="none", mec=colors[name], mew=0.7)
            else:           # hidden by an occluder or outside the crop
                ax.plot(x - 0.5, y - 0.5, "x", ms=2.4, color=colors[name], mew=0.7)
        h, w = frame.image.shape[:2]
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)


def _keypoint_colors():
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {name: cmap(i % 20) for i, name in enumerate(KEYPOINT_NAMES)}


def _pick_identities(plan, n: int) -> List[int]:
    """Test identities, a look-alike pair first so the sheet shows how close they are."""
    test = set(plan.test_pids)
    chosen: List[int] = []
    for pair in plan.look_alikes:
        if pair["pid"] in test:
            chosen += [pair["look_alike_of"], pair["pid"]]
            break
    chosen += [p for p in plan.test_pids if p not in chosen]
    return chosen[:n]


def _strip_tracklet(plan, n: int):
    """A test tracklet seen from the side (the walk and the jitter both show), preferring one
    whose shown frames get an occluder at misalignment 1 (so the sheet shows occlusions too)."""
    test = [t for t in plan.tracklets if t.split != "train"]
    side = [t for t in test if abs(math.sin(t.yaw)) > 0.7] or test

    def occluded(t):
        return len([f for f in occluded_frames(plan.config, t, 1.0, n_frames=n) if f % STRIP_STEP == 0])

    return max(side, key=lambda t: (0 < occluded(t) < STRIP_FRAMES, t.n_frames, -t.pid))


def _neck_motion(frames: Sequence[RenderedFrame]) -> float:
    """Mean frame-to-frame displacement of the neck keypoint (crop pixels)."""
    xy = np.array([f.keypoints["neck"][:2] for f in frames])
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).mean()) if len(xy) > 1 else 0.0


def world_sheet(config_or_root: Union[WorldConfig, str, Path], path, identities: int = 4) -> Path:
    """Write the overview PNG of a world (a WorldConfig, or the root of a generated world)."""
    config = _config(config_or_root)
    plan = plan_world(config)
    cams = sorted(plan.cameras)
    pids = _pick_identities(plan, identities)
    fig, _ = new_figure(15, 9.6)
    fig.clf()
    left = fig.add_gridspec(len(pids), 2 * len(cams), left=0.06, right=0.37, top=0.9, bottom=0.03,
                            wspace=0.06, hspace=0.12)
    look = {d["pid"]: d for d in plan.look_alikes}
    for r, pid in enumerate(pids):
        for c, camid in enumerate(cams):
            tp = plan.tracklet(pid, camid, 0)
            frames = render_tracklet(plan, tp)
            for j, t in enumerate((0, tp.n_frames // 2)):
                ax = fig.add_subplot(left[r, 2 * c + j])
                _show(ax, frames[t])
                if r == 0:
                    ax.set_title(f"cam {camid}, frame {t}", fontsize=8)
        label = f"id {pid}"
        if pid in look:
            label += f"\nlook-alike of {look[pid]['look_alike_of']}\n({look[pid]['differs_in'].replace('_', ' ')})"
        fig.axes[-2 * len(cams)].set_ylabel(label, fontsize=8)
    n = (STRIP_FRAMES - 1) * STRIP_STEP + 1
    tp = _strip_tracklet(plan, n)
    right = fig.add_gridspec(len(SEVERITIES), STRIP_FRAMES, left=0.42, right=0.99, top=0.9, bottom=0.03,
                             wspace=0.05, hspace=0.16)
    for r, m in enumerate(SEVERITIES):
        frames = render_tracklet(plan, tp, misalignment=m, n_frames=n)
        for j in range(STRIP_FRAMES):
            ax = fig.add_subplot(right[r, j])
            _show(ax, frames[j * STRIP_STEP], keypoints=True)
            if r == 0:
                ax.set_title(f"frame {j * STRIP_STEP}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"misalignment {m:g}\nneck moves {_neck_motion(frames):.1f} px/frame", fontsize=8)
    fig.text(0.06, 0.955, f"Identities across cameras (test split, misalignment {config.misalignment:g})",
             fontsize=11, weight="bold")
    fig.text(0.42, 0.955, f"One tracklet ({tp.name}) at misalignment 0, 0.5 and 1", fontsize=11, weight="bold")
    fig.text(0.42, 0.93, f"seed {config.seed}, {config.num_identities} identities, {config.num_cameras} cameras, "
             f"crop {config.image_size[0]} x {config.image_size[1]}; occlusions rise with misalignment unless set. "
             "Keypoints: dot visible, ring self-occluded, x hidden or outside", fontsize=8)
    out = save_figure(fig, path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out
