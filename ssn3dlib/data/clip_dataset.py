"""torch Datasets and loaders for clips: training clips with their keypoints and labelled
frames, test clips whose features are averaged per tracklet.

Randomness is a function of (seed, epoch, index) only, never of the worker that happens to
load an item, so a run is reproducible with any num_workers and resumable mid-training.
Each image of a clip is decoded once, also when a training clip repeats a frame (short
tracklets) or a labelled frame is also a clip frame.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from cachetools import LRUCache
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.v2.functional import pil_to_tensor
from tqdm.auto import tqdm

from ..errors import InputError
from ..models.ssn3d import Keypoints, LabelledFrames
from .identity_sampler import IdentityBatchSampler
from .keypoints import PART_SETS, best_labelled_frames, flip_permutation, load_part_keypoints
from .layout import DatasetLayoutError
from .temporal import evaluation_clip_indices, train_clip_indices
from .tracklets import Tracklet
from .transforms import ClipTransform

__all__ = ["TrainClipDataset", "TrainBatch", "collate_train", "build_train_loader", "EvalClipDataset",
           "extract_features", "load_part_keypoints", "read_frame"]


#: Decoded frames by (path, size, modification time), least recently used out beyond 1 GiB:
#: a study that trains many runs on one dataset decodes each image once per process (decoding
#: is most of a small run's time). A rewritten file has another size or time: decoded again.
_DECODED = LRUCache(maxsize=1024 ** 3, getsizeof=lambda t: t.numel())


def read_frame(path: str) -> torch.Tensor:
    """uint8 (3, h, w) RGB; a missing or corrupt file raises an error naming it. The caller
    gets its own copy (the decoded frame is kept for the next call)."""
    try:
        stat = os.stat(path)
        key = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
        frame = _DECODED.get(key)
        if frame is None:
            with Image.open(path) as image:
                frame = pil_to_tensor(image.convert("RGB"))
            _DECODED[key] = frame
    except (OSError, ValueError) as err:
        raise DatasetLayoutError(f"cannot decode frame {path}: {err}. Re-extract or re-download this image "
                                 f"(`ssn3d data verify` or `ssn3d train --check-images` checks a whole tree)") from err
    return frame.clone()


def _read_unique(paths: Sequence[str]) -> Dict[str, torch.Tensor]:
    return {p: read_frame(p) for p in dict.fromkeys(paths)}


def _relabel(pids: Sequence[int]) -> Tuple[List[int], Dict[int, int]]:
    mapping = {pid: i for i, pid in enumerate(sorted(set(pids)))}
    return [mapping[p] for p in pids], mapping


class TrainClipDataset(Dataset):
    """One item per training tracklet: a clip of `clip_len` frames `stride` apart (see
    `train_clip_indices`), spatially augmented with one draw per clip.

    keypoints: optional {absolute frame path: (N, 3) continuous x, y, visibility} (see
    `load_part_keypoints`); a part counts as visible when visibility > min_visibility.
    With keypoints, items also carry the clip frames' keypoints (supervised strategy) and
    the `labelled_per_tracklet` best-labelled frames of the tracklet (semi-supervised
    strategy; paper: 2), transformed with the clip's draw.
    Index with an int (uses the epoch of `set_epoch`) or with (epoch, index) pairs, which
    is what `build_train_loader`'s sampler yields so persistent workers stay in step.
    """

    def __init__(self, tracklets: Sequence[Tracklet], clip_len: int = 4, stride: int = 8,
                 size: Tuple[int, int] = (256, 128), augment: bool = True,
                 keypoints: Optional[Mapping[str, np.ndarray]] = None, part_set: str = "benchmark9",
                 labelled_per_tracklet: int = 2, min_visibility: float = 0.5, short: str = "fallback",
                 seed: int = 0, transform: Optional[ClipTransform] = None):
        if not tracklets:
            raise InputError("no training tracklets: check the dataset root and split")
        if part_set not in PART_SETS:
            raise InputError(f"unknown part set {part_set!r}; choose one of {sorted(PART_SETS)}")
        if short == "error":
            too_short = [t.name or t.frames[0] for t in tracklets if len(t) < clip_len]
            if too_short:
                raise InputError(f"{len(too_short)} training tracklets are shorter than clip_len={clip_len} "
                                 f"(e.g. {too_short[0]}); lower clip_len or use short='fallback'")
        self.tracklets = list(tracklets)
        self.clip_len, self.stride, self.short, self.seed = clip_len, stride, short, seed
        self.transform = transform or (ClipTransform.train(size) if augment else ClipTransform.test(size))
        self.labels, self.pid_to_label = _relabel([t.pid for t in self.tracklets])
        self.num_classes = len(self.pid_to_label)
        self.keypoints = keypoints
        self.num_parts = len(PART_SETS[part_set])
        self.flip_perm = flip_permutation(part_set)
        self.min_visibility = min_visibility
        self.labelled_per_tracklet = labelled_per_tracklet
        self.epoch = 0
        self.labelled_frames: List[List[str]] = []
        if keypoints is not None:
            sample = next(iter(keypoints.values()), None)
            if sample is not None and np.asarray(sample).shape != (self.num_parts, 3):
                raise ValueError(f"keypoint arrays have shape {np.asarray(sample).shape}, expected "
                                 f"({self.num_parts}, 3) for part set {part_set!r}")
            self.labelled_frames = [best_labelled_frames(t.frames, keypoints, labelled_per_tracklet,
                                                         min_visibility) for t in self.tracklets]
            if not any(self.labelled_frames):
                raise InputError("none of the training frames has keypoints: the table's image paths "
                                 "must resolve under the dataset root (see load_part_keypoints)")

    def __len__(self) -> int:
        return len(self.tracklets)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _parts(self, frames: Sequence[str]) -> np.ndarray:
        out = np.full((len(frames), self.num_parts, 3), np.nan)
        out[..., 2] = 0.0
        for i, f in enumerate(frames):
            p = self.keypoints.get(f)
            if p is not None:
                out[i] = p
        return out

    def _transform_parts(self, parts: np.ndarray, images: Sequence[torch.Tensor], params):
        if params.flip:
            parts = parts[:, self.flip_perm]
        sizes = [tuple(im.shape[-2:]) for im in images]
        xy = self.transform.transform_keypoints(parts[..., :2], sizes, params)
        visible = (parts[..., 2] > self.min_visibility) & np.isfinite(xy).all(-1)
        return torch.from_numpy(np.nan_to_num(xy)).float(), torch.from_numpy(visible)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        track = self.tracklets[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        clip_idx = train_clip_indices(len(track), self.clip_len, self.stride, rng, self.short)
        clip_paths = [track.frames[i] for i in clip_idx]
        labelled_paths = self.labelled_frames[index] if self.keypoints is not None else []
        images = _read_unique(clip_paths + labelled_paths)
        params = self.transform.sample(rng)
        clip_images = [images[p] for p in clip_paths]
        item = {"clip": self.transform.apply(clip_images, params), "label": self.labels[index],
                "camid": track.camid, "index": index}
        if self.keypoints is not None:
            item["keypoints_xy"], item["keypoints_visible"] = self._transform_parts(
                self._parts(clip_paths), clip_images, params)
            h, w = self.transform.size
            count = self.labelled_per_tracklet
            lab_images = torch.zeros(count, 3, h, w)
            lab_xy = torch.zeros(count, self.num_parts, 2)
            lab_visible = torch.zeros(count, self.num_parts, dtype=torch.bool)
            if labelled_paths:
                imgs = [images[p] for p in labelled_paths]
                n = len(imgs)
                lab_images[:n] = self.transform.apply(imgs, params)
                lab_xy[:n], lab_visible[:n] = self._transform_parts(self._parts(labelled_paths), imgs, params)
            item["labelled_images"], item["labelled_xy"], item["labelled_visible"] = lab_images, lab_xy, lab_visible
            item["labelled_mask"] = torch.arange(count) < len(labelled_paths)
        return item


@dataclass
class TrainBatch:
    """A collated training batch, in the form SSN3D.forward takes."""

    clips: torch.Tensor                       # (B, T, 3, H, W)
    labels: torch.Tensor                      # (B,)
    camids: torch.Tensor                      # (B,)
    indices: torch.Tensor                     # (B,) dataset indices
    keypoints: Optional[Keypoints] = None     # (B, T, N, 2) pixel-index / (B, T, N)
    labelled: Optional[LabelledFrames] = None  # only frames that exist (padding dropped)

    def to(self, device, non_blocking: bool = True) -> "TrainBatch":
        def move(t):
            return t.to(device, non_blocking=non_blocking)
        keypoints = labelled = None
        if self.keypoints is not None:
            keypoints = Keypoints(move(self.keypoints.xy), move(self.keypoints.visible))
        if self.labelled is not None:
            labelled = LabelledFrames(move(self.labelled.images),
                                      Keypoints(move(self.labelled.keypoints.xy),
                                                move(self.labelled.keypoints.visible)),
                                      move(self.labelled.frame_index))
        return replace(self, clips=move(self.clips), labels=move(self.labels), camids=move(self.camids),
                       indices=move(self.indices), keypoints=keypoints, labelled=labelled)


def collate_train(items: Sequence[dict]) -> TrainBatch:
    batch = TrainBatch(clips=torch.stack([it["clip"] for it in items]),
                       labels=torch.tensor([it["label"] for it in items]),
                       camids=torch.tensor([it["camid"] for it in items]),
                       indices=torch.tensor([it["index"] for it in items]))
    if "keypoints_xy" in items[0]:
        batch.keypoints = Keypoints(torch.stack([it["keypoints_xy"] for it in items]),
                                    torch.stack([it["keypoints_visible"] for it in items]))
        mask = torch.cat([it["labelled_mask"] for it in items])
        if mask.any():
            per_item = items[0]["labelled_mask"].numel()
            # Labelled frame j of a tracklet uses classifier j (mod T) when classifiers are not shared.
            frame_index = torch.arange(per_item).repeat(len(items))[mask]
            batch.labelled = LabelledFrames(
                images=torch.cat([it["labelled_images"] for it in items])[mask],
                keypoints=Keypoints(torch.cat([it["labelled_xy"] for it in items])[mask],
                                    torch.cat([it["labelled_visible"] for it in items])[mask]),
                frame_index=frame_index)
    return batch


class EpochBatchSampler(Sampler):
    """Wraps an IdentityBatchSampler so each yielded index carries its epoch: persistent
    workers then draw the same augmentation as a fresh process would."""

    def __init__(self, batch_sampler: IdentityBatchSampler):
        self.batch_sampler = batch_sampler

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.batch_sampler.epoch

    def __iter__(self):
        epoch = self.batch_sampler.epoch
        for batch in self.batch_sampler:
            yield [(epoch, i) for i in batch]

    def __len__(self) -> int:
        return len(self.batch_sampler)


def _loader_options(num_workers: int, pin_memory: bool) -> dict:
    options = {"num_workers": num_workers, "pin_memory": pin_memory}
    if num_workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return options


def build_train_loader(dataset: TrainClipDataset, identities_per_batch: int = 8, instances_per_identity: int = 4,
                       seed: int = 0, num_workers: int = 2, rank: int = 0, world_size: int = 1,
                       pin_memory: Optional[bool] = None) -> DataLoader:
    """P x K identity batches (paper 8 x 4), each rank its own share of the same epoch plan.
    Call `loader.batch_sampler.set_epoch(e)` before each epoch."""
    sampler = EpochBatchSampler(IdentityBatchSampler(dataset.labels, identities_per_batch, instances_per_identity,
                                                     seed=seed, rank=rank, world_size=world_size))
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_train, **_loader_options(num_workers, pin))


class EvalClipDataset(Dataset):
    """Every frame of every tracklet once, cut into consecutive clips of up to clip_len
    (paper: 32). Items are (clip (t, 3, H, W), tracklet index), plus the clip frames'
    keypoints (pixel-index xy (t, N, 2), visible (t, N)) when `keypoints` is given (the
    supervised strategy needs them at test time; frames without keypoints are invisible)."""

    def __init__(self, tracklets: Sequence[Tracklet], size: Tuple[int, int] = (256, 128), clip_len: int = 32,
                 transform: Optional[ClipTransform] = None,
                 keypoints: Optional[Mapping[str, np.ndarray]] = None, min_visibility: float = 0.5):
        if not tracklets:
            raise InputError("no tracklets to extract features from")
        self.tracklets = list(tracklets)
        self.transform = transform or ClipTransform.test(size)
        self.keypoints, self.min_visibility = keypoints, min_visibility
        if keypoints is not None:
            sample = next(iter(keypoints.values()), None)
            self.num_parts = 0 if sample is None else int(np.asarray(sample).shape[0])
        self.items = [(ti, idx) for ti, t in enumerate(self.tracklets)
                      for idx in evaluation_clip_indices(len(t), clip_len)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        ti, idx = self.items[i]
        paths = [self.tracklets[ti].frames[j] for j in idx]
        images = [read_frame(p) for p in paths]
        clip = self.transform.apply(images)
        if self.keypoints is None:
            return clip, ti
        parts = np.full((len(paths), self.num_parts, 3), np.nan)
        parts[..., 2] = 0.0
        for k, p in enumerate(paths):
            if p in self.keypoints:
                parts[k] = self.keypoints[p]
        xy = self.transform.transform_keypoints(parts[..., :2], [tuple(im.shape[-2:]) for im in images])
        visible = (parts[..., 2] > self.min_visibility) & np.isfinite(xy).all(-1)
        return clip, ti, torch.from_numpy(np.nan_to_num(xy)).float(), torch.from_numpy(visible)


class EqualLengthBatches(Sampler):
    """Batches of up to `clips_per_batch` clips of equal length (clips are never padded:
    padding would change the temporal mean), in dataset order within each length."""

    def __init__(self, dataset: EvalClipDataset, clips_per_batch: int):
        if clips_per_batch < 1:
            raise InputError(f"clips_per_batch must be >= 1, got {clips_per_batch}")
        by_len = defaultdict(list)
        for i, (_, idx) in enumerate(dataset.items):
            by_len[len(idx)].append(i)
        self.batches = [ids[s:s + clips_per_batch] for _, ids in sorted(by_len.items(), reverse=True)
                        for s in range(0, len(ids), clips_per_batch)]

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _collate_test(items):
    clips, owners = torch.stack([it[0] for it in items]), torch.tensor([it[1] for it in items])
    if len(items[0]) == 2:
        return clips, owners, None
    return clips, owners, Keypoints(torch.stack([it[2] for it in items]), torch.stack([it[3] for it in items]))


@torch.no_grad()
def extract_features(model: torch.nn.Module, tracklets: Sequence[Tracklet], size: Tuple[int, int] = (256, 128),
                     clip_len: int = 32, clips_per_batch: int = 4, num_workers: int = 2, device=None,
                     amp_dtype: Optional[torch.dtype] = None, progress: bool = True,
                     keypoints: Optional[Mapping[str, np.ndarray]] = None) -> torch.Tensor:
    """(num_tracklets, D) float32 CPU features: the mean of the embeddings of each
    tracklet's clips (every frame used once), computed with the model in eval mode.
    keypoints ({frame path: (N, 3)}) are passed to the model with each clip (the supervised
    strategy's parts)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dataset = EvalClipDataset(tracklets, size, clip_len, keypoints=keypoints)
    loader = DataLoader(dataset, batch_sampler=EqualLengthBatches(dataset, clips_per_batch),
                        collate_fn=_collate_test,
                        **_loader_options(num_workers, device.type == "cuda") | {"persistent_workers": False})
    was_training = model.training
    model.eval()
    sums, counts = None, torch.zeros(len(dataset.tracklets))
    try:
        for clips, owners, kp in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=False):
            clips = clips.to(device, non_blocking=True)
            extra = {}
            if kp is not None:
                extra["keypoints"] = Keypoints(kp.xy.to(device), kp.visible.to(device))
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                emb = model(clips, **extra).embedding
            emb = emb.float().cpu()
            if sums is None:
                sums = torch.zeros(len(dataset.tracklets), emb.shape[1])
            sums.index_add_(0, owners, emb)
            counts.index_add_(0, owners, torch.ones(len(owners)))
    finally:
        model.train(was_training)
    return sums / counts[:, None]
