"""One procedural pedestrian: appearance, a 3D walking skeleton and a PIL renderer.

The body lives in a person frame measured in units of the person's height S:
x = the person's left, y = down, z = forward (where the person faces); the pelvis
centre (midpoint of the hip joints) is the origin and never moves, so a walk is a walk
in place (a treadmill) and any motion of the person inside a crop comes from the crop box.
A view is a yaw angle; projection is orthographic: u = x cos(yaw) + z sin(yaw), depth =
-x sin(yaw) + z cos(yaw) (larger = nearer the camera). yaw 0 faces the camera (the
person's left is on the image right), pi shows the back, +pi/2 walks to the image right.

Keypoint visibility (see `keypoint_visibility`):
  1   visible;
  0.5 self-occluded: the joint is behind another body part (e.g. the far arm in a side
      view, a hip behind the near hand) or on the far side of its own part (the far ear,
      the nose seen from the back). The coordinates are still exact;
  0   hidden by an external occluder (label OCCLUDER) or, decided by the caller, outside
      the crop.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Tuple

import numpy as np

Color = Tuple[int, int, int]
Point = Tuple[float, float]

#: Emitted keypoints: the MediaPipe pose vocabulary (first 15), then synthetic-only names.
KEYPOINT_NAMES: Tuple[str, ...] = (
    "nose", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle", "neck", "head_top", "left_foot", "right_foot",
)
VISIBLE, SELF_OCCLUDED, HIDDEN = 1.0, 0.5, 0.0

# Part labels drawn into the label map (the topmost part at each pixel), used for visibility.
BACKGROUND, HEAD, HAIR_BACK, NECK, TORSO, PELVIS, BAG, OCCLUDER = 0, 1, 2, 3, 4, 5, 6, 7
LIMB_LABELS = {  # (side, segment) -> label
    (s, seg): 8 + 6 * i + j for i, s in enumerate(("left", "right"))
    for j, seg in enumerate(("upper_arm", "forearm", "hand", "thigh", "shin", "foot"))}

# Body proportions in units of height (head top to sole is about 1).
SHOULDER_Y, NECK_Y, CHIN_Y, HEAD_Y = -0.300, -0.325, -0.370, -0.432
HEAD_RX, HEAD_RY, HEAD_RZ = 0.050, 0.068, 0.058
UPPER_ARM, FOREARM, HAND = 0.165, 0.145, 0.055
THIGH, SHIN, ANKLE_H = 0.235, 0.225, 0.040
# Torso cross-sections: (y, half width, half depth); widths scale with the body width.
TORSO_LEVELS = ((-0.318, 0.085, 0.040), (-0.300, 0.125, 0.055), (-0.220, 0.118, 0.065),
                (-0.080, 0.094, 0.055), (0.030, 0.100, 0.060))
COAT_HEM = (0.200, 0.122, 0.075)
PELVIS_LEVELS = ((-0.090, 0.092, 0.055), (0.000, 0.102, 0.062), (0.075, 0.090, 0.058))
SKIRT_LEVELS = ((-0.090, 0.094, 0.058), (0.000, 0.110, 0.066), (0.250, 0.145, 0.090))

SKIN_TONES: Tuple[Color, ...] = ((241, 204, 178), (226, 178, 146), (200, 148, 112), (165, 114, 82),
                                 (122, 82, 56), (88, 60, 42))
HAIR_COLORS: Tuple[Color, ...] = ((18, 16, 16), (42, 30, 24), (78, 52, 34), (140, 100, 58),
                                  (196, 164, 104), (130, 128, 126), (118, 52, 30))
HAIR_WEIGHTS = (0.34, 0.24, 0.14, 0.08, 0.07, 0.07, 0.06)
NEUTRALS: Tuple[Color, ...] = ((24, 24, 27), (44, 44, 50), (232, 232, 226), (128, 128, 130),
                               (72, 72, 78), (30, 36, 64), (196, 182, 156), (92, 70, 50),
                               (64, 72, 52))
DENIMS: Tuple[Color, ...] = ((44, 58, 92), (70, 92, 132), (34, 42, 66))
SHOE_COLORS: Tuple[Color, ...] = ((22, 22, 24), (225, 225, 222), (90, 62, 40), (110, 110, 114))
HAIR_STYLES = ("short", "long", "ponytail", "bald", "cap")
PATTERNS = ("plain", "stripes", "logo")
BAGS = ("none", "backpack", "shoulder")
#: Attributes a "similar" identity may differ in from its look-alike.
MUTABLE_ATTRIBUTES = ("shirt_color", "trouser_color", "pattern", "hair", "bag", "shape", "shoes")


@dataclass(frozen=True)
class Appearance:
    """Everything that makes an identity look (and walk) like itself."""

    skin: Color
    hair_color: Color
    hair_style: str
    cap_color: Color
    shirt_color: Color
    sleeves: str            # "long" | "short"
    top: str                # "shirt" | "coat" (a coat reaches mid-thigh)
    pattern: str            # "plain" | "stripes" | "logo"
    pattern_color: Color
    pattern_size: float     # stripe period or logo half-width, in units of height
    bottom: str             # "trousers" | "shorts" | "skirt"
    trouser_color: Color
    legwear_color: Color    # below shorts/skirt: skin or tights
    shoe_color: Color
    bag: str                # "none" | "backpack" | "shoulder"
    bag_color: Color
    bag_side: int           # +1 hangs on the left, -1 on the right
    height: float           # relative body height (scales the person inside the box)
    width: float            # relative body width
    stride: float           # maximum thigh angle of the walk, radians
    arm_swing: float        # arm swing amplitude, radians
    cadence: float          # gait phase advance per frame, radians


# ----------------------------------------------------------------------------- appearance

def _jitter(color: Color, rng: np.random.Generator, amount: int = 12) -> Color:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _hsv(h: float, s: float, v: float) -> Color:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


def clothing_color(rng: np.random.Generator, neutral_p: float = 0.45, extra: Tuple[Color, ...] = ()) -> Color:
    """Clothes are mostly dark or neutral; the rest have a random hue, rarely fully saturated."""
    pool = NEUTRALS + extra
    if rng.random() < neutral_p:
        return _jitter(pool[int(rng.integers(len(pool)))], rng)
    return _hsv(float(rng.random()), float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.28, 0.85)))


def _contrasting(color: Color, rng: np.random.Generator) -> Color:
    """A pattern colour that stands out from the garment (light on dark, dark on light)."""
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    if rng.random() < 0.5:
        return _jitter((235, 235, 230) if luma < 110 else (30, 30, 34), rng, 10)
    h = float(rng.random())
    return _hsv(h, float(rng.uniform(0.5, 0.9)), 0.9 if luma < 110 else 0.35)


def _color_distance(a: Color, b: Color) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=float)))


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random identity (clothes, hair, bag, body shape and gait style)."""
    top = "coat" if rng.random() < 0.22 else "shirt"
    bottom = _choice(rng, ("trousers", "shorts", "skirt"), (0.7, 0.14, 0.16))
    skin = _jitter(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], rng, 8)
    shirt = clothing_color(rng)
    size = float(rng.uniform(0.03, 0.045))
    return Appearance(
        skin=skin,
        hair_color=_jitter(_choice(rng, HAIR_COLORS, HAIR_WEIGHTS), rng, 8),
        hair_style=_choice(rng, HAIR_STYLES, (0.38, 0.25, 0.1, 0.1, 0.17)),
        cap_color=clothing_color(rng, 0.5),
        shirt_color=shirt,
        sleeves="long" if top == "coat" or rng.random() < 0.55 else "short",
        top=top,
        pattern=_choice(rng, PATTERNS, (0.55, 0.2, 0.25)),
        pattern_color=_contrasting(shirt, rng),
        pattern_size=size,
        bottom=bottom,
        trouser_color=clothing_color(rng, 0.75, DENIMS * 2),
        legwear_color=skin if rng.random() < 0.6 else _jitter((30, 28, 30), rng, 8),
        shoe_color=_jitter(SHOE_COLORS[int(rng.integers(len(SHOE_COLORS)))], rng, 8),
        bag=_choice(rng, BAGS, (0.55, 0.25, 0.2)),
        bag_color=clothing_color(rng, 0.6),
        bag_side=int(rng.choice((-1, 1))),
        height=float(rng.uniform(0.92, 1.05)),
        width=float(rng.uniform(0.88, 1.18)),
        stride=float(rng.uniform(0.18, 0.27)),
        arm_swing=float(rng.uniform(0.18, 0.45)),
        cadence=float(2 * math.pi / rng.uniform(16, 26)),
    )


