"""Writing a slot's CF-1.8 NetCDF4 file: names, time encoding, coordinates and CRS, and the fields compressed
outside HDF5 (so worker threads can do it) and stored as whole-field chunks; late, corrupt and revised slots
land where the manifest says.
"""

from __future__ import annotations

import os
import threading
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from forecast import __version__
from forecast.catalog import Catalog
from forecast.synthetic.context import Context
from forecast.synthetic.faults import CORRUPT_FRACTION, Plan, revise

GENERATOR = f"forecast.sample {__version__}"  # recorded in every file and manifest: keep its form
TIME_UNITS = "seconds since 1970-01-01 00:00:00"


def file_name(catalog: Catalog, t_s: int) -> str:
    """``{dataset}_{YYYYmmddTHHMMSS}Z.nc`` of the slot at ``t_s``."""
    return f"{catalog.id}_{datetime.fromtimestamp(t_s, tz=timezone.utc):%Y%m%dT%H%M%S}Z.nc"


def _encode(arr: np.ndarray, complevel: int) -> bytes:
    """One whole-field HDF5 chunk exactly as the shuffle + deflate filters store it.

    Compressing here instead of inside HDF5 lets worker threads do it while the GIL is free (zlib and numpy's
    copies release it; netCDF4 and h5py do not), which roughly halves the time of a large sample on two cores.
    """
    raw = np.ascontiguousarray(arr)
    if complevel == 0:
        return raw.tobytes()
    shuffled = raw.view(np.uint8).reshape(-1, raw.dtype.itemsize).T.tobytes()
    return zlib.compress(shuffled, complevel)


class Writer:
    """Writes one slot's CF-1.8 NetCDF4 file; coordinates are encoded once per sample.

    netCDF-C lays out the file (dimensions, CF attributes, filters); h5py then stores the chunks compressed
    beforehand. That split is ~8x faster than h5netcdf for the metadata and keeps compression off the GIL.
    """

    def __init__(self, ctx: Context, complevel: int):
        # Imported here, once, rather than concurrently by the writer threads.
        import h5py
        import netCDF4

        self.h5py, self.netCDF4 = h5py, netCDF4
        # The HDF5 libraries are not thread-safe (and netCDF4 and h5py each bundle their own): only the
        # encoding runs in parallel, the few milliseconds of file I/O take turns.
        self.lock = threading.Lock()
        self.ctx = ctx
        self.complevel = complevel
        g = ctx.catalog.grid
        self.xn = g.x.source_names[0] if g.x.source_names else "x"
        self.yn = g.y.source_names[0] if g.y.source_names else "y"
        self.geo = ctx.crs.is_geographic
        self.filters: dict[str, Any] = (
            {"zlib": True, "complevel": complevel, "shuffle": True} if complevel else {"zlib": False})
        # Geographic grids already have latitude / longitude as their 1-D axes.
        self.latlon = {} if self.geo else {"lat": _encode(ctx.lat, complevel), "lon": _encode(ctx.lon, complevel)}
        self.crs_attrs = {k: v for k, v in ctx.crs.to_cf().items() if v is not None}

    def write(self, path: Path, t_s: int, chunks: dict[str, bytes]) -> None:
        """Write under a temporary name and rename, so a reader never sees half a file."""
        ctx, g = self.ctx, self.ctx.catalog.grid
        cat = ctx.catalog
        xn, yn, ny, nx = self.xn, self.yn, ctx.ny, ctx.nx
        tmp = path.with_name(f".{path.name}.part")
        with self.lock:
            with self.netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
                nc.setncatts({
                    "Conventions": "CF-1.8",
                    "title": cat.title,
                    "institution": "synthetic",
                    "source": cat.source,
                    "comment": "Synthetic observations made by forecast.sample; not measurements.",
                    "dataset_id": cat.id,
                    "generator": GENERATOR,
                    "seed": np.int64(ctx.seed),
                })
                nc.createDimension("time", 1)
                nc.createDimension(yn, ny)
                nc.createDimension(xn, nx)
                tv = nc.createVariable("time", "i8", ("time",))
                tv.setncatts({"standard_name": "time", "long_name": "time", "axis": "T", "units": TIME_UNITS,
                              "calendar": "proleptic_gregorian"})
                tv[:] = np.array([t_s], dtype=np.int64)
                for name, axis, vals, which in ((yn, "Y", g.y.values(), "y"), (xn, "X", g.x.values(), "x")):
                    cv = nc.createVariable(name, "f8", (name,))
                    if self.geo:
                        std = "latitude" if which == "y" else "longitude"
                        cv.setncatts({"standard_name": std, "long_name": std,
                                      "units": "degrees_north" if which == "y" else "degrees_east", "axis": axis})
                    else:
                        cv.setncatts({"standard_name": f"projection_{which}_coordinate",
                                      "long_name": f"{which} coordinate of projection", "units": "m", "axis": axis})
                    cv[:] = vals
                crs = nc.createVariable("crs", "i4")
                crs.setncatts(self.crs_attrs)
                for name, std, units in (("lat", "latitude", "degrees_north"), ("lon", "longitude", "degrees_east")):
                    if name in self.latlon:
                        cv = nc.createVariable(name, "f4", (yn, xn), chunksizes=(ny, nx), **self.filters)
                        cv.setncatts({"standard_name": std, "long_name": std, "units": units})
                for spec in ctx.specs:
                    dv = nc.createVariable(spec.name, "f4", ("time", yn, xn), fill_value=np.float32(np.nan),
                                           chunksizes=(1, ny, nx), **self.filters)
                    attrs = {"standard_name": spec.standard_name, "long_name": spec.long_name, "units": spec.units,
                             "grid_mapping": "crs"}
                    if self.latlon:
                        attrs["coordinates"] = "lat lon"
                    dv.setncatts(attrs)
            with self.h5py.File(tmp, "r+") as h5:
                for name, chunk in self.latlon.items():
                    h5[name].id.write_direct_chunk((0, 0), chunk)
                for spec in ctx.specs:
                    h5[spec.name].id.write_direct_chunk((0, 0, 0), chunks[spec.vid])
        os.replace(tmp, path)

    def emit(self, plan: Plan, out: Path, slot: int, fields: dict[str, np.ndarray]) -> int:
        """Encode and write everything one slot contributes (runs in a worker thread); returns the file count."""
        status = plan.status[slot]
        t_s = plan.labels[slot]
        name = file_name(self.ctx.catalog, t_s)
        chunks = {k: _encode(v, self.complevel) for k, v in fields.items()}
        if status == "late":
            self.write(out / "late" / name, t_s, chunks)
            return 1
        if status == "corrupt":
            full = out / f".{name}.valid"
            self.write(full, t_s, chunks)
            data = full.read_bytes()
            full.unlink()
            tmp = out / f".{name}.part"
            tmp.write_bytes(data[: int(len(data) * CORRUPT_FRACTION)])
            os.replace(tmp, out / name)
            return 1
        self.write(out / name, t_s, chunks)
        if status == "revised":
            revised = {k: _encode(v, self.complevel) for k, v in revise(plan, fields).items()}
            self.write(out / "revised" / name, t_s, revised)
            return 2
        return 1
