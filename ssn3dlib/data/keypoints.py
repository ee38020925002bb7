"""Per-frame keypoint tables and the mapping from pose-model keypoints to the study's parts.

Table format (one row per image and keypoint, as ../shared/data/pku_reid_subset/
keypoints_mediapipe.csv): image, keypoint, x, y, visibility (0..1), x/y in crop pixels.

Part sets:
- "benchmark9": the 9 parts of SSN3D on the benchmarks (SPEC section 2).
- "pedestrian6": the 6 parts of the pedestrian study (paper Fig. 4).
A part is the mean of its source keypoints; its visibility is the smallest of theirs.
Alternatives are tried in order (e.g. the foot is the foot point when a pose model
gives one, else the ankle).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import InputError, MissingFile

COLUMNS = ("image", "keypoint", "x", "y", "visibility")
#: How far outside its image a keypoint may lie, as a fraction of the image's width (x) or height
#: (y): pose models place occluded feet below a crop (0.41 x the height in the PKU-Reid table).
OUTSIDE_TOLERANCE = 0.5


class KeypointTableError(InputError):
    """A keypoint table that cannot be used; the message names the table, the row and the fix."""

#: part -> alternatives, each a tuple of source keypoints averaged together.
PART_SOURCES: Dict[str, List[Tuple[str, ...]]] = {
    "head": [("nose",), ("left_ear", "right_ear")],
    "body": [("left_shoulder", "right_shoulder", "left_hip", "right_hip")],
    "crotch": [("left_hip", "right_hip")],
    "left_elbow": [("left_elbow",)],
    "right_elbow": [("right_elbow",)],
    "left_knee": [("left_knee",)],
    "right_knee": [("right_knee",)],
    "left_foot": [("left_foot",), ("left_ankle",)],
    "right_foot": [("right_foot",), ("right_ankle",)],
    "left_hand": [("left_wrist",)],
    "right_hand": [("right_wrist",)],
}

PART_SETS: Dict[str, Tuple[str, ...]] = {
    "benchmark9": ("head", "body", "crotch", "left_elbow", "right_elbow", "left_knee", "right_knee",
                   "left_foot", "right_foot"),
    # "hand" is the better visible wrist: the paper labels one hand per person.
    "pedestrian6": ("head", "hand", "knee1", "knee2", "foot1", "foot2"),
}
_PEDESTRIAN_ALIASES = {"knee1": "left_knee", "knee2": "right_knee", "foot1": "left_foot", "foot2": "right_foot"}


def _row(table: pd.DataFrame, path: Path, position: int) -> str:
    """'table T, line L (image, keypoint)' of a row by position (line 1 is the header)."""
    image, keypoint = table["image"].iloc[position], table["keypoint"].iloc[position]
    return f"keypoint table {path}, line {position + 2} ({image}, {keypoint})"


def read_keypoint_table(path: Path) -> pd.DataFrame:
    """Load and validate a keypoint table: its columns, a name on every row, finite x and y,
    visibility in 0..1. Errors name the file, the first bad line and the fix."""
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"keypoint table {path} does not exist")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise KeypointTableError(f"keypoint table {path} is not a CSV table ({type(err).__name__}: "
                                 f"{str(err).strip()[:120]}); expected the header {','.join(COLUMNS)}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise KeypointTableError(f"keypoint table {path} lacks columns {missing}; expected the header "
                                 f"{','.join(COLUMNS)} (it has {','.join(map(str, table.columns))})")
    for column in ("image", "keypoint"):
        empty = np.flatnonzero(table[column].isna().to_numpy())
        if len(empty):
            raise KeypointTableError(f"{_row(table, path, empty[0])}: no {column}; every row names its "
                                     f"image and keypoint ({len(empty)} rows lack one)")
    for column in ("x", "y", "visibility"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(np.float64)))
        if len(bad):
            raw = table[column].iloc[bad[0]]
            shown = "empty (NaN)" if pd.isna(raw) else repr(raw) if isinstance(raw, str) else str(raw)
            raise KeypointTableError(
                f"{_row(table, path, bad[0])}: {column} is {shown}, not a finite number "
                f"({len(bad)} such rows); a keypoint the pose model did not find gets no row, so drop them")
        table[column] = values
    outside = np.flatnonzero(((table["visibility"] < 0) | (table["visibility"] > 1)).to_numpy())
    if len(outside):
        raise KeypointTableError(f"{_row(table, path, outside[0])}: visibility must lie in 0..1, got "
                                 f"{table['visibility'].iloc[outside[0]]} ({len(outside)} such rows)")
    return table


def _alternatives(part: str) -> List[Tuple[str, ...]]:
    """The source-keypoint alternatives of a part of any part set (the hand: either wrist)."""
    if part == "hand":
        return PART_SOURCES["left_hand"] + PART_SOURCES["right_hand"]
    return PART_SOURCES[_PEDESTRIAN_ALIASES.get(part, part)]


def check_keypoint_table(table: pd.DataFrame, path: Path, part_set: str, image_root: Path) -> None:
    """What training needs of a table beyond its format: every part of part_set has a source
    keypoint name in it, every image path resolves under image_root, and every point lies in
    its image (within OUTSIDE_TOLERANCE of its size). Errors name a line and an example path."""
    from PIL import Image

    if part_set not in PART_SETS:
        raise InputError(f"unknown part set {part_set!r}; choose one of {sorted(PART_SETS)}")
    names = set(table["keypoint"])
    absent = [p for p in PART_SETS[part_set] if not any(set(alt) <= names for alt in _alternatives(p))]
    if absent:
        wanted = sorted({k for p in absent for alt in _alternatives(p) for k in alt})
        raise KeypointTableError(f"keypoint table {path} gives none of the keypoints of the {part_set} parts "
                                 f"{absent} (they are made of {wanted}); its keypoint names are "
                                 f"{sorted(map(str, names))[:8]}: name the keypoints as MediaPipe Pose does")
    image_root = Path(image_root)
    first = table.reset_index(drop=True).groupby("image", sort=False).head(1)
    sizes, unresolved = {}, []
    for position, image in zip(first.index, first["image"]):
        try:
            with Image.open(image_root / image) as im:    # reads the header only
                sizes[image] = im.size
        except OSError:
            unresolved.append(position)
    if unresolved:
        example = image_root / table["image"].iloc[unresolved[0]]
        what = ("is not a readable image (re-extract it; `ssn3d data verify` checks them all)" if example.is_file()
                else "does not exist")
        raise KeypointTableError(f"{_row(table, path, unresolved[0])}: image {example} {what} ({len(unresolved)} "
                                 f"of {len(first)} images); image paths are relative to the dataset root {image_root}")
    width, height = (np.array([sizes[i][k] for i in table["image"]], dtype=np.float64) for k in (0, 1))
    for column, extent in (("x", width), ("y", height)):
        v = table[column].to_numpy(np.float64)
        bad = np.flatnonzero((v < -OUTSIDE_TOLERANCE * extent) | (v > (1 + OUTSIDE_TOLERANCE) * extent))
        if len(bad):
            i = bad[0]
            raise KeypointTableError(
                f"{_row(table, path, i)}: {column}={v[i]:g} lies outside its {int(width[i])} x {int(height[i])} "
                f"image {image_root / table['image'].iloc[i]} ({len(bad)} such rows); x and y are pixels of "
                f"the crop itself (not of another size, nor normalised to 0..1)")


def _source_point(points: Dict[str, Tuple[float, float, float]], part: str):
    for sources in PART_SOURCES[part]:
        if all(s in points for s in sources):
            xyv = np.array([points[s] for s in sources], dtype=np.float64)
            return xyv[:, 0].mean(), xyv[:, 1].mean(), xyv[:, 2].min()
    return np.nan, np.nan, 0.0


def image_parts(points: Dict[str, Tuple[float, float, float]], part_set: str) -> np.ndarray:
    """(N, 3) array of x, y, visibility for one image's {keypoint: (x, y, visibility)}."""
    if part_set not in PART_SETS:
        raise ValueError(f"unknown part set {part_set!r}; choose one of {sorted(PART_SETS)}")
    rows = []
    for part in PART_SETS[part_set]:
        if part == "hand":
            hands = [_source_point(points, h) for h in ("left_hand", "right_hand")]
            rows.append(max(hands, key=lambda h: h[2]))
        else:
            rows.append(_source_point(points, _PEDESTRIAN_ALIASES.get(part, part)))
    return np.array(rows, dtype=np.float64)


