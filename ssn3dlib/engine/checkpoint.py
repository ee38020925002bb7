"""Checkpoints: everything a killed run needs to continue exactly, written atomically.

A checkpoint is one torch.save'd dict (loaded back with weights_only=True, so a file from
elsewhere cannot run code): model / optimiser / scheduler / AMP scaler states, the
position in training (epoch, step inside the epoch, global step), the RNG states of
python, numpy and torch (per rank), the resolved config, the best metric so far, how many
lines of metrics.jsonl belong to it, and the model signature: the model's config plus the
name and shape of every tensor of its state dict. Loading into a model with another
signature fails with the differences spelled out instead of a wall of size mismatches.

Atomic: the file is written under a temporary name in the same folder, flushed to disk,
then renamed over the target with os.replace, so a kill at any moment leaves either the
old checkpoint or the new one, never half a file.
"""
from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

from ..errors import UserError

FORMAT_VERSION = 1


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used here; the message says why and what to do."""


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP (checkpoints never hold the 'module.' prefix)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def model_signature(model: nn.Module, model_config: Mapping[str, Any], clip_len: int) -> Dict[str, Any]:
    """What identifies an architecture: its config and the shapes of its state dict."""
    state = unwrap(model).state_dict()
    shapes = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    arch = architecture(model_config)
    if not arch.get("shared_classifier", True):
        arch["train_clip_len"] = clip_len  # non-shared SSNs hold one classifier per clip position
    return {"model": arch, "num_tensors": len(state),
            "shapes_sha1": hashlib.sha1(shapes.encode()).hexdigest()}


def architecture(model_config: Mapping[str, Any]) -> Dict[str, Any]:
    """The ModelConfig entries the chosen model actually takes (a TP run ignores SSN keys)."""
    import inspect

    from ..models import MODELS

    accepted = set(inspect.signature(MODELS[model_config["name"]].__init__).parameters)
    arch = {"name": model_config["name"], "options": dict(model_config.get("options", {}))}
    arch.update({k: v for k, v in model_config.items()
                 if k in accepted and k not in ("backbone_weights", "options")})
    return arch


def check_signature(found: Mapping[str, Any], expected: Mapping[str, Any], source: str) -> None:
    """Raise CheckpointError naming every architectural difference."""
    if found == expected:
        return
    fa, ea = found.get("model", {}), expected.get("model", {})
    diffs = [f"model.{k}: checkpoint {fa.get(k)!r}, here {ea.get(k)!r}"
             for k in sorted(set(fa) | set(ea)) if fa.get(k) != ea.get(k)]
    if not diffs:
        diffs = [f"state dict: {found.get('num_tensors')} tensors (sha1 {found.get('shapes_sha1', '')[:10]}) "
                 f"vs {expected.get('num_tensors')} here (sha1 {expected.get('shapes_sha1', '')[:10]})"]
    raise CheckpointError(f"{source} holds another model than the one configured here:\n  " +
                          "\n  ".join(diffs) + "\nUse the config the checkpoint was trained with "
                          "(evaluate rebuilds it from the checkpoint), or start a fresh run directory.")


# ============================================================================ RNG states

def capture_rng() -> Dict[str, Any]:
    """Python, numpy (global) and torch CPU/CUDA generator states, as tensors and ints only."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ============================================================================ files

def save_checkpoint(path: Union[str, Path], payload: Dict[str, Any]) -> Path:
    """torch.save payload to path atomically (temporary file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by save_checkpoint, with clear errors for anything else."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated files, pickles of arbitrary objects, other formats
        # torch's own text suggests weights_only=False, the wrong advice for a file that is not
        # a checkpoint (and unsafe): say what the file is instead.
        raise CheckpointError(f"{path} is not a readable SSN3D checkpoint: {_what_file(path, err)}; "
                              f"{_UNREADABLE_FIX}") from None
    if not isinstance(payload, dict) or "format" not in payload or "signature" not in payload:
        raise CheckpointError(f"{path} is not an SSN3D engine checkpoint (no format/signature entries); "
                              f"load plain state dicts with model.load_state_dict instead")
    if payload["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {payload['format']}, this code reads "
                              f"{FORMAT_VERSION}")
    return payload


_UNREADABLE_FIX = "give a checkpoints/last.pt or best.pt that `ssn3d train` wrote"


def _what_file(path: Path, err: Exception) -> str:
    """What a file torch cannot load is, in words (torch's message names its own internals)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    if size == 0:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):     # torch.save's zip format
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            return (f"a torch file holding Python objects other than tensors and plain values ({size} bytes), "
                    f"not loaded since unpickling them could run code")
        return f"a torch zip archive that is truncated or damaged ({size} bytes), e.g. an interrupted copy"
    if b"\x00" not in head and head.decode("utf-8", "replace").count("\ufffd") <= 3:
        return f"a text file ({size} bytes), not a torch file"
    if head.startswith(b"\x80"):
        return f"a Python pickle in an older format than torch.save writes ({size} bytes)"
    return f"not a torch file ({size} bytes that torch.save did not write)"


def load_model_weights(model: nn.Module, path: Union[str, Path], model_config: Optional[Mapping] = None,
                       clip_len: Optional[int] = None) -> Dict[str, Any]:
    """Load a checkpoint's weights into `model`, refusing a checkpoint of another model.

    model_config / clip_len describe `model` (default: the checkpoint's own, so only the
    state-dict shapes are compared). Returns the checkpoint payload.
    """
    payload = load_checkpoint(path)
    saved = payload["signature"]
    config = dict(model_config) if model_config is not None else dict(saved["model"])
    clip_len = clip_len if clip_len is not None else saved["model"].get("train_clip_len", 4)
    check_signature(saved, model_signature(model, config, clip_len), str(path))
    unwrap(model).load_state_dict(payload["model"])
    return payload
