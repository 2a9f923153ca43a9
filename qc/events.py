"""Grouping SUSPECT cells into review events: connected regions per slot, joined across
consecutive slots, each summarised (extent, peak, record exceedance, tests, hazard, stable key).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from qc.errors import QCError
from qc.flags import QCFlag, test_names

__all__ = ["Event", "find_events", "event_key", "hazard_score", "cells_to_bytes", "cells_from_bytes"]

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Event:
    """One group of SUSPECT cells that an operator reviews as a whole.

    ``cells`` is an ``(n, 3)`` int64 array of ``(slot epoch seconds UTC, iy, ix)`` rows, sorted
    lexicographically. ``bbox`` is ``(iy0, iy1, ix0, ix1)``, inclusive grid indices;
    ``latlon_box`` is ``(lat_min, lat_max, lon_min, lon_max)`` and ``xy_box`` is
    ``(y_min, y_max, x_min, x_max)`` in the grid's coordinates, each ``None`` when the
    coordinates were not given (longitudes are not unwrapped across the antimeridian).

    The *peak* is the cell that goes furthest beyond its record, relative to it (the cell of
    the extreme value when no record applies). ``record`` is the record at the peak,
    ``side`` which record it is (``"max"`` or ``"min"``), ``excess`` how far beyond it the
    peak value lies (positive = beyond, in the variable's units), ``relative_excess``
    ``excess / scale`` (``scale`` = ``|record|`` unless given). These four are ``None`` when no
    record applies to any cell of the event. ``exceeds_record`` is ``excess > 0``.
    """

    dataset: str
    variable: str
    key: str
    t_first: datetime
    t_last: datetime
    n_slots: int
    n_cells: int
    bbox: tuple[int, int, int, int]
    latlon_box: tuple[float, float, float, float] | None
    xy_box: tuple[float, float, float, float] | None
    max_value: float
    min_value: float
    peak_value: float
    peak: tuple[datetime, int, int]
    side: str | None
    record: float | None
    excess: float | None
    relative_excess: float | None
    exceeds_record: bool
    tests: int
    test_names: tuple[str, ...]
    hazard: float
    cells: np.ndarray = field(repr=False, compare=False)


def hazard_score(relative_excess: float | None, n_cells: int) -> float:
    """Ordering score of an event: ``max(relative_excess, 0) * ln(1 + n_cells)``.

    Dimensionless. Zero for events that do not go beyond the record (no record, or SUSPECT for
    another reason). Linear in how far the peak lies beyond the record relative to the record
    (a value at twice the record max scores 1 per unit of log-size), logarithmic in the number
    of cell-slots, so that a widespread mild exceedance does not bury a sharp one while a
    thousand-cell storm still outranks a single pixel at the same exceedance (ln 1001 / ln 2 ~ 10).
    """
    if relative_excess is None or not math.isfinite(relative_excess) or relative_excess <= 0:
        return 0.0
    return float(relative_excess * math.log1p(n_cells))


def event_key(dataset: str, variable: str, cells: np.ndarray) -> str:
    """sha256 hex of ``dataset``, ``variable`` and the lexicographically sorted cell triplets.

    Bytes hashed: ``dataset + "\\0" + variable + "\\0"`` (UTF-8), then the ``(n, 3)`` triplets
    as little-endian int64, row by row. The same cells always give the same key, in any order.
    """
    c = _sorted_cells(cells)
    h = hashlib.sha256(f"{dataset}\0{variable}\0".encode())
    h.update(c.astype("<i8", copy=False).tobytes())
    return h.hexdigest()


def cells_to_bytes(cells: np.ndarray) -> bytes:
    """``(n, 3)`` int64 triplets as little-endian bytes (the compact form stored in the queue)."""
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
    return np.ascontiguousarray(c, dtype="<i8").tobytes()


def cells_from_bytes(blob: bytes) -> np.ndarray:
    """Inverse of ``cells_to_bytes``: an ``(n, 3)`` native int64 array."""
    return np.frombuffer(blob, dtype="<i8").reshape(-1, 3).astype(np.int64)


def _sorted_cells(cells: np.ndarray) -> np.ndarray:
    c = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
    order = np.lexsort((c[:, 2], c[:, 1], c[:, 0]))
    return c[order]


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc)


def _epochs(times: Any, nt: int) -> np.ndarray:
    t = np.asarray(times)
    if t.ndim != 1 or t.shape[0] != nt:
        raise QCError(f"times must hold one datetime64 per slot ({nt}), got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.datetime64):
        try:
            t = t.astype("datetime64[ns]")
        except (TypeError, ValueError) as e:
            raise QCError(f"times must be datetime64 values, got dtype {t.dtype}") from e
    if np.isnat(t).any():
        raise QCError(f"times must not contain NaT (slots {np.flatnonzero(np.isnat(t))[:5].tolist()})")
    # naive datetime64 is read as UTC
    return t.astype("datetime64[s]").astype(np.int64)


def _record_at(name: str, record: Any, shape: tuple[int, ...], it, iy, ix) -> np.ndarray | None:
    """The record for each suspect cell: scalar, per slot ``(time,)``, per cell ``(y, x)`` or
    ``(time, y, x)``; NaN where there is none."""
    if record is None:
        return None
    r = np.asarray(record, dtype=np.float64)
    nt, ny, nx = shape
    if r.ndim == 0:
        return np.full(it.shape, float(r))
    if r.shape == (nt,):
        return r[it]
    if r.shape == (ny, nx):
        return r[iy, ix]
    if r.shape == (nt, ny, nx):
        return r[it, iy, ix]
    raise QCError(
        f"{name} must be a scalar or shaped (time,) = ({nt},), (y, x) = ({ny}, {nx}) or "
        f"(time, y, x) = {shape}, got shape {r.shape}"
    )


def _coord_at(name: str, coord: Any, ny: int, nx: int, dim: str, iy, ix) -> np.ndarray:
    c = np.asarray(coord, dtype=np.float64)
    if c.shape == (ny, nx):
        return c[iy, ix]
    n = ny if dim == "y" else nx
    if c.shape == (n,):
        return c[iy] if dim == "y" else c[ix]
    raise QCError(f"{name} must be shaped ({n},) or ({ny}, {nx}), got shape {c.shape}")


def _components(
    mask_slots, shape: tuple[int, int], link: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per slot 8-connected labelling, then regions of consecutive slots joined when any of
    their cells lie within ``link`` cells (Chebyshev distance; 1 = overlap or touch).

    Returns ``(it, iy, ix, component)`` for every suspect cell.
    """
    ny, nx = shape
    its, iys, ixs, labs = [], [], [], []
    edges_a, edges_b = [], []
    offset = 0
    prev_t, prev_lab = None, None
    offsets = [(dy, dx) for dy in range(-link, link + 1) for dx in range(-link, link + 1)]
    for t, mask in mask_slots:
        lab, n = ndimage.label(mask, structure=_EIGHT)
        y, x = np.nonzero(lab)
        gl = lab[y, x].astype(np.int64) + offset
        if prev_lab is not None and prev_t == t - 1:
            for dy, dx in offsets:
                yy, xx = y + dy, x + dx
                ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
                pl = prev_lab[yy[ok], xx[ok]]
                hit = pl > 0
                if hit.any():
                    edges_a.append(gl[ok][hit])
                    edges_b.append(pl[hit])
        its.append(np.full(y.shape, t, dtype=np.int64))
        iys.append(y.astype(np.int64))
        ixs.append(x.astype(np.int64))
        labs.append(gl)
        # previous-slot labels in global numbering (0 stays background)
        prev_lab = np.where(lab > 0, lab.astype(np.int64) + offset, 0)
        prev_t = t
        offset += n
    if not labs:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, empty
    nlab = offset + 1
    if edges_a:
        a = np.concatenate(edges_a)
        b = np.concatenate(edges_b)
    else:
        a = b = np.empty(0, dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(nlab, nlab))
    _, comp = csgraph.connected_components(graph, directed=False)
    gl = np.concatenate(labs)
    return np.concatenate(its), np.concatenate(iys), np.concatenate(ixs), comp[gl].astype(np.int64)


def _box(a, b, idx) -> tuple[float, float, float, float] | None:
    if a is None or b is None:
        return None
    return (
        float(np.nanmin(a[idx])),
        float(np.nanmax(a[idx])),
        float(np.nanmin(b[idx])),
        float(np.nanmax(b[idx])),
    )


def find_events(
    values: Any,
    qc: Any,
    tests: Any,
    *,
    times: Any,
    variable: str,
    dataset: str,
    record: Any,
    record_min: Any = None,
    lat: Any = None,
    lon: Any = None,
    y: Any = None,
    x: Any = None,
    link: int = 1,
    scale: float | None = None,
) -> list[Event]:
    """Group the SUSPECT cells of one variable into review events, most hazardous first.

    Grouping: within a slot, SUSPECT cells that touch (8-connectivity) form a region; regions of
    consecutive slots (adjacent along the time axis of the arrays) whose cells overlap or touch
    (lie within ``link`` cells of each other) join one event, transitively. So a storm moving
    across five slots is one event, two distant regions are two, an isolated pixel is its own.

    Exceedance per cell: ``value - record`` (max side) and ``record_min - value`` (min side),
    whichever is larger where both records exist; relative to ``scale`` (default ``|record|``;
    pass a physical scale for variables whose records sit near zero, e.g. temperatures in degC).
    The event reports its peak (largest relative exceedance) and ``hazard_score`` orders events.

    Args:
        values: ``(time, y, x)`` float values (numpy, or anything ``np.asarray`` reads).
        qc: ``(time, y, x)`` uint8 aggregate flags; cells equal to SUSPECT (3) are grouped.
        tests: ``(time, y, x)`` uint32 test bitmask; each event carries the union of its bits.
        times: one datetime64 per slot (naive = UTC).
        variable, dataset: names carried into each event and its key.
        record: the record maximum the suspect values exceed: scalar, per slot ``(time,)``,
            per cell ``(y, x)`` or ``(time, y, x)``; NaN where there is none; may be ``None``.
        record_min: the record minimum, same shapes (cold / low extremes); optional.
        lat, lon, y, x: optional coordinates, ``(y,)`` / ``(x,)`` or ``(y, x)``, for the boxes.
        link: how many cells apart regions of consecutive slots may lie and still join (>= 0;
            0 = must overlap, 1 = overlap or touch).
        scale: denominator of the relative excess, instead of ``|record|``.

    Returns:
        Events sorted by hazard (descending), then size (descending), first time, key.

    Raises:
        QCError: when shapes disagree, times are not datetimes, ``link`` is negative or
            ``scale`` is not positive.
    """
    qc = np.asarray(qc)
    if qc.ndim != 3:
        raise QCError(f"qc must be shaped (time, y, x), got {qc.ndim} dimension(s) {qc.shape}")
    shape = qc.shape
    values = np.asarray(values)
    tests = np.asarray(tests)
    for name, arr in (("values", values), ("tests", tests)):
        if arr.shape != shape:
            raise QCError(f"{name} must be shaped like qc {shape}, got {arr.shape}")
    if link < 0:
        raise QCError(f"link must be >= 0 cells, got {link}")
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise QCError(f"scale must be a positive finite number, got {scale}")
    nt, ny, nx = shape
    epochs = _epochs(times, nt)
    # check the optional inputs now, also when there turns out to be nothing to group
    none = np.zeros(0, dtype=np.int64)
    for name, rec in (("record", record), ("record_min", record_min)):
        _record_at(name, rec, shape, none, none, none)
    for name, coord, dim in (("lat", lat, "y"), ("lon", lon, "x"), ("y", y, "y"), ("x", x, "x")):
        if coord is not None:
            _coord_at(name, coord, ny, nx, dim, none, none)

    suspect = np.uint8(QCFlag.SUSPECT)
    slots = np.flatnonzero((qc == suspect).reshape(nt, -1).any(axis=1))
    it, iy, ix, comp = _components(((int(t), qc[t] == suspect) for t in slots), (ny, nx), link)
    if it.size == 0:
        return []

    v = values[it, iy, ix].astype(np.float64)
    bits = tests[it, iy, ix].astype(np.int64)
    rmax = _record_at("record", record, shape, it, iy, ix)
    rmin = _record_at("record_min", record_min, shape, it, iy, ix)
    ex_max = v - rmax if rmax is not None else np.full(v.shape, np.nan)
    ex_min = rmin - v if rmin is not None else np.full(v.shape, np.nan)
    use_min = np.nan_to_num(ex_min, nan=-np.inf) > np.nan_to_num(ex_max, nan=-np.inf)
    excess = np.where(use_min, ex_min, ex_max)
    rec = np.where(use_min, rmin if rmin is not None else np.nan, rmax if rmax is not None else np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = np.full(v.shape, float(scale)) if scale is not None else np.abs(rec)
        rel = np.where(denom > 0, excess / denom, np.nan)
    ep = epochs[it]

    lat_c = _coord_at("lat", lat, ny, nx, "y", iy, ix) if lat is not None else None
    lon_c = _coord_at("lon", lon, ny, nx, "x", iy, ix) if lon is not None else None
    y_c = _coord_at("y", y, ny, nx, "y", iy, ix) if y is not None else None
    x_c = _coord_at("x", x, ny, nx, "x", iy, ix) if x is not None else None

    # one pass of sorting: by component, then by the cell triplet (the key's order)
    order = np.lexsort((ix, iy, ep, comp))
    comp_s = comp[order]
    starts = np.flatnonzero(np.r_[True, comp_s[1:] != comp_s[:-1]])
    ends = np.r_[starts[1:], comp_s.size]

    events = []
    for s, e in zip(starts, ends, strict=True):
        idx = order[s:e]
        cells = np.stack([ep[idx], iy[idx], ix[idx]], axis=1)
        vv = v[idx]
        rr = rel[idx]
        if np.isfinite(rr).any():
            p = int(np.nanargmax(rr))
            side = "min" if use_min[idx][p] else "max"
            rec_p, ex_p, rel_p = float(rec[idx][p]), float(excess[idx][p]), float(rr[p])
        elif np.isfinite(excess[idx]).any():  # a record of exactly 0 without a scale
            p = int(np.nanargmax(excess[idx]))
            side = "min" if use_min[idx][p] else "max"
            rec_p, ex_p, rel_p = float(rec[idx][p]), float(excess[idx][p]), None
        else:
            p = int(np.nanargmax(np.abs(vv))) if np.isfinite(vv).any() else 0
            side, rec_p, ex_p, rel_p = None, None, None, None
        ep_s = np.unique(cells[:, 0])
        union = int(np.bitwise_or.reduce(bits[idx]))
        n = int(idx.size)

        events.append(
            Event(
                dataset=dataset,
                variable=variable,
                key=event_key(dataset, variable, cells),
                t_first=_utc(ep_s[0]),
                t_last=_utc(ep_s[-1]),
                n_slots=int(ep_s.size),
                n_cells=n,
                bbox=(
                    int(cells[:, 1].min()),
                    int(cells[:, 1].max()),
                    int(cells[:, 2].min()),
                    int(cells[:, 2].max()),
                ),
                latlon_box=_box(lat_c, lon_c, idx),
                xy_box=_box(y_c, x_c, idx),
                max_value=float(np.nanmax(vv)) if np.isfinite(vv).any() else math.nan,
                min_value=float(np.nanmin(vv)) if np.isfinite(vv).any() else math.nan,
                peak_value=float(vv[p]),
                peak=(_utc(cells[p, 0]), int(cells[p, 1]), int(cells[p, 2])),
                side=side,
                record=rec_p,
                excess=ex_p,
                relative_excess=rel_p,
                exceeds_record=ex_p is not None and ex_p > 0,
                tests=union,
                test_names=test_names(union),
                hazard=hazard_score(rel_p, n),
                cells=cells,
            )
        )
    events.sort(key=lambda ev: (-ev.hazard, -ev.n_cells, ev.t_first, ev.key))
    return events
