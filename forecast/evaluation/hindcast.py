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

When the variable has catalog ``thresholds`` (and ``probabilistic`` is on), the probabilistic baselines
(`forecast.evaluation.references.probabilistic_baselines`: all of `forecast.nowcast.PROBABILISTIC_BASELINES`
for precipitation) and every learned method whose nowcaster is a
`ProbabilisticNowcaster` also forecast exceedance probabilities, verified by a
`forecast.evaluation.probabilistic.ProbabilisticVerifier` on their own shared mask; the report gains
``brier``, ``reliability``, ``roc`` (and ``bss``, ``ece``, ``auc``, ``crps``) and ``summary.probabilistic``.

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
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from forecast.catalog import get_catalog
from forecast.errors import BadInputError
from forecast.fileutil import write_json_atomic
from forecast.quality.run import qc_config
from forecast.stores import store_for
from forecast.evaluation.references import (
    PRECIPITATION_THRESHOLDS,
    default_thresholds,
    fit_climatology,
    probabilistic_baselines,
)
from forecast.evaluation.tasks import (
    CONTEXT_LOCK,
    CONTEXTS,
    Job,
    Method,
    Runner,
    example,
    new_prob_verifier,
    new_verifier,
    one_torch_thread,
)
from forecast.provenance import HindcastProvenance, ModelRef, ObservationRef, QCRef, software_versions
from forecast.timeutil import iso, parse_duration, parse_time, to_epoch, utc
from forecast.timeutil import stamp as _stamp

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_FSS_WINDOWS", "PRECIPITATION_THRESHOLDS", "REVISION_POLICY", "STATE_FILE",
           "default_out", "default_thresholds", "run_hindcast"]

#: FSS window sizes (grid cells), odd and increasing.
DEFAULT_FSS_WINDOWS = (1, 3, 9, 17, 33)
#: Version of ``state.json``.
STATE_VERSION = 1
STATE_FILE = "state.json"

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
        raise BadInputError(f"the time between init times: {e}; write e.g. 30min, 1h or 5min", param="every") from None
    if not secs > 0 or secs != int(secs):
        raise BadInputError(f"the time between init times must be a positive whole number of seconds, got {every!r}",
                            param="every")
    secs = int(secs)
    if secs % step_s:
        raise BadInputError(f"the time between init times ({every}) is not a multiple of the dataset's time step "
                            f"({step_s // 60} min)", param="every")
    return secs


def default_out(settings, dataset: str, version: str, start: datetime, end: datetime) -> Path:
    """HOME/hindcasts/<dataset>-<version>-<start>-<end>/."""
    return Path(settings.home) / "hindcasts" / f"{dataset}-{version}-{_stamp(start)}-{_stamp(end)}"


def _as_time(value: datetime | str, what: str) -> datetime:
    if isinstance(value, datetime):
        return utc(value)
    try:
        return parse_time(str(value))
    except ValueError as e:
        raise BadInputError(f"the {what}: {e}", param=what) from None


