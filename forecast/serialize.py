"""One JSON sanitiser for every document the service writes (reports, registry records, CLI and API
output): NaN and infinities -> null, numpy -> Python, datetimes -> ISO 8601 UTC with ``Z``, durations ->
seconds, paths -> strings."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (see the module docstring); dict keys become strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):  # times element-wise: tolist() would give integers for [ns]
        return [jsonable(v) for v in value] if value.dtype.kind in "mM" else jsonable(value.tolist())
    if isinstance(value, np.timedelta64):  # before the integers: timedelta64 is a numpy integer
        return int(value.astype("timedelta64[s]").astype(np.int64))
    if isinstance(value, _dt.timedelta):
        return int(value.total_seconds())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value.astype("datetime64[s]")) + "Z"
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="seconds") + "Z"
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, bytes):
        return value.hex()
    return value
