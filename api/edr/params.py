"""The EDR query parameters: how the OpenAPI document declares them and how a request's values are parsed
(WKT coordinates, bbox, datetime instants and intervals, parameter names, output format, size limits).
Every error is a ``Problem`` naming the parameter and the part at fault.

The declarations sit beside the parsers so that the documented rule and the enforced one are read together.
Parameters are declared ``str | None`` and checked here rather than by Litestar, so that a missing
``coords`` gets this module's sentence (with an example) instead of the framework's; the schema is
overridden to what the API really takes (a plain string, ``required`` where the parser requires it).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated

from api.edr.responses import NETCDF_MEDIA
from api.openapi import query_param
from api.problems import Problem
from forecast.timeutil import parse_time, to_epoch

POINT_FORMATS = ("covjson", "json")
AREA_FORMATS = ("covjson", "json", "netcdf")


# -- declarations (what the OpenAPI document says) --------------------------------------------------------
PointCoords = Annotated[str | None, query_param(
    "coords", "WKT point in lon/lat (CRS84): POINT(lon lat). Required. A point outside the collection's grid "
    "(its extent is in /collections/{collection_id}) is a 400 naming the extent.", required=True, minLength=1,
    examples=("POINT(10.1 49.4)",))]
AreaCoords = Annotated[str | None, query_param(
    "coords", "WKT polygon in lon/lat (CRS84): POLYGON((lon lat, ...)) or MULTIPOLYGON. Required. At most "
    "api_max_cells grid cells and api_max_values values per request (400 beyond).", required=True, minLength=1,
    examples=("POLYGON((10 49.3, 10.1 49.3, 10.1 49.4, 10 49.4, 10 49.3))",))]
Bbox = Annotated[str | None, query_param(
    "bbox", "minlon,minlat,maxlon,maxlat (CRS84). Required. Size limits as for area.", required=True,
    minLength=1, examples=("10.0,49.3,10.1,49.4",))]
ParamNames = Annotated[str | None, query_param(
    "parameter-name", "Comma-separated parameters (default: all of the collection's variables; a forecast's "
    "exceedance probabilities <variable>_exceedance_<threshold>, unit 1, are served when named; names it does "
    "not hold are a 400 listing the valid ones).")]
Datetime = Annotated[str | None, query_param(
    "datetime", "Valid time instant or interval T1/T2 (ISO-8601, either end may be '..'); default: the latest "
    "forecast / the latest observation slots.", examples=("2026-07-15T13:30:00Z/2026-07-15T13:40:00Z",))]
InitTime = Annotated[str | None, query_param(
    "init_time", "Forecast initialisation time (ISO-8601); default: the latest.")]
AsOf = Annotated[str | None, query_param(
    "as_of", "Observations: answer from the data as known at this time (ISO-8601).")]
PointFormat = Annotated[str | None, query_param(
    "f", "Output format: covjson (default) or json; empty means the default.", enum=[*POINT_FORMATS, ""])]
AreaFormat = Annotated[str | None, query_param(
    "f", "Output format: covjson (default), json or netcdf; empty means the default (netcdf when the Accept "
    "header asks for application/x-netcdf).", enum=[*AREA_FORMATS, ""])]


# -- formats ---------------------------------------------------------------------------------------------------

def parse_format(f: str | None, allowed: tuple[str, ...], accept: str) -> str:
    """The output format of ``f`` (absent or empty: covjson, or netcdf when ``accept`` asks for it)."""
    if f is None or f == "":
        if NETCDF_MEDIA in accept and "netcdf" in allowed:
            return "netcdf"
        return "covjson"
    if f not in allowed:
        raise Problem(400, f"f: unknown or unsupported format {f!r} for this query; valid formats: {', '.join(allowed)}")
    return f


# -- geometry ----------------------------------------------------------------------------------------------------
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_POINT_RE = re.compile(rf"^\s*POINT\s*\(\s*({_NUM})\s+({_NUM})\s*\)\s*$", re.IGNORECASE)


def _check_lonlat(lon: float, lat: float, param: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise Problem(400, f"{param}: coordinates must be finite numbers, got ({lon} {lat})")
    if not -90.0 <= lat <= 90.0:
        raise Problem(400, f"{param}: latitude {lat} is outside [-90, 90]; WKT order is POINT(lon lat)")
    if not -180.0 <= lon <= 360.0:
        raise Problem(400, f"{param}: longitude {lon} is outside [-180, 360]")


def parse_point(text: str | None, param: str = "coords") -> tuple[float, float]:
    """``POINT(lon lat)`` -> (lon, lat)."""
    if text is None or not text.strip():
        raise Problem(400, f"query parameter {param!r} is required, e.g. {param}=POINT(10.5 52.1)")
    m = _POINT_RE.match(text)
    if m:
        lon, lat = float(m.group(1)), float(m.group(2))
        _check_lonlat(lon, lat, param)
        return lon, lat
    geom = _wkt(text, param)
    if geom.geom_type != "Point" or geom.is_empty:
        raise Problem(400, f"{param}: a position query needs a WKT POINT(lon lat), got a {geom.geom_type.upper()}")
    if geom.has_z:
        raise Problem(400, f"{param}: POINT with a z coordinate is not supported; give POINT(lon lat)")
    lon, lat = geom.x, geom.y
    _check_lonlat(lon, lat, param)
    return lon, lat


def _wkt(text: str, param: str):
    import shapely
    from shapely.errors import GEOSException

    if len(text) > 20_000:
        raise Problem(400, f"{param}: the WKT is longer than 20000 characters; simplify the geometry")
    try:
        return shapely.from_wkt(text)
    except (GEOSException, ValueError, TypeError) as e:
        msg = str(e).split("\n")[0]
        msg = msg.replace("ParseException: ", "")
        raise Problem(400, f"{param}: malformed WKT ({msg}); expected e.g. POINT(10.5 52.1) or "
                           "POLYGON((10 52, 11 52, 11 53, 10 53, 10 52))") from None


def parse_polygon(text: str | None, param: str = "coords"):
    """``POLYGON((lon lat, ...))`` (or MULTIPOLYGON) -> shapely geometry in lon/lat."""
    if text is None or not text.strip():
        raise Problem(400, f"query parameter {param!r} is required, e.g. {param}=POLYGON((10 52, 11 52, 11 53, 10 52))")
    geom = _wkt(text, param)
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise Problem(400, f"{param}: an area query needs a WKT POLYGON, got a {geom.geom_type.upper()}")
    minx, miny, maxx, maxy = geom.bounds
    for lon, lat in ((minx, miny), (maxx, maxy)):
        _check_lonlat(lon, lat, param)
    if not geom.is_valid:
        import shapely

        raise Problem(400, f"{param}: the polygon is not valid ({shapely.is_valid_reason(geom)})")
    return geom


def parse_bbox(text: str | None, param: str = "bbox"):
    """``minlon,minlat,maxlon,maxlat`` -> shapely box in lon/lat."""
    from shapely.geometry import box

    if text is None or not text.strip():
        raise Problem(400, f"query parameter {param!r} is required, e.g. {param}=10.0,52.0,10.5,52.5")
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise Problem(400, f"{param}: expected four numbers minlon,minlat,maxlon,maxlat, got {len(parts)} part(s)")
    vals = []
    names = ("minlon", "minlat", "maxlon", "maxlat")
    for name, p in zip(names, parts):
        try:
            v = float(p)
        except ValueError:
            raise Problem(400, f"{param}: {name} {p!r} is not a number") from None
        if not math.isfinite(v):
            raise Problem(400, f"{param}: {name} must be finite, got {p!r}")
        vals.append(v)
    _check_lonlat(vals[0], vals[1], param)
    _check_lonlat(vals[2], vals[3], param)
    if not (vals[0] < vals[2] and vals[1] < vals[3]):
        raise Problem(400, f"{param}: minlon must be below maxlon and minlat below maxlat, got {text!r}")
    return box(*vals)


# -- times -------------------------------------------------------------------------------------------------------

def parse_instant(text: str, param: str, part: str | None = None) -> datetime:
    where = f"{param}" + (f" ({part})" if part else "")
    try:
        return parse_time(text)
    except ValueError:
        raise Problem(400, f"{where}: {text!r} is not an ISO-8601 time like 2026-07-15T12:00:00Z") from None


def parse_optional_instant(text: str | None, param: str) -> int | None:
    """Epoch seconds of an optional instant parameter (absent or blank: None)."""
    return None if text is None or not text.strip() else to_epoch(parse_instant(text, param))


def parse_datetime(text: str | None, param: str = "datetime") -> tuple[int | None, int | None] | None:
    """EDR ``datetime``: an instant ``T`` or an interval ``T1/T2`` (either end may be ``..``) ->
    (start, end) epoch seconds, inclusive; None when absent."""
    if text is None or not text.strip():
        return None
    if "/" in text:
        parts = text.split("/")
        if len(parts) != 2:
            raise Problem(400, f"{param}: an interval has exactly one '/', got {text!r}")
        a, b = parts
        lo = None if a.strip() in ("..", "") else to_epoch(parse_instant(a, param, "start of the interval"))
        hi = None if b.strip() in ("..", "") else to_epoch(parse_instant(b, param, "end of the interval"))
        if lo is None and hi is None:
            raise Problem(400, f"{param}: an interval needs at least one end, got {text!r}")
        if lo is not None and hi is not None and lo > hi:
            raise Problem(400, f"{param}: the start of the interval is after its end ({text!r})")
        return lo, hi
    t = to_epoch(parse_instant(text, param))
    return t, t


# -- names and sizes ---------------------------------------------------------------------------------------------

def parse_names(text: str | None, valid: list[str], param: str = "parameter-name") -> list[str]:
    if text is None or not text.strip():
        return list(valid)
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in valid]
    if bad:
        raise Problem(400, f"{param}: unknown parameter {bad[0]!r}; valid parameters are: {', '.join(valid)}")
    return list(dict.fromkeys(names))


def check_size(settings, n_cells: int, n_values: int, param: str) -> None:
    """400 when a query covers more cells or values than ``api_max_cells`` / ``api_max_values``."""
    if n_cells > settings.api_max_cells:
        raise Problem(400, f"{param}: the request covers {n_cells} grid cells; at most {settings.api_max_cells} are "
                           "served per request (ask for a smaller area)", limit=settings.api_max_cells)
    if n_values > settings.api_max_values:
        raise Problem(400, f"{param}: the request holds {n_values} values (cells x times x parameters); at most "
                           f"{settings.api_max_values} are served per request (fewer parameters, a shorter interval "
                           "or a smaller area)", limit=settings.api_max_values)
