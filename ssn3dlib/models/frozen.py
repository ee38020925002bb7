"""A frozen backbone whose features are computed once per distinct frame.

With an ImageNet backbone kept fixed, what differs between two runs of a study (SSN3D against
TP, one seed against another) is only what sits on top of it. Training then costs the head's
steps alone if every frame's features are remembered: `FrozenBackbone` keys each input frame by
the digest of its pixels (after resizing, flipping and normalising), so a frame seen again,
in any batch, run or seed, is looked up instead of recomputed. The key is the frame's content,
never its file name: an augmented frame is another key, and a hit is always the exact features
the backbone would give (it runs in eval mode, BatchNorm on its stored statistics).

The memo lives as long as the process and is shared by every model whose frozen backbone has
the same weights (keyed by a digest of its state dict): a notebook that trains forty heads on
one backbone computes each frame's features once. On a GPU the backbone is cheap next to the
host-device copies a memo would need: it runs under no_grad and remembers nothing.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import torch
from cachetools import LRUCache

from .backbones import Backbone

#: Memo size limit per backbone: beyond it the oldest entries go (a study's frames fit:
#: 10k frames of 32 x 16 x 8 features take 160 MB).
DEFAULT_MAX_BYTES = 2 * 1024 ** 3


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class FeatureMemo(LRUCache):
    """Features by frame digest; beyond `max_bytes` the least recently used go first. Counts
    its hits and misses (how much a study saved)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        super().__init__(maxsize=max_bytes, getsizeof=tensor_bytes)
        self.hits = 0
        self.misses = 0

    def lookup(self, key: bytes) -> Optional[torch.Tensor]:
        value = self.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value


#: One memo per distinct set of backbone weights, for the life of the process; the memos of the
#: MAX_MEMOS weights used last (frozen random initialisations, one per seed, would pile up).
MAX_MEMOS = 4
_MEMOS: "LRUCache[str, FeatureMemo]" = LRUCache(maxsize=MAX_MEMOS)


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of a module's parameters and buffers (names, shapes and values)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def shared_memo(digest: str) -> FeatureMemo:
    """The process-wide memo of the backbone whose weights have this digest."""
    memo = _MEMOS.get(digest)
    if memo is None:
        memo = _MEMOS[digest] = FeatureMemo()
    return memo


def clear_feature_memos() -> None:
    """Forget every remembered feature, also in memos that live models still hold (frees the
    memory; the next runs recompute)."""
    for memo in _MEMOS.values():
        memo.clear()
    _MEMOS.clear()


def _frame_key(frame: torch.Tensor) -> bytes:
    # SHA-1 for speed (hardware-accelerated: 0.05 ms per 128 x 64 frame against 0.15 for
    # BLAKE2b); the inputs are our own frames, not an adversary's.
    h = hashlib.sha1(f"{frame.dtype}{tuple(frame.shape)}".encode())
    h.update(frame.contiguous().numpy().data)
    return h.digest()


#: Frames per backbone call when filling the memo. A convolution's result for one frame can
#: change in the last bits with the batch it runs in (oneDNN picks kernels by batch size: for
#: MobileNetV2 at batch 16 and up), and a remembered feature would then depend on which run
#: happened to see the frame first. Every call has this many frames (the last chunk padded),
#: so a frame's features are the same whatever the batch, run or worker order.
FILL_CHUNK = 8


class FrozenBackbone(Backbone):
    """`backbone` with its weights fixed (no gradient, always in eval mode) and, on the CPU,
    its features remembered per distinct frame (see the module docstring).

    The wrapped network stays under the attribute `body`, so a checkpoint's keys are the same
    as those of the trainable backbone.
    """

    def __init__(self, backbone: Backbone, memo: Optional[FeatureMemo] = None):
        super().__init__(backbone.body, backbone.out_channels, backbone.stride, backbone.name)
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.body.eval()
        self._memo = memo

    @property
    def memo(self) -> FeatureMemo:
        """The memo shared with every frozen backbone of the same weights (looked up when first
        used, so weights loaded from a checkpoint after wrapping are the ones that count)."""
        if self._memo is None:
            self._memo = shared_memo(weights_digest(self.body))
        return self._memo

    def train(self, mode: bool = True) -> "FrozenBackbone":
        super().train(mode)
        self.body.eval()               # BatchNorm keeps its stored statistics
        return self

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        """The body on `frames` in calls of exactly FILL_CHUNK frames (see FILL_CHUNK)."""
        n = frames.shape[0]
        pad = -n % FILL_CHUNK
        if pad:
            frames = torch.cat([frames, frames[-1:].expand(pad, *frames.shape[1:])])
        return torch.cat([self.body(chunk) for chunk in frames.split(FILL_CHUNK)])[:n]

    def _load_from_state_dict(self, *args, **kwargs):
        self._memo = None              # called whenever a parent loads weights: another memo
        return super()._load_from_state_dict(*args, **kwargs)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
            return self.body(x)
        memo = self.memo
        keys = [_frame_key(frame) for frame in x]
        found = [memo.lookup(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            computed = self._features(x[missing])
            for i, features in zip(missing, computed):
                features = features.clone()     # not a view that keeps the whole batch alive
                memo[keys[i]] = features
                found[i] = features
        return torch.stack(found)


def freeze_backbone(backbone: Backbone) -> FrozenBackbone:
    """`backbone` frozen and memoised (a frozen one is returned as it is)."""
    return backbone if isinstance(backbone, FrozenBackbone) else FrozenBackbone(backbone)
