"""Decoding and validating one input file against its catalog (runs in worker processes): the time
coordinate on the dataset's axis, the grid within tolerance (either orientation), each variable known
and in accepted units (converted to the canonical ones), the fields as float32 (y, x). A file that
cannot be ingested raises `Rejected` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from forecast.catalog import Catalog, units_registry

from forecast.stores.layout import HASH_BYTES
from forecast.timeutil import iso

# Variables in input files that are never data (coordinates, grid mappings, static fields).
_STATIC_NAMES = {"lat", "lon", "latitude", "longitude", "elevation", "altitude", "orography", "crs"}


class Rejected(Exception):
    """A file that cannot be ingested; the message is the one-line reason."""


def _open(path: Path):
    import xarray as xr

    try:
        # no pandas indexes for the dimension coordinates: nothing here selects by label (a third of
        # the cost of opening a small file)
        return xr.open_dataset(path, cache=False, decode_timedelta=False, create_default_indexes=False)
    except Exception as e:  # noqa: BLE001 - any failure to open is the file's fault
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = re.sub(r":\s*'[^']*'$", "", msg)  # the report already names the file
        raise Rejected(f"cannot be read as NetCDF ({msg[:160]})") from None


def _time_values(ds, catalog: Catalog) -> tuple[str | None, list[int]]:
    """The time coordinate's name (None if scalar/absent dim) and its values in epoch seconds."""
    cand = [n for n, v in ds.variables.items() if n == "time" or v.attrs.get("standard_name") == "time"
            or v.attrs.get("axis") == "T"]
    if not cand:
        raise Rejected("has no time coordinate (expected a variable named 'time' or with standard_name time)")
    tv = ds[cand[0]]
    vals = np.atleast_1d(tv.values)
    if not np.issubdtype(vals.dtype, np.datetime64):
        # xarray moves units and calendar into .encoding when it decodes (or tries to)
        units = tv.encoding.get("units", tv.attrs.get("units"))
        calendar = tv.encoding.get("calendar", tv.attrs.get("calendar"))
        if calendar is not None and str(calendar).lower() not in _REAL_CALENDARS:
            raise Rejected(f"time coordinate {cand[0]!r} is on the {calendar!r} calendar, whose dates do not exist "
                           f"on the real (proleptic Gregorian) time axis of {catalog.id}; convert the file to the "
                           "standard calendar")
        raise Rejected(f"time coordinate {cand[0]!r} cannot be decoded to dates (units {units!r})")
    if np.isnat(vals).any():
        raise Rejected(f"time coordinate {cand[0]!r} holds missing values")
    secs = (vals.astype("datetime64[s]").astype("int64")).tolist()
    dim = cand[0] if cand[0] in ds.dims else (tv.dims[0] if tv.dims else None)
    return dim, secs


def _slots_for(secs: list[int], catalog: Catalog) -> list[int]:
    out = []
    for s in secs:
        i = catalog.time.slot_of(s)
        if i is None:
            where = "before the axis start " + iso(catalog.time.start) if s < catalog.time.start_s else "not on the axis"
            tol = f", tolerance {catalog.time.tolerance}" if catalog.time.placement == "instant" else ""
            raise Rejected(f"time {iso(s)} is {where} of {catalog.id} (step {catalog.time.step}{tol})")
        out.append(i)
    if len(set(out)) != len(out):
        raise Rejected("holds two times that fall into the same slot of the time axis")
    return out


def _axis(ds, axis, label: str, catalog: Catalog) -> tuple[str, bool]:
    """The file's dimension for one grid axis and whether it runs opposite to the catalog's."""
    names = axis.source_names or [label]
    for n in names:
        if n in ds.variables:
            v = ds[n]
            if v.ndim != 1:
                raise Rejected(f"coordinate {n!r} is {v.ndim}-D, expected 1-D along the {label} axis")
            vals = np.asarray(v.values, dtype="float64")
            if len(vals) != axis.size:
                raise Rejected(f"wrong grid: {label} ({n}) has {len(vals)} points, {catalog.id} expects {axis.size}")
            ref = axis.values()
            tol = catalog.grid.tolerance * abs(axis.step)
            err = np.max(np.abs(vals - ref))
            if err <= tol:
                return v.dims[0], False
            if np.max(np.abs(vals[::-1] - ref)) <= tol:
                return v.dims[0], True
            raise Rejected(
                f"wrong grid: {label} ({n}) differs from {catalog.id}'s by up to {err:g} {axis.units} "
                f"(tolerance {tol:g}); first value {vals[0]:g}, expected {ref[0]:g}"
            )
    raise Rejected(f"has no {label} coordinate (looked for {', '.join(names)})")


def _linear_conversion(src: str, dst: str) -> tuple[float, float]:
    """Unit conversion as ``a * x + b`` (every conversion between our units is affine); applying it
    in float32 avoids pint's float64 copies of whole grids."""
    ureg = units_registry()
    q = ureg.Quantity(np.array([0.0, 1.0]), src).to(dst).magnitude
    return float(q[1] - q[0]), float(q[0])


