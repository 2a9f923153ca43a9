"""Request timing, Prometheus metrics and one structured (JSON) log line per request.

The middleware is plain ASGI (no per-request objects beyond a closure) so that it costs a few
microseconds on the point-query hot path. Service gauges (forecast age, queue size by state, flag
counts by dataset) are computed at scrape time, cached for ``GAUGE_TTL_S``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PCounter
from prometheus_client.core import GaugeMetricFamily

from api.flags import FLAG_NAMES
from forecast.timeutil import iso

access_log = logging.getLogger("api.access")
log = logging.getLogger("api")

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
GAUGE_TTL_S = 10.0


class Metrics:
    def __init__(self, services):
        self.services = services
        self.registry = CollectorRegistry()
        self.latency = Histogram("forecast_api_request_duration_seconds", "Request latency by route",
                                 ["route", "method"], buckets=BUCKETS, registry=self.registry)
        self.requests = PCounter("forecast_api_requests_total", "Requests by route, method and status",
                                 ["route", "method", "status"], registry=self.registry)
        self.registry.register(_ServiceCollector(services))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ServiceCollector:
    def __init__(self, services):
        self.services = services
        self._cache: tuple[float, list] | None = None
        self._flags: dict[tuple[str, str], dict] = {}

    def describe(self):
        return []

    def collect(self):
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] > GAUGE_TTL_S:
            self._cache = (now, self._compute())
        yield from self._cache[1]

    def _compute(self) -> list:
        s = self.services
        age = GaugeMetricFamily("forecast_latest_forecast_age_seconds",
                                "Seconds since the latest forecast's init time, per collection", labels=["collection"])
        cycle = GaugeMetricFamily("forecast_cycle_seconds", "Init step of the forecast collection", labels=["collection"])
        try:
            for d, r in s.forecasts.runs():
                v = s.forecasts.view(d, r)
                if v.latest is not None:
                    age.add_metric([v.collection_id], time.time() - v.init_s(v.latest))
                    cycle.add_metric([v.collection_id], v.step_s)
        except Exception as e:  # noqa: BLE001 - metrics never fail the scrape
            log.warning("metrics: forecast store unreadable: %s", e)
        queue = GaugeMetricFamily("forecast_review_queue_items", "Review items by dataset and state",
                                  labels=["dataset", "state"])
        try:
            for d in sorted(s.catalogs()):
                for st, n in s.queue.counts(d).items():
                    queue.add_metric([d, st], n)
        except Exception as e:  # noqa: BLE001
            log.warning("metrics: review queue unreadable: %s", e)
        flags = GaugeMetricFamily("forecast_observation_flags", "QC flag counts over the latest observation slots "
                                  "(api_obs_default_slots), by dataset, variable and flag",
                                  labels=["dataset", "variable", "flag"])
        try:
            for d in s.observations.datasets():
                for (var, flag), n in self._flag_counts(d).items():
                    flags.add_metric([d, var, flag], n)
        except Exception as e:  # noqa: BLE001
            log.warning("metrics: observation store unreadable: %s", e)
        return [age, cycle, queue, flags, *self._worker()]

    def _worker(self) -> list:
        """The worker's cycle log as gauges: each dataset's last lateness, deadline misses, skipped inits and
        fallbacks by reason (in all), and whether a worker holds the lease."""
        from forecast.worker.status import worker_status

        lateness = GaugeMetricFamily("forecast_worker_last_lateness_seconds",
                                     "Seconds from due to stored of each dataset's last forecast", labels=["dataset"])
        misses = GaugeMetricFamily("forecast_worker_deadline_misses", "Forecasts stored after their deadline",
                                   labels=["dataset"])
        skipped = GaugeMetricFamily("forecast_worker_skipped_inits", "Inits skipped (behind, down, expired)",
                                    labels=["dataset"])
        fallbacks = GaugeMetricFamily("forecast_worker_fallbacks", "Forecasts made by a fallback, by reason",
                                      labels=["dataset", "reason"])
        lease = GaugeMetricFamily("forecast_worker_lease_active", "1 while a worker holds the store's lease")
        try:
            doc = worker_status(self.services.settings, state=self.services.worker_state)
            lease.add_metric([], 1 if doc["lease"] and doc["lease"]["active"] else 0)
            for d, v in doc["datasets"].items():
                lc = v["last_cycle"] or {}
                if lc.get("lateness_s") is not None:
                    lateness.add_metric([d], lc["lateness_s"])
                misses.add_metric([d], v["all"]["deadline_misses"])
                skipped.add_metric([d], v["all"]["skipped"]["count"])
                for reason, n in v["all"]["fallbacks"].items():
                    fallbacks.add_metric([d, reason], n)
        except Exception as e:  # noqa: BLE001
            log.warning("metrics: the worker's state is unreadable: %s", e)
        return [lateness, misses, skipped, fallbacks, lease]

    def _flag_counts(self, dataset: str) -> dict:
        reader = self.services.observations
        view = reader.view(dataset)
        key = (dataset, view.snapshot)
        if key in self._flags:
            return self._flags[key]
        out: dict = {}
        if view.n_slots > 0:
            hi = view.n_slots - 1
            lo = max(0, view.first_slot, hi - self.services.settings.api_obs_default_slots + 1)
            data, _ = reader.read(view, lo, hi, None, view.variables, (0, view.grid.ny, 0, view.grid.nx))
            for var, (_, qc, _, _, _) in data.items():
                codes, n = np.unique(qc, return_counts=True)
                for c, k in zip(codes.tolist(), n.tolist()):
                    out[(var, FLAG_NAMES.get(int(c), str(c)))] = k
        self._flags = {key: out}
        return out


class RequestMiddleware:
    """Times each request, observes the route's histogram, logs one JSON line, sets X-Request-ID."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        # the labelled children, looked up once per label set (labels() takes a lock and builds a key)
        self._latency: dict[tuple, Any] = {}
        self._requests: dict[tuple, Any] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]
        rid = None
        for k, v in scope.get("headers") or ():
            if k == b"x-request-id":
                rid = v.decode("latin-1")[:64]
                break
        rid = rid or os.urandom(8).hex()

        async def _send(msg):
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
                msg.setdefault("headers", [])
                msg["headers"] = [*msg["headers"], (b"x-request-id", rid.encode())]
            await send(msg)

        try:
            await self.app(scope, receive, _send)
        finally:
            dt = time.perf_counter() - t0
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "")
            h = self._latency.get((route, method))
            if h is None:
                h = self._latency[(route, method)] = self.metrics.latency.labels(route, method)
            h.observe(dt)
            c = self._requests.get((route, method, status[0]))
            if c is None:
                c = self._requests[(route, method, status[0])] = self.metrics.requests.labels(route, method,
                                                                                          str(status[0]))
            c.inc()
            if access_log.isEnabledFor(logging.INFO):
                user = scope.get("_fcst_user")
                rec: dict[str, Any] = {"ts": iso(time.time()), "request_id": rid,
                                       "method": method, "path": scope.get("path"), "route": route,
                                       "query": (scope.get("query_string") or b"").decode("latin-1")[:500],
                                       "status": status[0], "duration_ms": round(dt * 1000, 3),
                                       "user": getattr(user, "name", None)}
                client = scope.get("client")
                if client:
                    rec["client"] = client[0]
                access_log.info(json.dumps(rec, separators=(",", ":")))