def _overlaps(period: list[str] | None, start: datetime, last_valid: datetime) -> bool | None:
    """Whether the model's training period overlaps the verified period (None: unknown)."""
    if not period:
        return None
    a, b = (parse_time(p) for p in period)
    return a <= last_valid and start <= b


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
    probabilistic: bool = True,
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
        probabilistic: verify exceedance probabilities at the catalog's ``thresholds`` of the variable
            (none named: nothing probabilistic runs); False skips them (``--no-probabilistic``).

    Returns:
        ``{"out", "report": {"json", "html", "figures"}, "summary", "verdict", "terminal", "inits":
        {"requested", "verified", "skipped", "resumed"}, "seconds", "inits_per_second", "provenance"}``.

    Raises:
        BadInputError: unknown dataset / model / method, bad period, an ``out`` holding a hindcast with
            other arguments, or no init time that could be verified.
    """
    from forecast.evaluation import ProbabilisticVerifier, Verifier, terminal_summary, verdict, write_report
    from forecast.registry.store import ModelRegistry

    t_start = time.perf_counter()
    catalog = get_catalog(settings.catalogs, dataset)
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {dataset!r} has a monthly time axis; nowcast hindcasts need a sub-daily axis")
    start_dt, end_dt = _as_time(start, "start"), _as_time(end, "end")
    if start_dt > end_dt:
        raise BadInputError(f"the start {iso(start_dt)} is after the end {iso(end_dt)}", param="start")
    step_s = int(catalog.time.step_seconds)
    for what, t in (("start", start_dt), ("end", end_dt)):
        slot = catalog.time.slot_of(to_epoch(t))
        if slot is None or int(catalog.time.label(slot)) != to_epoch(t):
            raise BadInputError(f"the {what} {iso(t)} is not on the time axis of {dataset} "
                                f"(slots every {catalog.time.step} from {iso(catalog.time.start)})", param=what)
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
        model_info = ModelRef.from_record(rec).to_json()
        prod_info = ModelRef.from_record(prod).to_json() if prod is not None and prod.version != rec.version else None

    store = store_for(settings)
    store.require()
    thr = tuple(float(t) for t in (thresholds if thresholds is not None else default_thresholds(catalog, variable)))
    fthr = tuple(float(t) for t in fss_thresholds) if fss_thresholds is not None else thr
    wins = tuple(int(w) for w in fss_windows)
    pthr = tuple(float(t) for t in catalog.variables[variable].thresholds) if probabilistic else ()
    prob_methods = probabilistic_baselines(catalog, variable) if pthr else ()
    inits = list(range(to_epoch(start_dt), to_epoch(end_dt) + 1, every_s))
    out_dir = Path(out) if out is not None else default_out(settings, dataset, model, start_dt, end_dt)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE

    run_args = {
        "dataset": dataset, "variable": variable, "model": model,
        "model_sha256": model_info["checkpoint_sha256"], "start": iso(start_dt), "end": iso(end_dt),
        "every_s": every_s, "baselines": list(baselines), "thresholds": list(thr), "fss_thresholds": list(fthr),
        "fss_windows": list(wins), "n_boot": int(n_boot), "include_unreviewed_suspect": bool(include_unreviewed_suspect),
        "probabilistic_thresholds": list(pthr), "probabilistic_methods": list(prob_methods),
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
                 "verifier": None, "prob_verifier": None, "skipped": {}, "fallbacks": {}, "event": None,
                 "climatology": clim_info}
    climatology = None
    if "climatology" in baselines:
        climatology, clim_info = fit_climatology(settings, catalog, variable, store, snapshot, start_dt,
                                                  model_info["training_period"], include_unreviewed_suspect)
        state["climatology"] = clim_info
        if climatology is None:
            log.warning("climatology baseline skipped: %s", clim_info["skipped"])

    methods = [Method("model", model)]
    if prod_info is not None:
        methods.append(Method("production", prod_info["version"]))
    methods += [Method(b) for b in baselines if b != "climatology" or climatology is not None]
    key_doc = {**run_args, "snapshot": snapshot, "production": prod_info and prod_info["version"],
               "k": k, "n_leads": n_leads, "methods": [m.name for m in methods], "settings": settings.model_dump_json(),
               "climatology": state["climatology"]}
    job = Job(settings=settings, dataset=dataset, variable=variable, snapshot=snapshot, methods=tuple(methods),
               n_leads=n_leads, k=k, thresholds=thr, fss_thresholds=fthr, fss_windows=wins,
               include_unreviewed_suspect=include_unreviewed_suspect, climatology=climatology,
               key=hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest(),
               prob_thresholds=pthr, prob_methods=tuple(prob_methods))

    lead_s = [int(s) for s in np.arange(1, n_leads + 1) * step_s]
    verifier = Verifier.from_state(state["verifier"]) if state["verifier"] else new_verifier(job, lead_s)
    prob_verifier = None
    if pthr:
        prob_verifier = (ProbabilisticVerifier.from_state(state["prob_verifier"]) if state.get("prob_verifier")
                         else new_prob_verifier(job, lead_s))
    done = {int(np.datetime64(t, "s").astype("int64")) for t in verifier.inits("model")}
    done |= {int(s) for s in state["skipped"]}
    todo = [i for i in inits if i not in done]
    resumed = len(inits) - len(todo)
    torch_threads = None
    if "torch" in sys.modules or any(m.version for m in job.methods):
        torch_threads = one_torch_thread()  # restored below
    runner = Runner(scheduler if scheduler is not None else settings.dask_scheduler)
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
                if prob_verifier is not None and r.get("prob_state"):
                    prob_verifier.merge(ProbabilisticVerifier.from_state(r["prob_state"]))
                for name, reason in r["fallbacks"].items():
                    fb = state["fallbacks"].setdefault(name, {"count": 0, "reasons": {}})
                    fb["count"] += 1
                    if len(fb["reasons"]) < 10 or reason in fb["reasons"]:
                        fb["reasons"][reason] = fb["reasons"].get(reason, 0) + 1
                ev = r["event"]
                if state["event"] is None or (ev[0], -ev[1]) > (state["event"][0], -state["event"][1]):
                    state["event"] = ev
            state["verifier"] = verifier.to_state()
            state["prob_verifier"] = prob_verifier.to_state() if prob_verifier is not None else None
            write_json_atomic(state_path, state)
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
            examples.append(example(job, int(state["event"][1]), int(state["event"][2]), units))
    finally:
        runner.close()
        with CONTEXT_LOCK:
            ctx = CONTEXTS.pop(job.key, None)
        if ctx is not None and ctx.registry is not None:
            ctx.registry.close()
        if torch_threads is not None:
            from forecast.model.runtime import set_threads

            set_threads(torch_threads)  # this process goes on (e.g. the demo predicts next)

    present = set(verifier.methods)
    summary = verifier.summary(reference="persistence" if "persistence" in present else None,
                               compare=("model",), n_boot=int(n_boot), seed=0)
    prob_summary = None
    if prob_verifier is not None and prob_verifier.methods:
        prob_summary = prob_verifier.summary(
            reference="steps" if "steps" in prob_verifier.methods else None,
            compare=("model",) if "model" in prob_verifier.methods else (), n_boot=int(n_boot), seed=0)
        summary["probabilistic"] = prob_summary
    for name, fb in state["fallbacks"].items():
        src = summary["methods"] if name in summary["methods"] else (prob_summary or {}).get("methods", {})
        if name in src:
            fb["share"] = fb["count"] / max(src[name]["n_inits"], 1)
    skipped_counts: dict[str, int] = {}
    for reason in state["skipped"].values():
        generic = reason.split(": ", 1)[1] if reason[:4].isdigit() and ": " in reason else reason
        skipped_counts[generic] = skipped_counts.get(generic, 0) + 1
    overlap = {"model": _overlaps(model_info["training_period"], start_dt, last_valid)}
    if prod_info is not None:
        overlap["production"] = _overlaps(prod_info["training_period"], start_dt, last_valid)
    command = command or _command(dataset, model, start_dt, end_dt, every, baselines, variable, out, probabilistic)
    provenance = HindcastProvenance(
        dataset=dataset,
        variable=variable,
        model=ModelRef(**model_info),
        production=ModelRef(**prod_info) if prod_info is not None else None,
        methods={**{m.name: (f"model {m.version}" if m.version else m.name) for m in methods},
                 **{name: f"{name} (probabilistic)" for name in (prob_summary or {}).get("methods", {})
                    if name not in {m.name for m in methods}}},
        period={"start": iso(start_dt), "end": iso(end_dt), "every_s": every_s, "inits_requested": len(inits),
                "inits_verified": n_verified, "inits_skipped": len(state["skipped"]),
                "skipped_reasons": skipped_counts, "last_valid_time": iso(last_valid)},
        observations=ObservationRef(dataset=dataset, store=str(store.location), snapshot=snapshot),
        qc=QCRef(config_hash=qc_config(catalog).config_hash(),
                 verification_uses="GOOD, NOT_EVALUATED, reviewed-accepted"
                 + (", unreviewed SUSPECT" if include_unreviewed_suspect else "")
                 + "; never FAIL, reviewed-rejected or MISSING"),
        catalog_hash=catalog.hash,
        revision_policy=REVISION_POLICY.format(
            suspect="included" if include_unreviewed_suspect else "excluded",
            training=" and within the model's training period" if model_info["training_period"] else ""),
        climatology=state["climatology"],
        fallbacks=state["fallbacks"],
        training_overlap=overlap,
        software=software_versions(),
        settings={"thresholds": list(thr), "fss_thresholds": list(fthr), "fss_windows": list(wins),
                  "n_boot": int(n_boot), "bootstrap_seed": 0, "n_leads": n_leads, "input_slots": k,
                  "probabilistic_thresholds": list(pthr), "probabilistic_methods": list(prob_methods)},
    ).to_json()
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


def _command(dataset, model, start, end, every, baselines, variable, out, probabilistic=True) -> str:
    parts = ["forecast", "hindcast", dataset, "--model", model, "--start", iso(start), "--end", iso(end),
             "--every", str(every), "--baselines", ",".join(baselines)]
    if variable:
        parts += ["--variable", variable]
    if out is not None:
        parts += ["--out", str(out)]
    if not probabilistic:
        parts.append("--no-probabilistic")
    return " ".join(parts)
