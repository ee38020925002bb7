"""Tests for ssn3dlib.metrics: CMC/mAP (fast vs hand numbers vs reference loop) and distances."""
import numpy as np
import pytest
import torch

from ssn3dlib.metrics import RankResult, compute_distance, evaluate_rank
from ssn3dlib.metrics.reference import evaluate_rank_reference

IMPLEMENTATIONS = [evaluate_rank, evaluate_rank_reference]
AP_DEFINITIONS = ["standard", "mars-official"]


# ---------------------------------------------------------------- hand-made case
# Gallery (index: pid, cam):
#   g0: 1,2  g1: 1,1  g2: -1,1  g3: 0,2  g4: 2,1  g5: 1,3  g6: 3,1  g7: 2,2
# q0 = pid 1 cam 1. Junk: g1 (same pid+cam), g2 (pid -1). Positives g0, g5.
#   Order by distance: g1 .1 | g2 .2 | g3 .3 | g4 .4 | g0 .5 | g6 .6 | g7 .7 | g5 .9
#   Valid ranking: g3, g4, g0(hit 1 at r=3), g6, g7, g5(hit 2 at r=6). First hit: 3.
#   standard AP = (1/3 + 2/6) / 2 = 1/3
#   mars AP     = [(0/2 + 1/3)/2 + (1/5 + 2/6)/2] / 2 = (1/6 + 4/15) / 2 = 13/60
# q1 = pid 2 cam 2. Junk: g7 (same pid+cam), g2. Positive g4, tied with the
#   distractor g3 (both 0.2); the lower index g3 ranks first.
#   Order: g2 .05 | g7 .1 | g3 .2 | g4 .2 | g1 .6 | g5 .7 | g0 .8 | g6 .9
#   Valid ranking: g3, g4(hit 1 at r=2), ... First hit: 2.
#   standard AP = 1/2;  mars AP = (0/1 + 1/2)/2 = 1/4
# q2 = pid 3 cam 1: its only same-pid item g6 is on camera 1 -> no match, skipped.
# CMC (2 valid queries, first hits at 3 and 2): [0, 1/2, 1, 1, 1, ...]
# First-match ranks per query: [3, 2, 0] (0: no true match).
HAND_DISTMAT = np.array(
    [
        [0.5, 0.1, 0.2, 0.3, 0.4, 0.9, 0.6, 0.7],
        [0.8, 0.6, 0.05, 0.2, 0.2, 0.7, 0.9, 0.1],
        [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.1, 0.2],
    ],
    dtype=np.float32,
)
HAND_LABELS = dict(
    q_pids=np.array([1, 2, 3]),
    g_pids=np.array([1, 1, -1, 0, 2, 1, 3, 2]),
    q_camids=np.array([1, 2, 1]),
    g_camids=np.array([2, 1, 1, 2, 1, 3, 1, 2]),
)
HAND_AP = {"standard": [1 / 3, 1 / 2], "mars-official": [13 / 60, 1 / 4]}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("ap", AP_DEFINITIONS)
def test_hand_computed_case(implementation, ap):
    result = implementation(HAND_DISTMAT, **HAND_LABELS, max_rank=5, ap=ap)
    assert isinstance(result, RankResult)
    np.testing.assert_allclose(result.cmc, [0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(result.average_precision, HAND_AP[ap])
    assert result.mAP == pytest.approx(np.mean(HAND_AP[ap]))
    assert result.num_no_match == 1
    np.testing.assert_array_equal(result.first_match_rank, [3, 2, 0])


def test_first_match_rank_is_not_capped_by_max_rank():
    # q0's first hit sits at valid rank 3: beyond a CMC of length 2, still reported as 3,
    # and the per-query records give back the CMC and mAP they summarise.
    for implementation in IMPLEMENTATIONS:
        result = implementation(HAND_DISTMAT, **HAND_LABELS, max_rank=2)
        np.testing.assert_array_equal(result.first_match_rank, [3, 2, 0])
        matched = result.first_match_rank[result.first_match_rank > 0]
        assert result.cmc[0] == np.mean(matched == 1) and result.cmc[1] == np.mean(matched <= 2)
        assert len(result.average_precision) == len(matched)


def test_cmc_length_is_capped_by_gallery_size():
    result = evaluate_rank(HAND_DISTMAT, **HAND_LABELS, max_rank=50)
    np.testing.assert_allclose(result.cmc, [0, 0.5, 1, 1, 1, 1, 1, 1])


def test_torch_inputs_match_numpy():
    as_tensors = {k: torch.from_numpy(v) for k, v in HAND_LABELS.items()}
    result = evaluate_rank(torch.from_numpy(HAND_DISTMAT), **as_tensors, max_rank=5)
    expected = evaluate_rank(HAND_DISTMAT, **HAND_LABELS, max_rank=5)
    np.testing.assert_array_equal(result.cmc, expected.cmc)
    assert result.mAP == expected.mAP


# ------------------------------------------------------- fast vs reference loop
def random_protocol(seed, num_q=40, num_g=300, num_ids=12, num_cams=4, shift=0.0):
    """Small MARS-like protocol with junk (-1), distractors (0) and many exact ties."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 4, size=num_q)  # ids > num_ids: not in gallery
    g_pids = rng.integers(-1, num_ids + 1, size=num_g)
    q_camids = rng.integers(0, num_cams, size=num_q)
    g_camids = rng.integers(0, num_cams, size=num_g)
    same = q_pids[:, None] == g_pids[None, :]
    distmat = rng.random((num_q, num_g)) + 0.5 * ~same  # positives tend to rank early
    distmat = np.round(distmat, 1) - shift  # one decimal -> many ties
    return distmat, q_pids, g_pids, q_camids, g_camids


def assert_same_result(result, expected):
    np.testing.assert_array_equal(result.cmc, expected.cmc)
    np.testing.assert_array_equal(result.average_precision, expected.average_precision)
    assert result.mAP == expected.mAP
    assert result.num_no_match == expected.num_no_match
    np.testing.assert_array_equal(result.first_match_rank, expected.first_match_rank)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ap", AP_DEFINITIONS)
@pytest.mark.parametrize(
    "dtype, shift",
    [(np.float32, 0.0), (np.float32, 0.7), (np.float64, 0.0)],
    ids=["float32-keys", "float32-negative", "float64-generic"],
)
def test_matches_reference_exactly(seed, ap, dtype, shift):
    distmat, *labels = random_protocol(seed, shift=shift)
    distmat = distmat.astype(dtype)
    expected = evaluate_rank_reference(distmat, *labels, max_rank=20, ap=ap)
    assert expected.num_no_match > 0  # the case exercises skipped queries
    assert_same_result(evaluate_rank(distmat, *labels, max_rank=20, ap=ap), expected)


def test_negative_zero_ties_with_zero():
    # -0.0 == 0.0, so the tie goes to the lower index: positive g0 ranks first
    # (a raw bit-pattern order would put the -0.0 distractor g1 ahead of it).
    distmat = np.array([[0.0, -0.0, 1.0]], dtype=np.float32)
    labels = dict(q_pids=[1], g_pids=[1, 0, 1], q_camids=[0], g_camids=[1, 1, 1])
    result = evaluate_rank(distmat, **labels, max_rank=3)
    assert_same_result(result, evaluate_rank_reference(distmat, **labels, max_rank=3))
    np.testing.assert_allclose(result.cmc, [1, 1, 1])
    np.testing.assert_allclose(result.average_precision, [(1 / 1 + 2 / 3) / 2])
    np.testing.assert_array_equal(result.first_match_rank, [1])


# ------------------------------------------------------------------ error cases
def hand_args(**overrides):
    args = dict(distmat=HAND_DISTMAT, **HAND_LABELS)
    args.update(overrides)
    return args


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(distmat=HAND_DISTMAT[0]), "2-D"),
        (dict(distmat=HAND_DISTMAT[:2]), "q_pids has 3 entries"),
        (dict(g_camids=np.arange(7)), "g_camids has 7 entries"),
        (dict(q_pids=np.array([[1, 2, 3]])), "must be 1-D"),
        (dict(ap="map"), "standard"),
        (dict(max_rank=0), "max_rank"),
        (dict(q_pids=np.array([1, -1, 3])), "junk pid"),
        (dict(distmat=np.where(HAND_DISTMAT > 0.85, np.nan, HAND_DISTMAT)), "NaN"),
        (dict(q_camids=np.array([1, 1, 1]), q_pids=np.array([3, 3, 3])), "none of the 3 queries"),
    ],
    ids=[
        "1d-distmat",
        "rows-vs-query-pids",
        "gallery-camids",
        "2d-pids",
        "unknown-ap",
        "max-rank",
        "junk-query",
        "nan",
        "no-valid-query",
    ],
)
def test_invalid_inputs_raise(implementation, overrides, message):
    with pytest.raises(ValueError, match=message):
        implementation(**hand_args(**overrides))


# --------------------------------------------------------------- distances
def numpy_distance(query, gallery, metric):
    """Direct float64 computation from the definition."""
    query, gallery = query.astype(np.float64), gallery.astype(np.float64)
    if metric == "euclidean":
        return np.sqrt(((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1))
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    return 1.0 - qn @ gn.T


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_size", [3, 4096])
@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
def test_compute_distance_matches_numpy(metric, chunk_size, as_tensor):
    rng = np.random.default_rng(0)
    query = rng.standard_normal((10, 16)).astype(np.float32)
    gallery = rng.standard_normal((13, 16)).astype(np.float32)
    gallery[0] = query[0]  # zero euclidean distance: the clamp keeps sqrt real
    convert = torch.from_numpy if as_tensor else (lambda a: a)
    result = compute_distance(convert(query), convert(gallery), metric, chunk_size=chunk_size)
    assert result.dtype == np.float32 and result.shape == (10, 13)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, numpy_distance(query, gallery, metric), atol=2e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compute_distance_on_gpu_matches_cpu():
    rng = np.random.default_rng(1)
    query = torch.from_numpy(rng.standard_normal((9, 32)).astype(np.float32))
    gallery = torch.from_numpy(rng.standard_normal((11, 32)).astype(np.float32))
    on_gpu = compute_distance(query.cuda(), gallery.cuda(), chunk_size=4)
    np.testing.assert_allclose(on_gpu, compute_distance(query, gallery), atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(metric="manhattan"), "euclidean"),
        (dict(gallery_features=np.zeros((4, 5), np.float32)), "feature dims differ"),
        (dict(query_features=np.zeros(6, np.float32)), "2-D"),
        (dict(chunk_size=0), "chunk_size"),
    ],
    ids=["metric", "dims", "1d", "chunk"],
)
def test_compute_distance_rejects_bad_arguments(kwargs, message):
    args = dict(
        query_features=np.zeros((3, 6), np.float32), gallery_features=np.zeros((4, 6), np.float32)
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        compute_distance(**args)
