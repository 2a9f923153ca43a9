"""Eulerian persistence: the last usable field at every lead."""

from __future__ import annotations

import numpy as np
import xarray as xr

from forecast.nowcast.base import (
    check_n_leads,
    check_step,
    output,
    persistence_fields,
    prepare,
)


class Persistence:
    """Eulerian persistence: the last usable field, unchanged, at every lead.

    Missing cells of the last slot are taken from the most recent earlier slot that has them (NaN if
    none does). Works for any variable; values are passed through as observed.
    """

    name = "persistence"
    min_slots = 1

    def fit(self, obs: xr.DataArray) -> Persistence:
        """Nothing to learn."""
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
        """Raises: BadInputError for bad ``n_leads``, ``step``, ``inputs`` or ``mask``."""
        n_leads, step = check_n_leads(n_leads), check_step(step)
        prep = prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
        return output(prep, persistence_fields(prep, n_leads), step=step, method=self.name)