def parts_by_image(table: pd.DataFrame, part_set: str) -> Dict[str, np.ndarray]:
    """{image: (N, 3) x, y, visibility} for every image in a keypoint table.

    The same rules as `image_parts` (first complete alternative, mean position, smallest
    visibility; the better visible hand), computed on whole columns at once: a table of a
    few thousand frames is read in milliseconds, not seconds (every training loads one).
    """
    if part_set not in PART_SETS:
        raise ValueError(f"unknown part set {part_set!r}; choose one of {sorted(PART_SETS)}")
    if table.empty:
        return {}
    # One row per (image, keypoint), the last one winning as in a dict; absent pairs are NaN.
    wide = table.groupby(["image", "keypoint"], sort=True)[["x", "y", "visibility"]].last().unstack("keypoint")
    images = wide.index.tolist()
    missing = np.full(len(images), np.nan)

    def column(field: str, keypoint: str) -> np.ndarray:
        return wide[field][keypoint].to_numpy(np.float64) if keypoint in wide[field].columns else missing

    def part(name: str):
        x, y, v = missing.copy(), missing.copy(), np.zeros(len(images))
        done = np.zeros(len(images), dtype=bool)
        for sources in PART_SOURCES[name]:
            xs = np.stack([column("x", k) for k in sources])
            ok = ~done & ~np.isnan(xs).any(axis=0)
            x[ok] = xs.mean(axis=0)[ok]
            y[ok] = np.stack([column("y", k) for k in sources]).mean(axis=0)[ok]
            v[ok] = np.stack([column("visibility", k) for k in sources]).min(axis=0)[ok]
            done |= ok
        return x, y, v

    columns = []
    for name in PART_SETS[part_set]:
        if name == "hand":
            left, right = part("left_hand"), part("right_hand")
            use_right = right[2] > left[2]            # a tie keeps the left hand, as max() would
            columns.append(tuple(np.where(use_right, r, lf) for lf, r in zip(left, right)))
        else:
            columns.append(part(_PEDESTRIAN_ALIASES.get(name, name)))
    stacked = np.stack([np.stack(c, axis=1) for c in columns], axis=1)      # (images, N, 3)
    return {image: stacked[i] for i, image in enumerate(images)}


