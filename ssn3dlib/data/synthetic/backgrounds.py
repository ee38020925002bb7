"""Camera backgrounds: one wide panorama per camera, and the window a frame sees of it.

A panorama is a street, park, plaza or indoor scene (a wall above the camera's horizon,
a tiled ground below, street furniture sized relative to a person) with low-frequency
shading and grain on top; a frame's background is the scene-sized window at the
tracklet's scroll offset, wrapping around the panorama.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List

import numpy as np
from PIL import Image, ImageDraw

from .config import _CAMERA, Geometry, _rng

if TYPE_CHECKING:  # plan.py imports this module: the Camera annotation only
    from .plan import Camera


def _panorama(seed: int, cam: Camera, geo: Geometry) -> Image.Image:
    """A wide background strip (wall above the horizon, ground below) for one camera."""
    rng = _rng(seed, _CAMERA, cam.camid, 1)
    w, h, hz = geo.pano_w, geo.scene_h, int(cam.horizon)
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    unit = geo.s_ref  # objects are sized relative to a person
    {"street": _street, "park": _park, "plaza": _plaza, "indoor": _indoor}[cam.scene](draw, rng, w, h, hz, unit)
    return Image.fromarray(_texture(np.asarray(img, np.float32), rng, hz))


def _rgb(rng, base, amount=14):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in base)


def _ground_rows(hz: int, h: int, first: float) -> List[int]:
    """Seam rows that spread out towards the camera (a hint of perspective)."""
    rows, k = [], 1
    while True:
        y = int(hz + first * k ** 1.45)
        if y >= h:
            return rows
        rows.append(y)
        k += 1


def _tiles(draw, rng, w, h, hz, color, seam, first, tile_w):
    draw.rectangle((0, hz, w, h), fill=color)
    rows = [hz] + _ground_rows(hz, h, first)
    for i, y in enumerate(rows):
        draw.line((0, y, w, y), fill=seam, width=1 + (y - hz) // 90)
        y1 = rows[i + 1] if i + 1 < len(rows) else h
        shift = rng.uniform(0, tile_w)
        for x in np.arange(shift, w, tile_w * (1 + (y - hz) / 160)):
            draw.line((x, y, x, y1), fill=seam, width=1 + (y - hz) // 90)


def _lamp_post(draw, rng, x, hz, unit, color=(40, 42, 44)):
    top = hz - unit * rng.uniform(0.9, 1.2)
    draw.rectangle((x - 3, top, x + 3, hz + 6), fill=color)
    draw.rectangle((x - 14, top - 10, x + 14, top + 2), fill=color)
    draw.rectangle((x - 11, top + 2, x + 11, top + 6), fill=(235, 230, 200))


def _bench(draw, rng, x, hz, unit, color):
    seat = hz - unit * 0.18
    draw.rectangle((x, seat - unit * 0.16, x + unit * 0.6, seat - unit * 0.12), fill=color)
    draw.rectangle((x, seat - unit * 0.08, x + unit * 0.6, seat - unit * 0.04), fill=color)
    draw.rectangle((x, seat, x + unit * 0.6, seat + unit * 0.03), fill=color)
    for lx in (x + 6, x + unit * 0.6 - 10):
        draw.rectangle((lx, seat, lx + 4, hz + 4), fill=(50, 50, 52))


def _bin(draw, rng, x, hz, unit):
    color = _rgb(rng, (60, 90, 60) if rng.random() < 0.5 else (70, 70, 74), 20)
    draw.rounded_rectangle((x, hz - unit * 0.28, x + unit * 0.16, hz + 4), radius=6, fill=color)
    draw.rectangle((x - 3, hz - unit * 0.3, x + unit * 0.16 + 3, hz - unit * 0.26), fill=(35, 35, 38))


def _street(draw, rng, w, h, hz, unit):
    facade = _rgb(rng, [(186, 170, 150), (150, 74, 58), (124, 124, 128), (204, 198, 186),
                        (92, 98, 108)][int(rng.integers(5))])
    draw.rectangle((0, 0, w, hz), fill=facade)
    if rng.random() < 0.5:  # bricks
        mortar = tuple(int(c * 0.8) for c in facade)
        for i, y in enumerate(range(hz, -12, -12)):
            draw.line((0, y, w, y), fill=mortar)
            for x in range(-(i % 2) * 13, w, 26):
                draw.line((x, y - 12, x, y), fill=mortar)
    glass, frame = _rgb(rng, (52, 62, 74)), _rgb(rng, (220, 220, 214), 20)
    spacing = int(rng.uniform(0.55, 0.8) * unit)
    for x in range(int(rng.uniform(0, spacing)), w, spacing):
        for top in np.arange(hz - unit * 0.75, -unit * 0.5, -unit * 0.62):
            box = (x, top - unit * 0.34, x + unit * 0.26, top)
            draw.rectangle(box, fill=frame)
            draw.rectangle((box[0] + 4, box[1] + 4, box[2] - 4, box[3] - 4), fill=glass)
            draw.line((box[0] + 6, box[3] - 8, box[2] - 10, box[1] + 8), fill=_rgb(rng, (90, 104, 118)), width=3)
        if rng.random() < 0.25:  # a door
            draw.rectangle((x, hz - unit * 0.5, x + unit * 0.24, hz), fill=_rgb(rng, (70, 50, 36), 20))
    draw.rectangle((0, hz - 8, w, hz + 4), fill=tuple(int(c * 0.6) for c in facade))
    pave = _rgb(rng, (128, 126, 122), 20)
    _tiles(draw, rng, w, h, hz + 4, pave, tuple(int(c * 0.75) for c in pave), 16, unit * 0.35)
    for x in rng.uniform(0, w, 6):
        (_lamp_post if rng.random() < 0.5 else _bin)(draw, rng, x, hz + 10, unit)


def _park(draw, rng, w, h, hz, unit):
    leaves = [_rgb(rng, c, 18) for c in ((46, 74, 38), (66, 98, 48), (34, 56, 32), (88, 112, 58))]
    draw.rectangle((0, 0, w, hz), fill=leaves[2])
    for _ in range(int(w / 18)):  # canopy blobs
        x, y, r = rng.uniform(0, w), rng.uniform(-20, hz - 20), rng.uniform(18, 60)
        draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=leaves[int(rng.integers(4))])
    for x in rng.uniform(0, w, int(w / 160)):  # trunks
        draw.rectangle((x, hz - unit * rng.uniform(0.4, 0.9), x + rng.uniform(8, 16), hz),
                       fill=_rgb(rng, (70, 52, 38)))
    draw.rectangle((0, hz - 30, w, hz + 10), fill=_rgb(rng, (58, 88, 44)))   # hedge
    grass, path = _rgb(rng, (86, 120, 56), 20), _rgb(rng, [(168, 148, 116), (140, 124, 104)][int(rng.integers(2))])
    draw.rectangle((0, hz + 10, w, h), fill=path)
    draw.rectangle((0, hz + 10, w, hz + 10 + unit * 0.12), fill=grass)
    for x in rng.uniform(0, w, 4):
        _bench(draw, rng, x, hz + 8, unit, _rgb(rng, (110, 78, 50), 20))
    for x in rng.uniform(0, w, 3):
        _lamp_post(draw, rng, x, hz + 8, unit)


def _plaza(draw, rng, w, h, hz, unit):
    stone = _rgb(rng, (190, 184, 172), 16)
    draw.rectangle((0, 0, w, hz), fill=stone)
    pillar = int(unit * rng.uniform(0.9, 1.4))
    for x in range(int(rng.uniform(0, pillar)), w, pillar):
        glass = _rgb(rng, (96, 116, 132), 16)
        draw.rectangle((x + 14, hz - unit * 0.95, x + pillar - 14, hz), fill=glass)
        for gx in np.arange(x + 14, x + pillar - 14, unit * 0.3):
            draw.line((gx, hz - unit * 0.95, gx, hz), fill=(60, 66, 72), width=3)
        draw.line((x + 20, hz - 10, x + pillar * 0.6, hz - unit * 0.9), fill=_rgb(rng, (150, 170, 184)), width=6)
        sign = _rgb(rng, [(170, 40, 40), (30, 80, 150), (40, 120, 60), (200, 150, 30)][int(rng.integers(4))], 20)
        draw.rectangle((x + 14, hz - unit * 1.15, x + pillar - 14, hz - unit * 1.02), fill=sign)
    ground = _rgb(rng, (170, 164, 150), 18)
    _tiles(draw, rng, w, h, hz, ground, tuple(int(c * 0.8) for c in ground), 22, unit * 0.55)
    for x in rng.uniform(0, w, 5):  # planters
        draw.rectangle((x, hz - unit * 0.15, x + unit * 0.35, hz + 6), fill=_rgb(rng, (110, 104, 96)))
        draw.ellipse((x - 6, hz - unit * 0.42, x + unit * 0.35 + 6, hz - unit * 0.1), fill=_rgb(rng, (56, 96, 46)))


def _indoor(draw, rng, w, h, hz, unit):
    wall = _rgb(rng, [(214, 206, 184), (190, 204, 206), (216, 196, 190), (200, 200, 200)][int(rng.integers(4))])
    draw.rectangle((0, 0, w, hz), fill=wall)
    for x in rng.uniform(0, w, int(w / 300) + 1):  # doors
        draw.rectangle((x, hz - unit * 0.95, x + unit * 0.42, hz), fill=_rgb(rng, (126, 90, 60), 24))
        draw.ellipse((x + unit * 0.34, hz - unit * 0.5, x + unit * 0.37, hz - unit * 0.47), fill=(200, 190, 120))
    for x in rng.uniform(0, w, int(w / 200) + 1):  # posters
        top = hz - unit * rng.uniform(0.7, 1.1)
        color = _rgb(rng, (150, 120, 110), 90)
        draw.rectangle((x, top, x + unit * 0.3, top + unit * 0.4), fill=color)
        draw.rectangle((x + 8, top + 10, x + unit * 0.3 - 8, top + unit * 0.18), fill=_rgb(rng, (230, 230, 230), 25))
    draw.rectangle((0, hz - 14, w, hz), fill=tuple(int(c * 0.45) for c in wall))  # skirting
    floor = _rgb(rng, (196, 190, 180), 20)
    _tiles(draw, rng, w, h, hz, floor, tuple(int(c * 0.82) for c in floor), 20, unit * 0.45)


def _texture(arr: np.ndarray, rng: np.random.Generator, hz: int) -> np.ndarray:
    """Low-frequency shading and fine grain, stronger on the ground."""
    h, w, _ = arr.shape
    low = rng.normal(0, 1, (max(2, h // 48), max(2, w // 48))).astype(np.float32)
    low = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC))
    arr = arr * (1 + 0.05 * low[..., None])
    grain = rng.normal(0, 1, (h, w, 1)).astype(np.float32)
    strength = np.where(np.arange(h)[:, None, None] >= hz, 9.0, 5.0).astype(np.float32)
    arr = arr + grain * strength + rng.normal(0, 2.0, (h, w, 3)).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _window(pano: Image.Image, offset: float, geo: Geometry) -> Image.Image:
    """The scene background at a scroll offset (wraps around the panorama)."""
    x = int(round(offset)) % geo.pano_w
    if x + geo.scene_w <= geo.pano_w:
        return pano.crop((x, 0, x + geo.scene_w, geo.scene_h))
    out = Image.new("RGB", (geo.scene_w, geo.scene_h))
    first = geo.pano_w - x
    out.paste(pano.crop((x, 0, geo.pano_w, geo.scene_h)), (0, 0))
    out.paste(pano.crop((0, 0, geo.scene_w - first, geo.scene_h)), (first, 0))
    return out
