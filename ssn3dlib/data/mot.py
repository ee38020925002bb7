"""MOTChallenge sequences (the MOT17 layout): frames, ground-truth boxes, public detections,
and pedestrian tracklets cut from them.

    <root>/<split>/<SEQ>/seqinfo.ini        [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    <root>/<split>/<SEQ>/img1/000001.jpg    frames numbered from 1, six digits
    <root>/<split>/<SEQ>/gt/gt.txt          frame,id,x,y,w,h,consider,class,visibility
    <root>/<split>/<SEQ>/det/det.txt        frame,-1,x,y,w,h,score[,...]

Boxes are in pixels, (x, y) their top-left corner, frames 1-based. A tree may hold only the
first frames of a sequence (``../shared/data/mot17_mini``: 4-8 of each): the frames present
must run 1..n without a gap; ground-truth rows must all fall on present frames (a row
beyond them means a truncated img1/); detection rows of absent frames are dropped (the public
det.txt covers the whole sequence). Pedestrians are class 1 with consider 1.

It is not a re-ID benchmark (one camera per identity): its uses are real tracklets (crops of
one identity in consecutive frames, ``cut_tracklets``) and the offset of a real detector's box
from the ground truth (``match_detections``, ``box_errors``), the misalignment the SSN3D paper
blames on "imperfect bounding box detection".
"""
from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .layout import DatasetLayoutError, sorted_frames, sorted_subdirs
from .tracklets import Tracklet, VideoReIDDataset

NAME = "mot17"
FRAME_NAME = re.compile(r"(?P<frame>\d{6})\.jpg")
GT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "consider", "class", "visibility")
DET_COLUMNS = ("frame", "id", "x", "y", "w", "h", "score")
SEQINFO_KEYS = ("name", "imdir", "framerate", "seqlength", "imwidth", "imheight", "imext")
PEDESTRIAN_CLASS = 1
#: The pedestrians worth a crop: mostly visible and tall enough to show parts (the issue's rule).
MIN_VISIBILITY, MIN_HEIGHT = 0.3, 50.0
HINT = ("the MOTChallenge layout is <root>/<split>/<SEQ>/{seqinfo.ini, img1/000001.jpg, gt/gt.txt, det/det.txt}; "
        "see data_manifests/mot17_mini.yaml")


@dataclass(frozen=True)
class MOTSequence:
    """One sequence as read: the frames present and their boxes (DataFrames with GT_COLUMNS /
    DET_COLUMNS, sorted by frame then id / by frame then row)."""

    name: str
    root: Path
    frame_rate: float
    image_size: Tuple[int, int]          # (width, height)
    length: int                          # frames of the full sequence (seqinfo's seqLength)
    frames: Tuple[str, ...]              # absolute paths of the frames present, frame 1 first
    gt: pd.DataFrame
    det: pd.DataFrame

    def frame_path(self, frame: int) -> str:
        return self.frames[frame - 1]

    def pedestrians(self, min_visibility: float = MIN_VISIBILITY, min_height: float = MIN_HEIGHT) -> pd.DataFrame:
        """Ground-truth pedestrian boxes (class 1, consider 1) at least this visible and tall."""
        g = self.gt
        keep = (g["class"] == PEDESTRIAN_CLASS) & (g["consider"] == 1) & (g["visibility"] >= min_visibility) \
            & (g["h"] >= min_height)
        return g[keep].reset_index(drop=True)


def _fail(where: Path, problem: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"{NAME}: {where}: {problem}; {HINT}")


def _read_seqinfo(path: Path) -> Dict[str, str]:
    if not path.is_file():
        raise _fail(path.parent, "no seqinfo.ini")
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
        info = dict(parser["Sequence"])
    except (configparser.Error, KeyError) as err:
        raise _fail(path, f"not a [Sequence] ini file ({err})") from err
    missing = [k for k in SEQINFO_KEYS if k not in info]
    if missing:
        raise _fail(path, f"lacks {', '.join(missing)}")
    return info


