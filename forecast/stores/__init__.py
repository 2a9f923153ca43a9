"""The versioned stores: observations (values, revisions, flags) and forecasts (values, annotations,
provenance), each an Icechunk repository."""

from forecast.stores.forecasts import (
    ANNOTATIONS,
    PRODUCTION,
    ForecastStore,
    UnknownForecastError,
    forecast_store_for,
)
from forecast.stores.observations import ObservationStore, open_observations, store_for
from forecast.stores.summary import dataset_summary

__all__ = ["ANNOTATIONS", "PRODUCTION", "ForecastStore", "ObservationStore", "UnknownForecastError",
           "dataset_summary", "forecast_store_for", "open_observations", "store_for"]
