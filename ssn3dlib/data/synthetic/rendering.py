"""Rendering crops in memory: one frame, one tracklet, one static crop.

A frame is a scene rendered at SS x the crop resolution; the person's pelvis stays at the
scene centre (walk in place, the background scrolls for side views), and the crop is the
(jittered) box resampled to the crop size with Lanczos, which also anti-aliases; then the
camera's blur, colour cast, exposure, haze and noise. Keypoints are in continuous crop
pixel coordinates: the crop's top-left corner is (0, 0) and pixel (i, j) covers
[i, i+1) x [j, j+1).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import pedestrian as ped
from .backgrounds import _window
from .config import _BOX, _CROPS, _NOISE, _OCCLUSION, WorldConfig, _rng, occlusion_for
from .misalignment import box_track, crop_box
from .occluders import Occluder, _draw_occluder, _sample_occluder, occlusion_run
from .plan import Camera, CropPlan, TrackletPlan, WorldPlan, plan_world


@dataclass
class RenderedFrame:
    """One crop in memory: the image and its keypoints name -> (x, y, visibility)."""

    image: np.ndarray
    keypoints: Dict[str, Tuple[float, float, float]]


@lru_cache(maxsize=16)
def _shadow_mask(width: int, height: int) -> Image.Image:
    """A soft contact shadow (alpha mask) under the feet."""
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((width * 0.15, height * 0.25, width * 0.85, height * 0.75), fill=110)
    return mask.filter(ImageFilter.GaussianBlur(max(1.0, height / 5)))


def render_frame(plan: WorldPlan, pid: int, camid: int, yaw: float, phase: float, bg_offset: float,
                 box: Sequence[float], occluder: Optional[Occluder], t: int,
                 noise_rng: np.random.Generator) -> RenderedFrame:
    """Render the scene, draw the person and any occluder, crop the box, apply the camera."""
    geo, cam, app = plan.geometry, plan.cameras[camid], plan.identities[pid]
    scene = _window(plan.panoramas[camid], bg_offset, geo)
    labels = Image.new("L", scene.size, ped.BACKGROUND)
    s = geo.s_ref * app.height
    ground = geo.hip[1] + ped.ground_depth(app) * s
    sw, sh = int(0.42 * s), int(0.07 * s)
    scene.paste((12, 12, 12), (int(geo.hip[0] - sw / 2), int(ground - sh / 2)), _shadow_mask(sw, sh))
    canvas = ped.Canvas(ImageDraw.Draw(scene), ImageDraw.Draw(labels))
    points = ped.PersonRenderer(app, yaw, geo.hip, s).draw(canvas, ped.walk_pose(phase, app))
    if occluder is not None:
        _draw_occluder(canvas, occluder, t, geo)
    x0, y0, x1, y1 = box
    crop = scene.resize((geo.width, geo.height), Image.LANCZOS, box=(x0, y0, x1, y1))
    crop_labels = np.asarray(labels.resize((geo.width, geo.height), Image.NEAREST, box=(x0, y0, x1, y1)))
    image = _camera_effects(_shade_parts(np.asarray(crop, np.float32), crop_labels), cam, noise_rng)
    kx, ky = geo.width / (x1 - x0), geo.height / (y1 - y0)
    label_at = labels.load()
    keypoints = {}
    for name, (u, v, depth) in points.items():
        x, y = (u - x0) * kx, (v - y0) * ky
        iu = min(max(int(u), 0), geo.scene_w - 1)
        iv = min(max(int(v), 0), geo.scene_h - 1)
        vis = ped.keypoint_visibility(name, label_at[iu, iv], depth)
        if not (0 <= x < geo.width and 0 <= y < geo.height):
            vis = ped.HIDDEN
        keypoints[name] = (x, y, vis)
    return RenderedFrame(image, keypoints)


def _shade_parts(arr: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Flat colours look like cut-outs: darken part boundaries and light the person from above."""
    fg = labels != ped.BACKGROUND
    edge = np.zeros(labels.shape, np.float32)
    for axis in (0, 1):
        diff = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        edge[tuple(lo)] += diff
        edge[tuple(hi)] += diff
    edge = np.minimum(edge, 1.0) * fg
    soft = (edge + 0.5 * (np.roll(edge, 1, 0) + np.roll(edge, -1, 0) + np.roll(edge, 1, 1) + np.roll(edge, -1, 1))) / 3
    rows = np.linspace(1.06, 0.9, labels.shape[0], dtype=np.float32)[:, None]
    factor = np.where(fg, rows * (1 - 0.3 * np.minimum(soft, 1.0)), 1.0)
    return arr * factor[..., None]


