"""What the API's store readers share: the store opened on first use and its branch head looked up at
most every ``api_head_check_s`` seconds, per-snapshot caches dropped when the head moves."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("api")


class HeadReader:
    """Base of the observation and forecast readers.

    Subclasses define ``open_store`` (the store object), ``location`` (for the log) and ``forget``
    (drop what was cached for the previous snapshot); ``what`` names the store. ``lock`` guards the
    subclass's per-snapshot state.
    """

    what = "store"

    def __init__(self, settings, services=None):
        self.settings = settings
        self.services = services
        self.lock = threading.RLock()
        self._store = None
        self._head: str | None = None
        self._head_at = -1e9

    def open_store(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def location(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def forget(self) -> None:
        """Drop the per-snapshot caches (called under the lock when the head moves)."""

    @property
    def store(self):
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def exists(self) -> bool:
        try:
            return bool(self.store.exists())
        except Exception:  # noqa: BLE001
            return False

    def head(self, *, force: bool = False) -> str | None:
        """The branch head's snapshot id, looked up at most every ``api_head_check_s`` seconds."""
        now = time.monotonic()
        if not force and now - self._head_at < self.settings.api_head_check_s:
            return self._head
        with self.lock:
            if not force and now - self._head_at < self.settings.api_head_check_s:
                return self._head
            head = None
            if self.exists():
                try:
                    head = self.store.head()
                except Exception as e:  # noqa: BLE001 - an unreadable store is "no data" + not ready
                    log.warning("%s %s cannot be read: %s", self.what, self.location(), e)
            if head != self._head:
                self.forget()
                self._head = head
            self._head_at = now
            return head
