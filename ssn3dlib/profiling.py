"""Measuring models: parameters, activation memory, peak memory and step time.

FLOPs come from ``torch.utils.flop_counter``. Two activation counts, because they answer different questions:

- ``saved_tensor_bytes``: the bytes autograd keeps between forward and backward, read
  with ``torch.autograd.graph.saved_tensors_hooks``. Exact for what autograd holds
  (each storage counted once, whatever views or ops share it); parameters, buffers and
  the inputs are excluded because they are counted on their own.
- ``module_output_bytes``: torchsummary's convention (sum of every leaf module's
  output), which tables such as seed 002's "Forward/backward pass size" use (x2 there,
  for the gradients). It misses functional ops and counts in-place outputs again.

``PeakMemory`` measures the real peak: ``torch.cuda.max_memory_allocated`` on a GPU,
the process's peak resident set (VmHWM, reset through /proc/self/clear_refs) on CPU.
"""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

MB = 2 ** 20  # tables say "MB" for MiB, like torchsummary


def unique_parameters(module: nn.Module) -> list:
    """Parameters counted once even when shared between sub-modules."""
    return list({id(p): p for p in module.parameters()}.values())


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in unique_parameters(module) if p.requires_grad or not trainable_only)


def parameter_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in unique_parameters(module))


def tensor_bytes(tensors: Iterable[Optional[torch.Tensor]]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _storage_key(tensor: torch.Tensor) -> Optional[Tuple[str, int]]:
    try:
        storage = tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):  # tensor subclasses without a storage
        return None
    return (str(tensor.device), storage.data_ptr())


def saved_tensor_bytes(fn: Callable[[], object], exclude: Iterable[torch.Tensor] = ()
                       ) -> Tuple[object, int]:
    """Run ``fn()`` and return (its result, bytes of the tensors autograd saved for backward).

    Each storage is counted once, in full (a saved view keeps its whole storage alive).
    Storages of ``exclude`` (parameters, buffers, inputs) are not counted. The result
    holds the graph, so the counted tensors stay alive until the caller drops it.
    """
    excluded = {_storage_key(t) for t in exclude}
    counted: dict = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key is not None and key not in excluded and key not in counted:
            counted[key] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = fn()
    return result, sum(counted.values())


def module_output_bytes(module: nn.Module, fn: Callable[[], object]) -> Tuple[object, int]:
    """Run ``fn()`` and return (its result, bytes of all leaf modules' outputs) (torchsummary)."""
    total = 0

    def hook(_module, _inputs, output):
        nonlocal total
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        total += tensor_bytes(o for o in outputs if isinstance(o, torch.Tensor))

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        result = fn()
    finally:
        for handle in handles:
            handle.remove()
    return result, total


def count_flops(fn: Callable[[], object]) -> Tuple[object, int]:
    """Run ``fn()`` and return (its result, FLOPs of its matmuls and convolutions).

    torch.utils.flop_counter's count: 2 per multiply-add, elementwise ops not counted.
    """
    with FlopCounterMode(display=False) as counter:
        result = fn()
    return result, counter.get_total_flops()


def model_state_tensors(module: nn.Module) -> list:
    """Parameters and buffers: what a model holds whatever the batch (exclude from activations)."""
    return unique_parameters(module) + list(module.buffers())


def affine_fit(x1: float, y1: float, x2: float, y2: float) -> Tuple[float, float]:
    """(slope, intercept) of the line through two measurements."""
    if x1 == x2:
        raise ValueError(f"an affine fit needs two different x values, got {x1} twice")
    slope = (y2 - y1) / (x2 - x1)
    return slope, y1 - slope * x1


# -- peak memory ----------------------------------------------------------------------

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in {_STATUS}")
    return int(match.group(1))


def reset_cpu_peak() -> None:
    """Set the process's peak resident set (VmHWM) back to its current resident set."""
    try:
        _status_kib("VmHWM")
        _CLEAR_REFS.write_text("5")  # "5" resets the peak RSS (Linux >= 4.0)
    except (OSError, RuntimeError) as err:
        raise RuntimeError(f"CPU peak memory needs Linux /proc/self/status (VmHWM) and a writable "
                           f"/proc/self/clear_refs ({err}); run on Linux or skip the memory "
                           f"measurement") from err


class PeakMemory:
    """Peak memory in use inside a ``with`` block, above what was in use on entry.

    cuda: ``torch.cuda.max_memory_allocated`` (tensors; the allocator's cache excluded);
    ``absolute_bytes`` is the peak including what was allocated before, ``reserved_bytes``
    the allocator's peak reservation (what nvidia-smi would show, less the context).
    cpu: peak resident set (VmHWM) after resetting it on entry. The C allocator keeps
    freed pages, so on CPU only a block run in a fresh process (nothing freed before)
    measures its full peak; later blocks reuse the kept pages and read low.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.peak_bytes: Optional[int] = None
        self.absolute_bytes: Optional[int] = None
        self.reserved_bytes: Optional[int] = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        elif self.device.type == "cpu":
            reset_cpu_peak()
            self._start = _status_kib("VmRSS") * 1024
        else:
            raise ValueError(f"peak memory is measured on cpu or cuda, not {self.device}")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.absolute_bytes = torch.cuda.max_memory_allocated(self.device)
            self.reserved_bytes = torch.cuda.max_memory_reserved(self.device)
        else:
            self.absolute_bytes = _status_kib("VmHWM") * 1024
        self.peak_bytes = max(self.absolute_bytes - self._start, 0)


# -- timing ---------------------------------------------------------------------------

def synchronize(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timing(NamedTuple):
    """Best wall time and best CPU time (all threads of this process) of one call, in seconds.

    On a shared machine the CPU time hardly moves with other processes' load, the wall
    time does: ratios of CPU times compare models fairly even on a busy machine.
    """

    wall_s: float
    cpu_s: float


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1,
              device: torch.device | str = "cpu") -> Timing:
    """Smallest wall and CPU times of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs.

    The minimum is the run least disturbed by other load; GPU work is synchronised
    before the clock stops.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return Timing(wall, cpu)


@contextmanager
def autocast(device: torch.device | str, dtype: Optional[torch.dtype]) -> Iterator[None]:
    """torch.autocast for ``dtype`` (e.g. torch.bfloat16), or nothing when dtype is None."""
    device = torch.device(device)
    with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
        yield
