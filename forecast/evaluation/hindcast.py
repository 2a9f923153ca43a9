"""`forecast hindcast`: verify a model and the baselines over past init times without leaking the future.

For each init time T of the period:

1. the inputs are read **as known at T** (`forecast.predict.read_inputs` with ``as_of=T`` on one
   observation snapshot pinned at the start): a slot revised after T is seen in its earlier revision, a
   slot that arrived after T is missing;
2. the model, the current production model (as method ``production``, when there is one and it is not
   the model under test) and each baseline forecast through `forecast.predict.Forecaster.produce`, the
   code path of `forecast predict` (nothing is written to the forecast store);
3. the forecasts are verified against the observations at the valid times in their **latest** revision
   with QC applied (`qc.flags.usable_mask`: FAIL and rejected excluded, accepted extremes included), on
   one ``valid`` mask shared by every method at that init (usable observations where every method has a
   value), so the methods are compared on the same cells.

The climatology baseline is fitted on observations strictly before the start (as known at the start),
within the model's training period when the registry records one: training data only.

Init times run as dask tasks (threaded scheduler by default, a dask.distributed cluster by address) in
batches; each task returns a small `forecast.verify.Verifier` state, merged as it goes, so memory does
not grow with the period. After every batch ``state.json`` is written into the output folder: a rerun
with the same arguments resumes where it stopped (another set of arguments is refused). The run ends
with ``report.json`` / ``report.html`` (`forecast.verify.write_report`); the same command on the same
snapshots gives identical numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from forecast import __version__
from forecast.catalog.models import Catalog, get_catalog
from forecast.errors import BadInputError
from forecast.stores.observations import store_for
from forecast.timeutil import iso, parse_duration, parse_time, to_epoch, utc
from forecast.timeutil import stamp as _stamp

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_FSS_WINDOWS", "PRECIPITATION_THRESHOLDS", "REVISION_POLICY", "STATE_FILE",
           "default_out", "default_thresholds", "run_hindcast"]

#: FSS window sizes (grid cells), odd and increasing.
DEFAULT_FSS_WINDOWS = (1, 3, 9, 17, 33)
#: Event thresholds (mm/h) for precipitation-like variables when the catalog names none.
PRECIPITATION_THRESHOLDS = (1.0, 10.0, 30.0, 50.0)
#: Version of ``state.json``.
STATE_VERSION = 1
STATE_FILE = "state.json"
#: Seconds the model may take per init in a hindcast: timing belongs to the benchmark, and a deadline
#: hit under load would make the numbers depend on the machine.
HINDCAST_DEADLINE_S = 3600.0

REVISION_POLICY = (
    "inputs: as-of read at each init time T (per slot the newest revision whose available_at <= T; a slot "
    "that arrived after T is missing; flags of a since-revised slot count as NOT_EVALUATED); verifying "
    "observations: the latest revision in the pinned snapshot with QC applied (FAIL and reviewed-rejected "
    "values excluded, reviewed-accepted extremes included, unreviewed SUSPECT {suspect}); one verification "
    "mask per init shared by every method (usable observations where every method has a value); climatology "
    "fitted on usable observations strictly before the start as known at the start{training}"
)


# --------------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------------


def _parse_every(every: str | timedelta | int, step_s: int) -> int:
    try:
        secs = parse_duration(int(every) if isinstance(every, np.integer) else every).total_seconds()
    except ValueError as e:
        raise BadInputError(f"the time between init times: {e}; write e.g. 30min, 1h or 5min") from None
    if not secs > 0 or secs != int(secs):
        raise BadInputError(f"--every must be a positive whole number of seconds, got {every!r}")
    secs = int(secs)
    if secs % step_s:
        raise BadInputError(f"--every {every} is not a multiple of the dataset's time step ({step_s // 60} min)")
    return secs


def default_thresholds(catalog: Catalog, variable: str) -> tuple[float, ...]:
    """The catalog's verification thresholds if it names some, else (1, 10, 30, 50) for precipitation-like
    variables, the 0/10/20/30 degC marks for temperatures in K, otherwise four evenly spaced values inside
    the physical range."""
    var = catalog.variables[variable]
    named = getattr(var, "thresholds", None) or getattr(var, "verification_thresholds", None)
    if named:
        return tuple(float(t) for t in named)
    name = f"{var.standard_name} {var.long_name or ''} {variable}".lower()
    if any(w in name for w in ("precipitation", "rainfall", "rain_rate", "snowfall")):
        return PRECIPITATION_THRESHOLDS
    if var.units.strip() == "K":
        return (273.15, 283.15, 293.15, 303.15)
    lo, hi = var.physical_range
    return tuple(float(lo + (hi - lo) * f) for f in (0.2, 0.4, 0.6, 0.8))


def default_out(settings, dataset: str, version: str, start: datetime, end: datetime) -> Path:
    """HOME/hindcasts/<dataset>-<version>-<start>-<end>/."""
    return Path(settings.home) / "hindcasts" / f"{dataset}-{version}-{_stamp(start)}-{_stamp(end)}"


def _as_time(value: datetime | str, what: str) -> datetime:
    if isinstance(value, datetime):
        return utc(value)
    try:
        return parse_time(str(value))
    except ValueError as e:
        raise BadInputError(f"{what}: {e}") from None


# --------------------------------------------------------------------------------------------------
# the job each task runs (picklable: it travels to dask.distributed workers)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Method:
    name: str  # "model", "production", "persistence", ...
    version: str | None = None  # a registry version for learned models


@dataclass
class _Job:
    settings: Any
    dataset: str
    variable: str
    snapshot: str
    methods: tuple[_Method, ...]
    n_leads: int
    k: int
    thresholds: tuple[float, ...]
    fss_thresholds: tuple[float, ...]
    fss_windows: tuple[int, ...]
    include_unreviewed_suspect: bool
    climatology: Any = None
    key: str = ""


class _Context:
    """What one process needs to run tasks of one job: catalog, store, registry, forecasters."""

    def __init__(self, job: _Job):
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
                fc = Forecaster(self.catalog, job.variable, registry=self.registry, model=m.version,
                                deadline=HINDCAST_DEADLINE_S)
            else:
                fc = Forecaster(self.catalog, job.variable, method=m.name, climatology=job.climatology)
            fc.n_leads = job.n_leads  # every method verified at the same lead times
            self.forecasters[m.name] = fc
        self.step_s = int(self.catalog.time.step_seconds)
        if self.registry is not None:
            _one_torch_thread()


def _one_torch_thread() -> int:
    """Run models on one intra-op thread per task and return the count before. Init tasks already run
    side by side on every core; torch's default (a thread per core, per task) oversubscribed them: on 2
    busy cores a forecast took ~0.7 s with 2 threads and ~0.04 s with 1. One thread also makes the
    hindcast's numbers independent of the machine's core count (float sums in a fixed order)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


