"""Seeded identity splits, for datasets whose official splits are not shipped with the data."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ..errors import InputError


def seeded_halves(items: Sequence[str], split: int, num_splits: int = 10,
                  seed: int = 0) -> Tuple[List[str], List[str]]:
    """(train, test) halves of `items` for split index `split`, both sorted.

    Split k is the k-th permutation drawn from default_rng(seed), so split k is the same
    whatever other splits are asked for. With an odd count the extra item goes to train.
    """
    if not 0 <= split < num_splits:
        raise InputError(f"split must be in 0..{num_splits - 1}, got {split}")
    rng = np.random.default_rng(seed)
    order = [rng.permutation(len(items)) for _ in range(split + 1)][split]
    half = len(items) // 2
    return sorted(items[i] for i in order[half:]), sorted(items[i] for i in order[:half])
