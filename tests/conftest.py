"""Shared fixtures: deterministic seeds, small model configurations that run in seconds on CPU,
and a tiny synthetic world generated once per session."""
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_ssn3d_kwargs():
    """SSN3D with the light backbone and narrow layers: a forward/backward in well under a second."""
    return dict(backbone="resnet18-layer2", num_parts=9, hidden=32, part_dim=16, embedding_dim=64)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """configs/synthetic_tiny.yaml's world, generated once per test session."""
    from ssn3dlib.data.synthetic import WorldConfig, generate_world
    from ssn3dlib.engine import load_config

    config = load_config("synthetic_tiny")
    root = tmp_path_factory.mktemp("engine_world") / "world"
    return generate_world(WorldConfig.from_dict(config.data.world), root, progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_world, tmp_path_factory) -> Path:
    """A one-step SSN3D run of configs/synthetic_tiny.yaml on `tiny_world` (its last.pt): weights
    barely trained, but a real engine checkpoint for commands that read one."""
    from ssn3dlib.engine import load_config, train

    config = load_config("synthetic_tiny", [f"data.root={tiny_world}", "train.tensorboard=false", "train.epochs=1",
                                            "train.max_steps_per_epoch=1", "train.eval_every=0"])
    return train(config, tmp_path_factory.mktemp("tiny_run"), progress=False).paths["last"]