_CONTEXTS: dict[str, _Context] = {}
_CONTEXT_LOCK = threading.Lock()


def _context(job: _Job) -> _Context:
    with _CONTEXT_LOCK:
        ctx = _CONTEXTS.get(job.key)
        if ctx is None:
            ctx = _CONTEXTS[job.key] = _Context(job)
        return ctx


def _verifier(job: _Job, lead_s: Sequence[int]):
    from forecast.evaluation import Verifier

    return Verifier(np.asarray(lead_s, dtype="int64").astype("timedelta64[s]"), job.thresholds,
                    job.fss_windows, job.fss_thresholds)


def _forecasts(job: _Job, init_s: int) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Inputs as of the init, every method's `Produced`, and the verifying observations (latest)."""
    from forecast.nowcast.predict import read_inputs
    from forecast.stores.observations import open_observations

    ctx = _context(job)
    init = datetime.fromtimestamp(init_s, timezone.utc)
    inputs = read_inputs(ctx.store, ctx.catalog, job.variable, init, job.k, as_of=init, snapshot=job.snapshot)
    produced = {name: fc.produce(inputs, init, as_of=init) for name, fc in ctx.forecasters.items()}
    step = timedelta(seconds=ctx.step_s)
    v = job.variable
    obs = open_observations(ctx.catalog.id, store=ctx.store, start=init + step, end=init + job.n_leads * step,
                            snapshot=job.snapshot)
    obs = obs[[n for n in (v, f"{v}_qc", f"{v}_qc_tests") if n in obs]].load()
    return inputs, produced, obs


