"""Realistic synthetic observation feeds (`forecast sample`): one CF NetCDF file per time slot, with
operational faults planted on purpose and recorded exactly in ``manifest.json`` for the QC tests.

Every field is an analytic function of (catalog, seed, time): convective cells and stratiform rain areas
are defined by their birth time, track and life cycle, so any slot can be rendered alone, in any process,
and two samples that overlap in time agree on the overlap.

This module validates the request and drives the work (render in the main thread, encode and write in
worker threads); ``context`` (the world of a sample), ``fields`` (the physics), ``faults`` (planning and
planting the faults), ``writer`` (the NetCDF files) and ``manifest`` (what was written) do the rest.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time as _time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np

from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.synthetic.context import Context
from forecast.synthetic.faults import FAULTS, plan_faults, render
from forecast.synthetic.manifest import build_manifest
from forecast.synthetic.writer import GENERATOR, Writer, file_name
from forecast.timeutil import iso as _iso
from forecast.timeutil import utc

logger = logging.getLogger(__name__)

__all__ = ["FAULTS", "GENERATOR", "generate_sample"]


def _validate(catalog: Catalog, start: datetime, hours: float, faults: Sequence[str], seed: int,
              complevel: int) -> tuple[int, float, set[str]]:
    if isinstance(faults, str):
        faults = [f for f in faults.split(",") if f.strip()]
    names = set()
    valid = ", ".join((*FAULTS, "all"))
    for f in faults:
        f = str(f).strip()
        if f == "all":
            names.update(FAULTS)
        elif f in FAULTS:
            names.add(f)
        else:
            raise BadInputError(f"unknown fault {f!r}; valid faults are: {valid}")
    if not isinstance(hours, (int, float)) or not math.isfinite(hours) or hours <= 0:
        raise BadInputError(f"hours must be a positive number of hours, got {hours!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadInputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= int(complevel) <= 9:
        raise BadInputError(f"complevel must be between 0 (no compression) and 9, got {complevel!r}")
    if not isinstance(start, datetime):
        raise BadInputError(f"start must be a datetime, got {start!r}")
    start = utc(start)
    ts = start.timestamp()
    ax = catalog.time
    slot = ax.slot_of(ts)
    if slot is None or int(ax.label(slot)) != ts:
        near = max(0, math.ceil((ts - ax.start_s) / ax.step_seconds)) if ax.step_seconds else None
        hint = f" (e.g. {_iso(int(ax.label(near)))})" if near is not None else ""
        raise BadInputError(
            f"start {start:%Y-%m-%dT%H:%M:%SZ} is not on the time axis of {catalog.id!r}, which has a slot every "
            f"{ax.step} from {ax.start:%Y-%m-%dT%H:%M:%SZ}; choose a slot time{hint}"
        )
    return slot, ts + hours * 3600.0, names


def generate_sample(catalog: Catalog, *, start: datetime, hours: float, out: Path,
                    faults: Sequence[str] = (), seed: int = 0, complevel: int = 4, motion: str = "steady",
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Write a synthetic observation feed of ``catalog`` for [start, start + hours) into ``out``.

    One CF-1.8 NetCDF4 file per slot of the catalog's time axis, named ``{dataset}_{YYYYmmddTHHMMSS}Z.nc``,
    with the requested ``faults`` (names from ``FAULTS`` or ``"all"``) planted and recorded in the returned
    manifest, which is also written to ``out/manifest.json``. The data depend only on (catalog, seed, motion,
    time); ``motion`` is the kind of steering flow (``context.MOTIONS``: ``steady``, the default, or
    ``curving``, faster and turning).

    Layout: on-time files in ``out/``; ``late/`` (to ingest later), ``duplicates/`` (byte-identical copies),
    ``revised/`` (corrected files, same names). Files listed by an earlier manifest in ``out`` are removed first.
    Manifest keys: dataset, catalog_hash, generator, seed, motion, start, end, step, variables, time_encoding, files,
    batches {main, late, duplicates, revised}, missing, slots [{time, status, files}], faults [{kind, variable,
    file_variable, units, times, cells | bbox, values, file | files, ...}].

    Raises:
        BadInputError: start not on the time axis, hours <= 0, an unknown fault or motion, or a sample too short /
            a grid too small to plant the requested faults apart from each other.
    """
    t_start = _time.perf_counter()
    first, end_s, names = _validate(catalog, start, hours, faults, seed, complevel)
    out = Path(out)
    labels: list[int] = []
    i = first
    while True:
        t = int(catalog.time.label(i))
        if t >= end_s:
            break
        labels.append(t)
        i += 1
    ctx = Context(catalog, int(seed), motion)
    plan = plan_faults(ctx, catalog, labels, names, int(seed))
    _remove_previous(out)
    for sub in ("", "late", "revised", "duplicates"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    order = list(range(len(labels)))
    total = sum({"missing": 0, "revised": 2, "duplicate": 2}.get(plan.status[s], 1) for s in order)
    done = 0

    def tick(n_files: int) -> None:
        nonlocal done
        for _ in range(n_files):
            done += 1
            if progress is not None:
                progress(done, total)

    dup_slot = next((s for s in order if plan.status[s] == "duplicate"), None)
    writer = Writer(ctx, int(complevel))
    # The main thread renders the next slot while worker threads compress and write the previous ones.
    threads = _threads()
    with ThreadPoolExecutor(threads, thread_name_prefix="sample-writer") as pool:
        pending: deque = deque()
        try:
            for s in order:
                if plan.status[s] == "missing":
                    continue
                pending.append(pool.submit(writer.emit, plan, out, s, render(ctx, plan, s)))
                while pending and (pending[0].done() or len(pending) > 2 * threads):
                    tick(pending.popleft().result())
            while pending:
                tick(pending.popleft().result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    if dup_slot is not None:
        name = file_name(catalog, labels[dup_slot])
        (out / "duplicates" / name).write_bytes((out / name).read_bytes())
        tick(1)

    manifest = build_manifest(ctx, catalog, plan, start=labels[0] if labels else int(utc(start).timestamp()),
                         end_s=end_s, seed=int(seed), out=out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    logger.info("wrote %d files of %s (%d slots, %d x %d) into %s in %.1f s", len(manifest["files"]), catalog.id,
                len(labels), ctx.ny, ctx.nx, out, _time.perf_counter() - t_start)
    return manifest


def _remove_previous(out: Path) -> None:
    """Delete the files an earlier sample listed in ``out/manifest.json``, so no stale slot is ingested."""
    try:
        old = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return
    root = out.resolve()
    removed = 0
    for rel in old.get("files", []) if isinstance(old, dict) else []:
        p = (out / str(rel)).resolve()
        if p.is_relative_to(root) and p.suffix == ".nc" and p.is_file():
            p.unlink()
            removed += 1
    if removed:
        logger.info("removed %d files of the previous sample in %s", removed, out)


def _threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))
