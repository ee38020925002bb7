"""The Self-Separated Network: maps, part features, both rounds, the three strategies, sharing."""
import math

import pytest
import torch
import torch.nn.functional as F

from ssn3dlib.models import SelfSeparatedNetwork, keypoints_to_windows, one_hot_windows, weighted_window_sum
from ssn3dlib.studies.random_maps import train_ssn_on_random_maps


def make_ssn(c=8, n=4, k=3, padding=0, strategy="unsupervised", num_classifiers=1, hidden=16):
    return SelfSeparatedNetwork(c, n, window=k, padding=padding, hidden=hidden,
                                strategy=strategy, num_classifiers=num_classifiers)


def random_keypoints(b, n, grid, generator=None):
    rows = torch.randint(0, grid[0], (b, n), generator=generator)
    cols = torch.randint(0, grid[1], (b, n), generator=generator)
    return torch.stack([rows, cols], dim=-1)


@pytest.mark.parametrize("padding,k,size", [(0, 3, (9, 7)), (1, 3, (9, 7)), (0, 5, (12, 12)), (2, 1, (4, 6))])
def test_maps_are_distributions_over_positions(padding, k, size):
    ssn = make_ssn(k=k, padding=padding)
    out = ssn(torch.randn(3, 8, *size), with_loss=False)
    grid = (size[0] + 2 * padding - k + 1, size[1] + 2 * padding - k + 1)
    assert out.maps.shape == (3, 4, *grid)
    assert out.parts.shape == (3, 4, 8, k, k)
    assert torch.all(out.maps >= 0)
    torch.testing.assert_close(out.maps.sum(dim=(2, 3)), torch.ones(3, 4))


def test_weighted_window_sum_matches_unfolded_windows():
    x, k = torch.randn(2, 5, 8, 6), 3
    weights = torch.rand(2, 3, 6, 4)
    windows = F.unfold(x, k)  # (B, C*k*k, L): an independent computation of eq. 3
    expected = torch.einsum("bnl,bdl->bnd", weights.flatten(2), windows).reshape(2, 3, 5, k, k)
    torch.testing.assert_close(weighted_window_sum(x, weights, k), expected)


def _window_sum_and_grads(x, weights, k, method, grad):
    x, weights = x.detach().requires_grad_(), weights.detach().requires_grad_()
    out = weighted_window_sum(x, weights, k, method=method)
    out.backward(grad)
    return out.detach(), x.grad, weights.grad


@pytest.mark.parametrize("b,c,size,n,k", [(4, 3, (120, 160), 9, 19),  # the Amber study's setting
                                          (3, 2, (30, 41), 4, 11), (2, 5, (9, 7), 3, 3)])
def test_fft_window_sum_equals_the_conv_formulation_in_values_and_gradients(b, c, size, n, k):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, *size, generator=generator)
    grid = (size[0] - k + 1, size[1] - k + 1)
    weights = torch.randn(b, n, *grid, generator=generator).flatten(2).softmax(-1).reshape(b, n, *grid)
    grad = torch.randn(b, n, c, k, k, generator=generator)
    conv = _window_sum_and_grads(x, weights, k, "conv", grad)
    fft = _window_sum_and_grads(x, weights, k, "fft", grad)
    exact = _window_sum_and_grads(x.double(), weights.double(), k, "conv", grad.double())
    for name, f, r, e in zip(("values", "d/dx", "d/dweights"), fft, conv, exact):
        assert f.dtype == r.dtype == torch.float32, name
        # Equal up to float32 rounding of sums over H'W' terms; the weights' gradient sums
        # C k^2 products, so the tolerance scales with each tensor's magnitude.
        scale = r.abs().max().item()
        torch.testing.assert_close(f, r, rtol=1e-5, atol=4e-6 * scale, msg=name)
        # The FFT runs in float64: it is within float32 rounding of the exact sum.
        torch.testing.assert_close(f.double(), e, rtol=1e-6, atol=5e-7 * scale, msg=name)


def test_window_sum_picks_fft_for_large_windows_over_few_channels_only():
    from ssn3dlib.models.ssn import window_sum_method
    assert window_sum_method(3, (120, 160), 19) == "fft"     # Amber: 19 x 19 windows on RGB
    assert window_sum_method(1024, (8, 4), 3) == "conv"      # SSN3D, resnet50-layer3 at 128 x 64
    assert window_sum_method(128, (16, 8), 3) == "conv"      # resnet18-layer2, pedestrians
    assert window_sum_method(128, (16, 16), 3) == "conv"     # random maps
    assert window_sum_method(3, (9, 7), 3) == "conv"
    with pytest.raises(ValueError, match="method"):
        weighted_window_sum(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 1, 1), 3, method="unfold")


def test_one_hot_attention_selects_exactly_that_window():
    x, k = torch.randn(2, 5, 8, 6), 3
    windows = torch.tensor([[[0, 0], [5, 3], [2, 1]], [[4, 2], [0, 3], [5, 0]]])
    parts = weighted_window_sum(x, one_hot_windows(windows, (6, 4)).float(), k)
    for b in range(2):
        for i, (r, c) in enumerate(windows[b].tolist()):
            assert torch.equal(parts[b, i], x[b, :, r:r + k, c:c + k])