def _verifying(job: _Job, obs) -> tuple[np.ndarray, np.ndarray]:
    from qc.flags import usable_mask

    v = job.variable
    values = np.asarray(obs[v].values, dtype=np.float32)
    usable = np.isfinite(values)
    if f"{v}_qc" in obs:
        usable &= np.asarray(usable_mask(obs[f"{v}_qc"].values, obs[f"{v}_qc_tests"].values,
                                         include_unreviewed_suspect=job.include_unreviewed_suspect))
    return values, usable


def _verify_init(job: _Job, init_s: int) -> dict[str, Any]:
    """Verify every method at one init; a small JSON-able result (a partial Verifier state)."""
    t0 = time.perf_counter()
    try:
        _, produced, obs = _forecasts(job, init_s)
    except BadInputError as e:  # nothing to forecast from at this init: skipped, said why
        return {"init": init_s, "skipped": str(e), "seconds": time.perf_counter() - t0}
    values, usable = _verifying(job, obs)
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
    lead_s = [int(s) for s in (np.arange(1, job.n_leads + 1) * _context(job).step_s)]
    ver = _verifier(job, lead_s)
    for name, f in fields.items():
        ver.add(np.datetime64(init_s, "s"), name, f, values, valid)
    peak = np.where(valid, values, -np.inf).reshape(job.n_leads, -1).max(axis=1)
    lead = int(np.argmax(peak))
    return {
        "init": init_s,
        "state": ver.to_state(),
        "fallbacks": {name: p.fallback["reason"] for name, p in produced.items() if p.fallback},
        "event": [float(peak[lead]), init_s, lead],
        "seconds": time.perf_counter() - t0,
    }


def _example(job: _Job, init_s: int, lead: int, units: str) -> dict[str, Any]:
    """Maps of the most intense event: observed (NaN where not verifiable) beside every method."""
    _, produced, obs = _forecasts(job, init_s)
    values, usable = _verifying(job, obs)
    o = np.where(usable[lead], values[lead], np.nan)
    step = _context(job).step_s
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


