"""The worker's Prometheus metrics: cycle duration per stage, file-to-forecast latency, lateness against
the deadline, skipped inits, fallbacks by reason, whether the database answers. Served on
``FORECAST_WORKER_METRICS_PORT`` when set (the API's /metrics also reports the cycle log's counts)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from forecast.worker.state import _fallback_kind

log = logging.getLogger(__name__)

__all__ = ["WorkerMetrics"]

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class WorkerMetrics:
    """One registry per worker process."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage = Histogram("forecast_worker_stage_seconds", "Seconds per cycle stage", ["dataset", "stage"],
                               buckets=_BUCKETS, registry=r)
        self.file_to_forecast = Histogram(
            "forecast_worker_file_to_forecast_seconds", "From a file's arrival to its init's forecast being stored",
            ["dataset"], buckets=_BUCKETS, registry=r)
        self.lateness = Gauge("forecast_worker_lateness_seconds", "Last forecast's time from due to stored",
                              ["dataset", "variable"], registry=r)
        self.forecasts = Counter("forecast_worker_forecasts", "Forecasts stored", ["dataset", "method"], registry=r)
        self.skipped = Counter("forecast_worker_skipped_inits", "Inits skipped", ["dataset"], registry=r)
        self.fallbacks = Counter("forecast_worker_fallbacks", "Forecasts made by a fallback", ["dataset", "reason"],
                                 registry=r)
        self.deadline_misses = Counter("forecast_worker_deadline_misses", "Forecasts stored after their deadline",
                                       ["dataset"], registry=r)
        self.db_up = Gauge("forecast_worker_database_up", "1 when the service database answers", registry=r)
        self.lease = Gauge("forecast_worker_lease_held", "1 while this worker holds the store's lease", registry=r)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
        log.info("worker metrics on :%d/metrics", port)

    def observe(self, report: dict) -> None:
        ds = report["dataset"]
        for stage, secs in report.get("stages", {}).items():
            self.stage.labels(ds, stage).observe(secs)
        for f in report.get("forecasts", []):
            self.forecasts.labels(ds, f["method"]).inc()
            if f.get("lateness_s") is not None:
                self.lateness.labels(ds, f["variable"]).set(f["lateness_s"])
                self.file_to_forecast.labels(ds).observe(max(0.0, f["lateness_s"]))
            if f.get("fallback"):
                self.fallbacks.labels(ds, _fallback_kind(f["fallback"].get("reason", ""))).inc()
            if f.get("deadline_missed"):
                self.deadline_misses.labels(ds).inc()
        if report.get("skipped"):
            self.skipped.labels(ds).inc(len(report["skipped"]))
