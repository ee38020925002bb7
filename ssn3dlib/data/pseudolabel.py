"""Pseudo-label body keypoints with MediaPipe Pose, writing the project's keypoint table.

The recipe is the one behind ../shared/data/pku_reid_subset/keypoints_mediapipe.csv:
MediaPipe Pose 0.10.14 (the BlazePose "full" model ships inside the wheel: nothing to
download), static-image mode, each crop resized with OpenCV's bicubic filter so its long
side is 384 px (3x for a 48 x 128 crop), centred on a black 384 x 384 canvas, and the
landmarks mapped back to crop pixels. Images without a detected pose get no rows.

MediaPipe 0.10.14 needs numpy<2, so it lives in its own environment (`make pose-env`
creates .venv-pose); this module imports it (and OpenCV, which it brings) only inside
`load_pose_model` and `letterbox_image`, so the rest of the package never needs it.

A dataset is labelled where training uses labels: K frames spread over each training tracklet
(`dataset_frames`; the semi-supervised strategy takes the best-visible labelled ones), every
test frame only when asked (the supervised strategy). `label_images` appends to the table
chunk by chunk from worker processes and resumes after a kill (see its docstring).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..errors import InputError, MissingFile, Unavailable
from .keypoints import COLUMNS

if TYPE_CHECKING:
    from .tracklets import VideoReIDDataset

#: The MediaPipe landmarks the table keeps, in table order (the face and hand/foot
#: extras of BlazePose's 33 are dropped, as in the reference table).
POSE_KEYPOINTS: Tuple[str, ...] = (
    "nose", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
CANVAS = 384                     # the square the pose model sees
POSE_ENV = ".venv-pose"
POSE_ENV_FIX = (f"MediaPipe Pose 0.10.14 needs numpy<2, so it has its own environment: run "
                f"`make pose-env` (creates {POSE_ENV} with mediapipe==0.10.14, numpy<2, pillow, pandas, "
                f"tqdm, pyyaml) and run the command with {POSE_ENV}/bin/python -m ssn3dlib data pseudolabel ...")


class PoseModelUnavailable(Unavailable):
    """MediaPipe (or its OpenCV) cannot be imported in this Python."""


# ============================================================================ geometry

@dataclass(frozen=True)
class Letterbox:
    """Where a width x height crop lands on the square canvas: scaled so its long side
    fills the canvas, centred (integer offsets), the rest black."""

    width: int
    height: int
    canvas: int = CANVAS

    def __post_init__(self):
        if self.width < 1 or self.height < 1 or self.canvas < 1:
            raise ValueError(f"Letterbox needs positive sizes, got width={self.width}, "
                             f"height={self.height}, canvas={self.canvas}")

    @property
    def scale(self) -> float:
        return self.canvas / max(self.width, self.height)

    @property
    def resized(self) -> Tuple[int, int]:
        """(width, height) of the crop on the canvas."""
        return (min(self.canvas, round(self.width * self.scale)),
                min(self.canvas, round(self.height * self.scale)))

    @property
    def offset(self) -> Tuple[int, int]:
        """(x, y) of the resized crop's top-left corner on the canvas."""
        w, h = self.resized
        return (self.canvas - w) // 2, (self.canvas - h) // 2

    def to_canvas(self, xy: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates (..., 2) -> canvas pixel coordinates."""
        return np.asarray(xy, dtype=np.float64) * self.scale + np.array(self.offset, dtype=np.float64)

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        """Canvas pixel coordinates (..., 2) -> crop pixel coordinates."""
        return (np.asarray(xy, dtype=np.float64) - np.array(self.offset, dtype=np.float64)) / self.scale

    def normalised_to_crop(self, xy: np.ndarray) -> np.ndarray:
        """MediaPipe's landmark coordinates (fractions of the canvas) -> crop pixels."""
        return self.to_crop(np.asarray(xy, dtype=np.float64) * self.canvas)


def letterbox_image(rgb: np.ndarray, box: Optional[Letterbox] = None) -> np.ndarray:
    """The canvas the pose model sees: the crop resized with OpenCV's bicubic filter (the
    reference table's filter; PIL's bicubic gives visibly different landmarks) on black."""
    cv2 = _import_opencv()
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"letterbox_image needs an H x W x 3 uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    box = box or Letterbox(rgb.shape[1], rgb.shape[0])
    if (box.width, box.height) != (rgb.shape[1], rgb.shape[0]):
        raise ValueError(f"letterbox for {box.width} x {box.height} applied to a "
                         f"{rgb.shape[1]} x {rgb.shape[0]} image")
    canvas = np.zeros((box.canvas, box.canvas, 3), dtype=np.uint8)
    (w, h), (x0, y0) = box.resized, box.offset
    canvas[y0:y0 + h, x0:x0 + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
    return canvas


# ============================================================================ table

def landmark_rows(image: str, landmarks: Dict[str, Tuple[float, float, float]], box: Letterbox) -> List[tuple]:
    """Table rows (image, keypoint, x, y, visibility) for one image's MediaPipe landmarks
    {name: (x_normalised, y_normalised, visibility)}; every POSE_KEYPOINTS name is needed."""
    missing = [k for k in POSE_KEYPOINTS if k not in landmarks]
    if missing:
        raise ValueError(f"landmarks for {image} lack {missing}")
    norm = np.array([landmarks[k][:2] for k in POSE_KEYPOINTS], dtype=np.float64)
    xy = box.normalised_to_crop(norm)
    return [(image, k, float(x), float(y), float(landmarks[k][2]))
            for k, (x, y) in zip(POSE_KEYPOINTS, xy)]


def keypoint_table(rows: Iterable[tuple]) -> pd.DataFrame:
    """Rows -> the table, rounded as the reference (x, y: 0.01 px; visibility: 0.001),
    visibility clipped to 0..1 (MediaPipe's sigmoid can round to exactly 0 or 1)."""
    table = pd.DataFrame(list(rows), columns=list(COLUMNS))
    table["x"] = table["x"].astype(float).round(2)
    table["y"] = table["y"].astype(float).round(2)
    table["visibility"] = table["visibility"].astype(float).clip(0, 1).round(3)
    return table


def write_keypoint_table(table: pd.DataFrame, out: Path) -> Path:
    """Write the table as CSV (via a temporary file, so a crash never leaves half a table)."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"keypoint table lacks columns {missing}; expected {list(COLUMNS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    table[list(COLUMNS)].to_csv(tmp, index=False)
    tmp.replace(out)
    return out


def find_images(root: Path, pattern: str) -> List[str]:
    """Image paths under root matching the glob, relative to root, sorted (posix form)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFile(f"image folder {root} does not exist")
    found = sorted(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file())
    if not found:
        raise MissingFile(f"no file under {root} matches {pattern!r}; pass --glob (e.g. '**/*.png')")
    return found


def spread_frames(frames: Sequence[str], k: int) -> List[str]:
    """k frames spread evenly over a tracklet, its first and last among them (k = 1: the middle
    one); every frame of a tracklet of k or fewer."""
    n = len(frames)
    if k < 1:
        raise InputError(f"frames per tracklet must be at least 1, got {k}")
    if n <= k:
        return list(frames)
    if k == 1:
        return [frames[n // 2]]
    return [frames[round(i * (n - 1) / (k - 1))] for i in range(k)]


def dataset_frames(dataset: "VideoReIDDataset", frames_per_tracklet: int, test: bool = False) -> List[str]:
    """The frames to label, relative to the dataset root, sorted: `frames_per_tracklet` spread
    over each training tracklet, and with `test` every query and gallery frame."""
    chosen = {f for t in dataset.train for f in spread_frames(t.frames, frames_per_tracklet)}
    if test:
        chosen.update(f for t in (*dataset.query, *dataset.gallery) for f in t.frames)
    root = Path(dataset.root).resolve()
    return sorted(Path(f).resolve().relative_to(root).as_posix() for f in chosen)


# ============================================================================ model

def _import_opencv():
    # The letterbox needs OpenCV only (its bicubic filter); it comes with mediapipe, and may be
    # installed without it.
    try:
        import cv2
    except ImportError as err:
        raise PoseModelUnavailable(f"cannot import OpenCV in {sys.executable} ({err}). {POSE_ENV_FIX}") from err
    return cv2


def _import_pose_libraries():
    # mediapipe 0.10.14 calls a deprecated protobuf API on every image: one warning per crop.
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
    os.environ.setdefault("GLOG_minloglevel", "2")  # silence TFLite's start-up log lines
    cv2 = _import_opencv()
    try:
        import mediapipe as mp
    except ImportError as err:
        raise PoseModelUnavailable(f"cannot import MediaPipe in {sys.executable} ({err}). {POSE_ENV_FIX}") from err
    return mp, cv2


def load_pose_model(min_detection_confidence: float = 0.5):
    """MediaPipe Pose, static-image mode, the full BlazePose model (model_complexity=1)."""
    mp, _ = _import_pose_libraries()
    if mp.__version__ != "0.10.14":
        warnings.warn(f"mediapipe {mp.__version__} is not the 0.10.14 the reference table was made with; "
                      f"landmarks may differ slightly", stacklevel=2)
    return mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                  min_detection_confidence=min_detection_confidence)


def detect(model, canvas: np.ndarray) -> Optional[Dict[str, Tuple[float, float, float]]]:
    """{keypoint: (x, y, visibility)} with x, y as fractions of the canvas, or None without a pose."""
    mp, _ = _import_pose_libraries()
    result = model.process(canvas)
    if result.pose_landmarks is None:
        return None
    lm = result.pose_landmarks.landmark
    marks = {k: lm[mp.solutions.pose.PoseLandmark[k.upper()]] for k in POSE_KEYPOINTS}
    return {k: (m.x, m.y, m.visibility) for k, m in marks.items()}


def _label_one(model, root: Path, rel: str) -> List[tuple]:
    """The table rows of one image (none without a pose)."""
    from PIL import Image

    with Image.open(Path(root) / rel) as im:
        rgb = np.asarray(im.convert("RGB"))
    box = Letterbox(rgb.shape[1], rgb.shape[0])
    landmarks = detect(model, letterbox_image(rgb, box))
    return [] if landmarks is None else landmark_rows(rel, landmarks, box)


_WORKER_MODEL = None


def _start_worker(min_detection_confidence: float) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = load_pose_model(min_detection_confidence)


def _label_chunk(task: Tuple[str, Sequence[str]]) -> Tuple[Sequence[str], List[tuple]]:
    root, chunk = task
    return chunk, [row for rel in chunk for row in _label_one(_WORKER_MODEL, Path(root), rel)]


def progress_path(out: Path) -> Path:
    """The list of images a partial table has done (with or without a pose), beside it."""
    return Path(out).with_name(Path(out).name + ".progress")


def _resume_state(out: Path, images: Sequence[str]) -> List[str]:
    """The images still to do; the table is cut back to the images its progress file lists
    (a kill between writing a chunk's rows and listing the chunk leaves rows of unlisted images)."""
    done_file = progress_path(out)
    if not done_file.is_file():
        return list(images)
    done = set(done_file.read_text().split("\n")) - {""}
    if out.is_file() and out.stat().st_size:
        table = pd.read_csv(out, dtype={"image": str})
        kept = table[table["image"].isin(done)]
        if len(kept) != len(table):
            write_keypoint_table(kept, out)
    return [rel for rel in images if rel not in done]


def label_images(root: Path, images: Sequence[str], out: Path, workers: int = 1, chunk_size: int = 32,
                 min_detection_confidence: float = 0.5, progress: bool = True) -> int:
    """Label `images` (paths relative to root) into the keypoint table `out`; the number of
    images done, this run and before.

    Resumable: each chunk's rows are appended to `out`, then its images to out.progress; a run
    started again on the same `out` skips what that file lists, so a killed run loses at most
    the chunks in flight. Chunks go to `workers` processes (each with its own model) and are
    written in image order, so a resumed table equals an uninterrupted one. The progress file
    is removed when every image is done.
    """
    from tqdm import tqdm

    out = Path(out)
    todo = _resume_state(out, images)
    chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    out.parent.mkdir(parents=True, exist_ok=True)
    progress_path(out).touch()
    header = not (out.is_file() and out.stat().st_size)
    bar = tqdm(total=len(images), initial=len(images) - len(todo), desc="pose", unit="img", disable=not progress,
               smoothing=0.05)
    tasks = [(str(root), c) for c in chunks]
    if workers > 1:
        pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker, (min_detection_confidence,))
        results = pool.imap(_label_chunk, tasks)
    else:
        pool = None
        _start_worker(min_detection_confidence)
        results = map(_label_chunk, tasks)
    try:
        with open(out, "a", newline="") as table_file, open(progress_path(out), "a") as done_file:
            for chunk, rows in results:
                keypoint_table(rows).to_csv(table_file, index=False, header=header)
                header = False
                table_file.flush()
                os.fsync(table_file.fileno())
                done_file.write("".join(f"{rel}\n" for rel in chunk))
                done_file.flush()
                bar.update(len(chunk))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        elif _WORKER_MODEL is not None:
            _WORKER_MODEL.close()
    if header:   # nothing had a pose: still a table, with its header
        keypoint_table([]).to_csv(out, index=False)
    progress_path(out).unlink()
    return len(images)


# ============================================================================ comparison

def compare_tables(mine: pd.DataFrame, reference: pd.DataFrame) -> Dict:
    """How closely a table reproduces a reference made the same way.

    images_*: how many images each labelled; both: labelled in both. per_keypoint: the
    median pixel distance on images both labelled; visibility_corr: Pearson correlation
    of visibility over the rows both have.
    """
    for name, t in (("mine", mine), ("reference", reference)):
        missing = [c for c in COLUMNS if c not in t.columns]
        if missing:
            raise ValueError(f"{name} table lacks columns {missing}")
    both = mine.merge(reference, on=["image", "keypoint"], suffixes=("", "_ref"))
    dist = np.hypot(both["x"] - both["x_ref"], both["y"] - both["y_ref"])
    per_kp = dist.groupby(both["keypoint"]).median()
    corr = (float(np.corrcoef(both["visibility"], both["visibility_ref"])[0, 1])
            if len(both) > 1 and both["visibility"].std() > 0 and both["visibility_ref"].std() > 0 else float("nan"))
    return {
        "images_mine": int(mine["image"].nunique()),
        "images_reference": int(reference["image"].nunique()),
        "images_both": int(both["image"].nunique()),
        "median_distance_px": float(dist.median()) if len(dist) else float("nan"),
        "per_keypoint_median_px": {k: float(v) for k, v in per_kp.items()},
        "visibility_corr": corr,
    }
