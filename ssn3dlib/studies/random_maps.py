"""The random-data study (paper Fig. 5): can the SSN separate parts of pure noise?

Maps of C x H x W are drawn from a Gaussian, a 0-1 uniform, or are all ones; the
SSN (no backbone) is trained on the SSN loss alone. SPEC decisions: a fresh batch
every step by default (``fixed_set`` gives a fixed pool instead); valid windows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch
from tqdm.auto import tqdm

from ..models import SelfSeparatedNetwork

DISTRIBUTIONS = ("gaussian", "uniform", "ones")


def map_sampler(distribution: str, batch: int, shape, generator: torch.Generator,
                fixed_set: Optional[int] = None) -> Callable[[], torch.Tensor]:
    """A function returning a (batch, *shape) batch per call.

    fixed_set: draw a pool of this many maps once and sample batches from it.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; choose one of {DISTRIBUTIONS}")

    def draw(n):
        if distribution == "gaussian":
            return torch.randn(n, *shape, generator=generator)
        if distribution == "uniform":
            return torch.rand(n, *shape, generator=generator)
        return torch.ones(n, *shape)

    if fixed_set is None:
        return lambda: draw(batch)
    pool = draw(fixed_set)
    return lambda: pool[torch.randint(0, fixed_set, (batch,), generator=generator)]


@dataclass
class RandomMapsRun:
    distribution: str
    num_parts: int
    losses: List[float] = field(default_factory=list)

    @property
    def log_n(self) -> float:
        return math.log(self.num_parts)

    def final_loss(self, fraction: float = 0.05) -> float:
        """Mean of the last `fraction` of steps (at least one)."""
        tail = max(1, int(len(self.losses) * fraction))
        return sum(self.losses[-tail:]) / tail

    def first_step_below(self, fraction_of_log_n: float = 0.1) -> Optional[int]:
        """First step whose loss is below fraction x log N, or None if never."""
        threshold = fraction_of_log_n * self.log_n
        return next((i for i, v in enumerate(self.losses) if v < threshold), None)


def train_ssn_on_random_maps(distribution: str, num_parts: int, steps: int = 300, batch: int = 128,
                             channels: int = 128, size: int = 16, window: int = 3,
                             hidden: int = 512, lr: float = 1e-3, weight_decay: float = 5e-4,
                             seed: int = 0, fixed_set: Optional[int] = None,
                             progress: bool = True) -> RandomMapsRun:
    """Train an SSN with Adam on random maps; returns the loss of every step.

    Defaults are the paper's (128 x 16 x 16, k = 3, batch 128, Adam, wd 5e-4);
    lr is not given in the paper for this study.
    """
    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be positive, got steps={steps}, batch={batch}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    sample = map_sampler(distribution, batch, (channels, size, size), generator, fixed_set)
    ssn = SelfSeparatedNetwork(channels, num_parts, window=window, hidden=hidden)
    opt = torch.optim.Adam(ssn.parameters(), lr=lr, weight_decay=weight_decay)
    run = RandomMapsRun(distribution, num_parts)
    for _ in tqdm(range(steps), desc=f"{distribution} N={num_parts}", disable=not progress,
                  leave=False):
        loss = ssn(sample(), with_loss=True).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.losses.append(loss.item())
    return run