def _read_boxes(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A MOT box file: at least len(columns) numeric columns (extra ones, as in MOT17's 10-column
    det.txt, are dropped); positive widths and heights; integer frames from 1."""
    if not path.is_file():
        raise _fail(path.parent.parent, f"no {path.parent.name}/{path.name}")
    try:
        table = pd.read_csv(path, header=None)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns), dtype=float)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise _fail(path, f"cannot be parsed as comma-separated numbers ({err})") from err
    if table.shape[1] < len(columns):
        raise _fail(path, f"rows have {table.shape[1]} columns, expected {len(columns)}: {','.join(columns)}")
    table = table.iloc[:, :len(columns)]
    table.columns = list(columns)
    numeric = table.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna().any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(path, f"line {row + 1} is not all numbers: {','.join(map(str, table.iloc[row]))}")
    bad = (numeric["w"] <= 0) | (numeric["h"] <= 0) | (numeric["frame"] < 1) | (numeric["frame"] % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(path, f"line {row + 1} has a frame below 1 or a box without area: "
                          f"{','.join(map(str, table.iloc[row]))}")
    numeric["frame"] = numeric["frame"].astype(int)
    numeric["id"] = numeric["id"].astype(int)
    return numeric


def read_mot_sequence(folder: Path) -> MOTSequence:
    """One sequence folder, checked (see the module doc)."""
    folder = Path(folder).expanduser().resolve()
    info = _read_seqinfo(folder / "seqinfo.ini")
    image_dir = folder / info["imdir"]
    if not image_dir.is_dir():
        raise _fail(folder, f"no {info['imdir']}/ folder of frames")
    frames = sorted_frames(NAME, image_dir, FRAME_NAME, (info["imext"].lower(),))
    numbers = [int(FRAME_NAME.fullmatch(Path(f).name)["frame"]) for f in frames]
    if numbers != list(range(1, len(numbers) + 1)):
        gap = next(i + 1 for i, n in enumerate(numbers) if n != i + 1)
        raise _fail(image_dir, f"frames must run 1..n without a gap, frame {gap:06d} is missing")
    length = int(info["seqlength"])
    if len(frames) > length:
        raise _fail(image_dir, f"{len(frames)} frames but seqinfo.ini says seqLength={length}")
    gt = _read_boxes(folder / "gt" / "gt.txt", GT_COLUMNS)
    beyond = gt["frame"] > len(frames)
    if beyond.any():
        raise _fail(folder / "gt" / "gt.txt", f"{int(beyond.sum())} rows fall on frames beyond the "
                                              f"{len(frames)} in {info['imdir']}/ (first: frame "
                                              f"{int(gt.loc[beyond, 'frame'].min())}): is img1/ truncated?")
    det = _read_boxes(folder / "det" / "det.txt", DET_COLUMNS)
    det = det[det["frame"] <= len(frames)]
    return MOTSequence(name=info["name"], root=folder, frame_rate=float(info["framerate"]),
                       image_size=(int(info["imwidth"]), int(info["imheight"])), length=length,
                       frames=tuple(frames),
                       gt=gt.sort_values(["frame", "id"], kind="stable").reset_index(drop=True),
                       det=det.sort_values("frame", kind="stable").reset_index(drop=True))


def read_mot(root: Path, split: str = "train") -> List[MOTSequence]:
    """Every sequence folder under <root>/<split>, in name order."""
    root = Path(root).expanduser().resolve()
    if not (root / split).is_dir():
        raise _fail(root, f"no {split}/ folder")
    folders = sorted_subdirs(root / split)
    if not folders:
        raise _fail(root / split, "holds no sequence folders")
    return [read_mot_sequence(f) for f in folders]


# ============================================================================ detector boxes

def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of boxes given as (x, y, w, h) rows."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / union


def match_detections(seq: MOTSequence, min_iou: float = 0.5, min_visibility: float = MIN_VISIBILITY,
                     min_height: float = MIN_HEIGHT) -> pd.DataFrame:
    """Each kept ground-truth pedestrian matched to at most one detection of its frame (the
    one-to-one assignment of largest total IoU, scipy's linear_sum_assignment), pairs with IoU
    >= min_iou. Columns: sequence, frame, id, the ground-truth box (x, y, w, h), the detection
    (det_x, det_y, det_w, det_h, score) and iou."""
    from scipy.optimize import linear_sum_assignment

    rows = []
    people = seq.pedestrians(min_visibility, min_height)
    for frame, gt in people.groupby("frame", sort=True):
        det = seq.det[seq.det["frame"] == frame]
        if det.empty:
            continue
        iou = iou_matrix(gt[["x", "y", "w", "h"]].to_numpy(), det[["x", "y", "w", "h"]].to_numpy())
        for g, d in zip(*linear_sum_assignment(-iou)):
            if iou[g, d] >= min_iou:
                gr, dr = gt.iloc[g], det.iloc[d]
                rows.append({"sequence": seq.name, "frame": int(frame), "id": int(gr["id"]),
                             "x": gr["x"], "y": gr["y"], "w": gr["w"], "h": gr["h"],
                             "det_x": dr["x"], "det_y": dr["y"], "det_w": dr["w"], "det_h": dr["h"],
                             "score": dr["score"], "iou": float(iou[g, d])})
    columns = ["sequence", "frame", "id", "x", "y", "w", "h", "det_x", "det_y", "det_w", "det_h", "score", "iou"]
    return pd.DataFrame(rows, columns=columns)


def box_offsets(x, y, w, h, ref_x, ref_y, ref_w, ref_h) -> Dict[str, np.ndarray]:
    """How a box sits against a reference box, in units of the reference's height (the unit a
    person's size gives): centre offsets dx, dy and the log of the height ratio (scale)."""
    x, y, w, h, rx, ry, rw, rh = (np.asarray(v, dtype=float) for v in (x, y, w, h, ref_x, ref_y, ref_w, ref_h))
    return {"dx": (x + w / 2 - (rx + rw / 2)) / rh, "dy": (y + h / 2 - (ry + rh / 2)) / rh,
            "log_scale": np.log(h / rh)}


def box_errors(matches: pd.DataFrame) -> Dict[str, float]:
    """Summary of detection-vs-ground-truth offsets (``box_offsets`` of each matched pair):
    matched boxes, median IoU, the SD of each offset and their means (a detector's bias)."""
    if matches.empty:
        raise ValueError("no matched boxes to summarise: lower min_iou or check the sequences' detections")
    off = box_offsets(matches["det_x"], matches["det_y"], matches["det_w"], matches["det_h"],
                      matches["x"], matches["y"], matches["w"], matches["h"])
    out = {"boxes": int(len(matches)), "median_iou": float(np.median(matches["iou"]))}
    for key, values in off.items():
        out[f"sd_{key}"] = float(np.std(values, ddof=1))
        out[f"mean_{key}"] = float(np.mean(values))
    return out


# ============================================================================ tracklets

def crop_box(box: Sequence[float], image_size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """(left, top, right, bottom) integer pixels of an (x, y, w, h) box, clipped to the image."""
    x, y, w, h = box
    width, height = image_size
    left, top = max(0, int(round(x))), max(0, int(round(y)))
    right, bottom = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {tuple(box)} lies outside the {width} x {height} frame")
    return left, top, right, bottom


def tracklet_name(sequence: str, track_id: int) -> str:
    return f"{sequence}_{track_id:04d}"


def cut_tracklets(sequences: Sequence[MOTSequence], out_dir: Path, min_frames: int = 2,
                  min_visibility: float = MIN_VISIBILITY, min_height: float = MIN_HEIGHT,
                  quality: int = 95) -> List[Tracklet]:
    """One tracklet per ground-truth pedestrian seen in at least min_frames frames: its boxes
    cropped from the frames (``crop_box``) into out_dir/<sequence>/<id>/<frame>.jpg (written
    once; an existing crop is reused), frames in order. pid: a running index over the
    sequences' identities (sequence order, then id); camid: the sequence's index; name:
    ``tracklet_name``. A crop's pixels are those of the box clipped to the frame, so
    keypoint tables made on the crops (``ssn3d data pseudolabel``) stay in crop pixels."""
    from PIL import Image

    out_dir = Path(out_dir)
    tracklets = []
    for cam, seq in enumerate(sequences):
        people = seq.pedestrians(min_visibility, min_height)
        frames_open: Dict[int, Image.Image] = {}
        try:
            for track_id, rows in people.groupby("id", sort=True):
                if len(rows) < min_frames:
                    continue
                paths = []
                for _, r in rows.sort_values("frame").iterrows():
                    path = out_dir / seq.name / f"{int(track_id):04d}" / f"{int(r['frame']):06d}.jpg"
                    if not path.is_file():
                        frame = frames_open.get(int(r["frame"]))
                        if frame is None:
                            frame = frames_open[int(r["frame"])] = Image.open(seq.frame_path(int(r["frame"])))
                        path.parent.mkdir(parents=True, exist_ok=True)
                        crop = frame.convert("RGB").crop(crop_box((r["x"], r["y"], r["w"], r["h"]), seq.image_size))
                        tmp = path.with_suffix(".partial.jpg")
                        crop.save(tmp, quality=quality)
                        tmp.replace(path)       # a killed run never leaves a half-written crop
                    paths.append(str(path))
                tracklets.append(Tracklet(frames=tuple(paths), pid=len(tracklets), camid=cam,
                                          name=tracklet_name(seq.name, int(track_id))))
        finally:
            for image in frames_open.values():
                image.close()
    return tracklets


def tracklet_dataset(root: Path, crops_dir: Path, split: str = "train", min_frames: int = 2) -> VideoReIDDataset:
    """The sequences' ground-truth pedestrians as one split of tracklets to look at (the attention
    explorer): ``cut_tracklets`` into crops_dir, every tracklet in ``query``; no training set and no
    gallery, since one identity never appears in two tracklets here (nothing to rank)."""
    tracklets = cut_tracklets(read_mot(Path(root), split), Path(crops_dir), min_frames=min_frames)
    if not tracklets:
        raise DatasetLayoutError(f"{root}: no pedestrian is seen in {min_frames} or more frames (visibility >= "
                                 f"{MIN_VISIBILITY}, height >= {MIN_HEIGHT} px): no tracklet to show; {HINT}")
    return VideoReIDDataset(NAME, Path(crops_dir), train=[], query=tracklets, gallery=[],
                            protocol={"tracklets": "one per ground-truth pedestrian, frames in order",
                                      "gallery": "none (viewing only)"})


def crop_boxes(sequences: Sequence[MOTSequence], min_visibility: float = MIN_VISIBILITY,
               min_height: float = MIN_HEIGHT, crops_root: Optional[Path] = None) -> pd.DataFrame:
    """The ground-truth box behind every crop ``cut_tracklets`` writes: sequence, id, frame,
    x, y, w, h, the crop's top-left pixel in the frame (crop_left, crop_top: the box clipped and
    rounded) and, when crops_root is given, the crop's path relative to it: what relates
    keypoints in crop pixels to the frame and to the box."""
    rows = []
    for seq in sequences:
        people = seq.pedestrians(min_visibility, min_height)
        for _, r in people.iterrows():
            left, top, _, _ = crop_box((r["x"], r["y"], r["w"], r["h"]), seq.image_size)
            row = {"sequence": seq.name, "id": int(r["id"]), "frame": int(r["frame"]),
                   "x": r["x"], "y": r["y"], "w": r["w"], "h": r["h"], "crop_left": left, "crop_top": top}
            if crops_root is not None:
                row["image"] = f"{seq.name}/{int(r['id']):04d}/{int(r['frame']):06d}.jpg"
            rows.append(row)
    return pd.DataFrame(rows)
