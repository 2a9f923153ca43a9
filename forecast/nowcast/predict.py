"""`forecast predict`: read the inputs of one init time, forecast with the fallback chain, store the
forecast with its provenance (idempotent per model and input revisions)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import xarray as xr

from forecast.catalog import Catalog, get_catalog
from forecast.clock import clock_for
from forecast.errors import BadInputError
from forecast.nowcast.forecaster import Forecaster
from forecast.stores import PRODUCTION, forecast_store_for, open_observations, store_for
from forecast.timeutil import iso, parse_time, to_epoch, utc


def read_inputs(store, catalog: Catalog, variable: str, init: datetime, k: int, *, as_of: datetime,
                snapshot: str | None = None) -> xr.Dataset:
    """The k slots up to ``init`` as known at ``as_of`` (loaded), or BadInputError when none holds data."""
    step = timedelta(seconds=int(catalog.time.step_seconds))
    ds = open_observations(catalog.id, store=store, start=init - (k - 1) * step, end=init, as_of=as_of,
                           snapshot=snapshot)
    keep = [variable] + [n for n in (f"{variable}_qc", f"{variable}_qc_tests") if n in ds]
    ds = ds[keep].load()
    if not np.isfinite(ds[variable].values).any():
        raise BadInputError(_why_nothing(store, catalog, variable, init, k, as_of, snapshot))
    return ds


def _why_nothing(store, catalog: Catalog, variable: str, init: datetime, k: int, as_of: datetime,
                 snapshot: str | None) -> str:
    """What actually happened when the inputs of an init were empty as known at ``as_of``: nothing was
    ever stored for those slots, or it became available only later (and when)."""
    step = timedelta(seconds=int(catalog.time.step_seconds))
    head = f"no observations of {catalog.id}/{variable} in the {k} slots up to {iso(init)} as known at {iso(as_of)}"
    latest = open_observations(catalog.id, store=store, start=init - (k - 1) * step, end=init, snapshot=snapshot)
    avail = latest[f"{variable}_available_at"].values
    arrived = avail[~np.isnat(avail)]
    if not arrived.size:
        return f"{head}: nothing was ever stored for them; ingest those slots, or pick another init time"
    first = iso(datetime.fromtimestamp(int(arrived.min().astype("datetime64[s]").astype("int64")), timezone.utc))
    return (f"{head}: those slots became available at {first}, after {iso(as_of)}; read them as known later "
            "(a later as-of time), or, when they were a backfill of a live feed, ingest them declaring each "
            "slot's own arrival (a latency after its time) so that past init times see them")


def predict(settings, dataset: str, init: datetime | str, *, model: str | None = None,
            variable: str | None = None, deadline: float | None = None, as_of: datetime | str | None = None,
            registry=None) -> dict[str, Any]:
    """Produce, store and report one forecast (see the module docstring). The JSON report has
    ``method``, ``fallback``, ``snapshot`` (the forecast store's), ``written`` and ``provenance``."""
    from forecast.registry.store import ModelRegistry

    catalog = get_catalog(settings.catalogs, dataset)
    init_dt = parse_time(init) if isinstance(init, str) else utc(init)
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {dataset!r} has a monthly time axis; nowcasts need a regular sub-daily axis")

    slot = catalog.time.slot_of(to_epoch(init_dt))
    if slot is None or catalog.time.label(slot) != to_epoch(init_dt):
        raise BadInputError(f"init time {iso(init_dt)} is not on the time axis of {dataset} "
                            f"(slots every {catalog.time.step} from {iso(catalog.time.start)})")
    # as known now (the dataset's clock: a replay's own time while one runs); --as-of reproduces a past one
    as_of_dt = clock_for(settings.home, dataset).now() if as_of is None else (
        parse_time(as_of) if isinstance(as_of, str) else utc(as_of))
    if variable is None and model is None:  # with a model: the model's variable, below
        if len(catalog.variables) != 1:
            raise BadInputError(f"dataset {dataset!r} has several variables ({', '.join(catalog.variables)}); "
                                "name the one to forecast", param="variable")
        variable = next(iter(catalog.variables))
    settings.home.mkdir(parents=True, exist_ok=True)
    if registry is None:
        registry = ModelRegistry(settings.db_url, settings.models_dir)
    if variable is None:  # the named model's variable
        variable = registry.get(model).variable
    fc = Forecaster(catalog, variable, registry=registry, model=model, deadline=deadline)
    store = store_for(settings)
    store.require()
    obs = read_inputs(store, catalog, variable, init_dt, fc.k, as_of=as_of_dt, snapshot=store.head())
    produced = fc.produce(obs, init_dt, as_of=as_of_dt)
    run = model if model is not None else PRODUCTION
    fstore = forecast_store_for(settings)
    res = fstore.write(catalog, run, init_dt, produced.stored(), produced.provenance)
    if not res.written:  # the same forecast is stored already: report that one
        produced.provenance = fstore.provenance(dataset, init_dt, run) or produced.provenance
    return {
        "dataset": dataset, "variable": variable, "init_time": iso(init_dt), "run": run,
        "method": produced.method, "fallback": produced.fallback, "snapshot": res.snapshot,
        "written": res.written, "seconds": round(produced.seconds, 3),
        "annotations": produced.provenance["annotations"], "provenance": produced.provenance,
    }
