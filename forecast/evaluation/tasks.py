"""The work of one hindcast init, as a task that travels to threads or dask.distributed workers: read the
inputs as known at the init, forecast with every method through `Forecaster.produce` (the code path of
`forecast predict`), verify against the latest QC-usable observations on one shared mask, and return a
small mergeable `Verifier` state (and, when the job has exceedance thresholds, a `ProbabilisticVerifier`
state of the probabilistic methods). `Runner` maps batches of inits onto threads or a cluster.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import numpy as np

from forecast.catalog import get_catalog
from forecast.errors import BadInputError
from forecast.stores import store_for
from forecast.timeutil import iso

#: Seconds the model may take per init in a hindcast: timing belongs to the benchmark, and a deadline
#: hit under load would make the numbers depend on the machine.
HINDCAST_DEADLINE_S = 3600.0


@dataclass(frozen=True)
class Method:
    name: str  # "model", "production", "persistence", ...
    version: str | None = None  # a registry version for learned models


@dataclass
class Job:
    settings: Any
    dataset: str
    variable: str
    snapshot: str
    methods: tuple[Method, ...]
    n_leads: int
    k: int
    thresholds: tuple[float, ...]
    fss_thresholds: tuple[float, ...]
    fss_windows: tuple[int, ...]
    include_unreviewed_suspect: bool
    climatology: Any = None
    key: str = ""
    #: exceedance thresholds of the probabilistic verification (empty: none)
    prob_thresholds: tuple[float, ...] = ()
    #: probabilistic baselines (registry names); learned methods join when their nowcaster is probabilistic
    prob_methods: tuple[str, ...] = ()


class Context:
    """What one process needs to run tasks of one job: catalog, store, registry, forecasters."""

    def __init__(self, job: Job):
        from forecast.nowcast.forecaster import Forecaster
        from forecast.registry.store import ModelRegistry

        st = job.settings
        self.catalog = get_catalog(st.catalogs, job.dataset)
        self.store = store_for(st)
        self.registry = None
        if any(m.version for m in job.methods):
            self.registry = ModelRegistry(st.db_url, st.models_dir)
        self.forecasters = {}
        for m in job.methods:
            if m.version is not None:
                # probabilities=False: the hindcast makes and verifies its own (probabilistic_fields)
                fc = Forecaster(self.catalog, job.variable, registry=self.registry, model=m.version,
                                deadline=HINDCAST_DEADLINE_S, probabilities=False)
            else:
                fc = Forecaster(self.catalog, job.variable, method=m.name, climatology=job.climatology,
                                probabilities=False)
            fc.n_leads = job.n_leads  # every method verified at the same lead times
            self.forecasters[m.name] = fc
        self.step_s = int(self.catalog.time.step_seconds)
        if self.registry is not None:
            one_torch_thread()


def one_torch_thread() -> int:
    """Run models on one intra-op thread per task and return the count before. Init tasks already run
    side by side on every core; torch's default (a thread per core, per task) oversubscribed them: on 2
    busy cores a forecast took ~0.7 s with 2 threads and ~0.04 s with 1. One thread also makes the
    hindcast's numbers independent of the machine's core count (float sums in a fixed order)."""
    from forecast.model.runtime import set_threads

    return set_threads(1)


CONTEXTS: dict[str, Context] = {}
CONTEXT_LOCK = threading.Lock()


def context(job: Job) -> Context:
    with CONTEXT_LOCK:
        ctx = CONTEXTS.get(job.key)
        if ctx is None:
            ctx = CONTEXTS[job.key] = Context(job)
        return ctx


def new_verifier(job: Job, lead_s: Sequence[int]):
    from forecast.evaluation import Verifier

    return Verifier(np.asarray(lead_s, dtype="int64").astype("timedelta64[s]"), job.thresholds,
                    job.fss_windows, job.fss_thresholds)


def new_prob_verifier(job: Job, lead_s: Sequence[int]):
    from forecast.evaluation.probabilistic import ProbabilisticVerifier

    return ProbabilisticVerifier(np.asarray(lead_s, dtype="int64").astype("timedelta64[s]"), job.prob_thresholds)


def probabilities(job: Job, inputs, init_s: int, produced: dict[str, Any]) -> tuple[dict[str, tuple], dict[str, str]]:
    """Every probabilistic method's ``(probabilities (threshold, lead, y, x), members or None)`` at one init,
    and the fallback reasons. The inputs and QC mask are those `Forecaster.produce` gives the methods.
    A learned method joins when its nowcaster is a `ProbabilisticNowcaster` whose ``probabilistic`` attribute (when
    it has one) is true, trained at every threshold asked, and it did not fall back."""
    from forecast.nowcast import ProbabilisticNowcaster, get_method
    from forecast.nowcast.exceedance import binary_probabilities
    from forecast.nowcast.forecaster import input_quality
    from forecast.nowcast.steps import probabilities_from_ensemble

    ctx = context(job)
    v = job.variable
    init64 = np.datetime64(init_s, "s").astype("datetime64[ns]")
    ds = inputs.sel(time=slice(None, init64)).isel(time=slice(-job.k, None))
    da = ds[v]
    usable = input_quality(ds, v)[1]
    mask = da.copy(data=usable)
    step = np.timedelta64(ctx.step_s, "s")
    thr = np.asarray(job.prob_thresholds, dtype=np.float64)
    kw = dict(n_leads=job.n_leads, step=step, mask=mask)
    out: dict[str, tuple] = {}
    fallbacks: dict[str, str] = {}
    for m in job.methods:
        if m.version is None:
            continue
        p = produced.get(m.name)
        nowcaster = getattr(ctx.forecasters[m.name], "_nowcaster", None)  # loaded by produce
        if p is None or not isinstance(nowcaster, ProbabilisticNowcaster):
            continue
        if not getattr(nowcaster, "probabilistic", True):
            continue  # a model without the probabilistic head (older checkpoints) has no probabilities
        trained = getattr(nowcaster, "thresholds", None)
        if trained is not None and not all(np.isclose(trained, t).any() for t in thr):
            continue  # trained at other thresholds than the catalog's current ones
        if p.fallback:  # the deterministic fallback, as 0/1 probabilities
            out[m.name] = (binary_probabilities(np.asarray(p.forecast[v].values), thr), None)
            continue
        prob = nowcaster.predict_probabilities(da, thresholds=thr, **kw)
        out[m.name] = (np.asarray(prob.transpose("threshold", "lead_time", "y", "x").values), None)
    for name in job.prob_methods:
        nowcaster = get_method(name)
        if hasattr(nowcaster, "predict_ensemble"):
            ens = nowcaster.predict_ensemble(da, **kw)
            prob = probabilities_from_ensemble(ens, thr, da, mask)
            members = None if ens.attrs.get("fallback") else np.asarray(ens.values)
        else:
            prob = nowcaster.predict_probabilities(da, thresholds=thr, **kw)
            members = None
        out[name] = (np.asarray(prob.values), members)
        if prob.attrs.get("fallback"):
            fallbacks[name] = str(prob.attrs["fallback"])
    return out, fallbacks


def forecasts(job: Job, init_s: int) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Inputs as of the init, every method's `Produced`, and the verifying observations (latest)."""
    from forecast.nowcast.predict import read_inputs
    from forecast.stores import open_observations

    ctx = context(job)
    init = datetime.fromtimestamp(init_s, timezone.utc)
    inputs = read_inputs(ctx.store, ctx.catalog, job.variable, init, job.k, as_of=init, snapshot=job.snapshot)
    produced = {name: fc.produce(inputs, init, as_of=init) for name, fc in ctx.forecasters.items()}
    step = timedelta(seconds=ctx.step_s)
    v = job.variable
    obs = open_observations(ctx.catalog.id, store=ctx.store, start=init + step, end=init + job.n_leads * step,
                            snapshot=job.snapshot)
    obs = obs[[n for n in (v, f"{v}_qc", f"{v}_qc_tests") if n in obs]].load()
    return inputs, produced, obs


