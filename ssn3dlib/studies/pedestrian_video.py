"""The pedestrian study on real video: its SSNs (trained on PKU-Reid crops) run on MOT17 tracklets.

Data: the ground-truth pedestrians of ``data_root()/mot17_mini`` (``ssn3dlib.data.mot``) cut into
per-identity crops (``mot.cut_tracklets``, cached under ``reports/runs/cache/mot17_crops``), with
the MediaPipe keypoints committed in ``data_labels/mot17_mini_mediapipe.csv`` (``ssn3d data
pseudolabel`` made them; ``data_labels/README.md``). Only crops with at least one visible part are
used, resized to the study's input size like the PKU crops.

Measures, per frame pair (consecutive frames of one identity, a part visible in both):
- follows: the part's peak moved with its keypoint, |(peak_b - peak_a) - (kp_b - kp_a)| <= the PCK
  radius (``toolkit.follows_motion``): "stable across multiple frames", the paper's word, measured
  against the part's own motion;
- chance: two independent uniform windows (exact); static: a map that never moves (it follows any
  part that moves less than the radius, which on 25-30 fps video is nearly all of them: stability
  alone cannot tell a map that tracks the part from one that ignores the image, so the PCK on the
  same frames stands beside it).
Per crop: PCK of each method and of the position prior fitted on the PKU labelled crops.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..paths import data_root, labels_dir, reports_dir
from . import pedestrians as P
from .toolkit import chance_follows_motion, follows_motion, part_hits
from .toolkit.statistics import Comparison, against_reference, compare

MOT_DATASET = "mot17_mini"
KEYPOINT_TABLE = "mot17_mini_mediapipe.csv"


def default_crop_cache() -> Path:
    """Where the MOT17 crops are cut (git-ignored scratch space; the keypoint table's paths are
    relative to it)."""
    return reports_dir() / "runs" / "cache" / "mot17_crops"


@dataclass
class VideoCrops:
    """MOT17 crops as study Crops (role "video"), the (sequence, id, frame) of each and the
    index pairs of consecutive frames of one identity."""

    crops: "P.Crops"
    frames: List[Tuple[str, int, int]]
    pairs: np.ndarray

    @property
    def both_visible(self) -> np.ndarray:
        """(P, N): the part is visible in both frames of a pair."""
        vis = self.crops.visible
        return vis[self.pairs[:, 0]] & vis[self.pairs[:, 1]]


def consecutive_pairs(frames: List[Tuple[str, int, int]]) -> np.ndarray:
    """(P, 2) indices (a, b) with b the next frame (frame + 1) of a's identity."""
    where = {f: i for i, f in enumerate(frames)}
    pairs = [(i, where[(s, t, f + 1)]) for i, (s, t, f) in enumerate(frames) if (s, t, f + 1) in where]
    return np.array(pairs, dtype=int).reshape(-1, 2)


def load_video_crops(params: "P.StudyParams", mot_root: Optional[Path] = None,
                     keypoint_table: Optional[Path] = None, cache_dir: Optional[Path] = None) -> VideoCrops:
    """The MOT17 crops with keypoints (module doc), at params.image_size."""
    from ..data import mot
    from ..data.keypoints import load_part_keypoints

    mot_root = Path(mot_root) if mot_root is not None else data_root() / MOT_DATASET
    table = Path(keypoint_table) if keypoint_table is not None else labels_dir() / KEYPOINT_TABLE
    if not table.is_file():
        raise FileNotFoundError(f"no keypoint table {table}: regenerate it as data_labels/README.md says")
    cache = Path(cache_dir) if cache_dir is not None else default_crop_cache()
    mot.cut_tracklets(mot.read_mot(mot_root), cache)
    parts = load_part_keypoints(table, P.PART_SET, cache)
    missing = [p for p in parts if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} crops of {table} are not under {cache} (e.g. {missing[0]}): the "
                                f"table was made on other crops; regenerate it (data_labels/README.md)")
    paths = sorted(p for p, kp in parts.items() if (kp[:, 2] > params.min_visibility).any())
    frames = [(Path(p).parts[-3], int(Path(p).parent.name), int(Path(p).stem)) for p in paths]
    tracks = {key: i for i, key in enumerate(sorted({(s, t) for s, t, _ in frames}))}
    pid_of = {p: tracks[(s, t)] for p, (s, t, _) in zip(paths, frames)}
    crops = P._load_crops("mot17", {"video": paths}, pid_of, parts, params.image_size, params.min_visibility)
    video = VideoCrops(crops, frames, consecutive_pairs(frames))
    keep = video.both_visible.any(1)
    return VideoCrops(crops, frames, video.pairs[keep])


