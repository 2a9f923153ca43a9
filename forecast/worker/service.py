"""`forecast worker`: the one long-running writer of the stores. It holds the store's lease (a standby
waits and takes over within the lease's time when the holder dies), runs each dataset's cycle whenever
files arrive or an init falls due, and stops cleanly on SIGTERM: the current stage finishes, the lease is
given back, the process exits 0. A SIGKILL loses nothing either: every stage is an atomic commit (the
forecast store's writes are idempotent), and a restarted worker finds in the cycle log what was done.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from forecast.clock import Clock
from forecast.memory import release_free_memory, resident_mib
from forecast.timeutil import iso
from forecast.worker.cycle import CycleHook, Service, open_service, run_cycle
from forecast.worker.metrics import WorkerMetrics
from forecast.worker.runner import ModelProcess
from forecast.worker.state import WorkerState
from forecast.worker.status import lease_name

log = logging.getLogger("forecast.worker")

#: how many times this worker has restarted itself for memory (carried across the re-executions)
RESTARTS_ENV = "FORECAST_WORKER_MEMORY_RESTARTS"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

__all__ = ["Worker"]


class Worker:
    """Runs the cycles of some datasets until stopped (see the module docstring)."""

    def __init__(self, settings, datasets: list[str], *, clock: Clock | None = None, poll_s: float | None = None,
                 lease_ttl_s: float | None = None, hooks: list[CycleHook] | None = None,
                 on_cycle: Callable[[dict], None] | None = None, model_process: bool = True,
                 worker_id: str | None = None, metrics_port: int | None = None):
        self.settings = settings
        self.datasets = list(datasets)
        self.poll_s = poll_s if poll_s is not None else settings.worker_poll_s
        self.ttl = lease_ttl_s if lease_ttl_s is not None else settings.worker_lease_ttl_s
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop = threading.Event()
        self.on_cycle = on_cycle
        self.metrics = WorkerMetrics()
        self.metrics_port = metrics_port if metrics_port is not None else settings.worker_metrics_port
        self.runner = ModelProcess(threads=settings.worker_model_threads) if model_process else None
        self.services: list[Service] = [
            open_service(settings, d, clock=clock, runner=self.runner, worker_id=self.id, hooks=hooks)
            for d in self.datasets]
        for s in self.services:
            s.stop, s.metrics = self.stop, self.metrics
        self.holding = False
        self.lease_lost = threading.Event()
        self.cycles = 0
        #: the most resident memory (MiB) in the first ``worker_memory_warm_cycles`` cycles that did work, and
        #: whether the worker stopped to restart itself because it grew beyond ``worker_max_rss_growth_mib``
        #: past it (the command re-executes it)
        self.rss_base: float | None = None
        self._busy_cycles = 0
        self.restart = False
        self.signalled = False  # SIGTERM / SIGINT received: no restart
        self.restarts = int(os.environ.get(RESTARTS_ENV, "0") or 0)
        self._status_path = Path(settings.home) / "worker" / f"status-{os.getpid()}.json"

    # -- the lease -----------------------------------------------------------------------------------------

    def _state(self) -> WorkerState | None:
        return self.services[0].db.state() if self.services else None

    def _acquire(self) -> bool:
        db = self.services[0].db
        got = db.call("state", lambda s: s.acquire(lease_name(self.settings), self.id, self.ttl), default=None)
        if got is None:  # the database is away: keep the lease we had (a standby cannot take it either)
            return self.holding
        if got and not self.holding:
            log.warning("worker %s holds the lease of %s", self.id, self.settings.observation_store)
        self.holding = bool(got)
        self.metrics.lease.set(1 if self.holding else 0)
        return self.holding

    def _heartbeat(self) -> None:
        """Renew the lease while holding it, also during a long cycle."""
        while not self.stop.wait(self.ttl / 3):
            if not self.holding:
                continue
            db = self.services[0].db
            ok = db.call("state", lambda s: s.renew(lease_name(self.settings), self.id, self.ttl), default=True)
            if ok is False:
                log.error("worker %s lost the lease of %s to another worker; it stops writing",
                          self.id, self.settings.observation_store)
                self.holding = False
                self.lease_lost.set()
                self.metrics.lease.set(0)

    # -- running ---------------------------------------------------------------------------------------------

    def _signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            log.warning("worker %s: %s received, finishing the current stage", self.id, signal.Signals(signum).name)
            self.signalled = True
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        # a worker that restarted itself was executed with them blocked (see `forecast.cli.worker`): one sent
        # during the restart arrives now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def run(self, *, max_cycles: int | None = None) -> int:
        """Cycle until stopped (SIGTERM / `stop`) or, for tests, ``max_cycles`` cycles of every dataset."""
        self._signals()
        if self.metrics_port:
            self.metrics.serve(self.metrics_port)
        if self.runner is not None:
            self.runner.warm_async()
        # the fallbacks run under the deadline the model missed: their libraries (pysteps: ~3 s of imports)
        # are loaded now, not when the first fallback is due
        threading.Thread(target=_import_fallbacks, name="fallback-warm", daemon=True).start()
        hb = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        hb.start()
        log.warning("worker %s starts on %s (%s)", self.id, ", ".join(self.datasets),
                    self.services[0].clock.describe() if self.services else "no dataset")
        standby_logged = False
        try:
            while not self.stop.is_set():
                if not self._acquire():
                    if not standby_logged:
                        lease = self.services[0].db.call("state", lambda s: [x for x in s.leases()
                                                         if x["name"] == lease_name(self.settings)], default=[])
                        holder = lease[0]["holder"] if lease else "?"
                        log.warning("worker %s is standby: %s holds the lease", self.id, holder)
                        standby_logged = True
                    self._write_status("standby")
                    self.stop.wait(max(0.2, self.ttl / 3))
                    continue
                standby_logged = False
                self.lease_lost.clear()
                busy = False
                for svc in self.services:
                    if self.stop.is_set() or self.lease_lost.is_set():
                        break
                    self._write_status("cycle", svc.catalog.id)
                    try:
                        report = run_cycle(svc)
                    except Exception:  # noqa: BLE001 - one bad cycle must not stop the service
                        log.exception("cycle of %s failed", svc.catalog.id)
                        continue
                    busy |= bool(report["forecasts"] or report["ingest"].get("files"))
                    if self.on_cycle is not None:
                        self.on_cycle(report)
                self.cycles += 1
                self.metrics.db_up.set(1 if self.services[0].db.available else 0)
                self._write_status("idle")
                if busy:  # the cycle's freed fields back to the system (see `forecast.memory`)
                    release_free_memory()
                if max_cycles is not None and self.cycles >= max_cycles:
                    break
                if busy and self._memory_grown():
                    self.restart = True
                    break
                if not busy:
                    # look at least every 5 s of the clock's time: a replay N times faster polls N times faster
                    self.stop.wait(min(self.poll_s, 5.0 / max(self.services[0].clock.speed, 1e-9)))
        finally:
            self.close()
        return 0

    def _memory_grown(self) -> bool:
        """Whether the resident memory grew beyond the setting past its most in the first cycles that did work."""
        limit = self.settings.worker_max_rss_growth_mib
        rss = resident_mib()
        if not limit or rss is None:
            return False
        self._busy_cycles += 1
        warm = self.settings.worker_memory_warm_cycles
        if self._busy_cycles <= warm:  # imports, caches and the largest fields of the cycle in place
            self.rss_base = max(self.rss_base or 0.0, rss)
            return False
        if rss - self.rss_base <= limit:
            return False
        log.warning("worker %s: resident memory %.0f MiB, %.0f MiB more than in its first %d cycles (limit %g MiB "
                    "of growth); it gives the lease back and restarts itself", self.id, rss, rss - self.rss_base,
                    warm, limit)
        return True

    def close(self) -> None:
        self.stop.set()
        if self.holding:
            self.services[0].db.call("state", lambda s: s.release(lease_name(self.settings), self.id))
            self.holding = False
        if self.runner is not None:
            self.runner.close()
        for svc in self.services:
            svc.db.close()
        self._write_status("restarting" if self.restart else "stopped")

    def _write_status(self, state: str, dataset: str | None = None) -> None:
        doc = {"worker": self.id, "pid": os.getpid(), "state": state, "memory_restarts": self.restarts,
               "rss_mib": _round(resident_mib()), "rss_baseline_mib": _round(self.rss_base), "dataset": dataset,
               "holding": self.holding,
               "cycles": self.cycles, "at": iso(datetime.now(timezone.utc)), "datasets": self.datasets,
               "database": "up" if (self.services and self.services[0].db.available) else "unreachable",
               "spooled": len(self.services[0].db.spool) if self.services else 0}
        try:
            self._status_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._status_path.with_name(f".status.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self._status_path)
        except OSError:
            pass


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def _import_fallbacks() -> None:
    from forecast.nowcast.quiet import quiet_stdout

    try:
        with quiet_stdout():  # pysteps prints its configuration path on import: not onto a --json stdout
            import pysteps.extrapolation.semilagrangian  # noqa: F401
            import pysteps.motion.lucaskanade  # noqa: F401
    except Exception:  # noqa: BLE001 - a fallback that cannot import says so when it runs
        log.debug("pre-importing the fallbacks' libraries failed", exc_info=True)
