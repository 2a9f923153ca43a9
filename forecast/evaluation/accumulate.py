"""What the deterministic and the probabilistic verifiers share: exact fixed-point sums, time and key
conventions, argument checks, and the per-method bookkeeping (`MethodSums`: which inits each method has,
adding one init's part, the checks before merging two partial results).
"""

from __future__ import annotations

import datetime as _dt
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from forecast.errors import BadInputError
from forecast.timeutil import iso

__all__ = ["FIXED_BITS", "FIXED_ONE", "MethodSums", "check_leads", "check_thresholds", "check_windows", "from_fixed",
           "init_seconds", "score_key", "to_fixed"]


# Floats are accumulated as exact integers in units of 2**-1074 (the smallest float64 step), so the
# total is independent of the order in which inits arrive; converted back with one correct rounding.
FIXED_BITS = 1074
FIXED_ONE = 1 << FIXED_BITS


def to_fixed(x: float) -> int:
    if not math.isfinite(x):
        raise BadInputError(f"a forecast or observation sum is not finite ({x}); values are too large to verify")
    num, den = float(x).as_integer_ratio()
    return num << (FIXED_BITS - (den.bit_length() - 1))


def from_fixed(n: int, scale_bits: int = FIXED_BITS) -> float:
    return n / (1 << scale_bits)  # int / int is correctly rounded in Python


def score_key(value: float) -> str:
    """JSON key of a threshold or window: the shortest exact decimal ("1", "0.5", "10")."""
    return np.format_float_positional(float(value), trim="-")


def init_seconds(init_time: Any) -> int:
    """Epoch seconds (UTC) of an init time given as np.datetime64, datetime (naive = UTC) or ISO string."""
    try:
        if isinstance(init_time, _dt.datetime):
            if init_time.tzinfo is not None:
                init_time = init_time.astimezone(_dt.timezone.utc).replace(tzinfo=None)
            value = np.datetime64(init_time, "s")
        elif isinstance(init_time, str):
            value = np.datetime64(init_time.removesuffix("Z").removesuffix("+00:00"), "s")
        else:
            value = np.datetime64(init_time, "s")
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"init_time {init_time!r} is not a time; pass a numpy datetime64") from exc
    if np.isnat(value):
        raise BadInputError("init_time is NaT; pass a real time")
    return int(value.astype("int64"))



# ---------------------------------------------------------------- argument checks


def check_leads(lead_times: Sequence[Any]) -> np.ndarray:
    try:
        arr = np.asarray(lead_times)
        if np.issubdtype(arr.dtype, np.timedelta64):
            secs = arr.astype("timedelta64[s]").astype(np.int64)
            exact = (arr.astype("timedelta64[ns]") == secs.astype("timedelta64[s]").astype("timedelta64[ns]")).all()
        else:
            secs = arr.astype(np.int64)
            exact = bool(np.all(arr == secs))
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"lead_times must be numpy timedelta64 values or seconds, got {lead_times!r}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise BadInputError(f"lead_times must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not exact:
        raise BadInputError("lead_times must be whole seconds")
    if np.any(np.diff(secs) <= 0):
        raise BadInputError(f"lead_times must be strictly increasing, got {secs.tolist()} s")
    if secs[0] < 0:
        raise BadInputError(f"lead_times must not be negative, got {secs.tolist()} s")
    return secs


