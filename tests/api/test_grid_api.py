"""The regular projected grid (api.grid): cell of a lon/lat point, windows of polygons, extent."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box

from api.grid import Grid
from api.problems import Problem


@pytest.fixture
def grid():
    # 1 km cells of EPSG:3035 around lon 10, lat 49.4 (the test world's radar grid origin)
    return Grid.from_axes("EPSG:3035", 4300500.0 + 1000.0 * np.arange(64), 2955500.0 - 1000.0 * np.arange(64))


def test_from_axes_needs_a_regular_axis():
    with pytest.raises(ValueError, match="the x axis is not regular"):
        Grid.from_axes("EPSG:3035", np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.0]))


def test_index_of_cell_centres_and_outside(grid):
    for iy, ix in ((0, 0), (10, 20), (63, 63)):
        lon, lat = grid.to_lonlat(grid.x0 + ix * grid.dx, grid.y0 + iy * grid.dy)
        assert grid.index(lon, lat) == (iy, ix)
    assert grid.index(3.0, 40.0) is None


def test_window_and_inside_mask(grid):
    a, b, c, d = grid.lonlat_extent
    assert a < c and b < d and "lon" in grid.extent_text()
    lon0, lat0 = grid.to_lonlat(grid.x0 + 2 * grid.dx, grid.y0 + 8 * grid.dy)
    lon1, lat1 = grid.to_lonlat(grid.x0 + 8 * grid.dx, grid.y0 + 2 * grid.dy)
    iy0, iy1, ix0, ix1, g = grid.window(box(lon0, lat0, lon1, lat1), "bbox")
    assert 0 <= iy0 < iy1 <= 64 and 0 <= ix0 < ix1 <= 64 and (iy1 - iy0) * (ix1 - ix0) >= 25
    assert grid.inside_mask(g, iy0, iy1, ix0, ix1).shape == (iy1 - iy0, ix1 - ix0)
    with pytest.raises(Problem, match="bbox: the geometry does not overlap the grid"):
        grid.window(box(0, 0, 1, 1), "bbox")
