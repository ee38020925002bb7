"""torchrun-launched DDP in one place: detect the launch, pick the device, start the process
group (NCCL on CUDA, gloo on CPU) and the few collectives the trainer needs.

Without torchrun (a notebook, `ssn3d train` on one device) everything here degrades to a
single process: rank 0 of 1, no process group, collectives are identities.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist

from ..errors import Unavailable


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job, and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None
    owns_group: bool = False      # we started the process group, so we end it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def launch_environment() -> Dict[str, int]:
    """rank, world_size, local_rank, local_world_size as torchrun sets them (1 process otherwise)."""
    env = {}
    for key, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0), ("LOCAL_WORLD_SIZE", None)):
        value = os.environ.get(key)
        try:
            env[key.lower()] = int(value) if value is not None else default
        except ValueError:
            raise Unavailable(f"environment variable {key}={value!r} is not an integer; launch "
                               f"with torchrun, which sets it, or unset it") from None
    if env["local_world_size"] is None:
        env["local_world_size"] = env["world_size"]
    if not 0 <= env["rank"] < env["world_size"]:
        raise Unavailable(f"RANK={env['rank']} outside WORLD_SIZE={env['world_size']}")
    return env


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """"auto": this process's CUDA device when there is one, else the CPU."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise Unavailable(f"train.device={preference!r} but no CUDA device is available here; "
                           f"use train.device=auto or cpu")
    if preference.startswith("cuda:"):
        index = int(preference.split(":")[1])
        if index >= torch.cuda.device_count():
            raise Unavailable(f"train.device={preference!r} but only {torch.cuda.device_count()} "
                               f"CUDA device(s) exist")
        return torch.device(preference)
    # Under torchrun each process takes the GPU of its local rank.
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_distributed(device_preference: str = "auto", timeout_minutes: float = 30) -> DistributedContext:
    """Read the torchrun environment, choose the device, start the process group if needed."""
    env = launch_environment()
    device = resolve_device(device_preference, env["local_rank"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if env["world_size"] == 1:
        return DistributedContext(device=device, **env)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
        owns = True
    elif dist.get_world_size() != env["world_size"]:
        raise RuntimeError(f"a process group of {dist.get_world_size()} processes exists, but "
                           f"WORLD_SIZE={env['world_size']}")
    return DistributedContext(device=device, backend=dist.get_backend(), owns_group=owns, **env)


def shutdown(ctx: DistributedContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistributedContext) -> None:
    if ctx.is_distributed:
        if ctx.backend == "nccl":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def mean_over_ranks(ctx: DistributedContext, values: Dict[str, float]) -> Dict[str, float]:
    """Average a dict of floats over ranks (every rank gets the result)."""
    if not ctx.is_distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return {k: v / ctx.world_size for k, v in zip(keys, t.tolist())}


def broadcast_object(ctx: DistributedContext, obj: Any, src: int = 0) -> Any:
    """Rank src's object on every rank."""
    if not ctx.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=ctx.device if ctx.backend == "nccl" else None)
    return box[0]


def gather_objects(ctx: DistributedContext, obj: Any) -> List[Any]:
    """Every rank's object, in rank order, on every rank."""
    if not ctx.is_distributed:
        return [obj]
    out: List[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def sync_buffers(ctx: DistributedContext, model: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank.

    DDP keeps parameters identical, but each rank's last forward updates its running
    statistics with its own batch; after this every rank holds the model rank 0 saves.
    """
    if ctx.is_distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def configure_threads(num_threads: Optional[int], ctx: DistributedContext) -> int:
    """Intra-op threads per process: the CPU cores shared among the processes of this machine.

    DataLoader workers set themselves to one thread each; they mostly decode images while
    the main process computes, so the main process keeps all of its share.
    """
    if num_threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        num_threads = max(1, cores // max(1, ctx.local_world_size))
    torch.set_num_threads(num_threads)
    return num_threads
