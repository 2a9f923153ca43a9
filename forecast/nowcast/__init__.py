"""Nowcasting methods: the baselines every forecast is compared against (persistence, climatology,
extrapolation, S-PROG) and the probabilistic ones (STEPS, local Lagrangian probability, neighbourhood
persistence), one module each, behind one registry.

One registry in the style of pysteps: ``get_method(name, **options)`` returns a fresh `Nowcaster`.
Every method takes the k most recent observation slots up to the init time and returns a deterministic
forecast with dims (lead_time, y, x). pysteps (and through it OpenCV and matplotlib) is imported only
inside the methods that need it, so ``import forecast.nowcast`` stays light.

Example::

    from forecast.nowcast import get_method

    obs = ds["precipitation_rate"].sel(time=slice(None, init_time))[-6:]
    usable = usable_mask(ds["precipitation_rate_qc"], ds["precipitation_rate_qc_tests"])
    fcst = get_method("extrapolation").predict(obs, n_leads=12, step=np.timedelta64(5, "m"),
                                               mask=usable.sel(time=obs.time))
    fcst.attrs.get("fallback")  # None, or why persistence was used instead
"""

from __future__ import annotations

from typing import Any

from forecast.errors import BadInputError
from forecast.nowcast.base import NotFittedError, Nowcaster, ProbabilisticNowcaster
from forecast.nowcast.climatology import Climatology
from forecast.nowcast.lagrangian import Extrapolation
from forecast.nowcast.local_probability import LocalProbability
from forecast.nowcast.neighbourhood import NeighbourhoodPersistence
from forecast.nowcast.persistence import Persistence
from forecast.nowcast.sprog import SProg
from forecast.nowcast.steps import Steps

__all__ = ["BASELINES", "PROBABILISTIC_BASELINES", "Climatology", "Extrapolation", "LocalProbability",
           "NeighbourhoodPersistence", "NotFittedError", "Nowcaster", "Persistence", "ProbabilisticNowcaster",
           "SProg", "Steps", "available_methods", "get_method"]

_METHODS: dict[str, type] = {
    "persistence": Persistence,
    "climatology": Climatology,
    "extrapolation": Extrapolation,
    "sprog": SProg,
    "steps": Steps,
    "local_probability": LocalProbability,
    "neighbourhood_persistence": NeighbourhoodPersistence,
}
#: the baseline methods, in the order reports list them
BASELINES = ("persistence", "extrapolation", "sprog", "climatology")
#: the probabilistic baselines (`ProbabilisticNowcaster`s), run by the hindcast beside `BASELINES` when the
#: variable has catalog thresholds; kept apart because a STEPS ensemble costs far more than the rest
PROBABILISTIC_BASELINES = ("steps", "local_probability", "neighbourhood_persistence")


def available_methods() -> tuple[str, ...]:
    """The names `get_method` accepts."""
    return tuple(sorted(_METHODS))


def get_method(name: str, **options: Any) -> Nowcaster:
    """A new nowcaster of the method ``name`` (case-insensitive), built with ``options``.

    Raises:
        BadInputError: an unknown name (the message lists the available ones) or a bad option value.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _METHODS:
        raise BadInputError(f"unknown nowcasting method {name!r}; available: {', '.join(available_methods())}")
    try:
        return _METHODS[key](**options)
    except TypeError as e:
        raise BadInputError(f"bad options for nowcasting method {key!r}: {e}") from None
