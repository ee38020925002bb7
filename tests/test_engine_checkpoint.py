"""Checkpoints: atomic writes, RNG round trips, model signatures that refuse other models."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ssn3dlib.engine import checkpoint as ck
from ssn3dlib.engine.build import build_model
from ssn3dlib.engine.config import load_config

TINY = ["model.backbone=resnet18-layer2", "model.hidden=16", "model.part_dim=8", "model.embedding_dim=32"]


def tiny_model(*overrides):
    config = load_config(None, [*TINY, *overrides])
    return build_model(config), config


def signature(model, config):
    return ck.model_signature(model, config.to_dict()["model"], config.data.clip_len)


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    ck.save_checkpoint(path, {"signature": {}, "value": torch.tensor([1.0])})

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(path, {"signature": {}, "value": torch.tensor([2.0])})
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["value"].item() == 1.0        # the old one, intact
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_rng_states_round_trip():
    ck.seed_everything(5)
    state = ck.capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)
    ck.restore_rng(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_rng_states_survive_a_checkpoint_file(tmp_path):
    state = ck.capture_rng()
    ck.save_checkpoint(tmp_path / "c.pt", {"signature": {}, "rng": state})
    expected = torch.rand(4)
    ck.restore_rng(ck.load_checkpoint(tmp_path / "c.pt")["rng"])
    assert torch.equal(torch.rand(4), expected)


def test_load_model_weights_restores_the_same_model(tmp_path):
    model, config = tiny_model()
    ck.save_checkpoint(tmp_path / "m.pt", {"signature": signature(model, config), "model": model.state_dict()})
    fresh, _ = tiny_model()
    assert not torch.equal(fresh.fusion[0].weight, model.fusion[0].weight)
    ck.load_model_weights(fresh, tmp_path / "m.pt", config.to_dict()["model"], config.data.clip_len)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("other, named", [
    (["model.name=tp"], "model.name: checkpoint 'ssn3d', here 'tp'"),
    (["model.strategy=unsupervised"], "model.strategy: checkpoint 'semi-supervised', here 'unsupervised'"),
    (["model.embedding_dim=48"], "model.embedding_dim: checkpoint 32, here 48"),
    (["model.shared_classifier=false"], "model.shared_classifier"),
])
def test_a_checkpoint_of_another_model_is_refused_with_the_differences(tmp_path, other, named):
    model, config = tiny_model()
    path = ck.save_checkpoint(tmp_path / "m.pt", {"signature": signature(model, config),
                                                  "model": model.state_dict()})
    other_model, other_config = tiny_model(*other)
    with pytest.raises(ck.CheckpointError, match="holds another model") as err:
        ck.load_model_weights(other_model, path, other_config.to_dict()["model"], other_config.data.clip_len)
    assert named in str(err.value)


def test_same_config_but_other_shapes_is_refused(tmp_path):
    model, config = tiny_model()
    sig = signature(model, config)
    path = ck.save_checkpoint(tmp_path / "m.pt", {"signature": {**sig, "shapes_sha1": "0" * 40},
                                                  "model": model.state_dict()})
    with pytest.raises(ck.CheckpointError, match="state dict"):
        ck.load_model_weights(model, path, config.to_dict()["model"], config.data.clip_len)


def test_non_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ck.CheckpointError, match="not a readable SSN3D checkpoint"):
        ck.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "state_dict.pt")
    with pytest.raises(ck.CheckpointError, match="not an SSN3D engine checkpoint"):
        ck.load_checkpoint(tmp_path / "state_dict.pt")


def test_ddp_prefix_is_never_saved():
    model, _ = tiny_model()
    wrapper = torch.nn.Module()
    wrapper.module = model
    assert ck.unwrap(wrapper) is model