def mutate_appearance(app: Appearance, attribute: str, rng: np.random.Generator) -> Appearance:
    """A look-alike of `app` that differs in exactly one attribute (clearly, not by a shade)."""
    if attribute == "shirt_color":
        new = app.shirt_color
        while _color_distance(new, app.shirt_color) < 90:
            new = clothing_color(rng, 0.3)
        return replace(app, shirt_color=new)
    if attribute == "trouser_color":
        new = app.trouser_color
        while _color_distance(new, app.trouser_color) < 90:
            new = clothing_color(rng, 0.5, DENIMS)
        return replace(app, trouser_color=new)
    if attribute == "pattern":
        others = [p for p in PATTERNS if p != app.pattern]
        return replace(app, pattern=others[int(rng.integers(len(others)))])
    if attribute == "hair":
        styles = [s for s in HAIR_STYLES if s != app.hair_style]
        return replace(app, hair_style=styles[int(rng.integers(len(styles)))])
    if attribute == "bag":
        bags = [b for b in BAGS if b != app.bag]
        return replace(app, bag=bags[int(rng.integers(len(bags)))])
    if attribute == "shape":
        # Noticeably wider or narrower, keeping inside the sampled range's spirit.
        return replace(app, width=app.width + (0.22 if app.width < 1.03 else -0.22))
    if attribute == "shoes":
        options = [c for c in SHOE_COLORS if _color_distance(c, app.shoe_color) > 60]
        return replace(app, shoe_color=options[int(rng.integers(len(options)))])
    raise ValueError(f"attribute must be one of {MUTABLE_ATTRIBUTES}, got {attribute!r}")


