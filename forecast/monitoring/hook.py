"""The worker's cycle hook: after each cycle's forecasts are written, a monitoring pass
(`forecast.monitoring.monitor.Monitor`) of the cycle's dataset.

``MonitorHook(settings)`` is registered with the worker (`forecast worker`, `forecast cycle`). By default
(``FORECAST_MONITOR_BACKGROUND=true``) the hook only hands the pass to a background thread of lower
priority and returns: verification (the references, the observations, the scores) runs in the worker's
idle time between cycles, off the critical path from file to served forecast; a pass that is still running
when the next cycle ends is followed by one more pass, never by a queue of them. ``background=False``
runs the pass inside the cycle (its time is then the cycle's ``verify`` stage): `forecast cycle` does this,
so that a one-shot cycle exits with its verification done.

A failing pass is logged and never costs the forecast (the worker logs a hook's exception too); the next
pass picks up from the database.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger("forecast.monitor")

__all__ = ["MonitorHook", "monitor_hook"]


class MonitorHook:
    """``hook(service, report) -> {"monitor": ...}`` (see the module docstring)."""

    __name__ = "monitor"

    def __init__(self, settings=None, *, background: bool | None = None, max_inits: int | None = None):
        self.settings = settings
        self.background = background
        self.max_inits = max_inits
        self.monitors: dict[str, Any] = {}
        self.last: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self._services: dict[str, Any] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._metrics_registered: set[int] = set()

    # -- the hook --------------------------------------------------------------------------------------

    def __call__(self, svc, report: dict) -> dict | None:
        settings = self.settings or svc.settings
        background = self.background if self.background is not None else getattr(settings, "monitor_background",
                                                                                   True)
        ds = svc.catalog.id
        self._register_metrics(svc)
        if not background:
            doc = self._pass(svc)
            return {"monitor": _short(doc)}
        with self._lock:
            self._services[ds] = svc
            self._pending.add(ds)
            self._idle.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
                self._thread.start()
        self._wake.set()
        last = self.last.get(ds)
        return {"monitor": {"mode": "background", "last_pass": _short(last) if last else None,
                            "error": self.errors.get(ds)}}

    def monitor(self, svc):
        ds = svc.catalog.id
        mon = self.monitors.get(ds)
        if mon is None or mon.catalog.hash != svc.catalog.hash:
            from forecast.monitoring.monitor import Monitor
            from forecast.stores import ForecastStore, ObservationStore

            settings = self.settings or svc.settings
            # own store handles: the pass may run in another thread than the cycle's writes
            store = ObservationStore(settings.observation_store, lock_timeout=settings.lock_timeout)
            fstore = ForecastStore(settings.forecast_store_location, lock_timeout=settings.lock_timeout)
            mon = self.monitors[ds] = Monitor(settings, svc.catalog, store=store, fstore=fstore, clock=svc.clock)
        return mon

    def _pass(self, svc) -> dict:
        ds = svc.catalog.id
        try:
            doc = self.monitor(svc).run(svc.clock.now(), max_inits=self.max_inits or 24)
            self.errors.pop(ds, None)
        except Exception as e:
            self.errors[ds] = f"{type(e).__name__}: {e}"
            raise
        self.last[ds] = doc
        return doc

    def _run(self) -> None:
        try:  # Linux: a thread is a task with its own nice value; the cycle keeps the CPU first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while not self._stop:
            self._wake.wait(1.0)
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._pending:
                        self._idle.set()
                        break
                    ds = min(self._pending)
                    self._pending.discard(ds)
                    svc = self._services[ds]
                try:
                    self._pass(svc)
                except Exception:
                    log.exception("monitoring pass of %s failed", ds)

    def wait(self, timeout: float = 120.0) -> bool:
        """Wait until no pass is pending or running (tests, benchmarks, a clean stop)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._idle.wait(min(0.5, max(0.0, end - time.monotonic()))):
                with self._lock:
                    if not self._pending:
                        return True
        return False

    def close(self, timeout: float = 30.0) -> None:
        self.wait(timeout)
        self._stop = True
        self._wake.set()
        for mon in self.monitors.values():
            mon.notifier.drain(timeout)
            try:
                mon.db.close()
            except Exception:
                pass

    def _register_metrics(self, svc) -> None:
        reg = getattr(getattr(svc, "metrics", None), "registry", None)
        if reg is None or id(reg) in self._metrics_registered:
            return
        from forecast.monitoring.metrics import MonitorCollector

        settings = self.settings or svc.settings
        reg.register(MonitorCollector(settings.db_url))
        self._metrics_registered.add(id(reg))


def _short(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    return {"now": doc.get("now"), "seconds": doc.get("seconds"),
            "variables": {v: {"verified": d["verified"], "alerts": d["alerts"], "features": d["features"]}
                          for v, d in (doc.get("variables") or {}).items()}}


def monitor_hook(settings, *, background: bool | None = None) -> MonitorHook:
    """The hook the command line registers with the worker."""
    return MonitorHook(settings, background=background)