def best_labelled_frames(frames: Sequence[str], parts: Dict[str, np.ndarray], count: int = 2,
                         min_visibility: float = 0.5) -> List[str]:
    """The `count` frames with the highest mean part visibility (paper: 2 per tracklet).

    Frames without keypoints or with no part above min_visibility are never chosen;
    fewer than `count` frames come back when the tracklet has fewer labelled ones.
    Ties keep temporal order.
    """
    scored = []
    for order, frame in enumerate(frames):
        p = parts.get(frame)
        if p is None or not (p[:, 2] > min_visibility).any():
            continue
        scored.append((-float(np.mean(p[:, 2])), order, frame))
    return [frame for _, _, frame in sorted(scored)[:count]]


def flip_permutation(part_set: str) -> List[int]:
    """Index permutation that relabels parts after a horizontal flip: slot i of the flipped
    image holds part perm[i] of the original (left <-> right; knee1 <-> knee2 and
    foot1 <-> foot2 in the pedestrian set, whose 1/2 are left/right)."""
    if part_set not in PART_SETS:
        raise ValueError(f"unknown part set {part_set!r}; choose one of {sorted(PART_SETS)}")
    names = list(PART_SETS[part_set])
    mirror = {"knee1": "knee2", "knee2": "knee1", "foot1": "foot2", "foot2": "foot1"}

    def mirrored(name: str) -> str:
        if name.startswith("left_"):
            return "right_" + name[5:]
        if name.startswith("right_"):
            return "left_" + name[6:]
        return mirror.get(name, name)

    return [names.index(mirrored(n)) for n in names]


def load_part_keypoints(table_path: Path, part_set: str, image_root: Path, check: bool = False
                        ) -> Dict[str, np.ndarray]:
    """{absolute image path: (N, 3) x, y, visibility} from a keypoint table whose image
    column is relative to image_root (the dataset root); check=True also runs
    check_keypoint_table (what a training run does)."""
    image_root = Path(image_root).expanduser().resolve()
    table = read_keypoint_table(table_path)
    if check:
        check_keypoint_table(table, Path(table_path), part_set, image_root)
    parts = parts_by_image(table, part_set)
    return {str(image_root / image): p for image, p in parts.items()}


def drop_pose_frames(keypoints: Dict[str, np.ndarray], fraction: float, seed: int, image_root: Path
                     ) -> Dict[str, np.ndarray]:
    """`keypoints` ({absolute image path: (N, 3)}) with about `fraction` of the frames' parts all made
    invisible, as when a pose model finds nobody in a frame: what the paper blames for the
    supervised SSN's loss (Table 1). A frame is dropped when a hash of (seed, its path relative to
    image_root) falls under `fraction`, so the choice is the same whatever the order the frames are
    read in, at training and at test time, and wherever the dataset sits."""
    import zlib

    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the fraction of frames without a pose must be in [0, 1), got {fraction}")
    root = Path(image_root).expanduser().resolve()
    out = {}
    for path, parts in keypoints.items():
        name = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else str(path)
        drawn = zlib.crc32(f"{seed}:{name}".encode()) / 2 ** 32
        out[path] = parts if drawn >= fraction else np.concatenate([parts[:, :2], np.zeros_like(parts[:, 2:])], 1)
    return out


def pose_failure_rate(table_path: Path, image_root: Path, suffixes: Sequence[str] = (".jpg", ".jpeg", ".png")
                      ) -> Tuple[int, int]:
    """(images without a single keypoint in the table, images under image_root): how often the pose
    model that wrote the table found nobody."""
    root = Path(image_root)
    images = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in suffixes)
    if not images:
        raise MissingFile(f"no images ({', '.join(suffixes)}) under {root}; point image_root at the dataset's images")
    posed = set(read_keypoint_table(Path(table_path))["image"].astype(str))
    return sum(i not in posed for i in images), len(images)
