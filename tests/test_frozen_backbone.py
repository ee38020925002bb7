"""The frozen backbone (model.freeze_backbone) and the decoded-frame cache of read_frame.

FrozenBackbone: the wrapped backbone's exact eval-mode features, each distinct frame computed
once (by its pixels, in any batch, order or model with the same weights), no gradient to its
weights and no BatchNorm update in training, checkpoints interchangeable with a trainable
backbone. read_frame: one decode per unchanged file, a private copy per call, a rewritten
file decoded again, a corrupt one an OSError naming it.
"""
from __future__ import annotations

import copy
import os

import pytest
import torch
from test_clip_dataset import write_frame
from torch import nn

from ssn3dlib.data import clip_dataset as cd
from ssn3dlib.engine import load_checkpoint, train
from ssn3dlib.engine.build import build_model, build_optimizer
from ssn3dlib.engine.checkpoint import seed_everything
from ssn3dlib.engine.config import ConfigError, load_config
from ssn3dlib.models import SSN3D, build_backbone
from ssn3dlib.models.adapter import AdaptedBackbone
from ssn3dlib.models.frozen import (
    FILL_CHUNK,
    FeatureMemo,
    FrozenBackbone,
    clear_feature_memos,
    freeze_backbone,
    shared_memo,
    weights_digest,
)

from engine_helpers import tiny_config

FRAMES = (3, 64, 32)          # (C, H, W): resnet18-layer1 (stride 4) gives 64 x 16 x 8 features


@pytest.fixture(autouse=True)
def _fresh_memos():
    clear_feature_memos()
    yield
    clear_feature_memos()


def random_backbone():
    """resnet18-layer1 with random weights and random BatchNorm statistics, so that eval mode
    (stored statistics) and train mode (batch statistics) give clearly different features."""
    backbone = build_backbone("resnet18-layer1")
    for m in backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return backbone


