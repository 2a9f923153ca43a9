"""The Forecaster: one forecast with provenance and plausibility marks that never fails to answer.

Flow for one init time T:

1. read the k input slots up to T from the observation store **as known at** ``as_of`` (default T);
2. judge the inputs: share of cells GOOD / NOT_EVALUATED / SUSPECT / FAIL / MISSING (a rejected value
   counts as FAIL, an accepted one as GOOD);
3. run the production model (or the one asked for) under a deadline; fall back model -> extrapolation
   -> persistence when the model is missing, fails, misses the deadline, or the inputs are too degraded,
   and say why;
4. mark every value: ``ok``, ``extreme`` (beyond the climatological record of the valid month),
   ``implausible`` (outside the physical range: kept, never clipped), ``degraded_inputs``;
4b. for a variable with catalog ``thresholds``: the exceedance probabilities ``<variable>_exceedance_<t>``,
   the answering nowcaster's own (a probabilistic model, under the same deadline; when they fail, the
   neighbourhood of its deterministic forecast, and provenance says why) or the neighbourhood probability
   of the deterministic forecast that answered; marked ``ok`` or ``degraded_inputs``;
5. write it to the forecast store with the provenance record (idempotent per model and init).

`Forecaster.produce` is the one code path for `forecast predict` and the hindcast (which passes its own
as-of inputs and does not write). torch is imported only when a learned model actually runs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import xarray as xr

from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.model.config import ModelConfig, parse_model_config
from forecast.nowcast import BASELINES
from forecast.nowcast.probabilities import (
    NEIGHBOURHOOD_SIZE,
    ModelAnswer,
    check_probabilities,
    is_probabilistic,
    neighbourhood_probabilities,
    probability_dataset,
)
from forecast.plausibility import annotate, annotation_attrs, annotation_counts
from forecast.provenance import (
    Fallback,
    InputSlot,
    ModelRef,
    ObservationRef,
    Probabilities,
    Provenance,
    QCRef,
    software_versions,
)
from forecast.quality.run import qc_config
from forecast.timeutil import iso, now, utc

log = logging.getLogger(__name__)

@dataclass
class Produced:
    """One forecast: the dataset to store / verify, what made it, and why (if) it fell back."""

    forecast: xr.Dataset  # <var> and <var>_annotation, dims (lead_time, y, x)
    method: str
    fallback: dict[str, str] | None
    provenance: dict[str, Any]
    seconds: float
    #: <var>_exceedance_<t> and its _annotation per catalog threshold, dims (lead_time, y, x); None when the
    #: variable has no thresholds (or the Forecaster was told not to make them)
    probabilities: xr.Dataset | None = None

    def stored(self) -> xr.Dataset:
        """What the forecast store holds of this forecast: the values and the probabilities, side by side."""
        if self.probabilities is None:
            return self.forecast
        return xr.merge([self.forecast, self.probabilities], compat="override", join="override",
                        combine_attrs="override")


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


class Forecaster:
    """Forecasts for one (dataset, variable) by one model (or baseline method), with the fallback chain.

    Args:
        model: a registry version; None: the production model of (dataset, variable), if any.
        method: a baseline name instead of a model (no fallback beyond the method's own).
        deadline: seconds the model may take (default: its production config).
        registry: a `forecast.registry.ModelRegistry` (needed for models).
        climatology: a fitted `Climatology` (needed for method "climatology").
        nowcaster: an object with the `Nowcaster` (or `ProbabilisticNowcaster`) methods that stands in for the
            model (tests, experiments): it runs under the deadline with the fallback chain, as a model would.
        probabilities: also make the exceedance probabilities of the catalog's thresholds (the hindcast and
            the verification, which make their own, switch it off).
    Raises:
        BadInputError: unknown variable, model version or method.
    """

    def __init__(self, catalog: Catalog, variable: str, *, registry=None, model: str | None = None,
                 method: str | None = None, deadline: float | None = None, climatology=None,
                 nowcaster: Any = None, probabilities: bool = True):
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
        #: runs the model under the deadline: None runs it in a thread of this process (one-shot commands,
        #: hindcasts); the worker passes a `forecast.worker.runner.ModelProcess`, which it can kill
        self.runner = None
        self.thresholds = np.asarray(catalog.variables[variable].thresholds, dtype=np.float64)
        self.probabilities = probabilities
        if nowcaster is not None:
            if method is not None or model is not None:
                raise BadInputError("give a nowcaster, a model version or a method, not several")
            if not callable(getattr(nowcaster, "predict", None)):
                raise BadInputError(f"nowcaster {nowcaster!r} has no predict method")
            self._nowcaster = nowcaster
        elif method is not None:
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
        elif registry is not None and nowcaster is None:
            self.record = registry.production(catalog.id, variable)
            if self.record is None:
                self.model_error = f"no model of {catalog.id}/{variable} is in production"
        elif nowcaster is None:
            self.model_error = "no model registry"
        self.registry = registry
        self.config = (parse_model_config(self.record.hyperparameters, f"model {self.record.version} config")
                       if self.record is not None else ModelConfig())
        prod = self.config.production
        self.deadline = deadline if deadline is not None else prod.deadline_seconds
        self.k = self.config.inputs if method is None else max(self.config.inputs, 3)
        self.n_leads = self.config.leads
        self.step = np.timedelta64(int(catalog.time.step_seconds), "s")
        self.qc_config_hash = qc_config(catalog).config_hash()

    @property
    def model_label(self) -> str:
        """How reasons name the model: ``model v3`` (or the stand-in nowcaster's name)."""
        if self.record is not None:
            return f"model {self.record.version}"
        return f"model {getattr(self._nowcaster, 'name', type(self._nowcaster).__name__)}"

    # -- the model, loaded once, under the deadline ---------------------------------------------
    def _load(self):
        with self._lock:  # one load, also when a threaded hindcast asks from several threads at once
            if self._nowcaster is None:  # (a stand-in nowcaster is set at construction)
                from forecast.model.learned import LearnedNowcaster

                path = self.registry.checkpoint_path(self.record.version)  # sha256 checked: mismatch raises
                self._nowcaster = LearnedNowcaster.from_checkpoint(path, version=self.record.version,
                                                                   sha256=self.record.checkpoint_sha256)
            return self._nowcaster

    def verified_checkpoint(self):
        """The model's checkpoint file, checked against the sha256 the registry recorded (every call: a
        file deleted or replaced while the service runs is refused). Without a reachable registry the file
        is checked against the record this Forecaster holds.

        Raises:
            CheckpointMissingError, CheckpointMismatchError: the file is gone or changed.
        """
        from forecast.fileutil import sha256_file
        from forecast.registry import CheckpointMismatchError, CheckpointMissingError

        try:
            return self.registry.checkpoint_path(self.record.version)
        except (CheckpointMissingError, CheckpointMismatchError):
            raise
        except Exception:  # noqa: BLE001 - the database is unreachable: check the file ourselves
            path = self.record.checkpoint
            if not path.is_file():
                raise CheckpointMissingError(f"checkpoint of model {self.record.version} is missing at {path}") from None
            actual = sha256_file(path)
            if actual != self.record.checkpoint_sha256:
                raise CheckpointMismatchError(self.record.version, path, self.record.checkpoint_sha256, actual) from None
            return path

    def _run_model(self, inputs: xr.DataArray, mask: xr.DataArray, budget: float) -> ModelAnswer:
        """The model's forecast within ``budget`` seconds and, for a probabilistic model of a variable with
        thresholds, its probabilities within the same budget (when they fail or come too late, the forecast
        stands and `ModelAnswer.probability_error` says why)."""
        label = self.model_label
        thr = self.thresholds if self.probabilities and len(self.thresholds) else None
        if self.runner is not None:  # a killable model process (the worker)
            try:
                return self.runner.run(self, inputs, mask, budget, thresholds=thr)
            except BadInputError as e:  # the checkpoint is gone or changed
                return ModelAnswer(None, f"{label} refused: {e}")
        box: dict[str, Any] = {}

        def work():
            try:
                nc = self._load()
                box["out"] = nc.predict(inputs, n_leads=self.n_leads, step=self.step, mask=mask)
                if thr is not None and is_probabilistic(nc):
                    try:
                        box["probs"] = nc.predict_probabilities(inputs, n_leads=self.n_leads, step=self.step,
                                                                thresholds=thr, mask=mask)
                    except BaseException as e:  # noqa: BLE001 - the forecast stands; the probabilities fall back
                        box["prob_err"] = e
            except BaseException as e:  # noqa: BLE001 - any model failure becomes a fallback reason
                box["err"] = e

        if budget <= 0:
            return ModelAnswer(None, f"{label} exceeded the deadline of {self.deadline:g} s")
        th = threading.Thread(target=work, name="model-predict", daemon=True)
        th.start()
        th.join(budget)
        out = box.get("out")
        if th.is_alive() and out is None:
            return ModelAnswer(None, f"{label} exceeded the deadline of {self.deadline:g} s")
        if "err" in box:
            e = box["err"]
            log.warning("%s failed", label, exc_info=e)
            return ModelAnswer(None, f"{label} failed: {type(e).__name__}: {e}")
        if th.is_alive():  # the forecast came in time, its probabilities did not
            return ModelAnswer(out, probability_error=f"{label}'s probabilities exceeded the deadline of "
                                                      f"{self.deadline:g} s")
        if "prob_err" in box:
            e = box["prob_err"]
            log.warning("%s's probabilities failed", label, exc_info=e)
            return ModelAnswer(out, probability_error=f"{label}'s probabilities failed: {type(e).__name__}: {e}")
        return ModelAnswer(out, probabilities=box.get("probs"))

    # -- one forecast -------------------------------------------------------------------------------
    def produce(self, obs: xr.Dataset, init: datetime, *, as_of: datetime | None = None) -> Produced:
        """The forecast at ``init`` from ``obs``: the as-of input slots (time, y, x) ending at ``init``,
        with the variable's ``_qc`` / ``_qc_tests`` and revision coordinates (as `open_observations`
        gives them)."""
        from forecast.nowcast import get_method

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
        answer: ModelAnswer | None = None  # what the model gave, when it answered
        answered = None  # the baseline that answered otherwise
        method = self.method or "model"
        if self.method is None:
            reason = self.model_error
            if reason is None and degraded_share > prod.max_degraded_share:
                reason = (f"{degraded_share:.0%} of the input cells are FAIL, rejected or missing "
                          f"(above the {prod.max_degraded_share:.0%} limit)")
            if reason is None:
                answer = self._run_model(inputs, mask, self.deadline - (time.perf_counter() - t0))
                out, reason = answer.out, answer.reason
            if out is None:
                answer = None
                for alt in prod.fallback_chain:
                    answered = get_method(alt)
                    out = answered.predict(inputs, n_leads=self.n_leads, step=self.step, mask=mask)
                    method = alt
                    if out.attrs.get("fallback"):  # the method could not run as designed either
                        method = out.attrs.get("fallback_method", "persistence")
                        reason = f"{reason}; {alt}: {out.attrs['fallback']}"
                    break
                fallback = {"reason": reason, "method": method}
        else:
            nowcaster = self._climatology if self.method == "climatology" else get_method(self.method)
            answered = nowcaster
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
        var = self.catalog.variables[v]
        ann = annotate(values, valid, physical_range=var.physical_range, record_min=var.record_min,
                       record_max=var.record_max, degraded=degraded)
        coords = {name: out[name] for name in ("lead_time", "valid_time", "y", "x", "lat", "lon") if name in out.coords}
        attrs = {k: out.attrs[k] for k in ("units", "standard_name", "long_name") if k in out.attrs}
        ds = xr.Dataset({v: (("lead_time", "y", "x"), values, attrs),
                         f"{v}_annotation": (("lead_time", "y", "x"), ann, annotation_attrs())}, coords=coords)
        probs, prob_record = None, None
        if self.probabilities and len(self.thresholds):
            probs, prob_record = self._probabilities(answer, answered, method, out.copy(data=values), inputs, mask,
                                                     degraded)
        revs = obs[f"{v}_revision"].values
        avail = obs[f"{v}_available_at"].values
        rec = self.record
        provenance = Provenance(
            init_time=iso(init),
            dataset=self.catalog.id,
            variable=v,
            model=ModelRef.from_record(rec) if rec is not None and self.method is None else None,
            method=method,
            fallback=Fallback(**fallback) if fallback else None,
            observations=ObservationRef(
                dataset=self.catalog.id, snapshot=obs.attrs.get("snapshot"),
                as_of=iso(as_of) if as_of is not None else obs.attrs.get("as_of"),
                input_slots=[InputSlot(time=str(np.datetime64(t, "s")) + "Z", revision=int(r),
                                       available_at=None if np.isnat(a) else str(np.datetime64(a, "s")) + "Z")
                             for t, r, a in zip(obs["time"].values, revs, avail)]),
            qc=QCRef(config_hash=self.qc_config_hash, input_quality=shares),
            catalog_hash=self.catalog.hash,
            software=software_versions(),
            produced_at=iso(now()),
            annotations=annotation_counts(ann),
            probabilities=prob_record,
        ).to_json()
        return Produced(forecast=ds, method=method, fallback=fallback, provenance=provenance,
                        seconds=time.perf_counter() - t0, probabilities=probs)

    def _probabilities(self, answer: ModelAnswer | None, answered, method: str, det: xr.DataArray,
                       inputs: xr.DataArray, mask: xr.DataArray, degraded: np.ndarray
                       ) -> tuple[xr.Dataset, Probabilities]:
        """The exceedance probabilities of the forecast ``det`` (the values that answered, by ``method``):
        the model's own (``answer``) or a probabilistic baseline's (``answered``) when they have them and
        they work, else the neighbourhood probability of ``det``; and their provenance record."""
        thr = self.thresholds
        p, how, reason = None, method, None
        try:
            if answer is not None:
                reason = answer.probability_error
                if answer.probabilities is not None:
                    p = check_probabilities(answer.probabilities, det, thr)
            elif answered is not None and is_probabilistic(answered):
                p = check_probabilities(answered.predict_probabilities(inputs, n_leads=self.n_leads, step=self.step,
                                                                       thresholds=thr, mask=mask), det, thr)
        except Exception as e:  # noqa: BLE001 - odd probabilities must not cost the forecast
            who = self.model_label if answer is not None else method
            log.warning("the probabilities of %s failed; using the neighbourhood of its forecast", who, exc_info=True)
            p, reason = None, f"{who}'s probabilities failed: {type(e).__name__}: {e}"
        if p is not None and p.attrs.get("fallback"):
            reason = str(p.attrs["fallback"])
        size = None
        if p is None:
            p = neighbourhood_probabilities(det, np.asarray(det.values), thr)
            how, size = "neighbourhood", NEIGHBOURHOOD_SIZE
        source = method if how != "neighbourhood" else f"neighbourhood of {method}"
        var = self.catalog.variables[self.variable]
        ds, counts = probability_dataset(p, variable=self.variable, units=var.units, long_name=var.long_name,
                                         degraded=degraded, attrs={"method": how, "source": source})
        record = Probabilities(method=how, source=source, thresholds=[float(t) for t in thr], units=var.units,
                               parameters=[n for n in ds.data_vars if not n.endswith("_annotation")],
                               neighbourhood_size=size, fallback=reason, annotations=counts)
        return ds, record


