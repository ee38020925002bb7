"""Training an SSN on its own loss (eq. 4), as studies 01-03 do, and reading its maps back.

One loop serves every SSN-only study: the study says how a batch is drawn (a callable that
returns the SSN's forward arguments), the loop steps Adam and records every step's loss in an
``SSNRun``. Random draws happen in the same order as in the studies' former loops, so seeded
results are unchanged.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from ...models import SelfSeparatedNetwork
from .statistics import Comparison, against_reference

#: The final loss of a run is the mean over this last fraction of its steps (one noisy step
#: does not decide it).
FINAL_FRACTION = 0.05
#: A run has converged once its loss is below this fraction of log N (a fresh SSN sits at log N).
CONVERGED_FRACTION = 0.1


def converged_margin(loss_fractions: Iterable[float]) -> Comparison:
    """CONVERGED_FRACTION minus each run's final loss in units of log N (one row per run, e.g. one
    per seed), with its t interval over the runs: above 0 when the runs converged."""
    return against_reference([[CONVERGED_FRACTION - f] for f in loss_fractions], 0.0, unit="run per seed")

#: A batch: keyword arguments of SelfSeparatedNetwork.forward (at least ``x``).
Batch = Dict[str, torch.Tensor]


@dataclass
class SSNRun:
    """One trained SSN and its loss curve.

    labels: what distinguishes this run within its study (distribution, strategy, ...), kept
    in its record. extras: what the study needs to use the model again (a frozen backbone, an
    input normaliser), never written to records.
    """

    ssn: SelfSeparatedNetwork
    seed: int
    labels: Dict[str, Any] = field(default_factory=dict)
    losses: List[float] = field(default_factory=list)
    seconds: float = 0.0
    extras: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_parts(self) -> int:
        return self.ssn.num_parts

    @property
    def log_n(self) -> float:
        """The loss of an SSN that cannot tell its parts apart."""
        return math.log(self.num_parts)

    def final_loss(self, fraction: float = FINAL_FRACTION) -> float:
        """Mean loss of the last `fraction` of steps (at least one)."""
        if not self.losses:
            raise ValueError(f"run {self.labels or ''} seed {self.seed} has no recorded steps: it was never trained")
        tail = max(1, int(len(self.losses) * fraction))
        return float(sum(self.losses[-tail:]) / tail)

    def first_step_below(self, fraction_of_log_n: float = CONVERGED_FRACTION) -> Optional[int]:
        """First step whose loss is below fraction x log N, or None if never."""
        threshold = fraction_of_log_n * self.log_n
        return next((i for i, v in enumerate(self.losses) if v < threshold), None)

    def record(self, digits: int = 6) -> Dict[str, Any]:
        """The run's entry in a study's metrics.json."""
        return {**self.labels, "seed": self.seed, "num_parts": self.num_parts, "log_n": round(self.log_n, digits),
                "final_loss": round(self.final_loss(), digits),
                "first_step_below_10pct_log_n": self.first_step_below(CONVERGED_FRACTION),
                "steps": len(self.losses), "wall_time_s": round(self.seconds, 2)}


def train_ssn(ssn: SelfSeparatedNetwork, next_batch: Callable[[], Batch], steps: int, seed: int,
              lr: float = 1e-3, weight_decay: float = 5e-4, device: Optional[torch.device] = None,
              extra_params: Iterable[nn.Parameter] = (), labels: Optional[Mapping[str, Any]] = None,
              desc: str = "SSN", progress: bool = True, extra_lr: Optional[float] = None) -> SSNRun:
    """Train `ssn` (and `extra_params`, e.g. a backbone trained with it) with Adam on the SSN
    loss for `steps` steps; next_batch() gives each step's forward arguments, on `device`.

    The model comes back in eval mode on `device`; seed only labels the run (seed the model's
    initialisation and the batch draws before calling: their order is the study's). extra_lr:
    the extra parameters' learning rate (None = lr), e.g. a smaller one for a pretrained backbone.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    start = time.perf_counter()
    groups = [{"params": list(ssn.parameters())}]
    extra = list(extra_params)
    if extra:
        groups.append({"params": extra, "lr": lr if extra_lr is None else extra_lr})
    opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    run = SSNRun(ssn, seed, dict(labels or {}))
    ssn.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        batch = next_batch()
        if device is not None:
            batch = {k: v.to(device) for k, v in batch.items()}
        loss = ssn(**batch, with_loss=True).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.losses.append(loss.item())
    ssn.eval()
    run.seconds = time.perf_counter() - start
    return run


@torch.no_grad()
def attention_maps(ssn: SelfSeparatedNetwork, inputs: torch.Tensor, chunk: int = 64,
                   features: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """(M, N, h', w') attention maps of `inputs` (M, ...) on the CPU, in chunks.

    features: turns a chunk of inputs into the SSN's input (a backbone, a normaliser);
    default: the inputs are the SSN's input already.
    """
    ssn.eval()
    device = next(ssn.parameters()).device
    out = []
    for s in range(0, len(inputs), chunk):
        x = inputs[s:s + chunk]
        x = features(x) if features is not None else x
        out.append(ssn(x.to(device), with_loss=False).maps.cpu())
    return torch.cat(out)
