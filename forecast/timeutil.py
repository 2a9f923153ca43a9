"""Times: one spelling everywhere. UTC-aware datetimes inside, ISO 8601 with ``Z`` outside, int64 epoch
seconds in the stores. Every part of the service formats and parses times through these functions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["utc", "parse_time", "iso", "iso_ms", "stamp", "to_epoch", "from_epoch", "parse_duration", "now"]


def now() -> datetime:
    """The current time, UTC-aware (the one clock call that services inject or replace in tests)."""
    return datetime.now(timezone.utc)


def utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset; naive means UTC). Raises ValueError naming the text."""
    try:
        return utc(datetime.fromisoformat(text.strip()))
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r} is not an ISO-8601 time like 2026-07-15T12:00Z") from None


def to_epoch(t: datetime) -> int:
    return int(utc(t).timestamp())


def from_epoch(s: int | float) -> datetime:
    return datetime.fromtimestamp(int(s), tz=timezone.utc)


def iso(t: int | float | datetime) -> str:
    """``2026-07-15T12:00:00Z`` from epoch seconds or a datetime (whole seconds)."""
    d = t if isinstance(t, datetime) else from_epoch(t)
    return utc(d).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(t: datetime) -> str:
    """``2026-07-15T12:00:00.123456Z``: for records whose order within a second matters (registry history)."""
    return utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp(t: datetime, *, seconds: bool = False) -> str:
    """A compact stamp for file and folder names: ``20260715T1200Z`` (``20260715T120000Z`` with seconds)."""
    return utc(t).strftime("%Y%m%dT%H%M%SZ" if seconds else "%Y%m%dT%H%MZ")


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """A duration such as ``2min``, ``90s``, ``1h`` (pandas spelling) or seconds as a number.

    Raises:
        ValueError: the text is not a duration (the message names it).
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    import pandas as pd

    try:
        td = pd.Timedelta(str(value).strip())
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a duration (e.g. 2min, 90s, 1h)") from None
    if pd.isna(td):
        raise ValueError(f"{value!r} is not a duration (e.g. 2min, 90s, 1h)")
    return td.to_pytimedelta()