class _Runner:
    """Runs batches of init tasks on the threaded scheduler or a dask.distributed cluster."""

    def __init__(self, scheduler: str | None):
        self.scheduler = scheduler or "threads"
        self.client = None
        if self.scheduler not in ("threads", "sync", "synchronous", "single-threaded"):
            try:
                from distributed import Client
            except ImportError as e:  # pragma: no cover - distributed is a dependency
                raise BadInputError("--scheduler ADDRESS needs the `distributed` package") from e
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

    def map(self, job: _Job, inits: Sequence[int]) -> list[dict]:
        if self.client is not None:
            [job_f] = self.client.scatter([job], broadcast=True, hash=False)
            futures = self.client.map(_verify_init, [job_f] * len(inits), list(inits), pure=False)
            return self.client.gather(futures)
        if self.scheduler != "threads":
            return [_verify_init(job, i) for i in inits]
        import dask

        job_d = dask.delayed(job, name=f"hindcast-job-{job.key[:16]}", traverse=False)
        tasks = [dask.delayed(_verify_init)(job_d, i, dask_key_name=f"hindcast-{job.key[:16]}-{i}") for i in inits]
        return list(dask.compute(*tasks, scheduler="threads", num_workers=self.workers))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _software() -> dict[str, str | None]:
    out: dict[str, str | None] = {"forecast": __version__}
    for name in ("numpy", "xarray", "dask", "zarr", "icechunk", "torch", "lightning", "pysteps", "scores"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _model_info(rec) -> dict[str, Any]:
    training = (rec.extra or {}).get("training") or {}
    period = training.get("period")
    return {
        "version": rec.version, "stage": rec.stage, "checkpoint_sha256": rec.checkpoint_sha256,
        "architecture": (rec.hyperparameters.get("network") or {}).get("architecture", "unet"),
        "leads": int(rec.hyperparameters.get("leads", 12)), "inputs": int(rec.hyperparameters.get("inputs", 6)),
        "training_period": list(period) if period else None,
        "training_snapshot": rec.snapshot,
    }


def _overlaps(period: list[str] | None, start: datetime, last_valid: datetime) -> bool | None:
    """Whether the model's training period overlaps the verified period (None: unknown)."""
    if not period:
        return None
    a, b = (parse_time(p) for p in period)
    return a <= last_valid and start <= b


def _fit_climatology(settings, catalog: Catalog, variable: str, store, snapshot: str, start: datetime,
                     training: list[str] | None, suspect: bool):
    """Climatology on usable observations strictly before ``start`` as known at ``start`` (and within the
    model's training period when known). Returns (fitted or None, provenance dict)."""
    from forecast.nowcast import Climatology
    from forecast.stores.observations import open_observations
    from qc.flags import usable_mask

    step = timedelta(seconds=int(catalog.time.step_seconds))
    hi = start - step
    lo = None
    if training:
        t0, t1 = (parse_time(p) for p in training)
        lo, hi = t0, min(hi, t1)
    if lo is not None and lo > hi:
        return None, {"skipped": f"the model's training period {training[0]} .. {training[1]} does not lie before "
                                 f"the start {iso(start)}"}
    try:
        # without a training period: from the first slot known at the start (an explicit start would
        # otherwise reach back to the beginning of the axis)
        ds = open_observations(catalog.id, store=store, start=lo, end=hi if lo is not None else None, as_of=start,
                               snapshot=snapshot)
    except BadInputError as e:
        return None, {"skipped": str(e)}
    ds = ds.sel(time=slice(None, np.datetime64(utc(hi).replace(tzinfo=None), "ns")))
    if ds.sizes["time"] == 0:
        return None, {"skipped": f"no observations before the start {iso(start)} as known at the start"}
    mask = None
    if f"{variable}_qc" in ds:
        mask = usable_mask(ds[f"{variable}_qc"], ds[f"{variable}_qc_tests"], include_unreviewed_suspect=suspect)
    try:
        clim = Climatology().fit(ds[variable], mask=mask)
    except BadInputError as e:
        return None, {"skipped": f"no usable observation before the start {iso(start)} ({e})"}
    times = ds["time"].values
    return clim, {"fitted_on": [str(np.datetime64(times[0], "s")) + "Z", str(np.datetime64(times[-1], "s")) + "Z"],
                  "as_of": iso(start), "samples": int(getattr(clim, "train_samples_", 0)),
                  "within_training_period": bool(training)}


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")), "utf-8")
    os.replace(tmp, path)


def _differences(a: dict, b: dict) -> list[str]:
    return [f"{k} {a.get(k)!r} there, {b.get(k)!r} now" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def run_hindcast(
    settings,
    dataset: str,
    *,
    model: str,
    start: datetime | str,
    end: datetime | str,
    every: str | timedelta | int = "30min",
    baselines: Sequence[str] = ("persistence", "extrapolation", "sprog", "climatology"),
    scheduler: str | None = None,
    out: str | Path | None = None,
    variable: str | None = None,
    n_boot: int = 1000,
    progress: Callable[[int, int], None] | None = None,
    thresholds: Sequence[float] | None = None,
    fss_windows: Sequence[int] = DEFAULT_FSS_WINDOWS,
    fss_thresholds: Sequence[float] | None = None,
    include_unreviewed_suspect: bool = True,
    batch_size: int | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) a hindcast of ``model`` and the baselines; write the report; return its summary.

    Args:
        model: the registry version under test (method ``model``); the production model of the same
            dataset and variable, when there is one and it is another version, runs as ``production``.
        start, end: first and last init time (on the dataset's axis); inits every ``every``.
        baselines: any of persistence, extrapolation, sprog, climatology.
        scheduler: None (threaded), "sync", or a dask.distributed scheduler address (default:
            ``settings.dask_scheduler``).
        out: output folder (default `default_out`); holds ``state.json`` while running.
        progress: ``progress(done, total)`` after every batch (init counts).
        thresholds: event thresholds (default `default_thresholds`); ``fss_thresholds`` default to them.
        batch_size: inits per batch (default: 4 per worker thread, at least 8).
        command: the command line to record (default: the equivalent `forecast hindcast` call).

    Returns:
        ``{"out", "report": {"json", "html", "figures"}, "summary", "verdict", "terminal", "inits":
        {"requested", "verified", "skipped", "resumed"}, "seconds", "inits_per_second", "provenance"}``.

    Raises:
        BadInputError: unknown dataset / model / method, bad period, an ``out`` holding a hindcast with
            other arguments, or no init time that could be verified.
    """
    from forecast.evaluation import Verifier, terminal_summary, verdict, write_report
    from forecast.registry.store import ModelRegistry

    t_start = time.perf_counter()
    catalog = get_catalog(settings.catalogs, dataset)
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {dataset!r} has a monthly time axis; nowcast hindcasts need a sub-daily axis")
    start_dt, end_dt = _as_time(start, "--start"), _as_time(end, "--end")
    if start_dt > end_dt:
        raise BadInputError(f"--start {iso(start_dt)} is after --end {iso(end_dt)}")
    step_s = int(catalog.time.step_seconds)
    for what, t in (("--start", start_dt), ("--end", end_dt)):
        slot = catalog.time.slot_of(to_epoch(t))
        if slot is None or int(catalog.time.label(slot)) != to_epoch(t):
            raise BadInputError(f"{what} {iso(t)} is not on the time axis of {dataset} "
                                f"(slots every {catalog.time.step} from {iso(catalog.time.start)})")
    every_s = _parse_every(every, step_s)
    bad = [b for b in baselines if b not in ("persistence", "extrapolation", "sprog", "climatology")]
    if bad or len(set(baselines)) != len(baselines):
        raise BadInputError(f"unknown or repeated baseline(s) {', '.join(bad) or ', '.join(baselines)}; "
                            "choose from persistence, extrapolation, sprog, climatology")
    if int(n_boot) < 1:
        raise BadInputError(f"n_boot must be at least 1, got {n_boot}")

    settings.home.mkdir(parents=True, exist_ok=True)
    with ModelRegistry(settings.db_url, settings.models_dir) as registry:
        rec = registry.get(model)  # UnknownModelError names the known versions
        if rec.dataset != dataset:
            raise BadInputError(f"model {model} forecasts {rec.dataset}/{rec.variable}, not dataset {dataset}")
        if variable is not None and variable != rec.variable:
            raise BadInputError(f"model {model} forecasts {rec.variable}, not {variable}")
        variable = rec.variable
        if variable not in catalog.variables:
            raise BadInputError(f"dataset {dataset!r} has no variable {variable!r}")
        prod = registry.production(dataset, variable)
        model_info = _model_info(rec)
        prod_info = _model_info(prod) if prod is not None and prod.version != rec.version else None

    store = store_for(settings)
    if not store.exists():
        raise BadInputError(f"the observation store {store.location} does not exist yet; ingest some files first")
    thr = tuple(float(t) for t in (thresholds if thresholds is not None else default_thresholds(catalog, variable)))
    fthr = tuple(float(t) for t in fss_thresholds) if fss_thresholds is not None else thr
    wins = tuple(int(w) for w in fss_windows)
    inits = list(range(to_epoch(start_dt), to_epoch(end_dt) + 1, every_s))
    out_dir = Path(out) if out is not None else default_out(settings, dataset, model, start_dt, end_dt)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE

    run_args = {
        "dataset": dataset, "variable": variable, "model": model,
        "model_sha256": model_info["checkpoint_sha256"], "start": iso(start_dt), "end": iso(end_dt),
        "every_s": every_s, "baselines": list(baselines), "thresholds": list(thr), "fss_thresholds": list(fthr),
        "fss_windows": list(wins), "n_boot": int(n_boot), "include_unreviewed_suspect": bool(include_unreviewed_suspect),
    }
    state: dict[str, Any] | None = None
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text("utf-8"))
            if state.get("state_version") != STATE_VERSION:
                raise ValueError(f"state version {state.get('state_version')!r}")
        except (ValueError, OSError) as e:
            raise BadInputError(f"{state_path} is not a hindcast state this version can resume ({e}); "
                                "delete it or choose another --out") from None
        diff = _differences(state["run"], run_args)
        if diff:
            raise BadInputError(f"{out_dir} holds a hindcast with other arguments ({'; '.join(diff)}); "
                                "rerun with the same arguments to resume, or choose another --out")
        snapshot = state["snapshot"]
        prod_info = state["production"]
    else:
        snapshot = store.head()  # pinned: every read of this hindcast, resumed or not, uses it

    n_leads = model_info["leads"] if prod_info is None else min(model_info["leads"], prod_info["leads"])
    k = max([model_info["inputs"], 6 if baselines else 0] + ([prod_info["inputs"]] if prod_info else []))
    step = timedelta(seconds=step_s)
    last_valid = end_dt + n_leads * step

    if state is None:
        clim_info: dict[str, Any] = {}
        state = {"state_version": STATE_VERSION, "run": run_args, "snapshot": snapshot, "production": prod_info,
                 "verifier": None, "skipped": {}, "fallbacks": {}, "event": None, "climatology": clim_info}
    climatology = None
    if "climatology" in baselines:
        climatology, clim_info = _fit_climatology(settings, catalog, variable, store, snapshot, start_dt,
                                                  model_info["training_period"], include_unreviewed_suspect)
        state["climatology"] = clim_info
        if climatology is None:
            log.warning("climatology baseline skipped: %s", clim_info["skipped"])

    methods = [_Method("model", model)]
    if prod_info is not None:
        methods.append(_Method("production", prod_info["version"]))
    methods += [_Method(b) for b in baselines if b != "climatology" or climatology is not None]
    key_doc = {**run_args, "snapshot": snapshot, "production": prod_info and prod_info["version"],
               "k": k, "n_leads": n_leads, "methods": [m.name for m in methods], "settings": settings.model_dump_json(),
               "climatology": state["climatology"]}
    job = _Job(settings=settings, dataset=dataset, variable=variable, snapshot=snapshot, methods=tuple(methods),
               n_leads=n_leads, k=k, thresholds=thr, fss_thresholds=fthr, fss_windows=wins,
               include_unreviewed_suspect=include_unreviewed_suspect, climatology=climatology,
               key=hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest())

    lead_s = [int(s) for s in np.arange(1, n_leads + 1) * step_s]
    verifier = Verifier.from_state(state["verifier"]) if state["verifier"] else _verifier(job, lead_s)
    done = {int(np.datetime64(t, "s").astype("int64")) for t in verifier.inits("model")}
    done |= {int(s) for s in state["skipped"]}
    todo = [i for i in inits if i not in done]
    resumed = len(inits) - len(todo)
    torch_threads = None
    if "torch" in sys.modules or any(m.version for m in job.methods):
        torch_threads = _one_torch_thread()  # restored below
    runner = _Runner(scheduler if scheduler is not None else settings.dask_scheduler)
    batch = int(batch_size) if batch_size else max(8, 4 * runner.workers)
    task_seconds = 0.0
    t_loop = time.perf_counter()
    try:
        if progress:
            progress(resumed, len(inits))
        for b0 in range(0, len(todo), batch):
            results = runner.map(job, todo[b0:b0 + batch])
            for r in results:
                task_seconds += r["seconds"]
                if "skipped" in r:
                    state["skipped"][str(r["init"])] = r["skipped"]
                    continue
                verifier.merge(Verifier.from_state(r["state"]))
                for name, reason in r["fallbacks"].items():
                    fb = state["fallbacks"].setdefault(name, {"count": 0, "reasons": {}})
                    fb["count"] += 1
                    if len(fb["reasons"]) < 10 or reason in fb["reasons"]:
                        fb["reasons"][reason] = fb["reasons"].get(reason, 0) + 1
                ev = r["event"]
                if state["event"] is None or (ev[0], -ev[1]) > (state["event"][0], -state["event"][1]):
                    state["event"] = ev
            state["verifier"] = verifier.to_state()
            _write_json(state_path, state)
            if progress:
                progress(resumed + min(b0 + batch, len(todo)), len(inits))
        loop_seconds = time.perf_counter() - t_loop
        n_verified = len(verifier.inits("model"))
        if n_verified == 0:
            reasons = sorted(set(state["skipped"].values()))
            raise BadInputError(
                f"no init time between {iso(start_dt)} and {iso(end_dt)} could be verified (every {every_s // 60} min): "
                + (reasons[0] if reasons else "no observations in that period"))
        examples = []
        if state["event"] is not None and math.isfinite(state["event"][0]):
            units = catalog.variables[variable].units
            examples.append(_example(job, int(state["event"][1]), int(state["event"][2]), units))
    finally:
        runner.close()
        with _CONTEXT_LOCK:
            ctx = _CONTEXTS.pop(job.key, None)
        if ctx is not None and ctx.registry is not None:
            ctx.registry.close()
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)  # this process goes on (e.g. the demo predicts next)

    present = set(verifier.methods)
    summary = verifier.summary(reference="persistence" if "persistence" in present else None,
                               compare=("model",), n_boot=int(n_boot), seed=0)
    for name, fb in state["fallbacks"].items():
        if name in summary["methods"]:
            fb["share"] = fb["count"] / max(summary["methods"][name]["n_inits"], 1)
    skipped_counts: dict[str, int] = {}
    for reason in state["skipped"].values():
        generic = reason.split(": ", 1)[1] if reason[:4].isdigit() and ": " in reason else reason
        skipped_counts[generic] = skipped_counts.get(generic, 0) + 1
    from forecast.quality.run import qc_config

    overlap = {"model": _overlaps(model_info["training_period"], start_dt, last_valid)}
    if prod_info is not None:
        overlap["production"] = _overlaps(prod_info["training_period"], start_dt, last_valid)
    command = command or _command(dataset, model, start_dt, end_dt, every, baselines, variable, out)
    provenance = {
        "dataset": dataset,
        "variable": variable,
        "model": model_info,
        "production": prod_info,
        "methods": {m.name: (f"model {m.version}" if m.version else m.name) for m in methods},
        "period": {"start": iso(start_dt), "end": iso(end_dt), "every_s": every_s, "inits_requested": len(inits),
                   "inits_verified": n_verified, "inits_skipped": len(state["skipped"]),
                   "skipped_reasons": skipped_counts, "last_valid_time": iso(last_valid)},
        "observations": {"dataset": dataset, "store": str(store.location), "snapshot": snapshot},
        "qc": {"config_hash": qc_config(catalog).config_hash(),
               "verification_uses": "GOOD, NOT_EVALUATED, reviewed-accepted"
               + (", unreviewed SUSPECT" if include_unreviewed_suspect else "")
               + "; never FAIL, reviewed-rejected or MISSING"},
        "catalog_hash": catalog.hash,
        "revision_policy": REVISION_POLICY.format(
            suspect="included" if include_unreviewed_suspect else "excluded",
            training=" and within the model's training period" if model_info["training_period"] else ""),
        "climatology": state["climatology"],
        "fallbacks": state["fallbacks"],
        "training_overlap": overlap,
        "software": _software(),
        "settings": {"thresholds": list(thr), "fss_thresholds": list(fthr), "fss_windows": list(wins),
                     "n_boot": int(n_boot), "bootstrap_seed": 0, "n_leads": n_leads, "input_slots": k},
    }
    paths = write_report(summary, out_dir, provenance=provenance, examples=examples, command=command)
    seconds = time.perf_counter() - t_start
    line = verdict(summary)
    return {
        "out": str(out_dir),
        "report": paths,
        "summary": summary,
        "verdict": line,
        "terminal": terminal_summary(summary),
        "provenance": provenance,
        "inits": {"requested": len(inits), "verified": n_verified, "skipped": len(state["skipped"]),
                  "resumed": resumed, "run_now": len(todo)},
        "seconds": round(seconds, 3),
        "task_seconds": round(task_seconds, 3),
        "loop_seconds": round(loop_seconds, 3),
        "inits_per_second": round(len(todo) / loop_seconds, 3) if loop_seconds > 0 and todo else None,
    }


def _command(dataset, model, start, end, every, baselines, variable, out) -> str:
    parts = ["forecast", "hindcast", dataset, "--model", model, "--start", iso(start), "--end", iso(end),
             "--every", str(every), "--baselines", ",".join(baselines)]
    if variable:
        parts += ["--variable", variable]
    if out is not None:
        parts += ["--out", str(out)]
    return " ".join(parts)
