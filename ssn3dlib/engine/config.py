"""The run configuration: one YAML schema for dataset, model, loss, optimiser, schedule,
training and evaluation (paper defaults, SPEC.md section 2).

A config file holds only what differs from the defaults below; ``load_config`` merges it,
applies command-line style overrides (``optim.lr=1e-4``), and validates everything it can
without touching data: unknown keys, wrong types and impossible values fail here with a
message naming the key and what to write instead. Checks that need the dataset (clip
length against tracklet lengths, keypoint tables) happen when the run is built.
"""
from __future__ import annotations

import copy
import difflib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

import yaml

from ..errors import InputError
from ..paths import package_data

if TYPE_CHECKING:
    from ..models import ModelCapabilities

#: Where named configs live: load_config("synthetic_cpu") reads configs/synthetic_cpu.yaml
#: (package data: a wheel install has them too).
CONFIG_DIR = package_data("configs")

AMP_MODES = ("none", "bf16", "fp16")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("step", "cosine", "constant")
SELECT_METRICS = ("mAP", "rank1")


class ConfigError(InputError):
    """A configuration that cannot run; the message says which key and how to fix it."""


#: Config keys that never change a run's numbers (threads, devices, logging, loader workers):
#: a run may resume, and a stored result stays valid, when only they differ.
RESULT_NEUTRAL_KEYS = frozenset({
    "train.num_threads", "train.tensorboard", "train.device", "train.log_every_steps",
    "train.checkpoint_every_steps", "data.num_workers", "eval.num_workers", "eval.clips_per_batch",
})
#: Dict-valued keys compared as one value (their content is free-form).
_OPAQUE_KEYS = ("data.options", "data.world", "model.options")


def config_changes(saved: Dict[str, Any], current: Dict[str, Any], ignore=RESULT_NEUTRAL_KEYS,
                   prefix: str = "") -> List[str]:
    """Dotted keys whose values differ between two config dicts, leaving out `ignore`."""
    out = []
    for k in sorted(set(saved) | set(current)):
        a, b, name = saved.get(k), current.get(k), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict) and name not in _OPAQUE_KEYS:
            out += config_changes(a, b, ignore, name + ".")
        elif a != b and name not in ignore:
            out.append(name)
    return out


@dataclass
class DataConfig:
    name: str = "synthetic_world"
    #: Dataset folder. None: <data root>/<name> (the synthetic world: a cache folder keyed by
    #: `world`). Relative paths are relative to the data root ($SSN3D_DATA_ROOT).
    root: Optional[str] = None
    #: Reader options, e.g. {split: 3} (iLIDS-VID, PRID, PKU) or {gallery: gallery-only} (MARS).
    options: Dict[str, Any] = field(default_factory=dict)
    #: synthetic_world only: WorldConfig fields; the world is generated (once) before training.
    world: Optional[Dict[str, Any]] = None
    #: Keypoint table: "auto" (the dataset's own table if it has one), a path, or None.
    keypoints: Optional[str] = "auto"
    #: Part set the keypoints are mapped to. None: the dataset's own (DatasetInfo.part_set).
    part_set: Optional[str] = None
    #: Pose-model failures, simulated: the fraction of frames whose keypoints are all removed, as
    #: when the pose model finds nobody (the paper's reason the supervised SSN loses, Table 1).
    #: Which frames is drawn per frame from train.seed, the same at training and test time
    #: (data/keypoints.drop_pose_frames). 0: the table as it is.
    keypoint_drop: float = 0.0
    size: List[int] = field(default_factory=lambda: [256, 128])
    clip_len: int = 4
    stride: int = 8
    short: str = "fallback"
    augment: bool = True
    labelled_per_tracklet: int = 2
    identities_per_batch: int = 8
    instances_per_identity: int = 4
    num_workers: int = 2

    def __post_init__(self):
        from ..data.readers import DATASETS

        if self.part_set is None and self.name in DATASETS:  # an unknown name fails validation
            self.part_set = DATASETS[self.name].part_set


