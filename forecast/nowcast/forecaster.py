"""`forecast predict`: a forecast with provenance and plausibility marks that never fails to answer.

Flow for one init time T:

1. read the k input slots up to T from the observation store **as known at** ``as_of`` (default T);
2. judge the inputs: share of cells GOOD / NOT_EVALUATED / SUSPECT / FAIL / MISSING (a rejected value
   counts as FAIL, an accepted one as GOOD);
3. run the production model (or the one asked for) under a deadline; fall back model -> extrapolation
   -> persistence when the model is missing, fails, misses the deadline, or the inputs are too degraded,
   and say why;
4. mark every value: ``ok``, ``extreme`` (beyond the climatological record of the valid month),
   ``implausible`` (outside the physical range: kept, never clipped), ``degraded_inputs``;
5. write it to the forecast store with the provenance record (idempotent per model and init).

`Forecaster.produce` is the one code path for `forecast predict` and the hindcast (which passes its own
as-of inputs and does not write). torch is imported only when a learned model actually runs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import xarray as xr

from forecast import __version__
from forecast.catalog.models import Catalog, get_catalog
from forecast.errors import BadInputError
from forecast.model.config import ModelConfig, parse_model_config
from forecast.stores.forecasts import (
    DEGRADED,
    EXTREME,
    IMPLAUSIBLE,
    PRODUCTION,
    annotation_attrs,
    forecast_store_for,
)
from forecast.stores.observations import open_observations, store_for
from forecast.timeutil import iso, parse_time, utc

log = logging.getLogger(__name__)

BASELINES = ("persistence", "extrapolation", "sprog", "climatology")


@dataclass
class Produced:
    """One forecast: the dataset to store / verify, what made it, and why (if) it fell back."""

    forecast: xr.Dataset  # <var> and <var>_annotation, dims (lead_time, y, x)
    method: str
    fallback: dict[str, str] | None
    provenance: dict[str, Any]
    seconds: float


def input_quality(ds: xr.Dataset, variable: str) -> tuple[dict[str, float], np.ndarray]:
    """Shares of input cells per QC state and which input cells are usable (time, y, x)."""
    from qc.flags import QCFlag, TestBit, usable_mask

    vals = np.asarray(ds[variable].values)
    finite = np.isfinite(vals)
    total = max(vals.size, 1)
    if f"{variable}_qc" in ds:
        q = np.asarray(ds[f"{variable}_qc"].values).copy()
        t = np.asarray(ds[f"{variable}_qc_tests"].values)
        usable = np.asarray(usable_mask(q, t)) & finite
        q[(t & np.uint32(TestBit.REVIEWED_REJECTED)) != 0] = QCFlag.FAIL
        q[((t & np.uint32(TestBit.REVIEWED_ACCEPTED)) != 0) & (q != QCFlag.FAIL)] = QCFlag.GOOD
        q[~finite] = QCFlag.MISSING
    else:
        usable = finite
        q = np.where(finite, np.uint8(QCFlag.NOT_EVALUATED), np.uint8(QCFlag.MISSING))
    counts = np.bincount(q.ravel().astype(np.int64), minlength=10)
    shares = {f.name: round(float(counts[int(f)] / total), 6)
              for f in (QCFlag.GOOD, QCFlag.NOT_EVALUATED, QCFlag.SUSPECT, QCFlag.FAIL, QCFlag.MISSING)}
    return shares, usable


def annotate(values: np.ndarray, valid_times: np.ndarray, catalog: Catalog, variable: str,
             degraded: np.ndarray) -> np.ndarray:
    """Per value (lead, y, x): 0 ok, 1 extreme (beyond the record of the valid month), 2 implausible
    (outside the physical range), 3 degraded_inputs (``degraded`` cells, or no value at all).
    Precedence: implausible > degraded_inputs > extreme > ok."""
    var = catalog.variables[variable]
    lo, hi = var.physical_range
    out = np.zeros(values.shape, dtype=np.uint8)
    months = (valid_times.astype("datetime64[M]").astype(int) % 12)
    rec = var.climatological_record
    for j, m in enumerate(months):
        v = values[j]
        ext = np.zeros(v.shape, dtype=bool)
        if rec.max is not None:
            ext |= v > rec.max[m]
        if rec.min is not None:
            ext |= v < rec.min[m]
        out[j][ext] = EXTREME
    out[:, degraded] = DEGRADED
    out[~np.isfinite(values)] = DEGRADED
    out[(values < lo) | (values > hi)] = IMPLAUSIBLE
    return out


def _software(torch_used: bool) -> dict[str, str | None]:
    out: dict[str, str | None] = {"forecast": __version__, "torch": None, "lightning": None}
    if torch_used:
        import sys

        for name in ("torch", "lightning"):
            mod = sys.modules.get(name)
            out[name] = getattr(mod, "__version__", None) if mod else None
    return out


class Forecaster:
    """Forecasts for one (dataset, variable) by one model (or baseline method), with the fallback chain.

    Args:
        model: a registry version; None: the production model of (dataset, variable), if any.
        method: a baseline name instead of a model (no fallback beyond the method's own).
        deadline: seconds the model may take (default: its production config).
        registry: a `forecast.registry.ModelRegistry` (needed for models).
        climatology: a fitted `Climatology` (needed for method "climatology").
    Raises:
        BadInputError: unknown variable, model version or method.
    """

    def __init__(self, catalog: Catalog, variable: str, *, registry=None, model: str | None = None,
                 method: str | None = None, deadline: float | None = None, climatology=None):
        if variable not in catalog.variables:
            raise BadInputError(f"dataset {catalog.id!r} has no variable {variable!r}; it has: {', '.join(catalog.variables)}")
        if catalog.time.months is not None:
            raise BadInputError(f"dataset {catalog.id!r} has a monthly time axis; nowcasts need a regular sub-daily axis")
        self.catalog = catalog
        self.variable = variable
        self.method = method
        self.record = None
        self.model_error: str | None = None
        self._nowcaster = None
        self._lock = threading.Lock()
        self._climatology = climatology
        if method is not None:
            if method not in BASELINES:
                raise BadInputError(f"unknown method {method!r}; available: model, {', '.join(BASELINES)}")
            if method == "climatology" and climatology is None:
                raise BadInputError("the climatology baseline needs a climatology fitted on training data")
        elif model is not None:
            if registry is None:
                raise BadInputError("a model version needs the model registry")
            self.record = registry.get(model)  # UnknownModelError (exit 2) names the known versions
            if (self.record.dataset, self.record.variable) != (catalog.id, variable):
                raise BadInputError(f"model {model} forecasts {self.record.dataset}/{self.record.variable}, "
                                    f"not {catalog.id}/{variable}")
        elif registry is not None:
            self.record = registry.production(catalog.id, variable)
            if self.record is None:
                self.model_error = f"no model of {catalog.id}/{variable} is in production"
        else:
            self.model_error = "no model registry"
        self.registry = registry
        self.config = (parse_model_config(self.record.hyperparameters, f"model {self.record.version} config")
                       if self.record is not None else ModelConfig())
        prod = self.config.production
        self.deadline = deadline if deadline is not None else prod.deadline_seconds
        self.k = self.config.inputs if method is None else max(self.config.inputs, 3)
        self.n_leads = self.config.leads
        self.step = np.timedelta64(int(catalog.time.step_seconds), "s")

    # -- the model, loaded once, under the deadline ---------------------------------------------
    def _load(self):
        with self._lock:  # one load, also when a threaded hindcast asks from several threads at once
            if self._nowcaster is None:
                from forecast.model.learned import LearnedNowcaster

                path = self.registry.checkpoint_path(self.record.version)  # sha256 checked: mismatch raises
                self._nowcaster = LearnedNowcaster.from_checkpoint(path, version=self.record.version,
                                                                   sha256=self.record.checkpoint_sha256)
            return self._nowcaster

    def _run_model(self, inputs: xr.DataArray, mask: xr.DataArray, budget: float) -> tuple[xr.DataArray | None, str | None]:
        box: dict[str, Any] = {}

        def work():
            try:
                box["out"] = self._load().predict(inputs, n_leads=self.n_leads, step=self.step, mask=mask)
            except BaseException as e:  # noqa: BLE001 - any model failure becomes a fallback reason
                box["err"] = e

        if budget <= 0:
            return None, f"model {self.record.version} exceeded the deadline of {self.deadline:g} s"
        th = threading.Thread(target=work, name="model-predict", daemon=True)
        th.start()
        th.join(budget)
        if th.is_alive():
            return None, f"model {self.record.version} exceeded the deadline of {self.deadline:g} s"
        if "err" in box:
            e = box["err"]
            log.warning("model %s failed", self.record.version, exc_info=e)
            return None, f"model {self.record.version} failed: {type(e).__name__}: {e}"
        return box["out"], None

    # -- one forecast -------------------------------------------------------------------------------
    def produce(self, obs: xr.Dataset, init: datetime, *, as_of: datetime | None = None) -> Produced:
        """The forecast at ``init`` from ``obs``: the as-of input slots (time, y, x) ending at ``init``,
        with the variable's ``_qc`` / ``_qc_tests`` and revision coordinates (as `open_observations`
        gives them)."""
        from forecast.nowcast.baselines import get_method

        t0 = time.perf_counter()
        v = self.variable
        prod = self.config.production
        init64 = np.datetime64(utc(init).replace(tzinfo=None), "ns")
        obs = obs.sel(time=slice(None, init64)).isel(time=slice(-self.k, None))
        if obs.sizes["time"] == 0 or obs["time"].values[-1] != init64:
            raise BadInputError(f"the inputs of {self.catalog.id} end before the init time {iso(init)}")
        inputs = obs[v]
        shares, usable = input_quality(obs, v)
        mask = inputs.copy(data=usable)
        unusable = 1.0 - usable.mean(axis=0) if usable.shape[0] else np.ones(usable.shape[1:])
        degraded_share = shares["FAIL"] + shares["MISSING"]
        fallback: dict[str, str] | None = None
        out = None
        method = self.method or "model"
        torch_used = False
        if self.method is None:
            reason = self.model_error
            if reason is None and degraded_share > prod.max_degraded_share:
                reason = (f"{degraded_share:.0%} of the input cells are FAIL, rejected or missing "
                          f"(above the {prod.max_degraded_share:.0%} limit)")
            if reason is None:
                torch_used = True
                out, reason = self._run_model(inputs, mask, self.deadline - (time.perf_counter() - t0))
            if out is None:
                for alt in prod.fallback_chain:
                    out = get_method(alt).predict(inputs, n_leads=self.n_leads, step=self.step, mask=mask)
                    method = alt
                    if out.attrs.get("fallback"):  # the method could not run as designed either
                        method = out.attrs.get("fallback_method", "persistence")
                        reason = f"{reason}; {alt}: {out.attrs['fallback']}"
                    break
                fallback = {"reason": reason, "method": method}
        else:
            nowcaster = self._climatology if self.method == "climatology" else get_method(self.method)
            out = nowcaster.predict(inputs, n_leads=self.n_leads, step=self.step, mask=mask)
            if out.attrs.get("fallback"):
                fallback = {"reason": out.attrs["fallback"], "method": out.attrs.get("fallback_method", "persistence")}
        values = np.asarray(out.values, dtype=np.float32)
        if np.isnan(values).any() and method in ("extrapolation", "sprog"):
            # inflow edges: nothing observed upstream -> persistence there
            pers = get_method("persistence").predict(inputs, n_leads=self.n_leads, step=self.step, mask=mask).values
            values = np.where(np.isnan(values), pers, values)
        valid = out["valid_time"].values
        degraded = unusable > prod.degraded_cell_share
        ann = annotate(values, valid, self.catalog, v, degraded)
        coords = {name: out[name] for name in ("lead_time", "valid_time", "y", "x", "lat", "lon") if name in out.coords}
        attrs = {k: out.attrs[k] for k in ("units", "standard_name", "long_name") if k in out.attrs}
        ds = xr.Dataset({v: (("lead_time", "y", "x"), values, attrs),
                         f"{v}_annotation": (("lead_time", "y", "x"), ann, annotation_attrs())}, coords=coords)
        revs = obs[f"{v}_revision"].values
        avail = obs[f"{v}_available_at"].values
        rec = self.record
        provenance = {
            "init_time": iso(init),
            "dataset": self.catalog.id,
            "variable": v,
            "model": None if rec is None or self.method is not None else {
                "version": rec.version, "stage": rec.stage, "checkpoint_sha256": rec.checkpoint_sha256,
                "architecture": (rec.hyperparameters.get("network") or {}).get("architecture", "unet")},
            "method": method,
            "fallback": fallback,
            "observations": {
                "dataset": self.catalog.id, "snapshot": obs.attrs.get("snapshot"),
                "as_of": iso(as_of) if as_of is not None else obs.attrs.get("as_of"),
                "input_slots": [{"time": str(np.datetime64(t, "s")) + "Z", "revision": int(r),
                                 "available_at": None if np.isnat(a) else str(np.datetime64(a, "s")) + "Z"}
                                for t, r, a in zip(obs["time"].values, revs, avail)],
            },
            "qc": {"config_hash": _qc_hash(self.catalog), "input_quality": shares},
            "catalog_hash": self.catalog.hash,
            "software": _software(torch_used),
            "produced_at": iso(datetime.now(timezone.utc)),
            "annotations": {name: int((ann == code).sum()) for code, name in enumerate(("ok", "extreme", "implausible", "degraded_inputs"))},
        }
        return Produced(forecast=ds, method=method, fallback=fallback, provenance=provenance,
                        seconds=time.perf_counter() - t0)


def _qc_hash(catalog: Catalog) -> str:
    from forecast.quality.run import qc_config

    return qc_config(catalog).config_hash()


def read_inputs(store, catalog: Catalog, variable: str, init: datetime, k: int, *, as_of: datetime,
                snapshot: str | None = None) -> xr.Dataset:
    """The k slots up to ``init`` as known at ``as_of`` (loaded), or BadInputError when none holds data."""
    step = timedelta(seconds=int(catalog.time.step_seconds))
    ds = open_observations(catalog.id, store=store, start=init - (k - 1) * step, end=init, as_of=as_of,
                           snapshot=snapshot)
    keep = [variable] + [n for n in (f"{variable}_qc", f"{variable}_qc_tests") if n in ds]
    ds = ds[keep].load()
    if not np.isfinite(ds[variable].values).any():
        raise BadInputError(
            f"no observations of {catalog.id}/{variable} in the {k} slots up to {iso(init)} as known at {iso(as_of)}; "
            "nothing to forecast from (ingest them, or pick another init time)")
    return ds


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
    from forecast.timeutil import to_epoch

    slot = catalog.time.slot_of(to_epoch(init_dt))
    if slot is None or catalog.time.label(slot) != to_epoch(init_dt):
        raise BadInputError(f"init time {iso(init_dt)} is not on the time axis of {dataset} "
                            f"(slots every {catalog.time.step} from {iso(catalog.time.start)})")
    as_of_dt = init_dt if as_of is None else (parse_time(as_of) if isinstance(as_of, str) else utc(as_of))
    if variable is None and model is None:  # with a model: the model's variable, below
        if len(catalog.variables) != 1:
            raise BadInputError(f"dataset {dataset!r} has several variables ({', '.join(catalog.variables)}); "
                                "name one with --variable")
        variable = next(iter(catalog.variables))
    settings.home.mkdir(parents=True, exist_ok=True)
    if registry is None:
        registry = ModelRegistry(settings.db_url, settings.models_dir)
    if variable is None:  # the named model's variable
        variable = registry.get(model).variable
    fc = Forecaster(catalog, variable, registry=registry, model=model, deadline=deadline)
    store = store_for(settings)
    if not store.exists():
        raise BadInputError(f"the observation store {store.location} does not exist yet; ingest some files first")
    obs = read_inputs(store, catalog, variable, init_dt, fc.k, as_of=as_of_dt, snapshot=store.head())
    produced = fc.produce(obs, init_dt, as_of=as_of_dt)
    run = model if model is not None else PRODUCTION
    fstore = forecast_store_for(settings)
    res = fstore.write(catalog, run, init_dt, produced.forecast, produced.provenance)
    if not res.written:  # the same forecast is stored already: report that one
        produced.provenance = fstore.provenance(dataset, init_dt, run) or produced.provenance
    return {
        "dataset": dataset, "variable": variable, "init_time": iso(init_dt), "run": run,
        "method": produced.method, "fallback": produced.fallback, "snapshot": res.snapshot,
        "written": res.written, "seconds": round(produced.seconds, 3),
        "annotations": produced.provenance["annotations"], "provenance": produced.provenance,
    }