def video_peaks(result: "P.DatasetResult", video: VideoCrops) -> Dict:
    """Every run of `result` applied to the video crops through its own backbone (frozen or
    trained): {"crops": video, "maps"/"peaks": {(method, seed): array}}, unsupervised maps
    reordered by the assignment fitted on the PKU labelled crops."""
    maps, peaks = {}, {}
    for (method, seed), run in result.runs.items():
        m = P.crop_maps(run, video.crops)
        if P.METHODS[method].strategy == "unsupervised":
            m = m[:, result.assignment[seed]]
        maps[(method, seed)] = m
        peaks[(method, seed)] = result.grid.peak_pixels(m)
    return {"crops": video, "maps": maps, "peaks": peaks}


def _pair_mean(hits: np.ndarray) -> List[float]:
    return np.nanmean(hits, axis=1).tolist()


def video_metrics(result: "P.DatasetResult", params: "P.StudyParams", prior: np.ndarray) -> Dict:
    """metrics.json ``video``: counts; ``per_pair.follows.<method>`` (per seed, per frame pair: the
    fraction of parts visible in both frames whose peak moved with the keypoint),
    ``per_pair.chance`` and ``per_pair.static``; ``per_crop.pck.<method>`` (per seed, per crop),
    ``per_crop.prior``; ``motion_px`` (median keypoint displacement between the frames of a pair);
    ``per_pair.side_flips.<method>`` (per seed, per frame pair: the fraction of left/right maps that
    change side between the frames, ``P.side_flips``; NaN as None where no pair is visible),
    ``per_pair.side_flips_chance`` and ``per_pair.side_flips_static``."""
    video: VideoCrops = result.video["crops"]
    kp, radius = video.crops.keypoints, params.radius_px
    a, b = video.pairs[:, 0], video.pairs[:, 1]
    both = video.both_visible
    follows = {m: [_pair_mean(follows_motion(p[a], p[b], kp[a], kp[b], both, radius))
                   for p in (result.video["peaks"][(m, s)] for s in params.seeds)] for m in result.methods}
    fixed = np.broadcast_to(prior, kp[..., :2].shape)
    vis = video.crops.visible
    moved = np.linalg.norm(kp[b, :, :2] - kp[a, :, :2], axis=-1)[both]
    flips = {m: [P._nan_to_none(P.side_flips(p[a], p[b], kp[a], kp[b], both))
                 for p in (result.video["peaks"][(m, s)] for s in params.seeds)] for m in result.methods}
    return {
        "counts": {"crops": len(video.frames), "identities": len({(s, t) for s, t, _ in video.frames}),
                   "frame_pairs": int(len(video.pairs))},
        "motion_px": float(np.median(moved)) if moved.size else None, "radius_px": radius,
        "per_pair": {"follows": follows,
                     "chance": _pair_mean(chance_follows_motion(kp[a], kp[b], both, result.grid, radius)),
                     "static": _pair_mean(follows_motion(fixed[a], fixed[b], kp[a], kp[b], both, radius)),
                     "side_flips": flips,
                     "side_flips_chance": P._nan_to_none(P.chance_side_flips(kp[a], kp[b], both, result.grid)),
                     "side_flips_static": P._nan_to_none(P.side_flips(fixed[a], fixed[b], kp[a], kp[b], both))},
        "per_crop": {"pck": {m: [_pair_mean(part_hits(result.video["peaks"][(m, s)], kp, vis, radius))
                                 for s in params.seeds] for m in result.methods},
                     "prior": _pair_mean(part_hits(fixed, kp, vis, radius))},
    }


def _rows(m: Dict, *keys: str) -> np.ndarray:
    node = m["video"]
    for k in keys:
        node = node[k]
    return np.atleast_2d(np.asarray(node, dtype=float))


def _follows_vs_chance(m: Dict) -> Comparison:
    return against_reference(_rows(m, "per_pair", "follows", "semi-supervised") - _rows(m, "per_pair", "chance"),
                             0.0, unit="frame pairs")


def _follows_text(m: Dict) -> str:
    v = m["video"]
    mean = {k: float(np.mean(_rows(m, "per_pair", "follows", k))) for k in v["per_pair"]["follows"]}
    return (f"On {v['counts']['frame_pairs']} consecutive MOT17 frame pairs ({v['counts']['identities']} people) the "
            f"semi-supervised peaks move with their part in {mean['semi-supervised']:.2f} of cases, unsupervised "
            f"{mean['unsupervised']:.2f}, two random windows {np.mean(v['per_pair']['chance']):.2f}, and a map that "
            f"never moves {np.mean(v['per_pair']['static']):.2f} (keypoints move a median "
            f"{v['motion_px']:.1f} px between frames, the radius is {v['radius_px']:.1f} px)")


