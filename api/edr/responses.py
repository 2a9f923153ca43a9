"""Builders of the data documents: CoverageJSON (with ``fcst:`` namespaced members), the compact JSON's
grid member and NetCDF, for forecast and observation queries. Plain dicts and lists, encoded by msgspec."""

from __future__ import annotations

import io
import math
from typing import Any

import msgspec
import numpy as np

from api.grid import Grid

JSON_MEDIA = "application/json"
COVJSON_MEDIA = "application/prs.coverage+json"
NETCDF_MEDIA = "application/x-netcdf"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
TEMPORAL = {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}}
NERC = "http://vocab.nerc.ac.uk/standard_name/{}/"


encode = msgspec.json.Encoder().encode
"""JSON bytes of a document (msgspec keeps dict order: the point templates rely on it)."""


def floats(a: np.ndarray) -> list[float | None]:
    """NaN -> None (JSON null); values rounded to float32 precision for compact output."""
    a = np.asarray(a, dtype="float64").ravel()
    out = a.tolist()
    if np.isnan(a).any():
        out = [None if math.isnan(v) else v for v in out]
    return out


def float32s(a: np.ndarray) -> list[float | None]:
    a = np.asarray(a, dtype="float32").ravel()
    out = [float(f"{v:.7g}") for v in a.tolist()] if a.size <= 64 else np.round(a.astype("float64"), 4).tolist()
    if np.isnan(a).any():
        out = [None if (v is None or math.isnan(v)) else v for v in out]
    return out


def parameter(name: str, *, units: str | None, standard_name: str | None, long_name: str | None = None,
              physical_range=None, record=None) -> dict[str, Any]:
    p: dict[str, Any] = {"type": "Parameter", "observedProperty": {
        "label": {"en": standard_name or name}}}
    if standard_name:
        p["observedProperty"]["id"] = NERC.format(standard_name)
    if long_name:
        p["description"] = {"en": long_name}
    if units:
        p["unit"] = {"symbol": units}
    if physical_range is not None:
        p["fcst:physicalRange"] = [float(physical_range[0]), float(physical_range[1])]
    if record is not None:
        p["fcst:climatologicalRecord"] = record
    return p


def catalog_parameters(catalog, names: list[str], units: dict[str, str] | None = None) -> dict[str, Any]:
    out = {}
    for n in names:
        var = catalog.variables.get(n) if catalog is not None else None
        rec = None
        if var is not None:
            rec = {k: v for k, v in (("min", var.record_min), ("max", var.record_max)) if v is not None} or None
        out[n] = parameter(n, units=(units or {}).get(n) or (var.units if var else None),
                           standard_name=var.standard_name if var else None,
                           long_name=(var.long_name if var else None), physical_range=var.physical_range if var else None,
                           record=rec)
    return out


def exceedance_parameter(name: str, meta: dict[str, Any], catalog=None) -> dict[str, Any]:
    """The CoverageJSON parameter of an exceedance probability ``<variable>_exceedance_<t>`` (``meta``: its
    variable, threshold and threshold_units, as the forecast store lists them): unit "1", the threshold in
    ``fcst:threshold``."""
    variable, t, u = meta["variable"], float(meta["threshold"]), meta.get("threshold_units") or ""
    var = catalog.variables.get(variable) if catalog is not None else None
    what = (var.long_name if var is not None and var.long_name else variable.replace("_", " ")).lower()
    at = f"{t:g} {u}".rstrip()
    return {"type": "Parameter",
            "observedProperty": {"label": {"en": f"probability of {variable} at or above {at}"}},
            "description": {"en": f"Probability that the {what} ({variable}) is at or above {at} "
                                  f"(exceedance threshold {at})"},
            "unit": {"symbol": "1"}, "fcst:threshold": {"value": t, "units": u}, "fcst:variable": variable,
            "fcst:valueRange": [0.0, 1.0]}


def forecast_parameters(catalog, names: list[str], units: dict[str, str],
                        exceedance: dict[str, dict]) -> dict[str, Any]:
    """The CoverageJSON parameters of a forecast run's ``names``: variables from the catalog, exceedance
    probabilities from the run's ``exceedance`` list (`exceedance_parameter`), in the order of ``names``."""
    plain = catalog_parameters(catalog, [n for n in names if n not in exceedance], units)
    return {n: exceedance_parameter(n, exceedance[n], catalog) if n in exceedance else plain[n] for n in names}


def threshold_member(meta: dict[str, Any]) -> dict[str, Any]:
    """The compact JSON's statement of an exceedance probability's threshold."""
    return {"variable": meta["variable"], "threshold": {"value": float(meta["threshold"]),
                                                        "units": meta.get("threshold_units") or ""}}


