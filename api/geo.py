"""Query parsing for EDR-style requests (WKT coordinates, bbox, datetime intervals) and the regular
projected grid they index into. Every error is a ``Problem`` naming the parameter and the part at fault."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

from api.problems import Problem
from forecast.timeutil import iso, parse_time  # noqa: F401 - iso is re-exported to the routes

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


def parse_instant(text: str, param: str, part: str | None = None) -> datetime:
    where = f"{param}" + (f" ({part})" if part else "")
    try:
        return parse_time(text)
    except ValueError:
        raise Problem(400, f"{where}: {text!r} is not an ISO-8601 time like 2026-07-15T12:00:00Z") from None


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
        lo = None if a.strip() in ("..", "") else int(parse_instant(a, param, "start of the interval").timestamp())
        hi = None if b.strip() in ("..", "") else int(parse_instant(b, param, "end of the interval").timestamp())
        if lo is None and hi is None:
            raise Problem(400, f"{param}: an interval needs at least one end, got {text!r}")
        if lo is not None and hi is not None and lo > hi:
            raise Problem(400, f"{param}: the start of the interval is after its end ({text!r})")
        return lo, hi
    t = int(parse_instant(text, param).timestamp())
    return t, t


def parse_names(text: str | None, valid: list[str], param: str = "parameter-name") -> list[str]:
    if text is None or not text.strip():
        return list(valid)
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in valid]
    if bad:
        raise Problem(400, f"{param}: unknown parameter {bad[0]!r}; valid parameters are: {', '.join(valid)}")
    return list(dict.fromkeys(names))


@lru_cache(maxsize=32)
def _transformers(crs: str):
    from pyproj import CRS, Transformer

    c = CRS.from_user_input(crs)
    fwd = Transformer.from_crs("EPSG:4326", c, always_xy=True)
    inv = Transformer.from_crs(c, "EPSG:4326", always_xy=True)
    return fwd, inv, c


@dataclass(frozen=True)
class Grid:
    """A regular grid in a (projected) CRS: centre of cell (iy, ix) is (x0 + ix*dx, y0 + iy*dy)."""

    crs: str
    x0: float
    dx: float
    nx: int
    y0: float
    dy: float
    ny: int

    @classmethod
    def from_axes(cls, crs: str, x: np.ndarray, y: np.ndarray) -> Grid:
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        dx = float(x[1] - x[0]) if len(x) > 1 else 1.0
        dy = float(y[1] - y[0]) if len(y) > 1 else 1.0
        for name, a, d in (("x", x, dx), ("y", y, dy)):
            if len(a) > 2 and not np.allclose(np.diff(a), d, rtol=1e-6, atol=1e-6 * abs(d)):
                raise ValueError(f"the {name} axis is not regular")
        return cls(crs, float(x[0]), dx, len(x), float(y[0]), dy, len(y))

    @property
    def transformers(self):
        return _transformers(self.crs)

    @property
    def geographic(self) -> bool:
        return self.transformers[2].is_geographic

    def to_xy(self, lon, lat):
        return self.transformers[0].transform(lon, lat)

    def to_lonlat(self, x, y):
        return self.transformers[1].transform(x, y)

    def index(self, lon: float, lat: float) -> tuple[int, int] | None:
        """The nearest cell of a lon/lat point, or None when it lies outside the grid."""
        x, y = self.to_xy(lon, lat)
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        fx = (x - self.x0) / self.dx
        fy = (y - self.y0) / self.dy
        ix, iy = math.floor(fx + 0.5), math.floor(fy + 0.5)
        if 0 <= ix < self.nx and 0 <= iy < self.ny:
            return iy, ix
        return None

    def x_values(self) -> np.ndarray:
        return self.x0 + self.dx * np.arange(self.nx)

    def y_values(self) -> np.ndarray:
        return self.y0 + self.dy * np.arange(self.ny)

    @property
    def lonlat_extent(self) -> tuple[float, float, float, float]:
        """(minlon, minlat, maxlon, maxlat) of the grid's outer edges."""
        return _extent(self)

    def extent_text(self) -> str:
        a, b, c, d = self.lonlat_extent
        return f"lon {a:.3f}..{c:.3f}, lat {b:.3f}..{d:.3f}"

    def window(self, geom_lonlat, param: str):
        """Index window (iy0, iy1, ix0, ix1, exclusive ends) and inside-mask of the cells whose centres
        lie in a lon/lat polygon."""
        import shapely
        fwd = self.transformers[0]
        g = shapely.transform(shapely.segmentize(geom_lonlat, 0.01), lambda x, y: fwd.transform(x, y),
                              interleaved=False)
        minx, miny, maxx, maxy = g.bounds
        fx = sorted(((minx - self.x0) / self.dx, (maxx - self.x0) / self.dx))
        fy = sorted(((miny - self.y0) / self.dy, (maxy - self.y0) / self.dy))
        ix0, ix1 = max(0, math.ceil(fx[0] - 0.5)), min(self.nx, math.floor(fx[1] + 0.5) + 1)
        iy0, iy1 = max(0, math.ceil(fy[0] - 0.5)), min(self.ny, math.floor(fy[1] + 0.5) + 1)
        if ix0 >= ix1 or iy0 >= iy1:
            raise Problem(400, f"{param}: the geometry does not overlap the grid, which covers {self.extent_text()}",
                          extent=list(self.lonlat_extent))
        return iy0, iy1, ix0, ix1, g

    def inside_mask(self, g, iy0, iy1, ix0, ix1) -> np.ndarray:
        import shapely

        xs = self.x0 + self.dx * np.arange(ix0, ix1)
        ys = self.y0 + self.dy * np.arange(iy0, iy1)
        xx, yy = np.meshgrid(xs, ys)
        return shapely.contains_xy(g, xx, yy) | shapely.intersects_xy(g.boundary, xx, yy)


@lru_cache(maxsize=32)
def _extent(grid: Grid) -> tuple[float, float, float, float]:
    n = 64
    ex = np.concatenate([np.linspace(-0.5, grid.nx - 0.5, n), np.full(n, grid.nx - 0.5),
                         np.linspace(grid.nx - 0.5, -0.5, n), np.full(n, -0.5)])
    ey = np.concatenate([np.full(n, -0.5), np.linspace(-0.5, grid.ny - 0.5, n),
                         np.full(n, grid.ny - 0.5), np.linspace(grid.ny - 0.5, -0.5, n)])
    lon, lat = grid.to_lonlat(grid.x0 + ex * grid.dx, grid.y0 + ey * grid.dy)
    return (round(float(np.min(lon)), 4), round(float(np.min(lat)), 4), round(float(np.max(lon)), 4),
            round(float(np.max(lat)), 4))