def _plan_file(ds, catalog: Catalog):
    """Validate a file's structure; returns (time dim, slots, ydim, xdim, flip_y, flip_x, var map)."""
    tdim, secs = _time_values(ds, catalog)
    slots = _slots_for(secs, catalog)
    ydim, flip_y = _axis(ds, catalog.grid.y, "y", catalog)
    xdim, flip_x = _axis(ds, catalog.grid.x, "x", catalog)
    by_source = {n: vid for vid in catalog.variables for n in catalog.source_names(vid)}
    coord_names = set(ds.coords)
    found: dict[str, tuple[str, float, float, tuple[str, ...]]] = {}
    for name, v in ds.data_vars.items():
        if ydim not in v.dims or xdim not in v.dims or name in coord_names:
            continue
        if name in _STATIC_NAMES or v.attrs.get("standard_name") in {"latitude", "longitude", "surface_altitude"}:
            continue
        # a single level (pressure=1, height=1, ...) is part of what the variable is, not an axis of the store
        single = tuple(d for d in v.dims if d not in (tdim, ydim, xdim) and v.sizes[d] == 1)
        dims = set(v.dims) - set(single)
        if tdim is None and len(dims) != 2 or tdim is not None and dims != {tdim, ydim, xdim}:
            if tdim is not None and dims == {ydim, xdim}:
                continue  # a static field beside time-dependent data
            extra = [f"{d}={v.sizes[d]}" for d in v.dims if d not in (tdim, ydim, xdim)]
            raise Rejected(f"variable {name!r} has dimensions {v.dims}, expected (time, {ydim}, {xdim})"
                           + (f" (besides a single level; it has {', '.join(extra)})" if extra else ""))
        if name not in by_source:
            known = ", ".join(sorted(by_source))
            raise Rejected(f"unknown variable {name!r}: {catalog.id} knows {known}")
        vid = by_source[name]
        if vid in {f[0] for f in found.values()}:
            raise Rejected(f"holds two variables for {vid!r}")
        var = catalog.variables[vid]
        units = v.attrs.get("units")
        if units is None:
            units = var.assume_units.get(name)
            if units is None:
                raise Rejected(f"wrong units: variable {name!r} has no units attribute ({catalog.id} accepts "
                               f"{', '.join(var.accepted_units or [var.units])}; a catalog that knows the units "
                               f"of this source declares them in assume_units)")
        accepted = var.accepted_units or [var.units]
        if units not in accepted and units != var.units and units not in var.assume_units.values():
            raise Rejected(f"wrong units: variable {name!r} is in {units!r} but {catalog.id} accepts "
                           f"{', '.join(accepted)}")
        a, b = (1.0, 0.0) if units == var.units else _linear_conversion(units, var.units)
        found[name] = (vid, a, b, single)
    if not found:
        raise Rejected(f"holds none of {catalog.id}'s variables ({', '.join(sorted(by_source))})")
    return tdim, slots, ydim, xdim, flip_y, flip_x, found


def read_fields(path: Path, catalog: Catalog):
    """Yield ``(slot, vid, float32 (y, x) field in canonical units)`` for every field of a file.
    Validation of the whole structure happens before the first field is yielded."""
    ds = _open(path)
    try:
        tdim, slots, ydim, xdim, flip_y, flip_x, found = _plan_file(ds, catalog)
        for k, slot in enumerate(slots):
            for name, (vid, a, b, single) in found.items():
                v = ds[name]
                if tdim is not None:
                    v = v.isel({tdim: k})
                if single:
                    v = v.isel({d: 0 for d in single})
                try:
                    arr = np.asarray(v.transpose(ydim, xdim).values)
                except Exception as e:  # noqa: BLE001 - corrupt data blocks
                    raise Rejected(f"data of {name!r} cannot be read ({str(e)[:120] or type(e).__name__})") from None
                if flip_y:
                    arr = arr[::-1]
                if flip_x:
                    arr = arr[:, ::-1]
                arr = np.ascontiguousarray(arr, dtype="float32")
                if (a, b) != (1.0, 0.0):
                    arr = arr * np.float32(a) + np.float32(b)
                yield slot, vid, arr
    finally:
        ds.close()


_REAL_CALENDARS = (None, "standard", "gregorian", "proleptic_gregorian")


def _scan_secs_fast(path: Path) -> list[int] | None:
    """The file's times in epoch seconds read with netCDF4 alone: the time coordinate only, where an
    xarray dataset decodes and indexes every variable (2-4 ms a file instead of 7-12, and the scan runs
    serially in the parent). None whenever anything is unusual; the general path then decides and
    words the reason."""
    try:
        import netCDF4

        with netCDF4.Dataset(path) as nc:
            tv = None
            for name, v in nc.variables.items():
                attrs = v.ncattrs()
                if name == "time" or ("standard_name" in attrs and v.getncattr("standard_name") == "time") or (
                        "axis" in attrs and v.getncattr("axis") == "T"):
                    tv = v
                    break
            if tv is None:
                return None
            attrs = set(tv.ncattrs())
            if attrs & {"scale_factor", "add_offset", "_FillValue", "missing_value", "valid_range",
                        "valid_min", "valid_max"} or "units" not in attrs:
                return None
            calendar = tv.getncattr("calendar") if "calendar" in attrs else None
            if calendar not in _REAL_CALENDARS or tv.dtype.kind not in "iuf":
                return None
            tv.set_auto_maskandscale(False)
            raw = np.atleast_1d(np.asarray(tv[...]))
            units = tv.getncattr("units")
        from xarray.coding.times import decode_cf_datetime

        vals = np.atleast_1d(decode_cf_datetime(raw, units, calendar))  # xarray's own decoding
        if not np.issubdtype(vals.dtype, np.datetime64) or np.isnat(vals).any():
            return None
        return vals.astype("datetime64[s]").astype("int64").tolist()
    except Exception:  # noqa: BLE001 - the general path reports it
        return None


def scan_file(path: Path, catalog: Catalog) -> list[int]:
    """The slots a file covers (cheap: metadata only); raises Rejected for unreadable or off-axis files."""
    secs = _scan_secs_fast(path)
    if secs is not None:
        return _slots_for(secs, catalog)
    ds = _open(path)
    try:
        _, secs = _time_values(ds, catalog)
        return _slots_for(secs, catalog)
    finally:
        ds.close()


def digest(arr: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(arr).view("uint8"), digest_size=HASH_BYTES).digest()
