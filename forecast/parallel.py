"""Run independent tasks with dask: local processes by default, a dask.distributed cluster by address.

Decoding NetCDF/HDF5 is not thread-safe (xarray#7079), so local parallelism uses processes; small
batches run in-process, where starting workers would cost more than it saves.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_tasks(
    fn: Callable[..., Any],
    items: Sequence[Any],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    min_parallel: int = 3,
) -> list[Any]:
    """``[fn(item) for item in items]`` in parallel, results in input order.

    ``scheduler``: None (local: processes when there are at least ``min_parallel`` items and more than
    one worker, else in-process), ``"sync"`` (in-process), or a dask.distributed scheduler address.
    ``progress(done, total)`` is called as tasks finish.
    """
    total = len(items)
    if total == 0:
        return []
    workers = workers or default_workers()
    if scheduler and scheduler not in ("sync", "processes", "threads"):
        return _run_distributed(fn, items, scheduler, progress)
    if scheduler == "sync" or (scheduler is None and (total < min_parallel or workers < 2)):
        out = []
        for i, it in enumerate(items, 1):
            out.append(fn(it))
            if progress:
                progress(i, total)
        return out
    import dask
    from dask.callbacks import Callback

    done = [0]
    keys: set = set()

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in keys:
                done[0] += 1
                if progress:
                    progress(done[0], total)

    tasks = [dask.delayed(fn, pure=False)(it) for it in items]
    keys.update(t.key for t in tasks)
    kind = scheduler or "processes"
    kwargs: dict[str, Any] = {"scheduler": kind, "num_workers": min(workers, total)}
    with _Progress():
        return list(dask.compute(*tasks, **kwargs))


def _run_distributed(fn, items, address, progress):
    from distributed import Client, as_completed

    with Client(address, set_as_default=False) as client:
        futures = client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(items)
        for n, fut in enumerate(as_completed(futures, loop=client.loop), 1):
            out[index[fut.key]] = fut.result()
            if progress:
                progress(n, len(items))
        return out
