"""P identities x K clips per batch (paper: 8 x 4), identical on every DDP rank's view of the epoch.

Every rank builds the same epoch plan from (seed, epoch) and takes every world_size-th
batch, so ranks see disjoint batches without communicating (the approach of fast-reid's
identity samplers). Call set_epoch(e) before each epoch, as with DistributedSampler.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, List, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import InputError


class IdentityBatchSampler(Sampler[List[int]]):
    """Yields lists of P*K dataset indices: P distinct identities, K tracklets each.

    An identity with fewer than K tracklets is filled by sampling its tracklets again;
    each identity contributes floor(max(n, K) / K) groups per epoch, so all tracklets
    are seen about once per epoch. Incomplete last batches are dropped.
    """

    def __init__(self, pids: Sequence[int], identities_per_batch: int = 8, instances_per_identity: int = 4,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if identities_per_batch < 2 or instances_per_identity < 1:
            raise InputError("need at least 2 identities per batch and 1 instance per identity (the "
                             "triplet loss needs positives and negatives); got "
                             f"P={identities_per_batch}, K={instances_per_identity}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.by_pid = defaultdict(list)
        for index, pid in enumerate(pids):
            self.by_pid[int(pid)].append(index)
        if len(self.by_pid) < identities_per_batch:
            raise InputError(f"{len(self.by_pid)} identities cannot fill batches of {identities_per_batch} "
                             f"identities; lower identities_per_batch")
        self.p, self.k = identities_per_batch, instances_per_identity
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self) -> List[List[int]]:
        """The whole epoch's batches, identical on every rank."""
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = {}
        for pid in sorted(self.by_pid):
            idx = np.array(self.by_pid[pid])
            if len(idx) < self.k:
                idx = rng.choice(idx, size=self.k, replace=True)
            idx = rng.permutation(idx)
            groups[pid] = [idx[i:i + self.k].tolist() for i in range(0, len(idx) - self.k + 1, self.k)]
        batches = []
        while True:
            available = [pid for pid, g in groups.items() if g]
            if len(available) < self.p:
                break
            chosen = rng.choice(available, size=self.p, replace=False)
            batches.append([i for pid in chosen for i in groups[int(pid)].pop()])
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        batches = self.epoch_batches()
        per_rank = len(batches) // self.world_size
        yield from batches[self.rank:per_rank * self.world_size:self.world_size]

    def __len__(self) -> int:
        return len(self.epoch_batches()) // self.world_size