@dataclass
class ModelConfig:
    name: str = "ssn3d"
    backbone: str = "resnet50-layer3"
    backbone_weights: Optional[str] = None
    #: Keep the backbone's weights fixed (eval mode, no gradient) and, on the CPU, compute each
    #: distinct frame's features once per process (models/frozen.py): runs then train only
    #: what sits on the backbone. Meant with ImageNet weights (backbone_weights).
    freeze_backbone: bool = False
    #: Channels of a trainable 3 x 3 conv stage every model gets on top of the backbone
    #: (models/adapter.py); 0: none. With a frozen backbone it gives TP, C3D and SSN3D the same
    #: trainable 2D stage, so they differ in aggregation only, not in what they can learn.
    adapter_channels: int = 0
    strategy: str = "semi-supervised"
    shared_classifier: bool = True
    num_parts: int = 9
    window: int = 3
    padding: int = 0
    hidden: int = 512
    part_dim: int = 256
    embedding_dim: int = 1024
    #: Extra keyword arguments of the chosen model (e.g. {reduction: 16} for st-attention).
    options: Dict[str, Any] = field(default_factory=dict)

    def constructor_kwargs(self) -> Dict[str, Any]:
        """The keys of this section the chosen model takes, options included (not the weights)."""
        from .checkpoint import architecture

        kwargs = architecture(asdict(self))
        kwargs.pop("name")
        kwargs.update(kwargs.pop("options"))
        return kwargs

    def capabilities(self) -> "ModelCapabilities":
        """What the chosen model needs and gives, asked before building it."""
        from ..models import model_capabilities

        return model_capabilities(self.name, **self.constructor_kwargs())


@dataclass
class LossConfig:
    #: None: the dataset's (DatasetInfo.lambda_ssn: the paper's, 0.1 iLIDS-VID/MARS, 0.05 Duke; else 0.1).
    lambda_ssn: Optional[float] = None
    margin: float = 0.3


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 3e-4
    weight_decay: float = 5e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9          # sgd only
    grad_clip_norm: Optional[float] = None


@dataclass
class ScheduleConfig:
    name: str = "step"
    milestones: List[int] = field(default_factory=lambda: [50])
    gamma: float = 0.1
    warmup_epochs: int = 0


@dataclass
class TrainConfig:
    epochs: int = 150
    seed: int = 0
    #: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N" (DDP uses LOCAL_RANK instead).
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = False
    sync_bn: bool = False
    #: Evaluate (and keep best.pt) every k epochs and after the last one; 0 = only after the last.
    eval_every: int = 10
    #: Also checkpoint every n optimiser steps inside an epoch (0 = at epoch ends only).
    checkpoint_every_steps: int = 0
    log_every_steps: int = 10
    #: Cap on steps per epoch (CPU budgets); None = the whole epoch.
    max_steps_per_epoch: Optional[int] = None
    #: torch threads per process; None = CPU cores / processes on this machine.
    num_threads: Optional[int] = None
    #: TensorBoard logs in run_dir/tensorboard: None = when installed, true = required, false = never.
    tensorboard: Optional[bool] = None
    #: DDP: None = only when some parameters get no gradient (the supervised SSN3D).
    find_unused_parameters: Optional[bool] = None


@dataclass
class EvalConfig:
    clip_len: int = 32
    clips_per_batch: int = 4
    metric: str = "euclidean"
    ap: str = "standard"
    max_rank: int = 20
    num_workers: int = 2
    #: Which metric picks best.pt.
    select: str = "mAP"


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def lambda_ssn(self) -> float:
        """The SSN loss weight this run uses (the dataset's default when unset)."""
        from ..data.readers import dataset_info

        if self.loss.lambda_ssn is not None:
            return self.loss.lambda_ssn
        return dataset_info(self.data.name).lambda_ssn


# ============================================================================ loading

def load_config(source: Union[str, Path, Dict, RunConfig, None] = None,
                overrides: Sequence[str] = ()) -> RunConfig:
    """A validated RunConfig from a YAML file, a config name in configs/, a dict, or defaults.

    overrides: "section.key=value" strings; values are parsed as YAML ("1e-4", "[40, 80]",
    "null", "true"), e.g. ["optim.lr=1e-4", "train.epochs=3", "data.options.split=2"].
    """
    if isinstance(source, RunConfig):
        raw = source.to_dict()
    elif isinstance(source, dict):
        raw = copy.deepcopy(source)
    elif source is None:
        raw = {}
    else:
        raw = _read_yaml(_config_path(source))
    for item in overrides:
        _apply_override(raw, item)
    config = _build(RunConfig, raw, "")
    validate(config)
    return config


