"""Document builders (api.edr.responses): JSON-safe floats, CoverageJSON parameters and the grid member."""

from __future__ import annotations

import math

import numpy as np

from api.edr.responses import catalog_parameters, encode, float32s, floats, grid_member, point_coverage
from api.grid import Grid


def test_floats_turn_nan_into_null():
    assert floats(np.array([1.5, np.nan, 2.0])) == [1.5, None, 2.0]
    assert float32s(np.array([0.1, np.nan], "float32")) == [0.1, None]  # float32 noise rounded away
    big = float32s(np.arange(100, dtype="float32") / 3)
    assert len(big) == 100 and big[1] == 0.3333 and not any(isinstance(v, float) and math.isnan(v) for v in big)


def test_parameters_without_catalog_and_point_coverage():
    p = catalog_parameters(None, ["rain"], {"rain": "mm h-1"})
    assert p == {"rain": {"type": "Parameter", "observedProperty": {"label": {"en": "rain"}},
                          "unit": {"symbol": "mm h-1"}}}
    doc = point_coverage(lon=10.0, lat=49.0, times=["t0", "t1"], parameters=p, ranges={"rain": [1.0, None]},
                         members={"fcst:x": 1})
    assert doc["ranges"]["rain"]["shape"] == [2] and doc["fcst:x"] == 1
    assert encode({"a": [1.0, None]}) == b'{"a":[1.0,null]}'


def test_grid_member_shape_and_axes():
    g = Grid("EPSG:3035", 0.0, 1000.0, 10, 5000.0, -1000.0, 6)
    m = grid_member(g, 1, 3, 2, 5, 4)
    assert m["shape"] == [4, 2, 3] and m["x"] == [2000.0, 3000.0, 4000.0] and m["y"] == [4000.0, 3000.0]
    assert list(m) == ["crs", "x", "y", "iy0", "ix0", "shape", "axis_order"]
