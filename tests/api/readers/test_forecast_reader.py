"""The forecast reader (api.readers.forecasts): a new init written by the worker is served without a restart."""

from __future__ import annotations

import pytest
from apihelpers import INITS, P, lonlat_of, make_forecast, provenance, settings_for

C = "/collections/radar_precip.forecast"


def point(world, iy=10, ix=20):
    lon, lat = lonlat_of(world["catalog"], iy, ix)
    return f"POINT({lon} {lat})"


def test_new_forecast_becomes_visible(tmp_path, world):
    """A new init written by the worker is served without restarting (head checked every api_head_check_s)."""
    import shutil

    from litestar.testing import TestClient

    from api.app import create_app
    from forecast.stores import ForecastStore

    home = tmp_path / "home"
    shutil.copytree(world["home"] / "forecasts.icechunk", home / "forecasts.icechunk")
    st = settings_for(world, tmp_path, api_head_check_s=0.0).model_copy(
        update={"forecast_store": str(home / "forecasts.icechunk")})
    with TestClient(create_app(st)) as c:
        q = {"coords": point(world), "f": "json"}
        r1 = c.get(f"{C}/position", params=q)
        assert r1.json()["init_time"] == "2026-07-15T13:05:00Z"
        init = INITS[-1].replace(minute=10)
        cat = world["catalog"]
        ForecastStore(str(home / "forecasts.icechunk")).write(cat, "production", init, make_forecast(cat, init, scale=3.0),
                                                              provenance(cat, init, "x"))
        r2 = c.get(f"{C}/position", params=q, headers={"If-None-Match": r1.headers["etag"]})
        assert r2.status_code == 200 and r2.json()["init_time"] == "2026-07-15T13:10:00Z"
        assert r2.json()["parameters"][P]["values"][0] == pytest.approx(3.0 * 10.2, rel=1e-6)


def test_chunk_cache_is_bounded_by_bytes_least_recently_used_out():
    import numpy as np

    from api.readers.forecasts import ChunkCache

    cache = ChunkCache(max_bytes=3 * 800)
    a = [np.zeros(100, "float64") for _ in range(4)]  # 800 bytes each
    for k in range(3):
        cache.put(("k", k), a[k])
    assert cache.get(("k", 0)) is a[0]  # 0 is now the most recently used
    cache.put(("k", 3), a[3])
    assert cache.get(("k", 1)) is None and cache.get(("k", 0)) is a[0] and cache.get(("k", 3)) is a[3]
    cache.put(("k", 0), a[1])  # an existing key keeps its chunk (chunks of one key never change)
    assert cache.get(("k", 0)) is a[0]
    cache.put(("big",), np.zeros(1000, "float64"))  # larger than the whole cache: not kept, no error
    assert cache.get(("big",)) is None


def test_views_memo_and_default_choice(world):
    from api.readers import ForecastReader

    reader = ForecastReader(settings_for(world))
    assert reader.runs() == [("radar_precip", "production")]
    view = reader.view("radar_precip")
    assert reader.view("radar_precip") is view and view.collection_id == "radar_precip.forecast"
    idx, mask = view.choose(None, None)
    assert view.choose(None, None)[1] is mask and not mask.flags.writeable and mask.all()
    assert view.init_s(idx) == int(INITS[-1].timestamp()) and view.latest == idx
    calls = []
    assert view.memo(("k",), lambda: calls.append(1) or "v") == "v" == view.memo(("k",), lambda: calls.append(1))
    assert calls == [1]
    view.remember(("k",), "w")
    assert view.memo(("k",), lambda: "x") == "w"
    assert view.provenance(idx)["init_time"] == "2026-07-15T13:05:00Z"
    assert view.valid_times(idx)[0] == "2026-07-15T13:10:00Z"
    with pytest.raises(Exception, match="no forecasts of 'radar_precip' run 'v9'"):
        reader.view("radar_precip", "v9")
