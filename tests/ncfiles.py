"""Small hand-made CF NetCDF inputs for the ingest tests (independent of the sample generator)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

from forecast.catalog import Catalog


def field(catalog: Catalog, value: float = 1.0, seed: int = 0) -> np.ndarray:
    ny, nx = catalog.grid.shape
    rng = np.random.default_rng(seed)
    return (value + rng.random((ny, nx))).astype("float32")


def write_nc(path: Path, catalog: Catalog, times: list[datetime] | datetime, data: dict[str, np.ndarray],
             *, units: dict[str, str] | None = None, x=None, y=None, names: dict[str, str] | None = None,
             time_units: str = "seconds since 1970-01-01 00:00:00") -> Path:
    """One NetCDF file; ``data`` maps variable id -> (y, x) or (time, y, x) array."""
    times = times if isinstance(times, list) else [times]
    tvals = np.array([np.datetime64(t.replace(tzinfo=None), "s") for t in times]).astype("datetime64[ns]")
    xs = catalog.grid.x.values() if x is None else x
    ys = catalog.grid.y.values() if y is None else y
    xn = catalog.grid.x.source_names[0] if catalog.grid.x.source_names else "x"
    yn = catalog.grid.y.source_names[0] if catalog.grid.y.source_names else "y"
    dvars = {}
    for vid, arr in data.items():
        arr = np.asarray(arr, dtype="float32")
        if arr.ndim == 2:
            arr = arr[None]
        var = catalog.variables.get(vid)
        attrs = {"units": (units or {}).get(vid, var.units if var else "1")}
        if var:
            attrs["standard_name"] = var.standard_name
        dvars[(names or {}).get(vid, vid)] = (("time", yn, xn), arr, attrs)
    ds = xr.Dataset(dvars, coords={"time": tvals, yn: ys, xn: xs})
    enc = {"time": {"units": time_units, "dtype": "int64"}}
    for n in dvars:
        enc[n] = {"zlib": True, "complevel": 1, "_FillValue": np.float32(np.nan)}
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, encoding=enc, engine="netcdf4")
    return path
