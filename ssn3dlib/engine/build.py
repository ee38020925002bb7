"""From a RunConfig to the objects a run needs: dataset, keypoints, model, objective,
optimiser and schedule. Checks that need the data (a missing root, a clip longer than
every tracklet, a strategy without keypoints) fail here, before any training step.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from ..data.registry import dataset_info
from ..data.tracklets import VideoReIDDataset
from .config import ConfigError, DataConfig, RunConfig


def world_cache_dir() -> Path:
    """Where generated synthetic worlds are kept: $SSN3D_CACHE/worlds, else ~/.cache/ssn3d/worlds."""
    base = os.environ.get("SSN3D_CACHE") or Path.home() / ".cache" / "ssn3d"
    return Path(base).expanduser() / "worlds"


def dataset_root(data: DataConfig) -> Path:
    """The folder to read: data.root (relative to the data root), or the default place."""
    from ..paths import data_root

    if data.root is not None:
        root = Path(data.root).expanduser()
        return (root if root.is_absolute() else data_root() / root).resolve()
    if data.name == "synthetic_world":
        if data.world is None:
            raise ConfigError("data.name: synthetic_world needs data.root (a generated world) or "
                              "data.world (WorldConfig fields, generated on first use)")
        digest = hashlib.sha1(json.dumps(data.world, sort_keys=True).encode()).hexdigest()[:12]
        return (world_cache_dir() / digest).resolve()
    return (data_root() / data.name).resolve()


def prepare_dataset(data: DataConfig, progress: bool = True) -> VideoReIDDataset:
    """Generate the synthetic world if asked for, then read the dataset, with a clear error
    for a missing folder."""
    from ..data.readers import read_dataset

    root = dataset_root(data)
    if data.world is not None:
        from ..data.synthetic import WorldConfig, generate_world

        generate_world(WorldConfig.from_dict(data.world), root, progress=progress)
    if not root.exists():
        raise ConfigError(f"dataset {data.name!r} not found: {root} does not exist. Set data.root to the "
                          f"dataset folder (relative paths start at $SSN3D_DATA_ROOT) or download it as "
                          f"{dataset_info(data.name).manifest_path} describes")
    try:
        return read_dataset(data.name, root, **data.options)
    except TypeError as err:  # an option the reader does not take
        raise ConfigError(f"data.options {data.options} do not fit the {data.name!r} reader: {err}") from None


def check_clip_length(dataset: VideoReIDDataset, data: DataConfig) -> None:
    """T longer than every training tracklet is impossible; with short: error, any is."""
    lengths = [len(t) for t in dataset.train]
    if not lengths:
        raise ConfigError(f"dataset {dataset.name!r} at {dataset.root} has no training tracklets")
    if data.clip_len > max(lengths):
        raise ConfigError(f"data.clip_len={data.clip_len} is longer than every training tracklet of "
                          f"{dataset.name!r} (the longest has {max(lengths)} frames); lower data.clip_len")
    short = sum(n < data.clip_len for n in lengths)
    if data.short == "error" and short:
        raise ConfigError(f"data.clip_len={data.clip_len}: {short} of {len(lengths)} training tracklets are "
                          f"shorter (the shortest has {min(lengths)} frames) and data.short is 'error'; "
                          f"lower data.clip_len or set data.short: fallback")


def needs_keypoints(config: RunConfig) -> bool:
    return config.model.capabilities().uses_keypoints


def keypoint_table(data: DataConfig, root: Path) -> Optional[Path]:
    """The keypoint table to use, or None (data.keypoints: auto/None/path)."""
    if data.keypoints is None:
        return None
    if data.keypoints == "auto":
        name = dataset_info(data.name).keypoint_table
        return root / name if name and (root / name).is_file() else None
    path = Path(data.keypoints).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise ConfigError(f"data.keypoints: {path} does not exist (relative paths start at the dataset root)")
    return path


def load_keypoints(config: RunConfig, root: Path) -> Optional[Dict[str, np.ndarray]]:
    """Part keypoints per frame when the strategy uses them; a clear error when there are none."""
    from ..data.clip_dataset import load_part_keypoints
    from ..data.keypoints import drop_pose_frames

    if not needs_keypoints(config):
        return None
    table = keypoint_table(config.data, root)
    if table is None:
        raise ConfigError(f"model.strategy={config.model.strategy!r} needs keypoints, but data.keypoints is "
                          f"{config.data.keypoints!r} and {config.data.name!r} has no table of its own; set "
                          f"data.keypoints to a table (image,keypoint,x,y,visibility) or use "
                          f"model.strategy=unsupervised")
    keypoints = load_part_keypoints(table, part_set=config.data.part_set, image_root=root, check=True)
    if config.data.keypoint_drop:
        keypoints = drop_pose_frames(keypoints, config.data.keypoint_drop, config.train.seed, root)
    return keypoints


def keypoints_at_test_time(config: RunConfig) -> bool:
    """Whether evaluation must pass keypoints (SSN3D: the supervised strategy's keypoint windows)."""
    return config.model.capabilities().keypoints_at_test


def evaluation_keypoints(config: RunConfig, dataset: VideoReIDDataset) -> Optional[Dict[str, np.ndarray]]:
    return load_keypoints(config, Path(dataset.root)) if keypoints_at_test_time(config) else None


def build_train_dataset(config: RunConfig, dataset: VideoReIDDataset, keypoints):
    from ..data.clip_dataset import TrainClipDataset

    d = config.data
    return TrainClipDataset(dataset.train, clip_len=d.clip_len, stride=d.stride, size=tuple(d.size),
                            augment=d.augment, keypoints=keypoints, part_set=d.part_set,
                            labelled_per_tracklet=d.labelled_per_tracklet, short=d.short,
                            seed=config.train.seed)


def model_kwargs(config: RunConfig) -> Dict:
    """Keyword arguments of the configured model (only the keys it takes)."""
    kwargs = config.model.constructor_kwargs()
    if config.model.capabilities().train_clip_len:
        kwargs["train_clip_len"] = config.data.clip_len
    if config.model.backbone_weights is not None:
        kwargs["backbone_weights"] = config.model.backbone_weights
    return kwargs


def build_model(config: RunConfig) -> nn.Module:
    from ..models import build_model as build_by_name
    from ..models.backbones import Backbone
    from ..models.frozen import freeze_backbone

    kwargs = model_kwargs(config)
    if config.model.adapter_channels:
        kwargs["backbone"] = adapted_backbone(config)
        kwargs.pop("backbone_weights", None)
    try:
        model = build_by_name(config.model.name, **kwargs)
    except ValueError as err:  # e.g. a window that does not fit the feature map
        raise ConfigError(f"model {config.model.name!r} cannot be built from this config: {err}") from err
    if config.model.freeze_backbone and not config.model.adapter_channels:
        if not isinstance(getattr(model, "backbone", None), Backbone):
            raise ConfigError(f"model.freeze_backbone: model {config.model.name!r} has no `backbone` attribute "
                              f"holding a Backbone to freeze; set model.freeze_backbone: false")
        model.backbone = freeze_backbone(model.backbone)
    return model


def adapted_backbone(config: RunConfig):
    """The configured backbone (frozen when asked) under its trainable adapter stage; the model
    is then built on this Backbone instead of building its own from the name."""
    from ..models.adapter import AdaptedBackbone
    from ..models.backbones import build_backbone
    from ..models.frozen import freeze_backbone

    m = config.model
    try:
        backbone = build_backbone(m.backbone, weights=m.backbone_weights)
    except ValueError as err:
        raise ConfigError(f"model.backbone {m.backbone!r}: {err}") from err
    return AdaptedBackbone(freeze_backbone(backbone) if m.freeze_backbone else backbone, m.adapter_channels)


def build_objective(config: RunConfig):
    from ..losses import SSN3DObjective

    return SSN3DObjective(lambda_ssn=config.lambda_ssn(), margin=config.loss.margin)


def build_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = config.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=True)