def save_config(config: RunConfig, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_yaml())
    return path


def _config_path(source: Union[str, Path]) -> Path:
    path = Path(source).expanduser()
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{source}.yaml"
    if named.is_file():
        return named
    available = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"config {source!r} not found: neither a file nor a name in {CONFIG_DIR} "
                      f"(available: {', '.join(available) or 'none'})")


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (data, model, ...), got {type(raw).__name__}")
    return raw


def _apply_override(raw: Dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. optim.lr=1e-4")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from None
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _build(cls, raw: Any, where: str):
    """Instantiate dataclass `cls` from a mapping, checking keys and types on the way."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {raw!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = [k for k in raw if k not in known]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(known), n=1)
        hint = f"; did you mean {_dotted(where, close[0])!r}?" if close else ""
        raise ConfigError(f"unknown config key {_dotted(where, key)!r}{hint} "
                          f"(keys of {where or 'the config'}: {', '.join(known)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, _dotted(where, name))
    return cls(**values)


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def _coerce(tp, value, where: str):
    """Check `value` against the annotation `tp`; ints are accepted for floats."""
    if is_dataclass(tp):
        return _build(tp, value, where)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, getattr(types, "UnionType", Union)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if tp is Any:
        return value
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads "3e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"config schema has an unsupported annotation {tp} at {where}")  # programming error


# ============================================================================ validation

def _choice(where: str, value, allowed) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where} must be one of {', '.join(map(str, allowed))}; got {value!r}{hint}")


def _at_least(where: str, value, lo, inclusive: bool = True) -> None:
    if value is None:
        return
    if (value < lo) if inclusive else (value <= lo):
        raise ConfigError(f"{where} must be {'>=' if inclusive else '>'} {lo}, got {value!r}")


def validate(config: RunConfig) -> None:
    """Every check that needs no data: names that exist, values that can run."""
    from ..data.keypoints import PART_SETS
    from ..data.readers import DATASETS
    from ..data.temporal import SHORT_POLICIES
    from ..metrics.distance import METRICS
    from ..metrics.rank import AP_DEFINITIONS
    from ..models import MODELS, STRATEGIES

    d, m, lo, o, s, t, e = (config.data, config.model, config.loss, config.optim, config.schedule,
                            config.train, config.eval)
    _choice("data.name", d.name, sorted(DATASETS))
    _choice("data.part_set", d.part_set, sorted(PART_SETS))
    _choice("data.short", d.short, SHORT_POLICIES)
    if len(d.size) != 2 or min(d.size) < 16:
        raise ConfigError(f"data.size must be [height, width], each >= 16, got {d.size}")
    for key in ("clip_len", "stride"):
        _at_least(f"data.{key}", getattr(d, key), 1)
    _at_least("data.identities_per_batch", d.identities_per_batch, 2)
    if d.instances_per_identity < 2:    # else the first step fails, after the run has written its files
        raise ConfigError(f"data.instances_per_identity must be >= 2, got {d.instances_per_identity}: the "
                          f"triplet loss needs 2 clips of an identity in a batch (a positive); set it to 2 or more")
    _at_least("data.labelled_per_tracklet", d.labelled_per_tracklet, 0)
    if isinstance(d.keypoint_drop, bool) or not isinstance(d.keypoint_drop, (int, float)) \
            or not 0 <= d.keypoint_drop < 1:
        raise ConfigError(f"data.keypoint_drop is the fraction of frames without a pose, in [0, 1); got "
                          f"{d.keypoint_drop!r}")
    _at_least("data.num_workers", d.num_workers, 0)
    if d.world is not None and d.name != "synthetic_world":
        raise ConfigError(f"data.world describes a synthetic world, but data.name is {d.name!r}; "
                          f"remove data.world or set data.name: synthetic_world")
    if d.world is not None:
        from ..data.synthetic import WorldConfig
        try:
            WorldConfig.from_dict(d.world)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"data.world: {err}") from None

    _choice("model.name", m.name, sorted(MODELS))
    _choice("model.strategy", m.strategy, STRATEGIES)
    _check_backbone(m.backbone)
    for key in ("num_parts", "window", "hidden", "part_dim", "embedding_dim"):
        _at_least(f"model.{key}", getattr(m, key), 1)
    _at_least("model.padding", m.padding, 0)
    _at_least("model.adapter_channels", m.adapter_channels, 0)
    _check_model_options(m)
    caps = m.capabilities()
    if caps.parts and caps.uses_keypoints and m.num_parts != _part_count(d.part_set):
        raise ConfigError(f"model.num_parts={m.num_parts} but data.part_set {d.part_set!r} has "
                          f"{_part_count(d.part_set)} parts; the keypoint strategies need them equal")

    _at_least("loss.lambda_ssn", lo.lambda_ssn, 0)
    _at_least("loss.margin", lo.margin, 0)

    _choice("optim.name", o.name, OPTIMIZERS)
    _at_least("optim.lr", o.lr, 0, inclusive=False)
    _at_least("optim.weight_decay", o.weight_decay, 0)
    _at_least("optim.grad_clip_norm", o.grad_clip_norm, 0, inclusive=False)
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {o.betas}")

    _choice("schedule.name", s.name, SCHEDULES)
    if any(b <= a for a, b in zip(s.milestones, s.milestones[1:])) or any(x < 1 for x in s.milestones):
        raise ConfigError(f"schedule.milestones must be increasing epochs >= 1, got {s.milestones}")
    _at_least("schedule.gamma", s.gamma, 0, inclusive=False)
    _at_least("schedule.warmup_epochs", s.warmup_epochs, 0)

    _at_least("train.epochs", t.epochs, 1)
    _at_least("train.seed", t.seed, 0)
    _check_device(t.device)
    _choice("train.amp", t.amp, AMP_MODES)
    for key in ("eval_every", "checkpoint_every_steps"):
        _at_least(f"train.{key}", getattr(t, key), 0)
    for key in ("log_every_steps", "max_steps_per_epoch", "num_threads"):
        _at_least(f"train.{key}", getattr(t, key), 1)

    _at_least("eval.clip_len", e.clip_len, 1)
    _at_least("eval.clips_per_batch", e.clips_per_batch, 1)
    _at_least("eval.max_rank", e.max_rank, 1)
    _at_least("eval.num_workers", e.num_workers, 0)
    _choice("eval.metric", e.metric, METRICS)
    _choice("eval.ap", e.ap, AP_DEFINITIONS)
    _choice("eval.select", e.select, SELECT_METRICS)


def _part_count(part_set: str) -> int:
    from ..data.keypoints import PART_SETS

    return len(PART_SETS[part_set])


def _check_backbone(name: str) -> None:
    """Build it on the meta device: the real name check, without allocating weights."""
    import torch

    from ..models import KNOWN_BACKBONES, build_backbone

    try:
        with torch.device("meta"):
            build_backbone(name)
    except ValueError:
        raise ConfigError(f"model.backbone {name!r} does not exist; use 'none' or "
                          f"'<resnet>-layer<1-4>', e.g. {', '.join(KNOWN_BACKBONES)}") from None


def _check_model_options(m: ModelConfig) -> None:
    import inspect

    from ..models import MODELS

    accepted = set(inspect.signature(MODELS[m.name].__init__).parameters) - {"self"}
    bad = sorted(set(m.options) - accepted)
    if bad:
        raise ConfigError(f"model.options {bad} are not arguments of model {m.name!r}; "
                          f"it accepts {', '.join(sorted(accepted))}")
    if "train_clip_len" in m.options:
        raise ConfigError("model.options.train_clip_len comes from data.clip_len; set data.clip_len instead")
    clash = sorted(set(m.options) & {f.name for f in fields(ModelConfig)})
    if clash:
        raise ConfigError(f"model.options {clash} are model.* keys of their own; set model.{clash[0]} instead")


def _check_device(device: str) -> None:
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {device!r}")
