"""Clip datasets and loaders: clip-consistent augmentation, keypoints that follow the pixels,
one decode per image, reproducibility across workers, per-tracklet test features."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssn3dlib.data import clip_dataset as cd
from ssn3dlib.data.clip_dataset import (
    EvalClipDataset,
    TrainClipDataset,
    build_train_loader,
    collate_train,
    extract_features,
)
from ssn3dlib.data.keypoints import PART_SETS, flip_permutation
from ssn3dlib.data.tracklets import Tracklet
from ssn3dlib.data.transforms import ClipParams, ClipTransform
from ssn3dlib.models.common import VideoOutput

PARTS = PART_SETS["benchmark9"]


def write_frame(path: Path, value: int, size=(32, 16), dot=None) -> str:
    """A flat grey frame of `value`; `dot` = (x, y) continuous coords of one white pixel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*size, 3), value, dtype=np.uint8)
    if dot is not None:
        pixels[int(dot[1]), int(dot[0])] = 255
    Image.fromarray(pixels).save(path)
    return str(path)


def make_tracklets(root: Path, lengths, size=(32, 16)):
    tracks = []
    for t, n in enumerate(lengths):
        frames = tuple(write_frame(root / f"t{t}" / f"{f:03d}.png", 10 * t + f, size) for f in range(n))
        tracks.append(Tracklet(frames=frames, pid=100 + t // 2, camid=t % 2, name=f"t{t}"))
    return tracks


def dot_keypoints(frames, rng):
    """Random continuous keypoints inside the frame; left parts at small x, right at large x."""
    out = {}
    for f in frames:
        p = np.zeros((len(PARTS), 3))
        p[:, 0] = rng.uniform(1, 15, len(PARTS))
        p[:, 1] = rng.uniform(1, 31, len(PARTS))
        p[:, 2] = 0.9
        out[f] = p
    return out


def test_flip_permutation_swaps_left_and_right():
    perm = flip_permutation("benchmark9")
    names = [PARTS[i] for i in perm]
    assert names[PARTS.index("left_knee")] == "right_knee"
    assert names[PARTS.index("head")] == "head"
    assert sorted(perm) == list(range(len(PARTS)))
    ped = PART_SETS["pedestrian6"]
    assert [ped[i] for i in flip_permutation("pedestrian6")] == ["head", "hand", "knee2", "knee1", "foot2", "foot1"]


@pytest.mark.parametrize("params", [ClipParams(), ClipParams(flip=True), ClipParams(flip=True, offset=(1, 6)),
                                    ClipParams(offset=(5, 0))])
def test_keypoints_follow_the_pixels(tmp_path, params):
    """A white pixel at a known keypoint must land on the transformed keypoint (resize 2x,
    flip, pad-and-crop): the brightness centroid in pixel-index coordinates, to a quarter pixel."""
    transform = ClipTransform(size=(64, 32), pad=4)
    xy = np.array([[[5.5, 20.5]], [[12.5, 3.5]]])  # continuous centres of pixels (5, 20) and (12, 3)
    frames = [cd.read_frame(write_frame(tmp_path / f"{i}.png", 0, dot=xy[i, 0])) for i in range(2)]
    clip = transform.apply(frames, params)
    moved = transform.transform_keypoints(xy, [(32, 16)] * 2, params)
    for i in range(2):
        brightness = (clip[i].sum(0) - clip[i].sum(0).min()).clamp(min=0).numpy()
        rows, cols = np.indices(brightness.shape)
        centroid = ((cols * brightness).sum() / brightness.sum(), (rows * brightness).sum() / brightness.sum())
        assert moved[i, 0] == pytest.approx(centroid, abs=0.25)


def test_augmentation_is_shared_by_every_frame_and_follows_seed(tmp_path):
    tracks = make_tracklets(tmp_path, [12, 12])
    kp = dot_keypoints([f for t in tracks for f in t.frames], np.random.default_rng(0))
    flipped = TrainClipDataset(tracks, clip_len=4, stride=2, size=(32, 16), keypoints=kp, seed=1,
                               transform=ClipTransform(size=(32, 16), flip_prob=1.0))
    plain = TrainClipDataset(tracks, clip_len=4, stride=2, size=(32, 16), keypoints=kp, seed=1, augment=False)
    a, b = flipped[0], plain[0]
    assert torch.equal(a["clip"], torch.flip(b["clip"], dims=[-1]))       # every frame flipped
    perm = flip_permutation("benchmark9")
    # Slot "left_knee" after the flip holds the mirrored right knee.
    li, ri = PARTS.index("left_knee"), PARTS.index("right_knee")
    assert perm[li] == ri
    assert torch.allclose(a["keypoints_xy"][:, li, 0], 16 - 1 - b["keypoints_xy"][:, ri, 0], atol=1e-5)
    assert torch.allclose(a["keypoints_xy"][:, li, 1], b["keypoints_xy"][:, ri, 1], atol=1e-5)
    # Same (seed, epoch, index) -> same item; another epoch -> another draw of frames.
    assert torch.equal(flipped[(3, 1)]["clip"], flipped[(3, 1)]["clip"])
    draws = {tuple(plain[(e, 0)]["clip"][:, 0, 0, 0].tolist()) for e in range(6)}
    assert len(draws) > 1


def test_each_image_decoded_once_per_clip(tmp_path, monkeypatch):
    tracks = make_tracklets(tmp_path, [2, 9])      # the first repeats frames (2 < clip_len)
    kp = dot_keypoints([f for t in tracks for f in t.frames], np.random.default_rng(1))
    calls = []
    real = cd.read_frame
    monkeypatch.setattr(cd, "read_frame", lambda p: calls.append(p) or real(p))
    ds = TrainClipDataset(tracks, clip_len=4, stride=1, size=(32, 16), keypoints=kp)
    item = ds[0]
    assert item["clip"].shape == (4, 3, 32, 16)
    assert len(calls) == len(set(calls)) == 2       # 4 clip frames + 2 labelled frames, 2 files
    assert item["labelled_mask"].tolist() == [True, True]


def test_labelled_frames_are_the_best_labelled(tmp_path):
    tracks = make_tracklets(tmp_path, [6, 6])
    kp = dot_keypoints([f for t in tracks for f in t.frames], np.random.default_rng(2))
    kp[tracks[0].frames[4]][:, 2] = 1.0
    kp[tracks[0].frames[1]][:, 2] = 0.95
    for f in tracks[1].frames[1:]:
        del kp[f]
    ds = TrainClipDataset(tracks, clip_len=2, stride=1, size=(32, 16), keypoints=kp)
    assert ds.labelled_frames[0] == [tracks[0].frames[4], tracks[0].frames[1]]
    assert ds.labelled_frames[1] == [tracks[1].frames[0]]
    batch = collate_train([ds[0], ds[1]])
    assert batch.labelled.images.shape[0] == 3          # padding slot of tracklet 1 dropped
    assert batch.labelled.frame_index.tolist() == [0, 1, 0]
    # Frames without keypoints are invisible for every part.
    item = ds[1]
    has_kp = [f in kp for f in [tracks[1].frames[i] for i in range(6)]]
    assert has_kp.count(True) == 1 and not item["keypoints_visible"].all()


def test_loader_is_identical_with_and_without_workers(tmp_path):
    tracks = make_tracklets(tmp_path, [5, 7, 6, 8, 9, 5, 6, 7])
    ds = TrainClipDataset(tracks, clip_len=3, stride=2, size=(32, 16), seed=3)

    def epochs(workers):
        loader = build_train_loader(ds, 2, 2, seed=4, num_workers=workers)
        out = []
        for e in range(2):
            loader.batch_sampler.set_epoch(e)
            out += [(b.indices.tolist(), b.clips.sum().item()) for b in loader]
        return out

    serial, parallel = epochs(0), epochs(2)
    assert serial == parallel and len(serial) == 4
    assert serial[:2] != serial[2:]                      # epochs differ


class MeanPixelModel(torch.nn.Module):
    """Embedding = per-frame mean pixel, averaged over the clip (so known by hand)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, clips):
        return VideoOutput(embedding=clips.mean(dim=(2, 3, 4)).mean(1, keepdim=True) * self.w)


def test_test_features_average_every_clip_once(tmp_path):
    tracks = make_tracklets(tmp_path, [7, 3, 1])
    ds = EvalClipDataset(tracks, size=(32, 16), clip_len=3)
    assert [len(idx) for _, idx in ds.items] == [3, 3, 1, 3, 1]
    model = MeanPixelModel()
    feats = extract_features(model, tracks, size=(32, 16), clip_len=3, clips_per_batch=2, num_workers=0,
                             progress=False)
    transform = ClipTransform.test((32, 16))

    def frame_value(t, f):
        return float(transform.apply([cd.read_frame(tracks[t].frames[f])]).mean())

    clip_means = [np.mean([frame_value(0, f) for f in c]) for c in ([0, 1, 2], [3, 4, 5], [6])]
    assert feats.shape == (3, 1)
    assert feats[0, 0].item() == pytest.approx(np.mean(clip_means), abs=1e-5)
    assert feats[2, 0].item() == pytest.approx(frame_value(2, 0), abs=1e-5)
    assert model.training


def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    tracks = make_tracklets(tmp_path, [2, 9])
    with pytest.raises(ValueError, match="shorter than clip_len=4"):
        TrainClipDataset(tracks, clip_len=4, short="error")
    with pytest.raises(ValueError, match="no training tracklets"):
        TrainClipDataset([], clip_len=4)
    with pytest.raises(ValueError, match="none of the training frames has keypoints"):
        TrainClipDataset(tracks, keypoints={"/elsewhere/x.png": np.zeros((9, 3))})
    Path(tracks[1].frames[3]).write_bytes(b"not a png")
    ds = EvalClipDataset(tracks, size=(32, 16), clip_len=32)
    with pytest.raises(OSError, match="003.png"):
        ds[1]
    with pytest.raises(ValueError, match="flip_prob"):
        ClipTransform(flip_prob=2.0)


class KeypointEchoModel(torch.nn.Module):
    """Embedding = mean visible keypoint x over the clip (checks keypoints reach the model)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, clips, keypoints=None):
        vis = keypoints.visible.float()
        x = (keypoints.xy[..., 0] * vis).sum(dim=(1, 2)) / vis.sum(dim=(1, 2)).clamp(min=1)
        return VideoOutput(embedding=x[:, None] * self.w)


def test_test_features_pass_keypoints_to_the_model(tmp_path):
    tracks = make_tracklets(tmp_path, [3, 2])
    kp = {}
    for t, x in zip(tracks, (4.5, 10.5)):
        for f in t.frames:
            p = np.zeros((len(PARTS), 3))
            p[:, 0], p[:, 1], p[:, 2] = x, 8.0, 0.9
            kp[f] = p
    kp[tracks[0].frames[0]][:, 2] = 0.1          # invisible frame: ignored by the echo model
    kp[tracks[0].frames[0]][:, 0] = 100.0
    feats = extract_features(KeypointEchoModel(), tracks, size=(64, 32), clip_len=2, num_workers=0,
                             progress=False, keypoints=kp)
    # 2x horizontal scale, continuous -> pixel index: x' = 2x - 0.5.
    assert feats[:, 0].tolist() == pytest.approx([2 * 4.5 - 0.5, 2 * 10.5 - 0.5])
