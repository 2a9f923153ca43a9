"""The worker's clocks. Operations run on the wall clock; a replay of a recorded feed (`forecast replay`)
runs the service on the feed's own time, N times faster than real time, so that arrival times, lateness
and deadlines mean what they mean in operations. Tests set the time by hand.

A replay writes ``HOME/replay/<dataset>.json`` (``{"wall0", "sim0", "speed"}``); the worker and
`forecast cycle` of that dataset then read the time as ``sim0 + (wall - wall0) * speed`` until the file is
removed. ``FORECAST_CLOCK=system`` ignores it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from forecast.timeutil import iso, to_epoch

__all__ = ["Clock", "DatasetClock", "FixedClock", "ReplayClock", "SystemClock", "clock_for", "replay_clock_path",
           "write_replay_clock"]


class Clock:
    """What the worker asks of a clock: the time now, how fast it runs against the wall (to turn a budget
    in clock time into wall seconds), and a way to wait."""

    speed: float = 1.0

    def now(self) -> datetime:
        raise NotImplementedError

    def wall_seconds(self, clock_seconds: float) -> float:
        """Wall seconds that pass while this clock advances by ``clock_seconds``."""
        return clock_seconds / self.speed

    def sleep(self, wall_seconds: float, stop: threading.Event | None = None) -> None:
        """Wait ``wall_seconds`` (returns early when ``stop`` is set)."""
        if stop is not None:
            stop.wait(max(0.0, wall_seconds))
        else:
            time.sleep(max(0.0, wall_seconds))

    def describe(self) -> str:
        return type(self).__name__


class SystemClock(Clock):
    """The wall clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def describe(self) -> str:
        return "system clock"


@dataclass
class ReplayClock(Clock):
    """The time of a replayed feed: ``sim0`` at wall time ``wall0``, running ``speed`` times faster."""

    wall0: float
    sim0: float
    speed: float = 1.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.sim0 + (time.time() - self.wall0) * self.speed, tz=timezone.utc)

    def describe(self) -> str:
        return f"replay clock ({self.speed:g}x, started at {iso(self.sim0)})"


class FixedClock(Clock):
    """A clock set by hand (tests): ``now`` stays where it was put; `advance` moves it; sleeping advances it."""

    def __init__(self, t: datetime):
        self._t = t
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._t

    def set(self, t: datetime) -> None:
        with self._lock:
            self._t = t

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._t = self._t + timedelta(seconds=seconds)
            return self._t

    def sleep(self, wall_seconds: float, stop: threading.Event | None = None) -> None:
        self.advance(wall_seconds)
        if stop is not None and stop.is_set():
            return
        time.sleep(0.001)  # let other threads run

    def describe(self) -> str:
        return f"fixed clock at {iso(self.now())}"


def replay_clock_path(home: Path, dataset: str) -> Path:
    return Path(home) / "replay" / f"{dataset}.json"


def write_replay_clock(home: Path, dataset: str, *, sim0: datetime, speed: float, wall0: float | None = None) -> Path:
    """Start the replay clock of ``dataset`` (atomically: a reader never sees half a file)."""
    path = replay_clock_path(home, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"wall0": time.time() if wall0 is None else wall0, "sim0": to_epoch(sim0),
                               "speed": float(speed)}))
    os.replace(tmp, path)
    return path


class DatasetClock(Clock):
    """The clock of one dataset: its replay clock while ``HOME/replay/<dataset>.json`` exists (read again
    whenever the file changes, so a replay started after the worker takes effect at once), otherwise the
    system clock."""

    def __init__(self, home: Path, dataset: str):
        self.path = replay_clock_path(home, dataset)
        self._stamp: tuple | None = None
        self._clock: Clock = SystemClock()

    def _current(self) -> Clock:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            self._clock = SystemClock()
            if stamp is not None:
                try:
                    doc = json.loads(self.path.read_text())
                    self._clock = ReplayClock(wall0=float(doc["wall0"]), sim0=float(doc["sim0"]),
                                              speed=float(doc["speed"]))
                except (OSError, ValueError, KeyError, TypeError):
                    self._stamp = None  # half-written or unreadable: look again next time
        return self._clock

    @property
    def speed(self) -> float:  # type: ignore[override]
        return self._current().speed

    def now(self) -> datetime:
        return self._current().now()

    def describe(self) -> str:
        return self._current().describe()


def clock_for(home: Path, dataset: str) -> Clock:
    """The clock of one dataset (`DatasetClock`); ``FORECAST_CLOCK=system`` forces the system clock."""
    if os.environ.get("FORECAST_CLOCK", "").lower() == "system":
        return SystemClock()
    return DatasetClock(home, dataset)
