"""Independent trainings of a study, several at once in separate processes.

A study's runs (benchmark settings x seeds, misalignment points) are independent and each is
single-threaded in the cpu configs (one OpenMP thread: two threads per run spin against each
other on a 2-core machine), so `workers` processes fill `workers` cores. Each run's numbers
depend on its own seed only, never on the worker that trained it or the order runs finish in.
Workers are spawned, not forked: a forked copy of a process whose torch already runs threads
can hang. Each worker keeps its own decoded frames and frozen-backbone features.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Sequence, Tuple


def check_workers(workers: Any) -> int:
    """`workers` as a process count, or a ValueError naming the fix."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1 (processes training at once), got {workers!r}")
    return workers


def map_in_processes(fn: Callable, calls: Sequence[Tuple], workers: int = 1) -> Iterator[Tuple[int, Any]]:
    """(index, fn(*calls[index])) for every call, in the order they finish; with one worker (or
    one call) in this process, in order. `fn` and its arguments must be picklable (module-level
    functions, plain data) when workers > 1. The first exception stops the rest and is raised."""
    workers = check_workers(workers)
    if workers == 1 or len(calls) < 2:
        for i, args in enumerate(calls):
            yield i, fn(*args)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(workers, len(calls)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def with_threads(threads: int, fn: Callable, args: Sequence = (), kwargs: Dict[str, Any] = None) -> Any:
    """fn(*args, **kwargs) on `threads` torch CPU threads (0: leave torch's setting): a spawned
    worker starts with torch's default, which on a shared 2-core machine makes two workers' threads
    spin against each other, and one thread gives the same numbers in a worker as in the notebook."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return fn(*args, **(kwargs or {}))
