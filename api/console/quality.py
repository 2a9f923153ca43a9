"""The data-quality strips of the console: per dataset and variable, the last 24 hours slot by slot as on
time, late (available more than the feed's expected latency after the slot), missing or revised, with the
FAIL / SUSPECT shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from api.console import render
from forecast.timeutil import iso

@dataclass
class QualityStrip:
    variable: str
    states: list[str]  # per slot: on_time, late, missing, revised, future
    details: list[str]  # per slot, a tooltip sentence
    counts: dict[str, int]
    shares: dict[str, float | None]  # FAIL / SUSPECT / MISSING share of the cells of the filled slots


@dataclass
class DatasetQuality:
    dataset: str
    title: str
    step_s: int
    expected_latency_s: int
    latency_source: str
    start: int  # epoch of the first slot shown
    end: int  # epoch of the last slot shown
    slot_times: list[int]
    strips: list[QualityStrip] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)  # five times along the strip, for its axis
    last_slot: int | None = None  # epoch of the newest filled slot
    stale: bool = False  # no data in the 24 hours before now: the window ends at the last data instead
    note: str | None = None


def expected_latency(cat) -> tuple[int, str]:
    """The feed's expected latency in seconds (the catalog's ``feed.expected_latency``) and where it came from."""
    return int(cat.feed.seconds("expected_latency")), "catalog feed.expected_latency"


def strip(ds, v: str, times: list[int], step: int, latency_s: int, now_s: int, first: int | None) -> QualityStrip:
    n = len(times)
    rev = np.full(n, -1, int)
    av = np.full(n, np.iinfo("int64").min, "int64")
    shares: dict[str, float | None] = {"FAIL": None, "SUSPECT": None, "MISSING": None}
    if ds is not None and v in ds:
        rev = ds[f"{v}_revision"].values.astype(int)
        a = ds[f"{v}_available_at"].values
        av = np.where(np.isnat(a), np.iinfo("int64").min, a.astype("datetime64[s]").astype("int64"))
        if f"{v}_qc" in ds:
            filled = np.flatnonzero(rev >= 0)
            if len(filled):
                counts = np.zeros(3, "int64")
                total = 0
                for k in range(0, len(filled), 24):  # batches of slots: memory stays bounded on large grids
                    qc = ds[f"{v}_qc"].isel(time=filled[k:k + 24]).compute(scheduler="synchronous").values
                    counts += [(qc == 4).sum(), (qc == 3).sum(), (qc == 9).sum()]
                    total += qc.size
                shares = {"FAIL": counts[0] / total, "SUSPECT": counts[1] / total, "MISSING": counts[2] / total}
    states, details = [], []
    for k, t in enumerate(times):
        when = iso(t)
        if rev[k] < 0:
            if first is None or t < first:
                states.append("before")
                details.append(f"{when}: before the feed's first data")
            elif t + latency_s > now_s:
                states.append("future")
                details.append(f"{when}: not due yet")
            else:
                states.append("missing")
                details.append(f"{when}: missing")
            continue
        delay = int(av[k]) - t
        if rev[k] > 0:
            states.append("revised")
            details.append(f"{when}: revised (revision {rev[k]}, available {iso(int(av[k]))})")
        elif delay > latency_s:
            states.append("late")
            details.append(f"{when}: late by {duration(delay - latency_s)} (arrived {duration(delay)} after the slot)")
        else:
            states.append("on_time")
            details.append(f"{when}: on time ({duration(max(delay, 0))} after the slot)")
    counts = {s: states.count(s) for s in render.SLOT_STATES}
    return QualityStrip(variable=v, states=states, details=details, counts=counts, shares=shares)


def duration(s: int) -> str:
    s = int(s)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s / 3600:.1f} h"


