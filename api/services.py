"""What the API reads and writes, opened lazily so that the app starts (and says it is not ready)
before the stores or the database exist: catalogs, the observation and forecast stores, the review
queue, the users table and the model registry; and the bearer-token lookups of ``api.auth``."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from api.auth import TokenCache
from api.readers import ForecastReader, ObservationReader
from forecast.catalog import Catalog
from forecast.settings import Settings

log = logging.getLogger("api")


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._queue = None
        self._users = None
        self._registry = None
        self._worker_state = None
        self._catalogs: dict[str, Catalog] | None = None
        self._catalogs_at = 0.0
        self.started_at = time.time()
        self.observations = ObservationReader(settings, self)
        self.forecasts = ForecastReader(settings, self)
        self.token_cache = TokenCache()

    # -- catalogs -------------------------------------------------------------------------------
    def catalogs(self) -> dict[str, Catalog]:
        """Catalogs by dataset id, re-read at most once a minute (a broken catalog leaves the last good set)."""
        now = time.monotonic()
        if self._catalogs is None or now - self._catalogs_at > 60:
            from forecast.catalog import load_catalogs

            try:
                cats = load_catalogs(self.settings.catalogs)
            except Exception as e:  # noqa: BLE001 - readiness reports it
                log.warning("catalogs in %s cannot be loaded: %s", self.settings.catalogs, e)
                cats = self._catalogs if self._catalogs is not None else {}
            self._catalogs, self._catalogs_at = cats, now
        return self._catalogs

    def catalog(self, dataset: str) -> Catalog | None:
        return self.catalogs().get(dataset)

    # -- SQL ------------------------------------------------------------------------------------
    @property
    def queue(self):
        if self._queue is None:
            with self._lock:
                if self._queue is None:
                    from forecast.review import ReviewQueue

                    self._queue = ReviewQueue(self.settings.db_url)
        return self._queue

    @property
    def users(self):
        if self._users is None:
            with self._lock:
                if self._users is None:
                    from forecast.db.users import UserStore

                    self._users = UserStore(self.settings.db_url)
        return self._users

    @property
    def worker_state(self):
        """The worker's cycle log and lease (read only here)."""
        if self._worker_state is None:
            with self._lock:
                if self._worker_state is None:
                    from forecast.worker.state import WorkerState

                    self._worker_state = WorkerState(self.settings.db_url)
        return self._worker_state

    @property
    def registry(self) -> Any | None:
        """The model registry, or None when this installation has none (module not there)."""
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    try:
                        from forecast.registry import ModelRegistry
                    except ImportError:
                        return None
                    self._registry = ModelRegistry(self.settings.db_url, self.settings.models_dir)
        return self._registry

    def close(self) -> None:
        for obj in (self._queue, self._users, self._worker_state):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001
                    pass
        reg = self._registry
        if reg is not None and hasattr(reg, "close"):
            try:
                reg.close()
            except Exception:  # noqa: BLE001
                pass