# ----------------------------------------------------------------------------- skeleton

def _two_link(target_y: float, target_z: float, a: float, b: float) -> Tuple[float, float]:
    """Knee (y, z) of a leg from the hip (origin) to an ankle target, knee bending forward."""
    d = math.hypot(target_y, target_z)
    d = min(max(d, 1e-6), a + b - 1e-9)
    base = math.atan2(target_z, target_y)  # angle from straight down, forward positive
    bend = math.acos(max(-1.0, min(1.0, (a * a + d * d - b * b) / (2 * a * d))))
    theta = base + bend
    return a * math.cos(theta), a * math.sin(theta)


def _leg(phase: float, stride: float) -> Dict[str, Tuple[float, float]]:
    """Sagittal (y, z) of knee, ankle, heel, toe and foot centre for one leg.

    Stance (phase in [0, pi)): the ankle slides back along the ground at a fixed height,
    so with the pelvis fixed the foot stays on the floor (the knee flexes at mid-stance).
    Swing: the ankle travels forward on a raised arc, heel rising at toe-off.
    """
    phase %= 2 * math.pi
    reach = THIGH + SHIN
    height = reach * math.cos(stride)     # ankle depth below the hip while on the ground
    span = reach * math.sin(stride)       # half step length
    z = span * math.cos(phase)
    if phase < math.pi:
        s = phase / math.pi
        pitch = 0.55 * max(0.0, (s - 0.7) / 0.3) ** 2          # heel rise before toe-off
        y = height - 0.065 * math.sin(pitch)
    else:
        s = (phase - math.pi) / math.pi
        pitch = 0.55 * (1 - s) ** 2 - 0.18 * s                  # toe lifts, then heel strike
        y = height - 0.06 * math.sin(math.pi * s ** 0.8) - 0.065 * math.sin(max(pitch, 0.0))
    knee = _two_link(y, z, THIGH, SHIN)
    along = (math.sin(pitch), math.cos(pitch))     # (y, z) along the foot, toe-down positive
    down = (math.cos(pitch), -math.sin(pitch))

    def foot(a: float, d: float) -> Tuple[float, float]:
        return y + a * along[0] + d * down[0], z + a * along[1] + d * down[1]

    return {"knee": knee, "ankle": (y, z), "heel": foot(-0.025, 0.028), "toe": foot(0.068, 0.032),
            "foot": foot(0.022, 0.030)}


