"""Run independent tasks: local worker processes by default, a dask.distributed cluster by address.

Decoding NetCDF/HDF5 is not thread-safe (xarray#7079), so local parallelism uses processes (spawned:
forking a parent that runs Icechunk's and zarr's threads is not safe); small batches run in-process,
where starting workers would cost more than it saves. The local pool can be started ahead of the work
(``start_local_pool``) so that its start-up overlaps the caller's preparation.
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
    pool: Any = None,
) -> list[Any]:
    """``[fn(item) for item in items]`` in parallel, results in input order.

    ``scheduler``: None (local: processes when there are at least ``min_parallel`` items and more than
    one worker, else in-process), ``"sync"`` (in-process), or a dask.distributed scheduler address.
    ``progress(done, total)`` is called as tasks finish. ``pool``: a pool from ``start_local_pool``
    to run local processes on (left running; by default one is started and shut down here).
    """
    total = len(items)
    if total == 0:
        return []
    workers = workers or default_workers()
    if scheduler and scheduler not in ("sync", "processes", "threads"):
        return _run_distributed(fn, items, scheduler, progress)
    if scheduler == "sync" or (pool is None and scheduler is None and (total < min_parallel or workers < 2)):
        out = []
        for i, it in enumerate(items, 1):
            out.append(fn(it))
            if progress:
                progress(i, total)
        return out
    if scheduler in (None, "processes"):
        own = pool is None
        if own:
            pool = _new_pool(min(workers, total))
        try:
            return _run_pool(pool, fn, items, progress)
        finally:
            if own:
                pool.shutdown(wait=True)
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


def _run_pool(pool, fn, items, progress):
    """All tasks queued at once (the pool keeps each worker fed, no round trip between tasks); results in
    input order."""
    from concurrent.futures import as_completed

    futures = {pool.submit(fn, it): i for i, it in enumerate(items)}
    out: list[Any] = [None] * len(items)
    try:
        for n, fut in enumerate(as_completed(futures), 1):
            out[futures[fut]] = fut.result()
            if progress:
                progress(n, len(items))
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    return out


def _warm(modules: Sequence[str]) -> None:
    import importlib

    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:  # pragma: no cover - optional; the task says if it matters
            pass


def _noop() -> None:
    return None


def start_local_pool(n_items: int, *, scheduler: str | None = None, workers: int | None = None,
                     min_parallel: int = 3, warm: Sequence[str] = ()):
    """Start the worker processes ``run_tasks`` would use for ``n_items`` tasks now, importing ``warm``
    modules in each, so that their start (about a second with spawn) overlaps the caller's own work.
    None where ``run_tasks`` would run in-process or on a cluster. The caller shuts the pool down."""
    workers = workers or default_workers()
    if scheduler not in (None, "processes") or n_items < min_parallel or workers < 2:
        return None
    n = min(workers, n_items)
    pool = _new_pool(n, warm)
    for _ in range(n):  # spawned workers start as tasks arrive: one each, now
        pool.submit(_noop)
    return pool


def _new_pool(n: int, warm: Sequence[str] = ()):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_warm,
                               initargs=(tuple(warm),))


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
