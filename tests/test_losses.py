"""Batch-hard triplet loss (eq. 5) and the combined objective (eq. 6)."""
import math

import pytest
import torch

from ssn3dlib.losses import SSN3DObjective, batch_hard_triplet_loss
from ssn3dlib.models import VideoOutput


def test_triplet_matches_hand_computed_case():
    # d = 2, so every distance is divided by sqrt(2). Pairwise distances:
    # a-b 5, a-c 10, a-e 1, b-c 5, b-e sqrt(18), c-e sqrt(85).
    a, b, c, e = [0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 1.0]
    features = torch.tensor([a, b, c, e])
    pids = torch.tensor([0, 0, 1, 1])
    m, s = 0.3, math.sqrt(2)
    expected = [
        m + (5 - 1) / s,                         # a: positive b, hardest negative e
        m + (5 - math.sqrt(18)) / s,             # b: positive a, hardest negative e
        m + (math.sqrt(85) - 5) / s,             # c: positive e, hardest negative b
        m + (math.sqrt(85) - 1) / s,             # e: positive c, hardest negative a
    ]
    loss = batch_hard_triplet_loss(features, pids, margin=m, reduction="none")
    torch.testing.assert_close(loss, torch.tensor(expected))
    torch.testing.assert_close(batch_hard_triplet_loss(features, pids, m), torch.tensor(expected).mean())


def test_well_separated_identities_give_zero_loss_and_the_hinge_clamps():
    features = torch.tensor([[0.0, 0.0], [0.0, 0.1], [10.0, 10.0], [10.0, 10.1]])
    pids = torch.tensor([7, 7, 9, 9])
    assert batch_hard_triplet_loss(features, pids, margin=0.3).item() == 0.0


def test_anchors_without_positive_are_skipped():
    features = torch.tensor([[0.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    pids = torch.tensor([0, 0, 1])  # the pid-1 sample has no positive
    terms = batch_hard_triplet_loss(features, pids, margin=0.0, reduction="none")
    assert terms.shape == (2,)
    with pytest.raises(ValueError, match="2 clips"):
        batch_hard_triplet_loss(features, torch.tensor([0, 1, 2]))


def test_triplet_training_pulls_identities_apart():
    torch.manual_seed(0)
    features = torch.randn(16, 8, requires_grad=True)
    pids = torch.arange(4).repeat_interleave(4)
    opt = torch.optim.SGD([features], lr=0.5)
    first = batch_hard_triplet_loss(features, pids).item()
    for _ in range(100):
        loss = batch_hard_triplet_loss(features, pids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_objective_weights_the_ssn_loss():
    output = VideoOutput(embedding=torch.randn(8, 4), ssn_loss=torch.tensor(2.0))
    pids = torch.arange(4).repeat_interleave(2)
    parts = SSN3DObjective(lambda_ssn=0.05)(output, pids)
    torch.testing.assert_close(parts["loss"], parts["triplet"] + 0.05 * 2.0)
    no_ssn = SSN3DObjective(lambda_ssn=0.05)(VideoOutput(embedding=output.embedding), pids)
    torch.testing.assert_close(no_ssn["loss"], parts["triplet"])
    with pytest.raises(ValueError, match="lambda_ssn"):
        SSN3DObjective(lambda_ssn=-0.1)