def verifying(job: Job, obs) -> tuple[np.ndarray, np.ndarray]:
    from qc.flags import usable_mask

    v = job.variable
    values = np.asarray(obs[v].values, dtype=np.float32)
    usable = np.isfinite(values)
    if f"{v}_qc" in obs:
        usable &= np.asarray(usable_mask(obs[f"{v}_qc"].values, obs[f"{v}_qc_tests"].values,
                                         include_unreviewed_suspect=job.include_unreviewed_suspect))
    return values, usable


def verify_init(job: Job, init_s: int) -> dict[str, Any]:
    """Verify every method at one init; a small JSON-able result (a partial Verifier state)."""
    t0 = time.perf_counter()
    try:
        inputs, produced, obs = forecasts(job, init_s)
    except BadInputError as e:  # nothing to forecast from at this init: skipped, said why
        return {"init": init_s, "skipped": str(e), "seconds": time.perf_counter() - t0}
    values, usable = verifying(job, obs)
    valid = usable.copy()
    fields = {}
    for name, p in produced.items():
        f = np.asarray(p.forecast[job.variable].values)
        fields[name] = f
        valid &= np.isfinite(f)
    if not valid.any():
        why = ("no usable observation at the valid times" if not usable.any()
               else "no cell where every method has a value and the observation is usable")
        return {"init": init_s, "skipped": f"{iso(init_s)}: {why}", "seconds": time.perf_counter() - t0}
    lead_s = [int(s) for s in (np.arange(1, job.n_leads + 1) * context(job).step_s)]
    ver = new_verifier(job, lead_s)
    for name, f in fields.items():
        ver.add(np.datetime64(init_s, "s"), name, f, values, valid)
    peak = np.where(valid, values, -np.inf).reshape(job.n_leads, -1).max(axis=1)
    lead = int(np.argmax(peak))
    fallbacks = {name: p.fallback["reason"] for name, p in produced.items() if p.fallback}
    prob_state = None
    if job.prob_thresholds:
        probs, prob_fallbacks = probabilities(job, inputs, init_s, produced)
        fallbacks.update(prob_fallbacks)
        # one mask for the probabilistic methods too: usable observations where every one has a value
        pvalid = usable.copy()
        for p, _ in probs.values():
            pvalid &= np.isfinite(p).all(axis=0)
        pver = new_prob_verifier(job, lead_s)
        for name, (p, members) in probs.items():
            pver.add(np.datetime64(init_s, "s"), name, p, values, pvalid, members=members)
        prob_state = pver.to_state()
    return {
        "init": init_s,
        "state": ver.to_state(),
        "prob_state": prob_state,
        "fallbacks": fallbacks,
        "event": [float(peak[lead]), init_s, lead],
        "seconds": time.perf_counter() - t0,
    }