def check_thresholds(values: Sequence[float], name: str) -> tuple[float, ...]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{name} must be numbers, got {values!r}") from exc
    if arr.ndim != 1:
        raise BadInputError(f"{name} must be a 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BadInputError(f"{name} must be finite, got {arr.tolist()}")
    if np.any(np.diff(arr) <= 0):
        raise BadInputError(f"{name} must be strictly increasing, got {arr.tolist()}")
    return tuple(float(t) for t in arr)


def check_windows(values: Sequence[int]) -> tuple[int, ...]:
    try:
        arr = np.asarray(values)
        whole = np.issubdtype(arr.dtype, np.integer) or bool(np.all(arr == np.round(arr)))
        ok = arr.ndim == 1 and arr.size > 0 and whole
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise BadInputError(f"fss_windows must be a non-empty sequence of whole numbers of cells, got {values!r}")
    wins = arr.astype(np.int64)
    if np.any(wins < 1) or np.any(wins % 2 == 0):
        raise BadInputError(f"fss_windows must be positive odd sizes (centred windows), got {wins.tolist()}")
    if np.any(np.diff(wins) <= 0):
        raise BadInputError(f"fss_windows must be strictly increasing, got {wins.tolist()}")
    return tuple(int(w) for w in wins)


# ---------------------------------------------------------------- per-method bookkeeping


class _Sums(Protocol):
    records: dict[int, Any]

    def absorb(self, other: Any) -> None: ...


S = TypeVar("S", bound=_Sums)


class MethodSums(ABC, Generic[S]):
    """Per-method running sums over init times (each a ``_Sums``: ``records`` per init and ``absorb``).

    Subclasses define ``_config()`` (what two partial results must share to be merged) and their own
    ``add`` / ``merge``, built on `_check_new`, `_keep`, `_check_merge` and `_absorb_all`.
    """

    def __init__(self) -> None:
        self.grid_shape: tuple[int, ...] | None = None
        self._acc: dict[str, S] = {}

    @property
    def methods(self) -> tuple[str, ...]:
        """Names of the methods added so far, sorted."""
        return tuple(sorted(self._acc))

    def inits(self, method: str) -> np.ndarray:
        """Init times (``datetime64[s]``, sorted) already added for ``method`` (empty if none): resume from here."""
        acc = self._acc.get(method)
        return np.array(sorted(acc.records) if acc else [], dtype="int64").astype("datetime64[s]")

    @abstractmethod
    def _config(self) -> dict:
        """What two partial results must share to be merged (lead times, thresholds, ...)."""

    def _check_new(self, method: Any, init_time: Any) -> int:
        """The init's epoch seconds, once ``method`` is a name and (init, method) was not added before."""
        if not isinstance(method, str) or not method:
            raise BadInputError(f"method must be a non-empty string, got {method!r}")
        init = init_seconds(init_time)
        acc = self._acc.get(method)
        if acc is not None and init in acc.records:
            raise BadInputError(f"init_time {iso(init)} was already added for method {method!r}")
        return init

    def _keep(self, method: str, part: S, grid_shape: tuple[int, ...]) -> None:
        """Add one init's ``part`` to ``method``'s sums."""
        self.grid_shape = grid_shape
        acc = self._acc.get(method)
        if acc is None:
            self._acc[method] = part
        else:
            acc.absorb(part)

    def _check_merge(self, other: Any) -> None:
        """A BadInputError unless ``other`` is of this kind, with the same configuration and grid and no
        (init, method) pair in common."""
        kind = type(self).__name__
        if not isinstance(other, type(self)):
            raise BadInputError(f"other must be a {kind}, got {type(other).__name__}")
        mine, theirs = self._config(), other._config()
        for k in mine:
            if mine[k] != theirs[k]:
                raise BadInputError(f"cannot merge {kind}s with different {k}: {mine[k]} and {theirs[k]}")
        if self.grid_shape and other.grid_shape and self.grid_shape != other.grid_shape:
            raise BadInputError(f"cannot merge {kind}s on different grids: {self.grid_shape} and {other.grid_shape}")
        for method, acc in other._acc.items():
            both = set(self._acc[method].records) & set(acc.records) if method in self._acc else set()
            if both:
                raise BadInputError(f"cannot merge: init_time {iso(min(both))} of method {method!r} is in both {kind}s")

    def _absorb_all(self, other: MethodSums[S], empty: Callable[[S], S]) -> None:
        """Add every method's sums of ``other`` (checked by `_check_merge`); ``empty(acc)`` makes zero sums
        shaped like ``acc`` for a method this one does not have yet."""
        for method, acc in other._acc.items():
            if method not in self._acc:
                self._acc[method] = empty(acc)
            self._acc[method].absorb(acc)
        self.grid_shape = self.grid_shape or other.grid_shape