class EpochSchedule:
    """Learning-rate factor per epoch: linear warm-up, then step decay (paper: x0.1 after
    epoch 50), cosine to zero, or constant. A callable object so LambdaLR can pickle it."""

    def __init__(self, name: str, epochs: int, milestones, gamma: float, warmup_epochs: int):
        self.name, self.epochs, self.milestones = name, epochs, list(milestones)
        self.gamma, self.warmup = gamma, warmup_epochs

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / (self.warmup + 1)
        if self.name == "step":
            return self.gamma ** sum(epoch >= m for m in self.milestones)
        if self.name == "cosine":
            span = max(1, self.epochs - self.warmup)
            return 0.5 * (1 + math.cos(math.pi * min(epoch - self.warmup, span) / span))
        return 1.0


def epoch_schedule(config: RunConfig) -> EpochSchedule:
    s = config.schedule
    return EpochSchedule(s.name, config.train.epochs, s.milestones, s.gamma, s.warmup_epochs)


def build_scheduler(config: RunConfig, optimizer: torch.optim.Optimizer):
    """Stepped once per epoch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, epoch_schedule(config))


def amp_dtype(config: RunConfig, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, refusing fp16 where no GradScaler can run."""
    mode = config.train.amp
    if mode == "none":
        return None
    if mode == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs a CUDA device (its gradient scaler is CUDA only); "
                          "use train.amp=bf16 or none on the CPU")
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.amp=bf16 is not supported by this GPU; use train.amp=fp16")
    return torch.bfloat16 if mode == "bf16" else torch.float16

