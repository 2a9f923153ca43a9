"""The worker's hold on the service database, made to survive its outages.

Every use goes through `ServiceDB`, which opens the components lazily, notices a connection failure, and
then keeps working without the database: cycle outcomes and review events go to the spool (written to
the database in order once it answers again), the production model's record last read is used, review
decisions wait in the queue until they can be read. A cycle never fails because the database is away.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from forecast.serialize import jsonable
from forecast.timeutil import parse_time
from forecast.worker.state import Spool, WorkerState

log = logging.getLogger(__name__)

__all__ = ["ServiceDB", "db_unreachable"]

#: seconds between attempts to reach a database that did not answer
RETRY_S = 5.0


def db_unreachable(e: BaseException) -> bool:
    """Whether ``e`` means the database cannot be reached (as opposed to a bad request)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(e, OperationalError):
        return True
    if isinstance(e, DBAPIError) and getattr(e, "connection_invalidated", False):
        return True
    return isinstance(e, (ConnectionError, TimeoutError)) or "could not connect" in str(e).lower()


def _event_row(e) -> dict[str, Any]:
    return jsonable(asdict(e))


def _event_from_row(row: dict[str, Any]):
    from qc.events import Event

    t = lambda s: parse_time(s) if isinstance(s, str) else s  # noqa: E731
    return Event(**{**row, "t_first": t(row["t_first"]), "t_last": t(row["t_last"]),
                    "bbox": tuple(row["bbox"]),
                    "latlon_box": tuple(row["latlon_box"]) if row["latlon_box"] is not None else None,
                    "xy_box": tuple(row["xy_box"]) if row["xy_box"] is not None else None,
                    "peak": (t(row["peak"][0]), int(row["peak"][1]), int(row["peak"][2])),
                    "test_names": tuple(row["test_names"]),
                    "cells": np.asarray(row["cells"], dtype="int64").reshape(-1, 3)})


class _SpoolingQueue:
    """The review queue as QC sees it: events that cannot reach the database are spooled."""

    def __init__(self, db: ServiceDB):
        self.db = db

    def enqueue(self, events, *, by: str = "qc"):
        from forecast.review import EnqueueResult

        events = list(events)
        queue = self.db.queue()
        if queue is not None:
            try:
                return queue.enqueue(events, by=by)
            except Exception as e:  # noqa: BLE001
                if not self.db.lost(e):
                    raise
        self.db.spool.add("events", [_event_row(e) for e in events])
        return EnqueueResult(0, 0, ())


class ServiceDB:
    """The review queue, model registry and worker state on the service database, tolerant of outages."""

    def __init__(self, settings, spool_path: Path, *, retry_s: float = RETRY_S):
        self.settings = settings
        self.spool = Spool(spool_path)
        self.retry_s = retry_s
        self._queue = self._registry = self._state = None
        self._down_since: float | None = None
        self._next_try = 0.0
        self.outages = 0

    # -- availability --------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._down_since is None

    def lost(self, e: BaseException) -> bool:
        """Call on an error: True (and the database is marked away) when it means unreachable."""
        if not db_unreachable(e):
            return False
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.outages += 1
            log.error("the service database is unreachable (%s); cycles go on, outcomes and review events are "
                      "spooled to %s", str(e).splitlines()[0][:200], self.spool.path)
        self._next_try = time.monotonic() + self.retry_s
        self._close()
        return True

    def _component(self, attr: str, make: Callable[[], Any]):
        if self._down_since is not None and time.monotonic() < self._next_try:
            return None
        obj = getattr(self, attr)
        if obj is None:
            try:
                obj = make()
            except Exception as e:  # noqa: BLE001
                if self.lost(e):
                    return None
                raise
            setattr(self, attr, obj)
        return obj

    def _close(self) -> None:
        for attr in ("_queue", "_registry", "_state"):
            obj = getattr(self, attr)
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001
                    pass
                setattr(self, attr, None)

    def close(self) -> None:
        self._close()

    # -- components ------------------------------------------------------------------------------------

    def queue(self):
        from forecast.review import ReviewQueue

        return self._component("_queue", lambda: ReviewQueue(self.settings.db_url))

    def registry(self):
        from forecast.registry import ModelRegistry

        return self._component("_registry", lambda: ModelRegistry(self.settings.db_url, self.settings.models_dir))

    def state(self) -> WorkerState | None:
        return self._component("_state", lambda: WorkerState(self.settings.db_url))

    def spooling_queue(self) -> _SpoolingQueue:
        return _SpoolingQueue(self)

    def call(self, what: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """``fn(component)`` for component ``what`` (``queue``, ``registry``, ``state``), or ``default``
        when the database is away (it is then marked away)."""
        comp = getattr(self, what)()
        if comp is None:
            return default
        try:
            return fn(comp)
        except Exception as e:  # noqa: BLE001
            if self.lost(e):
                return default
            raise

    # -- writing what was spooled --------------------------------------------------------------------

    def record_cycles(self, rows: list[dict[str, Any]]) -> None:
        """Append cycle outcomes, or spool them when the database is away (after what is spooled)."""
        if not rows:
            return
        if self.flush() and self.call("state", lambda s: s.record(rows), default=None) is not None:
            return
        self.spool.add("cycles", rows)

    def flush(self) -> bool:
        """Write the spool to the database, in order; True when nothing is left in it."""
        pending = self.spool.pending()
        if not pending:
            if self._down_since is not None and self.call("state", lambda s: s.ping() or True, default=False):
                self._back()
            return True
        state, queue = self.state(), self.queue()
        if state is None or queue is None:
            return False
        done = 0
        try:
            for kind, row in pending:
                if kind == "cycles":
                    state.record([row])
                elif kind == "events":
                    queue.enqueue([_event_from_row(row)])
                done += 1
        except Exception as e:  # noqa: BLE001
            self.spool.clear()  # keep what did not make it, in order
            for kind, row in pending[done:]:
                self.spool.add(kind, [row])
            if self.lost(e):
                return False
            raise
        self.spool.clear()
        log.warning("the service database is back: %d spooled row(s) written", len(pending))
        self._back()
        return True

    def _back(self) -> None:
        if self._down_since is not None:
            log.warning("the service database answers again after %.0f s", time.monotonic() - self._down_since)
        self._down_since = None

    @property
    def down_for(self) -> float | None:
        return None if self._down_since is None else time.monotonic() - self._down_since


def iso_or_none(t: datetime | None) -> str | None:
    from forecast.timeutil import iso

    return None if t is None else iso(t)