def projected_referencing(grid: Grid) -> dict[str, Any]:
    crs = grid.transformers[2]
    if crs.is_geographic:
        return {"coordinates": ["x", "y"], "system": {"type": "GeographicCRS", "id": CRS84}}
    epsg = crs.to_epsg()
    system: dict[str, Any] = {"type": "ProjectedCRS"}
    if epsg:
        system["id"] = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    else:
        system["wkt"] = crs.to_wkt()
    return {"coordinates": ["x", "y"], "system": system}


def point_coverage(*, lon: float, lat: float, times: list[str], parameters: dict, ranges: dict[str, list],
                   members: dict[str, Any]) -> dict[str, Any]:
    n = len(times)
    doc = {
        "type": "Coverage",
        "domain": {"type": "Domain", "domainType": "PointSeries",
                   "axes": {"x": {"values": [lon]}, "y": {"values": [lat]}, "t": {"values": times}},
                   "referencing": [{"coordinates": ["x", "y"], "system": {"type": "GeographicCRS", "id": CRS84}},
                                   TEMPORAL]},
        "parameters": parameters,
        "ranges": {k: {"type": "NdArray", "dataType": "float", "axisNames": ["t"], "shape": [n], "values": v}
                   for k, v in ranges.items()},
    }
    doc.update(members)
    return doc


def grid_coverage(*, grid: Grid, iy0: int, iy1: int, ix0: int, ix1: int, times: list[str], parameters: dict,
                  ranges: dict[str, list], members: dict[str, Any]) -> dict[str, Any]:
    xs = (grid.x0 + grid.dx * np.arange(ix0, ix1)).tolist()
    ys = (grid.y0 + grid.dy * np.arange(iy0, iy1)).tolist()
    shape = [len(times), len(ys), len(xs)]
    doc = {
        "type": "Coverage",
        "domain": {"type": "Domain", "domainType": "Grid",
                   "axes": {"x": {"values": xs}, "y": {"values": ys}, "t": {"values": times}},
                   "referencing": [projected_referencing(grid), TEMPORAL]},
        "parameters": parameters,
        "ranges": {k: {"type": "NdArray", "dataType": "float", "axisNames": ["t", "y", "x"], "shape": shape,
                       "values": v} for k, v in ranges.items()},
    }
    doc.update(members)
    return doc


def grid_member(grid: Grid, iy0: int, iy1: int, ix0: int, ix1: int, n_times: int) -> dict[str, Any]:
    """The compact JSON's ``grid`` member: axes of the window, its origin and shape (t, y, x)."""
    return {"crs": grid.crs, "x": (grid.x0 + grid.dx * np.arange(ix0, ix1)).tolist(),
            "y": (grid.y0 + grid.dy * np.arange(iy0, iy1)).tolist(), "iy0": iy0, "ix0": ix0,
            "shape": [n_times, iy1 - iy0, ix1 - ix0], "axis_order": ["t", "y", "x"]}


def to_netcdf(*, grid: Grid, iy0: int, iy1: int, ix0: int, ix1: int, times_s: np.ndarray,
              data: dict[str, tuple[np.ndarray, dict]], attrs: dict[str, Any]) -> bytes:
    """A CF NetCDF-4 file in memory: (time, y, x) variables with the given attributes."""
    import xarray as xr

    xs = grid.x0 + grid.dx * np.arange(ix0, ix1)
    ys = grid.y0 + grid.dy * np.arange(iy0, iy1)
    lon, lat = grid.to_lonlat(*np.meshgrid(xs, ys))
    coords = {
        "time": ("time", np.asarray(times_s, dtype="int64").astype("datetime64[s]").astype("datetime64[ns]")),
        "y": ("y", ys, {"units": "m", "standard_name": "projection_y_coordinate"}),
        "x": ("x", xs, {"units": "m", "standard_name": "projection_x_coordinate"}),
        "lat": (("y", "x"), np.asarray(lat), {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": (("y", "x"), np.asarray(lon), {"units": "degrees_east", "standard_name": "longitude"}),
    }
    ds = xr.Dataset({k: (("time", "y", "x"), v, a) for k, (v, a) in data.items()}, coords=coords)
    ds.attrs.update({k: v for k, v in attrs.items() if isinstance(v, (str, int, float))})
    ds.attrs["Conventions"] = "CF-1.8"
    ds.attrs["crs"] = grid.crs
    buf = io.BytesIO()
    ds.to_netcdf(buf, engine="h5netcdf")
    return buf.getvalue()