def ground_depth(app: Appearance) -> float:
    """Sole height below the pelvis (units of height) for this identity's stride."""
    return (THIGH + SHIN) * math.cos(app.stride) + ANKLE_H


def walk_pose(phase: float, app: Appearance) -> Dict[str, Tuple[float, float, float]]:
    """3D joints (person frame, units of height) at gait phase `phase` (radians)."""
    w = app.width
    sw, hw = 0.100 * w, 0.052 * w
    pose: Dict[str, Tuple[float, float, float]] = {
        "neck": (0.0, NECK_Y, 0.0), "head": (0.0, HEAD_Y, 0.0),
        "head_top": (0.0, HEAD_Y - HEAD_RY, 0.0), "nose": (0.0, HEAD_Y + 0.006, HEAD_RZ),
        "left_ear": (HEAD_RX * 0.95, HEAD_Y, -0.004), "right_ear": (-HEAD_RX * 0.95, HEAD_Y, -0.004),
    }
    for side, sx, leg_phase in (("left", 1.0, phase + math.pi), ("right", -1.0, phase)):
        hip = (sx * hw, 0.0, 0.0)
        pose[f"{side}_hip"] = hip
        for name, (y, z) in _leg(leg_phase, app.stride).items():
            pose[f"{side}_{name}"] = (hip[0], y, z)
        # Arms swing against the same-side leg; the elbow bends more when the arm is forward.
        swing = -app.arm_swing * math.cos(leg_phase)
        bend = 0.18 + 0.45 * max(0.0, swing) / max(app.arm_swing, 1e-6)
        spread = 0.07 + 0.06 * (w - 1.0)
        shoulder = (sx * sw, SHOULDER_Y, 0.0)
        elbow = _add(shoulder, _direction(sx, spread, swing), UPPER_ARM)
        wrist = _add(elbow, _direction(sx, spread * 0.5, swing + bend), FOREARM)
        hand = _add(wrist, _direction(sx, spread * 0.5, swing + bend * 1.1), HAND * 0.5)
        pose.update({f"{side}_shoulder": shoulder, f"{side}_elbow": elbow, f"{side}_wrist": wrist,
                     f"{side}_hand": hand})
    return pose


def _direction(sx: float, spread: float, angle: float) -> Tuple[float, float, float]:
    """Unit vector hanging down, rotated forward by `angle` and outward by `spread`."""
    c = math.cos(spread)
    return sx * math.sin(spread), c * math.cos(angle), c * math.sin(angle)


def _add(p, d, length):
    return p[0] + d[0] * length, p[1] + d[1] * length, p[2] + d[2] * length


# ----------------------------------------------------------------------------- drawing

class Canvas:
    """Draws every primitive twice: colour into the image, part label into the label map."""

    def __init__(self, draw, label_draw=None):
        self.draw, self.labels = draw, label_draw

    def polygon(self, pts: List[Point], color: Color, label: int) -> None:
        if len(pts) >= 3:
            self.draw.polygon(pts, fill=color)
            if self.labels is not None:
                self.labels.polygon(pts, fill=label)

    def ellipse(self, c: Point, rx: float, ry: float, color: Color, label: int) -> None:
        box = (c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry)
        self.draw.ellipse(box, fill=color)
        if self.labels is not None:
            self.labels.ellipse(box, fill=label)

    def capsule(self, p0: Point, p1: Point, r0: float, r1: float, color: Color, label: int) -> None:
        """A limb: tapered segment with round ends."""
        dx, dy = p1[0] - p0[0], p1[1] - p0[1]
        n = math.hypot(dx, dy)
        if n > 1e-6:
            nx, ny = -dy / n, dx / n
            self.polygon([(p0[0] + nx * r0, p0[1] + ny * r0), (p1[0] + nx * r1, p1[1] + ny * r1),
                          (p1[0] - nx * r1, p1[1] - ny * r1), (p0[0] - nx * r0, p0[1] - ny * r0)],
                         color, label)
        self.ellipse(p0, r0, r0, color, label)
        self.ellipse(p1, r1, r1, color, label)