def test_constant_input_gives_uniform_maps_with_valid_windows():
    # Every valid window of a constant map is the same vector, so no position can win.
    out = make_ssn()(torch.ones(2, 8, 10, 10), with_loss=False)
    torch.testing.assert_close(out.maps, torch.full_like(out.maps, 1 / 64))
    # With zero padding the border windows differ, so the maps need not be uniform.
    padded = make_ssn(padding=1)(torch.ones(2, 8, 10, 10), with_loss=False)
    assert padded.maps.std() > 0


@pytest.mark.parametrize("n", [3, 6, 9])
def test_fresh_model_loss_is_near_log_n(n):
    ssn = make_ssn(c=16, n=n, hidden=64)
    loss = ssn(torch.randn(16, 16, 12, 12), with_loss=True).loss
    assert abs(loss.item() - math.log(n)) < 0.1 * math.log(n)


def small_random_run(distribution):
    """The random-data study at test size: 16 x 10 x 10 maps, N = 3, batch 32, 250 steps."""
    return train_ssn_on_random_maps(distribution, num_parts=3, steps=250, batch=32, channels=16,
                                    size=10, hidden=64, progress=False)


def test_loss_falls_on_gaussian_maps_and_stays_at_log_n_on_all_ones():
    gaussian, ones = small_random_run("gaussian"), small_random_run("ones")
    log_n = math.log(3)
    assert gaussian.final_loss() < 0.25 * log_n, gaussian.losses[-10:]
    assert gaussian.first_step_below(0.5) is not None
    # Identical windows give identical parts, so mean CE cannot go below log N (Jensen).
    assert min(ones.losses) > log_n - 1e-4
    assert ones.final_loss() < log_n + 0.01
    assert ones.first_step_below(0.9) is None


def test_semi_supervised_changes_the_loss_only_through_labelled_samples():
    torch.manual_seed(1)
    x = torch.randn(6, 8, 9, 9)
    semi = make_ssn(strategy="semi-supervised")
    unsup = make_ssn(strategy="unsupervised")
    unsup.load_state_dict(semi.state_dict())
    grid = semi.grid_size((9, 9))
    kp = random_keypoints(6, 4, grid)
    visible = torch.ones(6, 4, dtype=torch.bool)
    nobody = torch.zeros(6, dtype=torch.bool)
    # No labelled sample in the batch: exactly the unsupervised loss.
    torch.testing.assert_close(semi(x, kp, visible, nobody, with_loss=True).loss,
                               unsup(x, with_loss=True).loss)
    labelled = torch.tensor([True, True, False, False, False, False])
    base = semi(x, kp, visible, labelled, with_loss=True).loss
    # Moving the keypoints of unlabelled samples changes nothing ...
    moved_unlabelled = kp.clone()
    moved_unlabelled[2:] = random_keypoints(4, 4, grid, torch.Generator().manual_seed(5))
    torch.testing.assert_close(semi(x, moved_unlabelled, visible, labelled, with_loss=True).loss, base)
    # ... moving those of labelled samples does.
    moved_labelled = kp.clone()
    moved_labelled[:2] = (kp[:2] + 1) % torch.tensor(grid)
    assert not torch.allclose(semi(x, moved_labelled, visible, labelled, with_loss=True).loss, base)
    # A labelled sample with every keypoint invisible contributes no term at all.
    hidden_vis = visible.clone()
    hidden_vis[:2] = False
    torch.testing.assert_close(semi(x, kp, hidden_vis, labelled, with_loss=True).loss,
                               unsup(x[2:], with_loss=True).loss)


def test_semi_supervised_parts_of_labelled_samples_are_keypoint_windows():
    semi = make_ssn(strategy="semi-supervised")
    x = torch.randn(2, 8, 9, 9)
    kp = torch.tensor([[[0, 0], [6, 6], [3, 2], [1, 5]]] * 2)
    visible = torch.tensor([[True, True, False, True]] * 2)
    out = semi(x, kp, visible, torch.tensor([True, False]), with_loss=False)
    for i, (r, c) in enumerate(kp[0].tolist()):
        window = x[0, :, r:r + 3, c:c + 3]
        assert torch.equal(out.parts[0, i], window) == bool(visible[0, i])
    unsup = make_ssn()
    unsup.load_state_dict(semi.state_dict())
    torch.testing.assert_close(out.parts[1], unsup(x[1:], with_loss=False).parts[0])