def example(job: Job, init_s: int, lead: int, units: str) -> dict[str, Any]:
    """Maps of the most intense event: observed (NaN where not verifiable) beside every method."""
    _, produced, obs = forecasts(job, init_s)
    values, usable = verifying(job, obs)
    o = np.where(usable[lead], values[lead], np.nan)
    step = context(job).step_s
    return {
        "title": f"most intense event (observed max {np.nanmax(o):.1f} {units})",
        "init_time": np.datetime64(init_s, "s"),
        "lead_time": int((lead + 1) * step),
        "obs": o,
        "fields": {name: np.asarray(p.forecast[job.variable].values[lead], dtype=float)
                   for name, p in produced.items()},
    }


# --------------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------------


class Runner:
    """Runs batches of init tasks on the threaded scheduler or a dask.distributed cluster."""

    def __init__(self, scheduler: str | None):
        self.scheduler = scheduler or "threads"
        self.client = None
        if self.scheduler not in ("threads", "sync", "synchronous", "single-threaded"):
            try:
                from distributed import Client
            except ImportError as e:  # pragma: no cover - distributed is a dependency
                raise BadInputError("a scheduler address needs the `distributed` package", param="scheduler") from e
            try:
                self.client = Client(self.scheduler, set_as_default=False, timeout="20s")
            except (OSError, TimeoutError, ValueError) as e:
                raise BadInputError(f"cannot reach the dask scheduler at {self.scheduler}: {e}") from None

    @property
    def workers(self) -> int:
        if self.client is not None:
            return max(1, sum(self.client.nthreads().values()))
        if self.scheduler != "threads":
            return 1
        from forecast.parallel import default_workers

        return default_workers()

    def map(self, job: Job, inits: Sequence[int]) -> list[dict]:
        if self.client is not None:
            [job_f] = self.client.scatter([job], broadcast=True, hash=False)
            futures = self.client.map(verify_init, [job_f] * len(inits), list(inits), pure=False)
            return self.client.gather(futures)
        if self.scheduler != "threads":
            return [verify_init(job, i) for i in inits]
        import dask

        job_d = dask.delayed(job, name=f"hindcast-job-{job.key[:16]}", traverse=False)
        tasks = [dask.delayed(verify_init)(job_d, i, dask_key_name=f"hindcast-{job.key[:16]}-{i}") for i in inits]
        return list(dask.compute(*tasks, scheduler="threads", num_workers=self.workers))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
