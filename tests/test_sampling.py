"""Clip sampling with its short-tracklet fallbacks, and the P x K identity sampler under DDP ranks."""
from collections import Counter

import numpy as np
import pytest

from ssn3dlib.data.identity_sampler import IdentityBatchSampler
from ssn3dlib.data.temporal import evaluation_clip_indices, train_clip_indices


def test_long_tracklet_gives_strided_clip_from_random_start():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = train_clip_indices(40, clip_len=4, stride=8, rng=rng)
        assert np.all(np.diff(idx) == 8) and 0 <= idx[0] and idx[-1] < 40
        starts.add(idx[0])
    assert starts == set(range(40 - 24))  # every admissible start occurs


def test_short_tracklets_fall_back_to_sorted_subsets_then_repeats():
    rng = np.random.default_rng(0)
    mid = train_clip_indices(10, clip_len=4, stride=8, rng=rng)   # 10 < 25-frame span
    assert mid == sorted(mid) and len(set(mid)) == 4
    tiny = train_clip_indices(2, clip_len=4, stride=8, rng=rng)   # fewer frames than the clip
    assert tiny == sorted(tiny) and len(tiny) == 4 and set(tiny) <= {0, 1}
    with pytest.raises(ValueError, match="shorter than the clip length 4"):
        train_clip_indices(2, clip_len=4, short="error")


def test_test_clips_cover_every_frame_once():
    clips = evaluation_clip_indices(70, clip_len=32)
    assert [len(c) for c in clips] == [32, 32, 6]
    assert sum(clips, []) == list(range(70))
    assert evaluation_clip_indices(5) == [[0, 1, 2, 3, 4]]
    with pytest.raises(ValueError):
        evaluation_clip_indices(0)


PIDS = [pid for pid in range(12) for _ in range(1 + pid % 5)]  # 1 to 5 tracklets per identity


def test_every_batch_has_p_identities_with_k_clips_each():
    sampler = IdentityBatchSampler(PIDS, identities_per_batch=4, instances_per_identity=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        counts = Counter(PIDS[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {3}


def test_ranks_share_the_epoch_plan_and_see_disjoint_batches():
    ranks = [IdentityBatchSampler(PIDS, 4, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        plan = ranks[0].epoch_batches()
        assert plan == ranks[1].epoch_batches()
        seen = [list(s) for s in ranks]
        assert len(seen[0]) == len(seen[1]) == len(plan) // 2
        flat = [tuple(b) for rank_batches in seen for b in rank_batches]
        assert len(set(flat)) == len(flat)  # no batch on two ranks
    ranks[0].set_epoch(0)
    first = ranks[0].epoch_batches()
    ranks[0].set_epoch(1)
    assert ranks[0].epoch_batches() != first  # epochs reshuffle


def test_sampler_refuses_impossible_batches():
    with pytest.raises(ValueError, match="identities cannot fill"):
        IdentityBatchSampler([0, 0, 1, 1], identities_per_batch=3)
    with pytest.raises(ValueError, match="at least 2 identities"):
        IdentityBatchSampler(PIDS, identities_per_batch=1)
    with pytest.raises(ValueError, match="rank"):
        IdentityBatchSampler(PIDS, 4, 2, rank=2, world_size=2)