def test_supervised_uses_keypoint_windows_and_no_attention():
    sup = make_ssn(strategy="supervised")
    x = torch.randn(2, 8, 9, 9)
    kp = torch.tensor([[[0, 0], [6, 6], [3, 2], [1, 5]]] * 2)
    visible = torch.tensor([[True, True, False, True]] * 2)
    out = sup(x, kp, visible, with_loss=True)
    assert out.maps is None and out.loss.item() == 0.0
    assert torch.equal(out.parts[1, 1], x[1, :, 6:9, 6:9])
    assert torch.count_nonzero(out.parts[:, 2]) == 0
    with pytest.raises(ValueError, match="needs keypoint"):
        sup(x)


def test_non_shared_owns_one_classifier_per_frame_position():
    t = 4
    ssn = make_ssn(num_classifiers=t)
    assert ssn.num_classifiers == t
    ptrs = {p.data_ptr() for clf in ssn.classifiers for p in clf.parameters()}
    assert len(ptrs) == t * len(list(ssn.classifiers[0].parameters()))
    with pytest.raises(ValueError, match="frame_index"):
        ssn(torch.randn(2, 8, 9, 9))
    # Frames only at position 1 (and 5 = 1 mod 4) train classifier 1 and no other.
    loss = ssn(torch.randn(2, 8, 9, 9), frame_index=torch.tensor([1, 5]), with_loss=True).loss
    loss.backward()
    has_grad = [clf.fc.weight.grad is not None and clf.fc.weight.grad.abs().sum() > 0
                for clf in ssn.classifiers]
    assert has_grad == [False, True, False, False]


def test_non_shared_averages_one_loss_per_classifier():
    ssn = make_ssn(num_classifiers=2)
    x = torch.randn(3, 8, 9, 9)
    idx = torch.tensor([0, 0, 1])
    both = ssn(x, frame_index=idx, with_loss=True).loss
    first = ssn(x[:2], frame_index=idx[:2], with_loss=True).loss
    second = ssn(x[2:], frame_index=idx[2:], with_loss=True).loss
    torch.testing.assert_close(both, (first + second) / 2)


def test_keypoints_map_to_the_nearest_window_centre():
    # 128 x 64 image, stride-8 16 x 8 map, valid 3 x 3 windows: a 14 x 6 grid whose
    # window (r, c) is centred on feature cell (r + 1, c + 1).
    xy = torch.tensor([[[28.0, 60.0], [0.0, 0.0], [63.0, 127.0], [float("nan"), 5.0]]])
    visible = torch.tensor([[True, True, True, True]])
    windows, vis = keypoints_to_windows(xy, visible, (128, 64), (16, 8), window=3, padding=0)
    # (28, 60) -> feature (x 3.06, y 7.06) -> window centre (7, 3) -> index (6, 2).
    assert windows[0, 0].tolist() == [6, 2]
    assert windows[0, 1].tolist() == [0, 0]            # clamped to the first window
    assert windows[0, 2].tolist() == [13, 5]           # clamped to the last window
    assert vis[0].tolist() == [True, True, True, False]  # non-finite -> invisible
    padded, _ = keypoints_to_windows(xy, visible, (128, 64), (16, 8), window=3, padding=1)
    assert padded[0, 0].tolist() == [7, 3]             # with padding, window index = cell


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="strategy"):
        make_ssn(strategy="weakly")
    with pytest.raises(ValueError, match="does not fit"):
        make_ssn(k=5)(torch.randn(1, 8, 3, 3))
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        make_ssn()(torch.randn(1, 3, 9, 9))


def test_the_map_loss_extension_adds_the_labelled_maps_cross_entropy_at_their_keypoints():
    torch.manual_seed(2)
    x = torch.randn(4, 8, 9, 9)
    semi = make_ssn(strategy="semi-supervised")
    ours = SelfSeparatedNetwork(8, 4, window=3, hidden=16, strategy="semi-supervised", map_loss_weight=0.5)
    ours.load_state_dict(semi.state_dict())
    grid = semi.grid_size((9, 9))
    kp = random_keypoints(4, 4, grid)
    visible = torch.tensor([[True, True, False, True]] * 4)
    labelled = torch.tensor([True, False, True, False])
    paper = semi(x, kp, visible, labelled, with_loss=True)
    out = ours(x, kp, visible, labelled, with_loss=True)
    # by hand: the mean cross-entropy of each labelled visible part's scores against its window
    terms = [F.cross_entropy(out.scores[b, i].flatten()[None], (kp[b, i, 0] * grid[1] + kp[b, i, 1])[None])
             for b in (0, 2) for i in (0, 1, 3)]
    torch.testing.assert_close(out.loss, paper.loss + 0.5 * torch.stack(terms).mean())
    # nothing labelled in the batch: the paper's loss; the maps and parts never change
    nobody = torch.zeros(4, dtype=torch.bool)
    torch.testing.assert_close(ours(x, kp, visible, nobody, with_loss=True).loss,
                               semi(x, kp, visible, nobody, with_loss=True).loss)
    assert torch.equal(out.maps, paper.maps) and torch.equal(out.parts, paper.parts)
    with pytest.raises(ValueError, match="semi-supervised"):
        SelfSeparatedNetwork(8, 4, strategy="unsupervised", map_loss_weight=1.0)
