"""Operations routes (api.ops): health, readiness (and what it says is missing), Prometheus metrics."""

from __future__ import annotations

from litestar.testing import TestClient

from api.app import create_app


def test_health_ready_metrics(client, world, tmp_path):
    assert client.get("/health").json()["status"] == "ok"
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    fc = r.json()["checks"]["forecast_store"]["forecasts"]["radar_precip.forecast"]
    assert fc["cycle_s"] == 300 and fc["stale"] is True and "degraded" in r.json()["checks"]["status"]
    client.get("/collections/radar_precip.forecast/position", params={"coords": "POINT(10.0 49.4)"})
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert 'forecast_api_request_duration_seconds_bucket{le="0.005",method="GET",route="/collections/{collection_id}/position"}' in text
    assert 'forecast_latest_forecast_age_seconds{collection="radar_precip.forecast"}' in text
    assert 'forecast_review_queue_items{dataset="radar_precip",state="open"}' in text
    assert 'forecast_observation_flags{dataset="radar_precip",flag="GOOD",variable="precipitation_rate"}' in text
    # an empty home: the app starts, and readiness says what is missing
    from forecast.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path / "empty", catalogs=tmp_path / "none"))) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["ready"] is False
        checks = r.json()["checks"]
        assert "does not exist yet" in checks["forecast_store"]["detail"] and not checks["catalogs"]["ok"]
        assert c.get("/collections").json()["collections"] == []
