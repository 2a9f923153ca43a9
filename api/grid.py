"""The regular projected grid of a store group: cell centres from the axes, lon/lat <-> cell index through
a cached pyproj transformer, and the window of cells a lon/lat polygon covers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from api.problems import Problem


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
