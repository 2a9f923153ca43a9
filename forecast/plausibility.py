"""Plausibility annotations of forecast values: the codes and names shared by the forecaster, the forecast
store, the API and the console, and the rule that assigns them."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ANNOTATIONS", "DEGRADED", "EXTREME", "IMPLAUSIBLE", "NO_VALUE", "OK", "annotate", "annotate_probability",
           "annotation_attrs", "annotation_counts"]

#: Annotation names in code order (the values of ``<var>_annotation``).
ANNOTATIONS = ("ok", "extreme", "implausible", "degraded_inputs")
OK, EXTREME, IMPLAUSIBLE, DEGRADED = range(4)
#: The stored code of a value never written (an exceedance probability of an init made before probabilities
#: were stored): served as null, never as an annotation.
NO_VALUE = 255


def annotation_attrs() -> dict[str, Any]:
    """CF flag attributes of an annotation array."""
    return {"flag_values": list(range(len(ANNOTATIONS))), "flag_meanings": " ".join(ANNOTATIONS),
            "long_name": "plausibility annotation of the forecast value"}


def annotation_counts(codes: np.ndarray) -> dict[str, int]:
    """How many values carry each annotation."""
    codes = np.asarray(codes)  # no int64 copy of a forecast-sized array: one comparison per code
    return {name: int(np.count_nonzero(codes == code)) for code, name in enumerate(ANNOTATIONS)}


def annotate(values: np.ndarray, valid_times: np.ndarray, *, physical_range: tuple[float, float],
             record_min: list[float] | None, record_max: list[float] | None, degraded: np.ndarray) -> np.ndarray:
    """Per value (lead, y, x): ``ok``, ``extreme`` (beyond the climatological record of the valid time's
    month), ``implausible`` (outside the physical range: the value is kept, never clipped) or
    ``degraded_inputs`` (``degraded`` cells (y, x), or no value at all).
    Precedence: implausible > degraded_inputs > extreme > ok."""
    lo, hi = physical_range
    out = np.zeros(values.shape, dtype=np.uint8)
    months = valid_times.astype("datetime64[M]").astype(int) % 12
    for j, m in enumerate(months):
        v = values[j]
        ext = np.zeros(v.shape, dtype=bool)
        if record_max is not None:
            ext |= v > record_max[m]
        if record_min is not None:
            ext |= v < record_min[m]
        out[j][ext] = EXTREME
    out[:, degraded] = DEGRADED
    out[~np.isfinite(values)] = DEGRADED
    out[(values < lo) | (values > hi)] = IMPLAUSIBLE
    return out


def annotate_probability(probabilities: np.ndarray, *, degraded: np.ndarray) -> np.ndarray:
    """Per exceedance probability (lead, y, x): ``degraded_inputs`` on ``degraded`` cells (y, x) or where there
    is no value, ``ok`` elsewhere (a probability in [0, 1] is never extreme or implausible)."""
    out = np.zeros(np.shape(probabilities), dtype=np.uint8)
    out[:, degraded] = DEGRADED
    out[~np.isfinite(probabilities)] = DEGRADED
    return out
