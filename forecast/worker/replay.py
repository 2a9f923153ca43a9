"""`forecast replay`: a recorded sample fed into a dataset's inbox as an operational feed delivers it, N
times faster than real time, so that the whole service can be exercised live.

The schedule follows the sample's manifest: each slot's file lands within its ``expected_latency`` (between
half of it and all of it, seeded); a *late* file lands ``LATE_AFTER`` after its slot (after the worker stopped
waiting for it); a *duplicate* is dropped again a minute after the original; a *revised* file replaces
its slot's data ``REVISED_AFTER`` later; the *corrupt* file lands like any other; *missing* slots never
come. Files are written under a temporary name and renamed into place, as a well-behaved feed does. The
replay starts the dataset's replay clock (`forecast.clock`), which keeps running after the last file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np

from forecast.errors import BadInputError
from forecast.timeutil import iso, parse_time

log = logging.getLogger(__name__)

__all__ = ["Drop", "replay", "schedule", "with_outage"]

LATE_AFTER = timedelta(minutes=25)
DUPLICATE_AFTER = timedelta(minutes=1)
REVISED_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Drop:
    """One file of the feed: when it lands (feed time), from where, under which name, and why."""

    at: datetime
    source: Path
    name: str
    kind: str  # on_time, late, duplicate, revised, corrupt; held (delivered when an outage ended)


def schedule(src: Path, catalog, *, seed: int = 0) -> list[Drop]:
    """The feed order of a sample folder (``manifest.json`` beside its files), earliest first."""
    src = Path(src)
    try:
        manifest = json.loads((src / "manifest.json").read_text())
    except OSError:
        raise BadInputError(f"{src} holds no manifest.json: replay needs a sample written by `forecast sample`",
                            param="src_dir") from None
    except ValueError:
        raise BadInputError(f"{src / 'manifest.json'} is not JSON") from None
    if manifest.get("dataset") != catalog.id:
        raise BadInputError(f"{src} is a sample of {manifest.get('dataset')!r}, not of {catalog.id!r}", param="src_dir")
    latency = timedelta(seconds=catalog.feed.seconds("expected_latency"))
    corrupt = {f["file"] for f in manifest.get("faults", []) if f["kind"] == "corrupt"}
    rng = np.random.default_rng(seed)
    drops: list[Drop] = []
    for slot in manifest["slots"]:
        t = parse_time(slot["time"])
        arrives = t + latency * float(0.5 + 0.5 * rng.random())
        arrives = arrives.replace(microsecond=0)
        for f in slot["files"]:
            name = Path(f).name
            if f.startswith("late/"):
                drops.append(Drop(t + LATE_AFTER, src / f, name, "late"))
            elif f.startswith("duplicates/"):
                drops.append(Drop(arrives + DUPLICATE_AFTER, src / f, name, "duplicate"))
            elif f.startswith("revised/"):
                drops.append(Drop(t + REVISED_AFTER, src / f, name, "revised"))
            else:
                drops.append(Drop(arrives, src / f, name, "corrupt" if f in corrupt else "on_time"))
    missing = [s for s in drops if not s.source.is_file()]
    if missing:
        raise BadInputError(f"{len(missing)} file(s) of the manifest are not in {src} (first: {missing[0].source})",
                            param="src_dir")
    return sorted(drops, key=lambda d: (d.at, d.name, d.kind))


def with_outage(drops: list[Drop], start: datetime, end: datetime) -> list[Drop]:
    """The feed with an outage: every file due to land in ``[start, end)`` (feed time) is held back and
    lands at ``end`` instead, as a feed does that catches up after a link failure (kind ``held``)."""
    if not end > start:
        raise BadInputError(f"the outage must end after it starts, got {iso(start)}/{iso(end)}", param="outage")
    moved = [replace(d, at=end, kind="held") if start <= d.at < end else d for d in drops]
    return sorted(moved, key=lambda d: (d.at, d.name, d.kind))


def _drop(d: Drop, inbox: Path) -> None:
    """Write a file into the inbox the way a careful feed does: a hidden temporary name, then a rename."""
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox / f".{d.name}.part"
    shutil.copyfile(d.source, tmp)
    os.replace(tmp, inbox / d.name)


def replay(settings, dataset: str, src: Path, *, speed: float, seed: int = 0, start: datetime | None = None,
           stop: threading.Event | None = None, progress: Callable[[int, int, Drop], None] | None = None,
           clock: bool = True, outage: tuple[datetime, datetime] | None = None) -> dict[str, Any]:
    """Drop the sample's files into the dataset's inbox in feed order at ``speed`` times real time.

    ``start``: the feed time the replay begins at (default: the first file's time); the dataset's replay
    clock starts there now. ``outage``: (start, end) feed times during which nothing lands (the files
    held back land at its end; see `with_outage`). Returns counts per kind, the feed time span and the
    wall seconds taken.
    """
    from forecast.catalog import get_catalog
    from forecast.clock import ReplayClock, write_replay_clock
    from forecast.worker.inbox import feed_folders

    if not speed > 0:
        raise BadInputError(f"speed must be positive, got {speed}", param="speed")
    catalog = get_catalog(settings.catalogs, dataset)
    drops = schedule(Path(src), catalog, seed=seed)
    if outage is not None:
        drops = with_outage(drops, *outage)
    if not drops:
        raise BadInputError(f"the sample in {src} holds no files")
    inbox, _, _ = feed_folders(settings, catalog)
    sim0 = start or drops[0].at - timedelta(seconds=1)
    wall0 = time.time()
    if clock:
        write_replay_clock(settings.home, dataset, sim0=sim0, speed=speed, wall0=wall0)
    clk = ReplayClock(wall0=wall0, sim0=sim0.timestamp(), speed=speed)
    counts: dict[str, int] = {}
    done = 0
    for d in drops:
        if d.at < sim0:
            continue
        wait = (d.at - clk.now()).total_seconds() / speed
        if wait > 0:
            if stop is not None:
                if stop.wait(wait):
                    break
            else:
                time.sleep(wait)
        _drop(d, inbox)
        counts[d.kind] = counts.get(d.kind, 0) + 1
        done += 1
        if progress:
            progress(done, len(drops), d)
    return {"dataset": dataset, "inbox": str(inbox), "speed": speed, "files": done, "kinds": counts,
            "first": iso(drops[0].at), "last": iso(drops[-1].at), "clock_started_at": iso(sim0),
            "wall_seconds": round(time.time() - wall0, 3), "stopped": bool(stop is not None and stop.is_set()),
            "outage": [iso(outage[0]), iso(outage[1])] if outage else None}