def eval_features(backbone, x):
    """What the unfrozen backbone gives in eval mode (its mode restored afterwards)."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        out = backbone(x)
    backbone.train(was_training)
    return out


def count_body_frames(frozen: FrozenBackbone):
    """The batch size of every forward through the wrapped network (what the memo did not answer)."""
    sizes = []
    frozen.body.register_forward_hook(lambda module, inputs, output: sizes.append(inputs[0].shape[0]))
    return sizes


def small_ssn3d(backbone):
    return SSN3D(backbone=backbone, hidden=8, part_dim=4, embedding_dim=8, strategy="unsupervised")


# ---------------------------------------------------------------- features and memo

def test_features_are_the_wrapped_backbones_eval_features_computed_once_per_frame():
    reference = random_backbone()
    frozen = freeze_backbone(copy.deepcopy(reference))
    body_batches = count_body_frames(frozen)
    x = torch.randn(3, *FRAMES)

    first = frozen(x)
    assert torch.equal(first, eval_features(reference, x))
    with torch.no_grad():                           # train mode (batch statistics) would differ
        assert not torch.allclose(first, copy.deepcopy(reference).train()(x), atol=1e-3)
    memo = frozen.memo
    assert (memo.hits, memo.misses, len(memo), body_batches) == (0, 3, 3, [FILL_CHUNK])   # one padded call

    # the same frames in another order, mixed with new ones: only the new ones go through the body
    new = torch.randn(2, *FRAMES)
    mixed = torch.stack([x[2], new[0], x[0], new[1]])
    second = frozen(mixed)
    assert torch.equal(second[0], first[2]) and torch.equal(second[2], first[0])
    torch.testing.assert_close(second, eval_features(reference, mixed))
    assert (memo.hits, memo.misses, len(memo), body_batches) == (2, 5, 5, [FILL_CHUNK] * 2)

    # all seen: no forward through the body at all
    again = frozen(x.flip(0))
    assert torch.equal(again, first.flip(0))
    assert (memo.hits, memo.misses, body_batches) == (5, 5, [FILL_CHUNK] * 2)


def test_the_key_is_the_frames_content():
    frozen = freeze_backbone(random_backbone())
    x = torch.randn(2, *FRAMES)
    frozen(x)
    nudged = x.clone()
    nudged[1, 0, 0, 0] += 1e-3                      # one value of one frame changed
    frozen(nudged.clone())                          # another tensor, same content for frame 0
    assert (frozen.memo.hits, frozen.memo.misses) == (1, 3)


def test_features_returned_are_not_the_memos_storage():
    frozen = freeze_backbone(random_backbone())
    x = torch.randn(2, *FRAMES)
    first = frozen(x)
    kept = first.clone()
    first.zero_()                                   # a caller writing into its output
    assert torch.equal(frozen(x), kept)


# ---------------------------------------------------------------- frozen in training

def test_weights_get_no_gradient_and_stay_in_eval_mode_while_the_head_trains():
    frozen = freeze_backbone(random_backbone())
    assert freeze_backbone(frozen) is frozen
    assert all(not p.requires_grad for p in frozen.parameters())
    model = small_ssn3d(frozen)
    bn_state = {k: v.clone() for k, v in frozen.state_dict().items() if "running" in k or "num_batches" in k}
    assert bn_state

    model.train()
    assert model.training and model.ssn.training and model.aggregator.training
    assert not any(m.training for m in frozen.body.modules())
    out = model(torch.randn(2, 4, *FRAMES))
    (out.embedding.pow(2).sum() + out.ssn_loss).backward()

    assert all(p.grad is None for p in frozen.parameters())
    for name, p in model.named_parameters():
        if not name.startswith("backbone."):
            assert p.grad is not None, name
    assert any(p.grad.abs().sum() > 0 for p in model.ssn.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.aggregator.parameters())
    after = frozen.state_dict()
    assert all(torch.equal(after[k], v) for k, v in bn_state.items())   # BatchNorm statistics kept


# ---------------------------------------------------------------- memos shared by weights

def test_backbones_with_the_same_weights_share_one_memo():
    a = random_backbone()
    same = freeze_backbone(copy.deepcopy(a))
    frozen = freeze_backbone(a)
    other = freeze_backbone(random_backbone())
    assert frozen.memo is same.memo
    assert other.memo is not frozen.memo
    assert shared_memo(weights_digest(a.body)) is frozen.memo

    x = torch.randn(3, *FRAMES)
    torch.testing.assert_close(same(x), frozen(x), rtol=0, atol=0)
    assert (frozen.memo.hits, frozen.memo.misses) == (3, 3)       # the second model's call hit
    assert (other.memo.hits, other.memo.misses) == (0, 0)
    assert not torch.allclose(other(x), frozen(x), atol=1e-3)


def test_loading_weights_through_a_parent_switches_to_the_new_weights_memo():
    new_backbone = random_backbone()
    target = small_ssn3d(freeze_backbone(random_backbone()))
    source = small_ssn3d(freeze_backbone(copy.deepcopy(new_backbone)))
    x = torch.randn(3, *FRAMES)
    old_features = target.backbone(x)               # fills the memo of the old weights
    old_memo = target.backbone.memo

    target.load_state_dict(source.state_dict())
    assert target.backbone.memo is not old_memo and target.backbone.memo is source.backbone.memo
    loaded = target.backbone(x)
    assert torch.equal(loaded, eval_features(new_backbone, x))
    assert not torch.allclose(loaded, old_features, atol=1e-3)


def test_checkpoints_are_interchangeable_with_a_trainable_backbone():
    plain = small_ssn3d(random_backbone())
    frozen = small_ssn3d(freeze_backbone(random_backbone()))
    assert list(frozen.state_dict()) == list(plain.state_dict())
    frozen.load_state_dict(plain.state_dict())      # strict: same keys, same shapes
    fresh = small_ssn3d(random_backbone())
    fresh.load_state_dict(frozen.state_dict())
    x = torch.randn(2, *FRAMES)
    assert torch.equal(frozen.backbone(x), eval_features(fresh.backbone, x))


def test_clear_feature_memos_forgets_the_features_of_live_models():
    frozen = freeze_backbone(random_backbone())
    x = torch.randn(2, *FRAMES)
    frozen(x)
    clear_feature_memos()
    frozen(x)
    assert frozen.memo.hits == 0


# ---------------------------------------------------------------- the memo's size bound

def test_feature_memo_evicts_the_least_recently_used_beyond_its_byte_limit():
    item = torch.zeros(4)                            # 16 bytes
    memo = FeatureMemo(max_bytes=3 * 16)
    for key in (b"a", b"b", b"c"):
        memo[key] = item.clone()
    assert memo.currsize == 48
    assert memo.lookup(b"a") is not None            # a is now more recent than b
    memo[b"d"] = item.clone()
    assert set(memo) == {b"a", b"c", b"d"} and memo.currsize == 48
    assert memo.lookup(b"b") is None
    assert (memo.hits, memo.misses) == (1, 1)
    memo[b"big"] = torch.zeros(8)                    # 32 bytes: two entries go
    assert memo.currsize <= 48 and set(memo) == {b"d", b"big"}
    with pytest.raises(ValueError, match="max_bytes"):
        FeatureMemo(max_bytes=0)


# ---------------------------------------------------------------- the engine

def test_the_engine_freezes_the_backbone_on_request():
    frozen_config = load_config("synthetic_tiny", ["model.freeze_backbone=true"])
    plain_config = load_config("synthetic_tiny")
    assert not plain_config.model.freeze_backbone
    model = build_model(frozen_config)
    assert isinstance(model.backbone, FrozenBackbone)
    assert not isinstance(build_model(plain_config).backbone, FrozenBackbone)
    assert list(model.state_dict()) == list(build_model(plain_config).state_dict())
    optimised = {id(p) for group in build_optimizer(frozen_config, model).param_groups for p in group["params"]}
    assert optimised and not optimised & {id(p) for p in model.backbone.parameters()}
    assert optimised == {id(p) for name, p in model.named_parameters() if not name.startswith("backbone.")}


def test_a_frozen_run_trains_the_head_and_keeps_the_backbone(tiny_world, tmp_path):
    config = tiny_config(tiny_world, "model.freeze_backbone=true", "train.epochs=1")
    seed_everything(config.train.seed)               # the trainer's initial weights
    initial = build_model(config)
    result = train(config, tmp_path / "run", progress=False)
    trained = load_checkpoint(result.paths["last"])["model"]
    start = initial.state_dict()
    backbone_keys = [k for k in start if k.startswith("backbone.")]
    assert backbone_keys and all(torch.equal(trained[k], start[k]) for k in backbone_keys)
    assert any(not torch.equal(trained[k], start[k]) for k in start if k.startswith("ssn."))
    memo = shared_memo(weights_digest(initial.backbone.body))
    assert memo.misses > 0 and len(memo) > 0         # the run's frames went through the memo


# ---------------------------------------------------------------- read_frame's decoded frames

@pytest.fixture
def decodes(monkeypatch):
    """The paths read_frame decodes (a cached frame is not decoded)."""
    opened = []
    real_open = cd.Image.open

    def counting_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(cd.Image, "open", counting_open)
    return opened


def test_read_frame_decodes_once_and_returns_a_private_copy(tmp_path, decodes):
    path = write_frame(tmp_path / "f.png", 40)
    first = cd.read_frame(path)
    assert first.dtype == torch.uint8 and first.shape == (3, 32, 16) and bool((first == 40).all())
    first.fill_(0)                                   # the caller's copy only
    second = cd.read_frame(path)
    assert bool((second == 40).all())
    assert second.data_ptr() != cd.read_frame(path).data_ptr()
    assert decodes == [path]


def test_read_frame_decodes_a_rewritten_file_again(tmp_path, decodes):
    path = write_frame(tmp_path / "f.png", 10)
    old = os.stat(path)
    assert bool((cd.read_frame(path) == 10).all())

    # same size, another modification time
    write_frame(tmp_path / "f.png", 20)
    assert os.stat(path).st_size == old.st_size
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 10 ** 9))
    assert bool((cd.read_frame(path) == 20).all())

    # another size, the original modification time
    write_frame(tmp_path / "f.png", 200)
    assert os.stat(path).st_size != old.st_size
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert bool((cd.read_frame(path) == 200).all())
    assert decodes == [path] * 3


def test_read_frame_names_a_corrupt_or_missing_file(tmp_path):
    path = write_frame(tmp_path / "f.png", 10)
    good = open(path, "rb").read()
    cd.read_frame(path)
    with open(path, "wb") as f:
        f.write(b"not an image at all")
    with pytest.raises(OSError, match="f.png"):
        cd.read_frame(path)
    with open(path, "wb") as f:
        f.write(good[: len(good) // 2])               # a truncated PNG
    with pytest.raises(OSError, match="f.png"):
        cd.read_frame(path)
    with pytest.raises(OSError, match="missing.png"):
        cd.read_frame(str(tmp_path / "missing.png"))


def test_a_frames_features_do_not_depend_on_the_batch_it_was_first_seen_in():
    """oneDNN picks convolution kernels by batch size, so the same frame in batches of different
    sizes can differ in the last bits; remembered features must not depend on which run saw the
    frame first (parallel runs finish in any order)."""
    x = torch.randn(40, 3, 128, 64)
    backbone = build_backbone("resnet18-layer2")
    seen = []
    orders = ([list(range(40))], [[i] for i in range(39, -1, -1)], [list(range(0, 40, 2)), list(range(1, 40, 2))])
    for batches in orders:
        clear_feature_memos()
        frozen = FrozenBackbone(copy.deepcopy(backbone))
        got = {}
        for batch in batches:
            for i, features in zip(batch, frozen(x[batch])):
                got[i] = features
        seen.append(torch.stack([got[i] for i in range(40)]))
    assert all(torch.equal(seen[0], other) for other in seen[1:])


# ---------------------------------------------------------------- the adapter stage

@pytest.mark.parametrize("model_name", ["ssn3d", "c3d", "tp", "st-attention"])
def test_an_adapter_gives_every_model_the_same_trainable_stage_on_the_frozen_backbone(model_name):
    config = load_config("synthetic_tiny", [f"model.name={model_name}", "model.freeze_backbone=true",
                                            "model.adapter_channels=12"])
    model = build_model(config)
    assert isinstance(model.backbone, AdaptedBackbone) and isinstance(model.backbone.base, FrozenBackbone)
    assert model.backbone.out_channels == 12 and model.backbone.stride == model.backbone.base.stride
    optimised = {id(p) for group in build_optimizer(config, model).param_groups for p in group["params"]}
    adapter = {id(p) for p in model.backbone.body.parameters()}
    assert adapter and adapter <= optimised                           # the adapter trains
    assert not optimised & {id(p) for p in model.backbone.base.parameters()}   # the backbone does not
    x = torch.randn(2, *FRAMES)
    assert model.backbone(x).shape[1] == 12
    assert model.backbone.feature_size(FRAMES[1:]) == tuple(model.backbone(x).shape[-2:])


def test_the_adapter_runs_on_remembered_features_and_its_run_evaluates_from_the_checkpoint(tiny_world, tmp_path):
    from ssn3dlib.engine import evaluate

    config = tiny_config(tiny_world, "model.freeze_backbone=true", "model.adapter_channels=8", "train.epochs=1")
    model = build_model(config)
    sizes = count_body_frames(model.backbone.base)
    x = torch.randn(3, *FRAMES)
    model.backbone(x)
    model.backbone(x)
    assert sum(sizes) == 8                                            # one FILL_CHUNK call: computed once
    result = train(config, tmp_path / "run", progress=False)
    again = evaluate(result.paths["last"], device="cpu", progress=False)
    assert again["rank1"] == result.final["rank1"] and again["mAP"] == result.final["mAP"]


def test_adapter_channels_must_not_be_negative():
    with pytest.raises(ConfigError, match="model.adapter_channels"):
        load_config("synthetic_tiny", ["model.adapter_channels=-1"])