def _flips(m: Dict) -> Optional[Comparison]:
    """Unsupervised minus semi-supervised side-flip rate over the frame pairs showing a left/right
    pair, paired frame pairs and seeds (None for an older metrics.json without flips)."""
    return P.unsup_minus_semi(m["video"]["per_pair"].get("side_flips"), "frame pairs")


def _flips_text(m: Dict) -> str:
    per_pair = m["video"]["per_pair"]
    mean = {k: float(np.nanmean(np.asarray(v, dtype=float))) for k, v in per_pair["side_flips"].items()}
    return (f"Between consecutive MOT17 frames, left/right maps (knees, feet) change side in "
            f"{mean['unsupervised']:.2f} of cases unsupervised, {mean['semi-supervised']:.2f} semi-supervised, "
            f"{float(np.nanmean(np.asarray(per_pair['side_flips_chance'], dtype=float))):.2f} for peaks drawn at "
            f"random in each frame and {float(np.nanmean(np.asarray(per_pair['side_flips_static'], dtype=float))):.2f} "
            f"for a map that never moves (the keypoints cross it)")


def _pck_text(m: Dict) -> str:
    semi = float(np.mean(_rows(m, "per_crop", "pck", "semi-supervised")))
    prior = float(np.mean(m["video"]["per_crop"]["prior"]))
    return (f"PCK on the MOT17 crops: semi-supervised {semi:.2f}, the position prior fitted on the PKU labelled "
            f"crops {prior:.2f}")


VIDEO_TESTS = (
    P.ClaimTest("video_parts_follow_the_person",
                "the semi-supervised SSN's parts are stable across multiple frames of real video",
                "per frame pair, the fraction of parts whose peak moved with the keypoint (within the PCK radius) "
                "minus that of two random windows, two-way t interval over seeds x frame pairs; a map that never "
                "moves passes too, so read it with the PCK row",
                _follows_vs_chance, _follows_text, decide=P.SEEDS_TO_DECIDE),
    P.ClaimTest("video_semi_more_stable_than_unsup",
                "unsupervised parts are less stable across frames than semi-supervised ones",
                "per frame pair, the same fraction semi-supervised minus unsupervised, paired frame pairs and seeds",
                lambda m: compare(_rows(m, "per_pair", "follows", "semi-supervised"),
                                  _rows(m, "per_pair", "follows", "unsupervised"), unit="frame pairs"),
                _follows_text, decide=P.SEEDS_TO_DECIDE),
    P.ClaimTest("video_unsup_swaps_sides_across_frames",
                "unsupervised training confuses similar parts (left and right) across the frames of a video",
                "per frame pair, the fraction of left/right maps that change side between the frames (nearer the "
                "other side's keypoint in one frame than in the other), unsupervised minus semi-supervised, "
                "paired frame pairs and seeds",
                _flips, _flips_text, decide=P.SEEDS_TO_DECIDE,
                applies=lambda m: {"unsupervised", "semi-supervised"}
                <= set(m.get("video", {}).get("per_pair", {}).get("side_flips", {}))),
    P.ClaimTest("video_semi_beats_position_prior", P.NOT_IN_PAPER,
                "per-crop PCK of the semi-supervised maps on the MOT17 crops minus that of the position prior "
                "(fitted on the PKU labelled crops)",
                lambda m: against_reference(_rows(m, "per_crop", "pck", "semi-supervised")
                                            - _rows(m, "per_crop", "prior"), 0.0, unit="crops"),
                _pck_text, paper_claim=False, decide=P.SEEDS_TO_DECIDE),
)


def video_sheet(result: "P.DatasetResult", method: str = "semi-supervised", seed: Optional[int] = None,
                frames: int = 6):
    """A Fig. 4 sheet on real video: consecutive frames of the MOT17 identity with the most
    frames, each with its six maps (dot: keypoint, cross: peak)."""
    from ..attention_plots import attention_grid

    video: VideoCrops = result.video["crops"]
    seed = min(s for _, s in result.runs) if seed is None else seed
    pids = video.crops.pids
    track = int(np.bincount(pids).argmax())
    idx = np.flatnonzero(pids == track)[:frames]
    crops, maps, peaks = video.crops, result.video["maps"][(method, seed)], result.video["peaks"][(method, seed)]
    titles = [f"{video.frames[i][0][:8]}\nid {video.frames[i][1]} f{video.frames[i][2]}" for i in idx]
    return attention_grid([crops.images[i] for i in idx], [maps[i] for i in idx], P.PARTS, result.grid.extent,
                          keypoints=[P._nan_invisible(crops, i) for i in idx], peaks=[peaks[i] for i in idx],
                          titles=titles, title=f"MOT17 frames, {result.name}, {method} SSN (seed {seed})")
