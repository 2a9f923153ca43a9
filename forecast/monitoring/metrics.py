"""Prometheus gauges of every monitored quantity, read at scrape time from the monitor's latest snapshot in
the service database (so the API's ``/metrics`` and the worker's metrics port report the same numbers, and
an existing Alertmanager can alert on them instead of, or beside, the monitor's own rules).

Gauges (labels in braces): ``forecast_monitor_skill`` {dataset, variable, window, lead_minutes, reference}
(1 - RMSE / RMSE of the reference), ``forecast_monitor_rmse`` {..., method}, ``forecast_monitor_rmse_diff_lower``
/ ``_upper`` {...} (bootstrap interval of RMSE model - persistence), ``forecast_monitor_verified_inits``
{dataset, variable, window}, ``forecast_monitor_detector_statistic`` / ``_alarm`` {dataset, variable},
``forecast_monitor_drift_ratio`` / ``forecast_monitor_drift_statistic`` {dataset, variable, window, feature}
(ratio: statistic / threshold, drift above 1), ``forecast_monitor_stratum_skill`` {dataset, variable, window,
stratum, kind}, ``forecast_monitor_feed_missing_slots``, ``forecast_monitor_feed_late_share``,
``forecast_monitor_feed_fail_share`` {dataset, variable}, ``forecast_monitor_last_verified_init_seconds``
{dataset, variable} and ``forecast_monitor_alerts_firing`` {dataset, rule, severity}.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from prometheus_client.core import GaugeMetricFamily

from forecast.timeutil import parse_time

log = logging.getLogger(__name__)

__all__ = ["MonitorCollector"]

TTL_S = 5.0


def _ok(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


class MonitorCollector:
    """A prometheus_client collector over the monitor's tables (``registry.register(MonitorCollector(url))``)."""

    def __init__(self, db_url: str | None = None, *, db=None):
        self._url = db_url
        self._db = db
        self._lock = threading.Lock()
        self._cache: tuple[float, list] | None = None

    def describe(self):
        return []

    def collect(self):
        now = time.monotonic()
        with self._lock:
            if self._cache is None or now - self._cache[0] > TTL_S:
                try:
                    self._cache = (now, self._compute())
                except Exception as e:
                    log.warning("monitor metrics unreadable: %s", e)
                    self._cache = (now, [])
        yield from self._cache[1]

    def _database(self):
        if self._db is None:
            from forecast.monitoring.store import MonitorDB

            self._db = MonitorDB(self._url)
        return self._db

    def _compute(self) -> list:
        db = self._database()
        g = {name: GaugeMetricFamily(f"forecast_monitor_{name}", text, labels=labels) for name, text, labels in (
            ("skill", "Rolling skill 1 - RMSE / RMSE of the reference", ["dataset", "variable", "window",
                                                                          "lead_minutes", "reference"]),
            ("rmse", "Rolling RMSE per method", ["dataset", "variable", "window", "lead_minutes", "method"]),
            ("rmse_diff_lower", "Bootstrap lower bound of RMSE model - persistence",
             ["dataset", "variable", "window", "lead_minutes"]),
            ("rmse_diff_upper", "Bootstrap upper bound of RMSE model - persistence",
             ["dataset", "variable", "window", "lead_minutes"]),
            ("verified_inits", "Verified inits in the window", ["dataset", "variable", "window"]),
            ("detector_statistic", "Change detector statistic (alarm above its threshold)", ["dataset", "variable"]),
            ("detector_alarm", "1 while the change detector signals a drop of skill", ["dataset", "variable"]),
            ("drift_ratio", "Input drift statistic / its threshold (drift above 1)",
             ["dataset", "variable", "window", "feature"]),
            ("drift_statistic", "Input drift statistic (PSI or normalised Wasserstein)",
             ["dataset", "variable", "window", "feature"]),
            ("stratum_skill", "Skill against persistence per region or regime",
             ["dataset", "variable", "window", "stratum", "kind"]),
            ("feed_missing_slots", "Newest slots not arrived", ["dataset", "variable"]),
            ("feed_late_share", "Share of recent slots that arrived late", ["dataset", "variable"]),
            ("feed_fail_share", "Share of FAIL values in the newest slots", ["dataset", "variable"]),
            ("last_verified_init_seconds", "Init time of the newest verified forecast (epoch s)",
             ["dataset", "variable"]),
            ("alerts_firing", "Alerts firing", ["dataset", "rule", "severity"]),
        )}
        for ds, var, snap, _ in db.states("snapshot"):
            for w, sk in (snap.get("skill") or {}).items():
                if not sk:
                    continue
                g["verified_inits"].add_metric([ds, var, w], sk.get("n_inits") or 0)
                for lead in sk.get("leads", []):
                    lm = str(lead["lead_minutes"])
                    for k, v in lead.items():
                        if k.startswith("skill_") and _ok(v):
                            g["skill"].add_metric([ds, var, w, lm, k[6:]], v)
                        elif k.endswith("_rmse") and _ok(v):
                            g["rmse"].add_metric([ds, var, w, lm, k[:-5]], v)
                    if _ok(lead.get("lower")):
                        g["rmse_diff_lower"].add_metric([ds, var, w, lm], lead["lower"])
                    if _ok(lead.get("upper")):
                        g["rmse_diff_upper"].add_metric([ds, var, w, lm], lead["upper"])
            det = snap.get("detector") or {}
            if _ok(det.get("s")):
                g["detector_statistic"].add_metric([ds, var], det["s"])
                g["detector_alarm"].add_metric([ds, var], 1.0 if det.get("alarm") else 0.0)
            for w, dr in (snap.get("drift") or {}).items():
                for feat, f in ((dr or {}).get("features") or {}).items():
                    if _ok(f.get("ratio")):
                        g["drift_ratio"].add_metric([ds, var, w, feat], f["ratio"])
                    if _ok(f.get("value")):
                        g["drift_statistic"].add_metric([ds, var, w, feat], f["value"])
            for w, st in (snap.get("strata") or {}).items():
                for name, s in ((st or {}).get("strata") or {}).items():
                    if _ok(s.get("skill")):
                        g["stratum_skill"].add_metric([ds, var, w, name, s.get("kind", "")], s["skill"])
            feed = snap.get("feed") or {}
            if _ok(feed.get("missing_run")):
                g["feed_missing_slots"].add_metric([ds, var], feed["missing_run"])
            if _ok(feed.get("late_share")):
                g["feed_late_share"].add_metric([ds, var], feed["late_share"])
            if _ok(feed.get("fail_share")):
                g["feed_fail_share"].add_metric([ds, var], feed["fail_share"])
            if snap.get("last_verified"):
                g["last_verified_init_seconds"].add_metric([ds, var], parse_time(snap["last_verified"]).timestamp())
        counts: dict[tuple, int] = {}
        for a in db.alerts(state="firing", limit=10_000):
            counts[(a.dataset, a.rule, a.severity)] = counts.get((a.dataset, a.rule, a.severity), 0) + 1
        for labels, n in sorted(counts.items()):
            g["alerts_firing"].add_metric(list(labels), n)
        return list(g.values())
