"""Request metrics and the access log (api.metrics): one structured JSON line per request."""

from __future__ import annotations

import json


def test_structured_log_line_per_request(client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="api.access"):
        client.get("/health", headers={"X-Request-ID": "abc123"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert len(lines) == 1 and lines[0]["request_id"] == "abc123" and lines[0]["route"] == "/health"
    assert lines[0]["status"] == 200 and lines[0]["duration_ms"] >= 0
