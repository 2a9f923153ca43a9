"""Strata: the parts of the grid (regions) and the classes of situations (regimes) that are verified on
their own, so that a mean over the whole grid cannot hide a valley or a city served badly.

Regions come from the catalog's ``monitoring.regions`` (a lon/lat box, a lon/lat polygon, an index box or
an elevation band) and become boolean masks on the grid. Regimes are decided per init from what is known at
the init (its UTC hour, an intensity statistic of the field at the init time), never from the outcome:
stratifying by the observed outcome would bias the scores. Without configured regimes precipitation gets
dry / light / convective and every variable the four six-hour blocks of the day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from forecast.catalog.monitoring import RegimeSpec, RegionSpec
from forecast.errors import BadInputError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_HOUR_REGIMES", "PRECIP_REGIMES", "WET", "Region", "default_regimes", "init_statistics",
           "is_precipitation", "region_masks", "regimes_of"]

#: rain rate (mm/h) from which a cell counts as wet (the nowcasting methods' threshold)
WET = 0.1

PRECIP_REGIMES = (
    RegimeSpec(name="dry", intensity=(None, 0.02), statistic="wet_fraction"),
    RegimeSpec(name="light", intensity=(None, 10.0), statistic="p99"),
    RegimeSpec(name="convective", intensity=(10.0, None), statistic="p99"),
)
DEFAULT_HOUR_REGIMES = tuple(RegimeSpec(name=f"h{a:02d}_{b:02d}", hours=(a, b)) for a, b in
                             ((0, 6), (6, 12), (12, 18), (18, 24)))


def is_precipitation(catalog, variable: str) -> bool:
    var = catalog.variables[variable]
    name = f"{var.standard_name} {var.long_name or ''} {variable}".lower()
    return any(w in name for w in ("precipitation", "rainfall", "rain_rate", "snowfall"))


def default_regimes(catalog, variable: str) -> tuple[RegimeSpec, ...]:
    return (PRECIP_REGIMES if is_precipitation(catalog, variable) else ()) + DEFAULT_HOUR_REGIMES


@dataclass(frozen=True)
class Region:
    """A region's mask on the grid and the bounding rows / columns that hold it (work is cropped to them)."""

    name: str
    title: str
    kind: str
    mask: np.ndarray  # (y, x) bool
    rows: slice
    cols: slice
    #: flat indices of the cells on either side of the region's boundary: (inside, outside) pairs of
    #: neighbours (a fault confined to the region shows as a jump across it)
    edge_inside: np.ndarray
    edge_outside: np.ndarray

    @property
    def cells(self) -> int:
        return int(self.mask.sum())

    def crop(self, a: np.ndarray) -> np.ndarray:
        return a[..., self.rows, self.cols]

    @property
    def cropped_mask(self) -> np.ndarray:
        return self.mask[self.rows, self.cols]


def _mask(catalog, spec: RegionSpec, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    ny, nx = catalog.grid.shape
    if spec.cells is not None:
        m = np.zeros((ny, nx), bool)
        m[spec.cells.iy[0]:spec.cells.iy[1], spec.cells.ix[0]:spec.cells.ix[1]] = True
        return m
    if spec.bbox is not None:
        lo0, la0, lo1, la1 = spec.bbox
        return (lon >= lo0) & (lon <= lo1) & (lat >= la0) & (lat <= la1)
    if spec.polygon is not None:
        import shapely

        poly = shapely.Polygon(spec.polygon)
        if not poly.is_valid:
            raise BadInputError(f"region {spec.name!r}: the polygon is not valid (it crosses itself)")
        return np.asarray(shapely.contains_xy(poly, lon, lat))
    elev = catalog.grid.elevation_field()
    if elev is None:
        raise BadInputError(f"region {spec.name!r} is an elevation band but the grid of {catalog.id} has no "
                            "elevation")
    lo, hi = spec.elevation
    m = np.ones((ny, nx), bool)
    if lo is not None:
        m &= elev >= lo
    if hi is not None:
        m &= elev < hi
    return m


def region_masks(catalog, specs: list[RegionSpec]) -> list[Region]:
    """The regions' masks on the catalog's grid; a region that covers no cell of the grid is left out (and
    logged: a catalog shrunk to a part of its grid keeps the whole grid's regions).

    Raises:
        BadInputError: an invalid polygon, or an elevation band on a grid without elevation.
    """
    if not specs:
        return []
    lat, lon = catalog.grid.latlon()
    out = []
    for spec in specs:
        m = _mask(catalog, spec, np.asarray(lat), np.asarray(lon))
        if not m.any():
            # a catalog shrunk to a part of its grid (tests, a sub-domain) keeps the regions of the whole
            log.warning("region %r covers no cell of the grid of %s: not verified on its own", spec.name,
                        catalog.id)
            continue
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        kind = next(k for k in ("bbox", "polygon", "cells", "elevation") if getattr(spec, k) is not None)
        inside, outside = _edges(m)
        out.append(Region(name=spec.name, title=spec.title or spec.name, kind=kind, mask=m,
                          rows=slice(int(rows[0]), int(rows[-1]) + 1), cols=slice(int(cols[0]), int(cols[-1]) + 1),
                          edge_inside=inside, edge_outside=outside))
    return out


def _edges(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside) flat indices of horizontally and vertically neighbouring cells across the boundary."""
    ny, nx = m.shape
    idx = np.arange(ny * nx).reshape(ny, nx)
    ins, outs = [], []
    for a, b, ia, ib in ((m[:, :-1], m[:, 1:], idx[:, :-1], idx[:, 1:]), (m[:-1, :], m[1:, :], idx[:-1, :], idx[1:, :])):
        cross = a != b
        ins.append(np.where(a, ia, ib)[cross])
        outs.append(np.where(a, ib, ia)[cross])
    return np.concatenate(ins), np.concatenate(outs)


def init_statistics(field: np.ndarray, usable: np.ndarray) -> dict[str, float]:
    """Statistics of the field at the init time over its usable cells (what regimes are decided on)."""
    v = np.asarray(field, dtype=np.float64)[np.asarray(usable, bool) & np.isfinite(field)]
    if v.size == 0:
        return {}
    q = np.quantile(v, [0.90, 0.95, 0.99])
    return {"wet_fraction": float(np.mean(v >= WET)), "p90": float(q[0]), "p95": float(q[1]), "p99": float(q[2]),
            "mean": float(v.mean()), "max": float(v.max())}


def regimes_of(init: datetime, stats: dict[str, float], specs) -> list[str]:
    """The regimes an init belongs to (several may apply)."""
    out = []
    hour = init.hour + init.minute / 60
    for r in specs:
        ok = True
        if r.hours is not None:
            a, b = r.hours
            ok &= (a <= hour < b) if a <= b else (hour >= a or hour < b)
        if r.intensity is not None:
            x = stats.get(r.statistic)
            lo, hi = r.intensity
            ok &= x is not None and (lo is None or x >= lo) and (hi is None or x < hi)
        if ok:
            out.append(r.name)
    return out