def _camera_effects(arr: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Optics and sensor of one camera: blur, colour cast, exposure, haze, per-frame noise."""
    crop = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(cam.blur))
    arr = np.asarray(crop, np.float32)
    flicker = 1 + 0.015 * float(rng.standard_normal())
    arr = arr * (np.asarray(cam.gain, np.float32) * cam.brightness * flicker)
    arr = (arr - 128) * cam.contrast + 128 + cam.haze
    arr = arr + rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(cam.noise)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def render_tracklet(plan: WorldPlan, tp: TrackletPlan, misalignment: Optional[float] = None,
                    occlusion_rate: Optional[float] = None, n_frames: Optional[int] = None) -> List[RenderedFrame]:
    """All frames of one planned tracklet; misalignment/occlusion default to the config's."""
    config, geo = plan.config, plan.geometry
    m = config.misalignment if misalignment is None else float(misalignment)
    if occlusion_rate is None:
        occlusion_rate = occlusion_for(m, config.occlusion_rate)
    n = tp.n_frames if n_frames is None else int(n_frames)
    key = (tp.pid, tp.camid, tp.index)
    boxes = box_track(n, m, _rng(config.seed, _BOX, *key))
    (start, stop), occ_rng = _occlusion(config, tp, n, occlusion_rate)
    occluder = _sample_occluder(occ_rng, geo, plan.identities[tp.pid], tp.scroll, (start + stop - 1) / 2)
    noise = _rng(config.seed, _NOISE, *key)
    app = plan.identities[tp.pid]
    return [render_frame(plan, tp.pid, tp.camid, tp.yaw, tp.phase0 + t * app.cadence, tp.bg_offset + t * tp.scroll,
                         crop_box(geo, boxes[t]), occluder if start <= t < stop else None, t, noise)
            for t in range(n)]


def _occlusion(config: WorldConfig, tp: TrackletPlan, n: int, rate: float):
    rng = _rng(config.seed, _OCCLUSION, tp.pid, tp.camid, tp.index)
    return occlusion_run(n, rate, rng), rng


def occluded_frames(config: WorldConfig, tp: TrackletPlan, misalignment: Optional[float] = None,
                    occlusion_rate: Optional[float] = None, n_frames: Optional[int] = None) -> range:
    """The frames of a tracklet that render_tracklet draws an occluder on."""
    m = config.misalignment if misalignment is None else misalignment
    rate = occlusion_for(m, config.occlusion_rate) if occlusion_rate is None else occlusion_rate
    start, stop = _occlusion(config, tp, tp.n_frames if n_frames is None else n_frames, rate)[0]
    return range(start, stop)


def render_crop(plan: WorldPlan, cp: CropPlan) -> RenderedFrame:
    """One static crop: a single frame under the same box and occlusion rules."""
    config, geo = plan.config, plan.geometry
    rng = _rng(config.seed, _CROPS, 1, cp.index)
    box = box_track(1, config.misalignment, rng)[0]
    occluded = rng.random() < config.effective_occlusion_rate
    occluder = _sample_occluder(rng, geo, plan.identities[cp.pid], 0.0, 0.0)
    return render_frame(plan, cp.pid, cp.camid, cp.yaw, cp.phase, cp.bg_offset, crop_box(geo, box),
                        occluder if occluded else None, 0, rng)


def render_identity_frames(config: WorldConfig, pid: int, camid: int = 1, index: int = 0,
                           misalignment: Optional[float] = None, occlusion_rate: Optional[float] = None,
                           n_frames: Optional[int] = None) -> List[RenderedFrame]:
    """Frames of tracklet (pid, camid, index) of a world, in memory (for notebooks and figures).

    With another `misalignment` the same person, background and gait are shown; only the
    boxes (and, unless occlusion_rate is given, the occlusions) change.
    """
    plan = plan_world(config)
    return render_tracklet(plan, plan.tracklet(pid, camid, index), misalignment, occlusion_rate, n_frames)
