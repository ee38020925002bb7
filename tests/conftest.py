"""Shared fixtures: deterministic seeds and small model configurations that run in seconds on CPU."""
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