def shade(color: Color, factor: float) -> Color:
    return tuple(int(min(255, max(0, c * factor))) for c in color)


def _lerp(p: Point, q: Point, t: float) -> Point:
    return p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t


def _clip_slab(poly: List[Point], y0: float, y1: float) -> List[Point]:
    """Sutherland-Hodgman clip of a polygon to the horizontal band y0 <= y <= y1 (stripes)."""
    def clip(points, keep, cross):
        out = []
        for i, cur in enumerate(points):
            prev = points[i - 1]
            if keep(cur):
                if not keep(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif keep(prev):
                out.append(cross(prev, cur))
        return out

    def at(y):
        return lambda p, q: _lerp(p, q, (y - p[1]) / (q[1] - p[1]))

    poly = clip(poly, lambda p: p[1] >= y0, at(y0))
    return clip(poly, lambda p: p[1] <= y1, at(y1)) if poly else poly


class PersonRenderer:
    """Projects a pose for one view and draws the person back to front."""

    def __init__(self, app: Appearance, yaw: float, origin: Point, scale: float):
        self.app, self.yaw, self.ox, self.oy, self.s = app, yaw, origin[0], origin[1], scale
        self.cos, self.sin = math.cos(yaw), math.sin(yaw)

    # -- projection
    def uv(self, p) -> Point:
        return self.ox + self.s * (p[0] * self.cos + p[2] * self.sin), self.oy + self.s * p[1]

    def depth(self, p) -> float:
        return -p[0] * self.sin + p[2] * self.cos

    def outline(self, levels, x0: float = 0.0) -> List[Point]:
        """Silhouette of a body segment with elliptic cross-sections (torso, pelvis, skirt)."""
        w = self.app.width
        right, left = [], []
        for y, hw, hd in levels:
            e = math.hypot(hw * w * self.cos, hd * self.sin)
            cx = self.ox + self.s * x0
            right.append((cx + self.s * e, self.oy + self.s * y))
            left.append((cx - self.s * e, self.oy + self.s * y))
        return right + left[::-1]

    # -- the whole person
    def draw(self, canvas: Canvas, pose) -> Dict[str, Tuple[float, float, float]]:
        """Draw the person; return each keypoint's (u, v, depth) in image pixels / height units."""
        P = {k: self.uv(p) for k, p in pose.items()}
        D = {k: self.depth(p) for k, p in pose.items()}
        groups: List[Tuple[float, int, Callable[[], None]]] = []

        def add(key: float, fn: Callable[[], None]) -> None:
            groups.append((key, len(groups), fn))

        for side in ("left", "right"):
            # Legs always go under the clothes of the torso (shirt hem, coat, skirt).
            leg_key = min(sum(D[f"{side}_{j}"] for j in ("knee", "ankle", "foot")) / 3, -0.001)
            add(leg_key, lambda side=side: self._leg(canvas, P, D, side))
            arm_key = sum(D[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist")) / 3
            add(arm_key, lambda side=side: self._arm(canvas, P, D, side))
        add(-0.002, lambda: self._pelvis(canvas))
        add(0.0, lambda: self._torso(canvas))
        if self.app.bag == "backpack":
            add(self.depth((0.0, 0.0, -0.125)), lambda: self._backpack(canvas))
        elif self.app.bag == "shoulder":
            add(self.depth((self.app.bag_side * 0.10, 0.0, -0.02)), lambda: self._shoulder_bag(canvas))
        if self.app.hair_style in ("long", "ponytail"):
            add(self.depth((0.0, 0.0, -0.06)), lambda: self._hair_back(canvas, P))
        add(10.0, lambda: self._head(canvas, P))
        for _, _, fn in sorted(groups, key=lambda g: (g[0], g[1])):
            fn()
        return {k: (P[k][0], P[k][1], D[k]) for k in KEYPOINT_NAMES}

    def _far_shade(self, color: Color, key: float) -> Color:
        """Parts on the far side of the body are in the body's shadow."""
        return shade(color, 0.8) if key < -0.04 else color

    # -- legs and feet
    def _leg(self, canvas: Canvas, P, D, side: str) -> None:
        app, s = self.app, self.s
        far = D[f"{side}_knee"] + D[f"{side}_hip"]
        hip, knee, ankle = P[f"{side}_hip"], P[f"{side}_knee"], P[f"{side}_ankle"]
        w = app.width
        cloth = self._far_shade(app.trouser_color, far)
        below = self._far_shade(app.legwear_color, far)
        thigh_color = cloth if app.bottom == "trousers" else below
        shin_color = cloth if app.bottom == "trousers" else below
        r_hip, r_knee, r_ankle = 0.050 * w * s, 0.036 * s, 0.024 * s
        canvas.capsule(hip, knee, r_hip, r_knee, thigh_color, LIMB_LABELS[(side, "thigh")])
        if app.bottom == "shorts":  # shorts cover the upper two thirds of the thigh
            canvas.capsule(hip, _lerp(hip, knee, 0.62), r_hip * 1.08, r_knee * 1.2, cloth,
                           LIMB_LABELS[(side, "thigh")])
        canvas.capsule(knee, ankle, r_knee * 0.95, r_ankle, shin_color, LIMB_LABELS[(side, "shin")])
        shoe = self._far_shade(app.shoe_color, far)
        canvas.capsule(P[f"{side}_heel"], P[f"{side}_toe"], 0.024 * s, 0.019 * s, shoe,
                       LIMB_LABELS[(side, "foot")])

    # -- arms and hands
    def _arm(self, canvas: Canvas, P, D, side: str) -> None:
        app, s = self.app, self.s
        key = D[f"{side}_shoulder"] + D[f"{side}_elbow"]
        shirt = self._far_shade(app.shirt_color, key)
        skin = self._far_shade(app.skin, key)
        sh, el, wr, hand = P[f"{side}_shoulder"], P[f"{side}_elbow"], P[f"{side}_wrist"], P[f"{side}_hand"]
        w = app.width
        r_sh, r_el, r_wr = 0.034 * w * s, 0.028 * s, 0.022 * s
        coat = 1.12 if app.top == "coat" else 1.0
        if app.sleeves == "long":
            canvas.capsule(sh, el, r_sh * coat, r_el * coat, shirt, LIMB_LABELS[(side, "upper_arm")])
            canvas.capsule(el, wr, r_el * coat, r_wr * coat, shirt, LIMB_LABELS[(side, "forearm")])
        else:
            canvas.capsule(sh, el, r_sh * 0.85, r_el * 0.9, skin, LIMB_LABELS[(side, "upper_arm")])
            canvas.capsule(sh, _lerp(sh, el, 0.55), r_sh * 1.05, r_el * 1.1, shirt,
                           LIMB_LABELS[(side, "upper_arm")])
            canvas.capsule(el, wr, r_el * 0.85, r_wr * 0.9, skin, LIMB_LABELS[(side, "forearm")])
        canvas.ellipse(hand, 0.024 * s, 0.030 * s, skin, LIMB_LABELS[(side, "hand")])

    # -- trunk
    def _pelvis(self, canvas: Canvas) -> None:
        canvas.polygon(self.outline(PELVIS_LEVELS), self.app.trouser_color, PELVIS)

    def _torso(self, canvas: Canvas) -> None:
        app, s = self.app, self.s
        if app.bottom == "skirt":  # drawn with the trunk so it covers the thighs
            canvas.polygon(self.outline(SKIRT_LEVELS), app.trouser_color, PELVIS)
        levels = TORSO_LEVELS + ((COAT_HEM,) if app.top == "coat" else ())
        poly = self.outline(levels)
        canvas.polygon(poly, app.shirt_color, TORSO)
        if app.pattern == "stripes":
            period = app.pattern_size * s
            y = self.oy + s * -0.24
            bottom = self.oy + s * (levels[-1][0] - 0.02)
            while y < bottom:
                band = _clip_slab(poly, y, min(y + period * 0.45, bottom))
                canvas.polygon(band, app.pattern_color, TORSO)
                y += period
        elif app.pattern == "logo" and self.cos > 0.3:
            half = app.pattern_size
            front = 0.066
            corners = [(-half, -0.24, front), (half, -0.24, front), (half, -0.24 + 1.8 * half, front),
                       (-half, -0.24 + 1.8 * half, front)]
            canvas.polygon([self.uv(c) for c in corners], app.pattern_color, TORSO)
        if app.top == "coat" and self.cos > -0.2:  # a coat's opening down the front
            top, bottom = self.uv((0.0, -0.29, 0.07)), self.uv((0.0, COAT_HEM[0], 0.08))
            canvas.draw.line([top, bottom], fill=shade(app.shirt_color, 0.6), width=max(1, int(0.012 * s)))
        self._straps(canvas)
        # Neck: drawn with the trunk so it sits on the shoulders.
        canvas.capsule(self.uv((0.0, NECK_Y + 0.01, 0.0)), self.uv((0.0, CHIN_Y, 0.004)), 0.024 * s,
                       0.022 * s, shade(app.skin, 0.92), NECK)

    def _straps(self, canvas: Canvas) -> None:
        """Bag straps over the front (or back) of the trunk."""
        app, s = self.app, self.s
        face = 1.0 if self.cos >= 0 else -1.0
        strap = shade(app.bag_color, 0.75)
        width = max(1, int(round(0.016 * s)))
        if app.bag == "backpack" and self.cos > -0.5:
            for sx in (1.0, -1.0):
                pts = [(sx * 0.06, -0.318, 0.0), (sx * 0.07, -0.29, 0.06), (sx * 0.085, -0.14, 0.06)]
                if self.cos < 0.35:  # seen from the side only the near strap shows
                    if self.depth((sx, 0.0, 0.0)) < 0:
                        continue
                canvas.draw.line([self.uv(p) for p in pts], fill=strap, width=width)
                if canvas.labels is not None:
                    canvas.labels.line([self.uv(p) for p in pts], fill=TORSO, width=width)
        elif app.bag == "shoulder":
            b = app.bag_side
            pts = [(-b * 0.07, -0.31, 0.0), (-b * 0.05, -0.28, face * 0.062), (b * 0.09, -0.04, face * 0.06)]
            canvas.draw.line([self.uv(p) for p in pts], fill=strap, width=width)

    def _backpack(self, canvas: Canvas) -> None:
        app = self.app
        corners = [(x, y, z) for x in (-0.08, 0.08) for y in (-0.28, -0.07) for z in (-0.055, -0.145)]
        pts = _hull([self.uv(c) for c in corners])
        canvas.polygon(pts, app.bag_color, BAG)
        # flap: a darker strip on the outer face
        flap = [self.uv(c) for c in ((-0.08, -0.28, -0.145), (0.08, -0.28, -0.145), (0.08, -0.22, -0.145),
                                     (-0.08, -0.22, -0.145))]
        if self.cos < 0.2:
            canvas.polygon(flap, shade(app.bag_color, 0.7), BAG)

    def _shoulder_bag(self, canvas: Canvas) -> None:
        app, b = self.app, self.app.bag_side
        corners = [(b * x, y, z) for x in (0.085, 0.125) for y in (-0.06, 0.1) for z in (-0.09, 0.05)]
        canvas.polygon(_hull([self.uv(c) for c in corners]), app.bag_color, BAG)

    # -- head and hair
    def _hair_back(self, canvas: Canvas, P) -> None:
        app, s = self.app, self.s
        if app.hair_style == "long":
            top, bottom = self.uv((0.0, HEAD_Y, -0.02)), self.uv((0.0, -0.27, -0.05))
            canvas.capsule(top, bottom, HEAD_RX * 1.1 * s, HEAD_RX * 1.15 * s, app.hair_color, HAIR_BACK)
        else:
            knot, tail = self.uv((0.0, HEAD_Y - 0.02, -0.065)), self.uv((0.0, -0.35, -0.075))
            canvas.capsule(knot, tail, 0.02 * s, 0.014 * s, app.hair_color, HAIR_BACK)

    def _head(self, canvas: Canvas, P) -> None:
        app, s = self.app, self.s
        c = self.uv((0.0, HEAD_Y, 0.0))
        rx = math.hypot(HEAD_RX * self.cos, HEAD_RZ * self.sin) * s
        ry = HEAD_RY * s
        bald = app.hair_style == "bald"
        hair = shade(app.skin, 0.8) if bald else app.hair_color
        canvas.ellipse(c, rx, ry, hair, HEAD)
        # The face: a skin ellipse shifted towards where the person looks; none from the back.
        facing = self.cos
        if facing > -0.35 or bald:
            hairline = (0.006 if bald else 0.02 if app.hair_style != "long" else 0.024) * s
            fw = rx * (0.62 + 0.3 * max(facing, 0.0)) * (0.88 if app.hair_style == "long" else 1.0)
            if bald:
                fw = rx
            shift = (rx - fw) * self.sin * (1.0 if not bald else 0.0)
            fh = ry - hairline / 2
            canvas.ellipse((c[0] + shift, c[1] + hairline / 2 + 0.002 * s), fw, fh, app.skin, HEAD)
            if facing > 0.3:  # eyes: two dark dots give the face a direction
                for sx in (-1, 1):
                    e = self.uv((sx * 0.019, HEAD_Y - 0.004, HEAD_RZ))
                    canvas.draw.ellipse((e[0] - 0.006 * s, e[1] - 0.004 * s, e[0] + 0.006 * s, e[1] + 0.004 * s),
                                        fill=shade(app.skin, 0.45))
        if app.hair_style == "cap":
            self._cap(canvas, c, rx, ry)

    def _cap(self, canvas: Canvas, c: Point, rx: float, ry: float) -> None:
        app, s = self.app, self.s
        crown = [(c[0] + rx * 1.04 * math.cos(a), c[1] - 0.1 * ry + ry * 1.04 * math.sin(a))
                 for a in np.linspace(math.pi, 2 * math.pi, 9)]
        canvas.polygon(crown, app.cap_color, HEAD)
        peak = self.uv((0.0, HEAD_Y - 0.012, HEAD_RZ + 0.035))
        if self.cos > -0.6:
            base = self.uv((0.0, HEAD_Y - 0.012, HEAD_RZ * 0.5))
            canvas.capsule(base, peak, 0.01 * s, 0.01 * s, shade(app.cap_color, 0.8), HEAD)


def _hull(points: List[Point]) -> List[Point]:
    """Convex hull (monotone chain) of projected box corners."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


# ----------------------------------------------------------------------------- visibility

_HEAD_POINTS = ("nose", "left_ear", "right_ear", "head_top")
_TRUNK_POINTS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


def _owners(name: str) -> Tuple[int, ...]:
    """Labels that may cover a keypoint without hiding it (its own segments and clothes)."""
    if name == "neck":  # in a side view the near shoulder's round top reaches the neck
        return NECK, TORSO, HEAD, HAIR_BACK, LIMB_LABELS[("left", "upper_arm")], LIMB_LABELS[("right", "upper_arm")]
    side, joint = name.split("_", 1)
    limb = {s: LIMB_LABELS[(side, s)] for s in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot")}
    return {
        "shoulder": (TORSO, NECK, limb["upper_arm"]),
        "elbow": (limb["upper_arm"], limb["forearm"]),
        "wrist": (limb["forearm"], limb["hand"]),
        "hip": (PELVIS, TORSO, limb["thigh"]),
        "knee": (limb["thigh"], limb["shin"], PELVIS, TORSO),  # under a skirt or coat
        "ankle": (limb["shin"], limb["foot"]),
        "foot": (limb["foot"], limb["shin"]),
    }[joint]


def keypoint_visibility(name: str, label: int, depth: float) -> float:
    """Visibility of one keypoint from the part label drawn on top at its pixel (see module doc)."""
    if label == OCCLUDER:
        return HIDDEN
    if name in _HEAD_POINTS:  # on the far half of the head
        return SELF_OCCLUDED if depth < -0.02 else VISIBLE
    if name in _TRUNK_POINTS and depth < -0.045:  # far shoulder/hip behind the trunk
        return SELF_OCCLUDED
    if label == BACKGROUND or label in _owners(name):
        return VISIBLE
    return SELF_OCCLUDED
