"""One cycle of the service for one dataset, the same code path for `forecast worker` (every cycle) and
`forecast cycle` (exactly one):

1. **ingest** what arrived in the inbox (its arrival time is its ``available_at``), archive it, quarantine
   the bad;
2. **qc** the new and revised slots (incrementally), queue the suspects, write review decisions into flags;
3. **plan** the inits: an init is *due* when its own slot arrived, or when it is ``expected_latency +
   wait_for_late`` old without it (then it is forecast without it, and says so); its forecast must be
   served by ``due + deadline``; a newer due init supersedes older ones still waiting; inits whose
   deadline passed long ago (``expire_after``) are skipped and recorded, never queued;
4. **forecast** each due init (newest first) with the production model as of now and the fallback chain,
   the model given what is left of the deadline in a killable process; **write** it to the forecast store;
5. hand the cycle to the **hooks** (verification and monitoring) and log one structured line per init.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from forecast.catalog import Catalog
from forecast.clock import Clock
from forecast.errors import BadInputError
from forecast.timeutil import from_epoch, iso, to_epoch, utc
from forecast.worker.db import ServiceDB
from forecast.worker.inbox import ArchiveError, Inbox, feed_folders

log = logging.getLogger("forecast.worker")

__all__ = ["CycleHook", "Planned", "Service", "open_service", "plan_inits", "run_cycle"]

#: an init further than this beyond the clock, or older than this behind it, is refused (a jumped clock)
MAX_AHEAD = timedelta(hours=1)
MAX_BEHIND = timedelta(days=7)
#: at most this many missed inits are recorded one by one after an outage (the rest are counted)
MAX_BACKFILL = 2016

CycleHook = Callable[["Service", dict], dict | None]


@dataclass
class Service:
    """Everything a dataset's cycle needs, opened once by a resident worker (and once per `forecast cycle`)."""

    settings: Any
    catalog: Catalog
    clock: Clock
    store: Any
    fstore: Any
    inbox: Inbox
    db: ServiceDB
    runner: Any = None
    worker_id: str = "cycle"
    hooks: list[CycleHook] = field(default_factory=list)
    forecasters: dict[str, Any] = field(default_factory=dict)
    stop: Any = None  # a threading.Event: finish the current stage, then stop
    metrics: Any = None
    failed: set = field(default_factory=set)  # (variable, init) whose failure is already recorded
    # outcomes this process recorded, (variable, init epoch s) -> status: what planning knows while the
    # database is away (the spool holds them for the database)
    outcomes: dict = field(default_factory=dict)

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=int(self.catalog.time.step_seconds))

    def seconds(self, name: str) -> float:
        return self.catalog.feed.seconds(name)

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def open_service(settings, dataset: str, *, clock: Clock | None = None, runner=None, worker_id: str = "cycle",
                 hooks: list[CycleHook] | None = None) -> Service:
    """Open the stores, inbox and database of ``dataset`` for cycles."""
    from forecast.catalog import get_catalog
    from forecast.clock import clock_for
    from forecast.stores import forecast_store_for, store_for

    catalog = get_catalog(settings.catalogs, dataset)
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {dataset!r} has a monthly time axis; the worker's cycle needs a sub-daily axis")
    clock = clock or clock_for(settings.home, dataset)
    folder, pattern, archive = feed_folders(settings, catalog)
    folder.mkdir(parents=True, exist_ok=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    inbox = Inbox(folder, pattern, archive, settle_s=catalog.feed.seconds("settle"), clock=clock)
    db = ServiceDB(settings, Path(settings.home) / "worker" / f"spool-{dataset}.jsonl")
    return Service(settings=settings, catalog=catalog, clock=clock, store=store_for(settings),
                   fstore=forecast_store_for(settings), inbox=inbox, db=db, runner=runner, worker_id=worker_id,
                   hooks=list(hooks or []))


# ------------------------------------------------------------------------------------------------------
# stages


def _ingest(svc: Service, now: datetime) -> dict[str, Any]:
    from forecast.ingest import ingest

    arrivals = svc.inbox.scan()
    if not arrivals:
        return {"files": 0}
    paths = [a.path for a in arrivals]
    # one batch: the files that arrived since the last cycle, available from when each was seen
    rep = ingest(svc.catalog, paths, store=svc.store, available_at=min(a.arrived_at for a in arrivals),
                 quarantine_dir=svc.settings.quarantine_dir, scheduler=svc.settings.dask_scheduler or "sync",
                 workers=svc.settings.workers)
    rejected = {r["file"] for r in rep.rejected}
    archived, archive_errors = 0, []
    for a in arrivals:
        if str(a.path) in rejected:
            svc.inbox.discard(a.path)  # its copy and the reason are in the quarantine folder
            continue
        try:
            svc.inbox.archive(a.path, now)
            archived += 1
        except ArchiveError as e:
            archive_errors.append(str(e))
            log.error("%s", e)
    return {"files": len(arrivals), "written": rep.written, "late": rep.late, "revisions": rep.revisions,
            "duplicates": rep.duplicates, "rejected": rep.rejected, "archived": archived,
            "archive_errors": archive_errors, "snapshot": rep.snapshot if rep.committed else None}


def _qc(svc: Service) -> dict[str, Any]:
    from forecast.quality import apply_pending_decisions, run_qc

    rep = run_qc(svc.catalog, store=svc.store, queue=svc.db.spooling_queue(),
                 scheduler=svc.settings.dask_scheduler or "threads")
    decisions = svc.db.call("queue", lambda q: apply_pending_decisions(q, svc.catalog, store=svc.store,
                                                                       by=svc.worker_id))
    return {"slots_checked": rep.slots_checked, "events_added": rep.events_added, "committed": rep.committed,
            "decisions_snapshot": decisions}


# ------------------------------------------------------------------------------------------------------
# planning


@dataclass(frozen=True)
class Planned:
    """What the cycle does with one init: ``forecast`` it, or ``skip`` it (and why)."""

    init: datetime
    due_at: datetime
    deadline_at: datetime
    action: str
    reason: str | None = None
    slot_arrived: bool = True


def _arrivals(svc: Service, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per slot in [lo, hi): whether it holds data and when its first revision became available
    (epoch s; the earliest over variables)."""
    from forecast.stores.layout import NO_TIME

    session = svc.store.readonly()
    if not svc.store.has_dataset(session, svc.catalog.id):
        return np.zeros(max(hi - lo, 0), bool), np.full(max(hi - lo, 0), NO_TIME, "int64")
    st = svc.store.dataset_state(session, svc.catalog, lo=lo, hi=hi)
    n = max(st.hi - st.base, 0)
    filled = np.zeros(hi - lo, bool)
    first = np.full(hi - lo, NO_TIME, "int64")
    off = st.base - lo
    for vs in st.vars.values():
        ok = vs.revision >= 0
        filled[off:off + n] |= ok
        av = np.where(ok, vs.available_at, NO_TIME)
        cur = first[off:off + n]
        first[off:off + n] = np.where(cur == NO_TIME, av, np.where(av == NO_TIME, cur, np.minimum(cur, av)))
        # a revised slot's first arrival is in the archive
        for s, a in zip(vs.archive_slot, vs.archive_available_at):
            if lo <= s < hi and (first[s - lo] == NO_TIME or a < first[s - lo]):
                first[s - lo] = a
    return filled, first


def _first_slot(svc: Service) -> int | None:
    """The first slot that ever held data (None: the dataset has none yet)."""
    import zarr

    if not svc.store.exists():
        return None
    session = svc.store.readonly()
    if not svc.store.has_dataset(session, svc.catalog.id):
        return None
    first = int(zarr.open_group(session.store, path=svc.catalog.id, mode="r").attrs.get("first_slot", -1))
    return first if first >= 0 else None


def _at(epoch_s: float) -> datetime:
    """A time from epoch seconds, fractions kept (deadlines may be under a second)."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)


def plan_inits(svc: Service, variable: str, now: datetime) -> list[Planned]:
    """The inits this cycle forecasts (newest first) and those it skips (see the module docstring)."""
    from forecast.stores.layout import NO_TIME

    cat, feed = svc.catalog, svc.catalog.feed
    step_s = int(cat.time.step_seconds)
    latency, wait = feed.seconds("expected_latency"), feed.seconds("wait_for_late")
    deadline, expire = feed.seconds("deadline"), feed.seconds("expire_after")
    now_s = to_epoch(now)
    newest = cat.time.slot_of(now_s - (now_s - cat.time.start_s) % step_s)
    if newest is None:
        return []
    horizon = int((latency + wait + deadline + expire) // step_s) + 1
    first_data = _first_slot(svc)
    if first_data is None:
        return []  # nothing ever arrived: nothing to forecast from, nothing missed
    last = svc.db.call("state", lambda s: s.last_outcome_time(cat.id, variable))
    mine = [t for (v, t), st in svc.outcomes.items() if v == variable and st in ("done", "skipped")]
    if mine and (last is None or max(mine) > to_epoch(utc(last))):
        last = from_epoch(max(mine))
    lo = max(0, newest - horizon)
    missed_lo = lo
    if last is not None and utc(last) > now:
        log.warning("the clock (%s) is behind the newest init already handled (%s): it went back; planning from "
                    "the clock", iso(now), iso(utc(last)))
    elif last is not None:
        last_slot = cat.time.slot_of(to_epoch(utc(last)))
        if last_slot is not None:
            missed_lo = max(last_slot + 1, newest - MAX_BACKFILL)
            lo = max(lo, last_slot + 1)
    lo, missed_lo = max(lo, first_data), max(missed_lo, first_data)
    if lo > newest:
        return []
    since = from_epoch(int(cat.time.label(min(lo, missed_lo))))
    known = svc.db.call("state", lambda s: s.outcomes(cat.id, variable, since), default={}) or {}
    known = {to_epoch(utc(t)): st for t, st in known.items()}
    for (v, t), st in svc.outcomes.items():
        if v == variable and known.get(t) != "done":
            known[t] = st
    filled, first = _arrivals(svc, missed_lo, newest + 1)
    plans: list[Planned] = []
    ready: list[Planned] = []
    for slot in range(missed_lo, newest + 1):
        t = int(cat.time.label(slot))
        if known.get(t) in ("done", "skipped"):
            continue
        i = slot - missed_lo
        arrived = bool(filled[i]) and first[i] != NO_TIME and first[i] <= now_s
        due = first[i] if arrived else t + latency + wait
        due = min(due, t + latency + wait) if arrived else due
        p = dict(init=from_epoch(t), due_at=_at(due), deadline_at=_at(due + deadline), slot_arrived=arrived)
        if due > now_s:
            continue  # not due yet: waits for its slot (or its late-wait)
        if now_s > due + deadline + expire:
            if last is None:
                reason = f"its deadline {iso(due + deadline)} passed before the worker started"
            elif slot < lo:
                reason = "its deadline passed while no cycle ran (worker down, or the clock jumped)"
            else:
                reason = (f"its deadline {iso(due + deadline)} passed {int(now_s - due - deadline)} s ago "
                          "(the worker fell behind)")
            plans.append(Planned(**p, action="skip", reason=reason))
            continue
        ready.append(Planned(**p, action="forecast"))
    if ready:
        newest_ready = max(r.init for r in ready)
        for r in ready:
            if r.init < newest_ready and now_s > to_epoch(r.deadline_at):
                plans.append(Planned(r.init, r.due_at, r.deadline_at, "skip",
                                     f"superseded by the newer init {iso(newest_ready)} after its deadline passed"))
            else:
                plans.append(r)
    # inits not yet due but older than a ready one will never be worth their forecast
    if ready:
        newest_ready_s = to_epoch(max(r.init for r in ready))
        for slot in range(missed_lo, newest + 1):
            t = int(cat.time.label(slot))
            if t < newest_ready_s and known.get(t) not in ("done", "skipped") and not any(
                    to_epoch(p.init) == t for p in plans):
                plans.append(Planned(from_epoch(t), _at(t + latency + wait),
                                     _at(t + latency + wait + deadline), "skip",
                                     f"superseded by the newer init {iso(newest_ready_s)}, whose inputs were due "
                                     "first (its own slot had not arrived)", slot_arrived=False))
    return sorted(plans, key=lambda p: (p.action != "forecast", -to_epoch(p.init)))


# ------------------------------------------------------------------------------------------------------
# forecasting


def _variables(svc: Service) -> list[str]:
    cat = svc.catalog
    if cat.feed.variables:
        return list(cat.feed.variables)
    if len(cat.variables) == 1:
        return list(cat.variables)
    with_model = svc.db.call("registry", lambda r: [v for v in cat.variables if r.production(cat.id, v)], default=None)
    if with_model:
        return with_model
    return [v for v in cat.variables if v in svc.forecasters]  # the last known, while the database is away


def _forecaster(svc: Service, variable: str):
    """The Forecaster of ``variable`` with the production model of now (kept while it stays production)."""
    from forecast.nowcast.forecaster import Forecaster

    cat = svc.catalog
    registry = svc.db.registry()
    rec = svc.db.call("registry", lambda r: r.production(cat.id, variable), default="unreachable")
    fc = svc.forecasters.get(variable)
    if rec == "unreachable":  # keep the model we had: the database will tell us of a promotion later
        if fc is not None:
            return fc
        rec = None
    key = (rec.version, rec.checkpoint_sha256) if rec is not None else None
    if fc is None or getattr(fc, "_key", None) != key:
        fc = Forecaster(cat, variable, registry=registry)
        if rec is None and registry is None:
            fc.model_error = "the service database (model registry) is unreachable"
        fc._key = key
        fc.runner = svc.runner
        svc.forecasters[variable] = fc
    fc.registry = registry if registry is not None else fc.registry
    return fc


def _inputs_report(prov: dict, init: datetime, catalog: Catalog) -> dict[str, Any]:
    latency = catalog.feed.seconds("expected_latency")
    slots, late, missing = [], [], []
    for s in prov["observations"]["input_slots"]:
        t = to_epoch(utc(datetime.fromisoformat(s["time"])))
        av = s.get("available_at")
        is_late = av is not None and to_epoch(utc(datetime.fromisoformat(av))) - t > latency
        slots.append({**s, "late": is_late})
        if s["revision"] < 0:
            missing.append(s["time"])
        elif is_late:
            late.append(s["time"])
    return {"slots": slots, "late": late, "missing": missing, "as_of": prov["observations"].get("as_of"),
            "snapshot": prov["observations"].get("snapshot"), "quality": prov["qc"]["input_quality"]}


def _forecast_one(svc: Service, variable: str, plan: Planned, now: datetime) -> dict[str, Any]:
    from forecast.nowcast.predict import read_inputs
    from forecast.stores import PRODUCTION

    t0 = time.perf_counter()
    fc = _forecaster(svc, variable)
    remaining = svc.clock.wall_seconds((plan.deadline_at - now).total_seconds())
    fc.deadline = max(0.0, remaining)
    stages: dict[str, float] = {}
    obs = read_inputs(svc.store, svc.catalog, variable, plan.init, fc.k, as_of=now, snapshot=svc.store.head())
    stages["read"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    produced = fc.produce(obs, plan.init, as_of=now)
    stages["forecast"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    res = svc.fstore.write(svc.catalog, PRODUCTION, plan.init, produced.stored(), produced.provenance)
    stages["write"] = time.perf_counter() - t2
    return {"variable": variable, "init_time": iso(plan.init), "method": produced.method,
            "fallback": produced.fallback, "model": (produced.provenance.get("model") or {}).get("version"),
            "written": res.written, "snapshot": res.snapshot, "stages": {k: round(v, 4) for k, v in stages.items()},
            "inputs": _inputs_report(produced.provenance, plan.init, svc.catalog),
            "annotations": produced.provenance["annotations"], "forecast": produced}


def _row(svc: Service, variable: str, plan: Planned, *, status: str, started: datetime, finished: datetime,
         reason: str | None = None, done: dict | None = None, stages: dict | None = None) -> dict[str, Any]:
    lateness = (finished - plan.due_at).total_seconds() if status == "done" else None
    return {
        "dataset": svc.catalog.id, "variable": variable, "init_time": plan.init, "status": status, "reason": reason,
        "method": (done or {}).get("method"), "fallback": (done or {}).get("fallback"),
        "model_version": (done or {}).get("model"), "due_at": plan.due_at, "deadline_at": plan.deadline_at,
        "started_at": started, "finished_at": finished,
        "lateness_s": round(lateness, 3) if lateness is not None else None,
        "deadline_missed": bool(status == "done" and finished > plan.deadline_at),
        "stages": stages or {}, "inputs": (done or {}).get("inputs") or {},
        "forecast_snapshot": (done or {}).get("snapshot"), "worker": svc.worker_id,
    }


def check_init(svc: Service, init: datetime, now: datetime) -> datetime:
    """An init asked for by hand: on the axis and not far from the clock (a jumped clock or a typo)."""
    cat = svc.catalog
    slot = cat.time.slot_of(to_epoch(init))
    if slot is None or int(cat.time.label(slot)) != to_epoch(init):
        raise BadInputError(f"init time {iso(init)} is not on the time axis of {cat.id} "
                            f"(slots every {cat.time.step} from {iso(cat.time.start)})", param="init")
    if init - now > MAX_AHEAD:
        raise BadInputError(f"init time {iso(init)} lies {init - now} ahead of the clock ({iso(now)}, "
                            f"{svc.clock.describe()}); a forecast cannot start from observations not yet made "
                            "(is the clock or the init time wrong?)", param="init")
    if now - init > MAX_BEHIND:
        raise BadInputError(f"init time {iso(init)} lies {now - init} behind the clock ({iso(now)}); the cycle "
                            "forecasts the present: reproduce a past forecast with a predict as of a past time",
                            param="init")
    return init


def run_cycle(svc: Service, *, init: datetime | None = None) -> dict[str, Any]:
    """One cycle (see the module docstring). Returns the cycle's report; ``forecasts`` lists one entry per
    init and variable forecast, ``skipped`` the inits skipped; the newest forecast's ``init_time``,
    ``method``, ``fallback``, ``stages`` and ``inputs`` are also at the top level."""
    started = svc.clock.now()
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    report: dict[str, Any] = {"dataset": svc.catalog.id, "now": iso(started), "clock": svc.clock.describe(),
                              "forecasts": [], "skipped": [], "errors": []}
    if init is not None:
        init = check_init(svc, utc(init), started)
    svc.db.flush()
    t = time.perf_counter()
    report["ingest"] = _ingest(svc, started)
    stages["ingest"] = time.perf_counter() - t
    if svc.stopping():
        return _finish(svc, report, stages, t0)
    t = time.perf_counter()
    try:
        report["qc"] = _qc(svc) if svc.store.exists() else {"slots_checked": 0}
    except BadInputError as e:  # nothing ingested yet
        report["qc"] = {"slots_checked": 0, "note": str(e)}
    stages["qc"] = time.perf_counter() - t
    rows: list[dict[str, Any]] = []
    t = time.perf_counter()
    for variable in _variables(svc):
        now = svc.clock.now()
        if init is not None:
            due = init + timedelta(seconds=svc.seconds("expected_latency"))
            plans = [Planned(init, min(due, now), min(due, now) + timedelta(seconds=svc.seconds("deadline")),
                             "forecast")]
        else:
            plans = plan_inits(svc, variable, now)
        for plan in plans:
            if svc.stopping():
                break
            t_start = svc.clock.now()
            if plan.action == "skip":
                rows.append(_row(svc, variable, plan, status="skipped", started=t_start, finished=t_start,
                                 reason=plan.reason))
                report["skipped"].append({"variable": variable, "init_time": iso(plan.init), "reason": plan.reason})
                continue
            w0 = time.perf_counter()
            try:
                done = _forecast_one(svc, variable, plan, svc.clock.now())
            except BadInputError as e:  # nothing to forecast from (yet): tried again next cycle, recorded once
                key = (variable, plan.init)
                if key not in svc.failed:
                    svc.failed.add(key)
                    rows.append(_row(svc, variable, plan, status="failed", started=t_start,
                                     finished=svc.clock.now(), reason=str(e)))
                report["errors"].append({"variable": variable, "init_time": iso(plan.init), "error": str(e)})
                continue
            done["stages"]["total"] = round(time.perf_counter() - w0, 4)
            finished = svc.clock.now()
            rows.append(_row(svc, variable, plan, status="done", started=t_start, finished=finished, done=done,
                             stages=done["stages"]))
            done["due_at"], done["deadline_at"] = iso(plan.due_at), iso(plan.deadline_at)
            done["lateness_s"] = rows[-1]["lateness_s"]
            done["deadline_missed"] = rows[-1]["deadline_missed"]
            report["forecasts"].append(done)
    stages["forecast"] = time.perf_counter() - t
    for r in rows:  # each init's row carries the cycle's own stages beside its forecast's
        if r["status"] == "done":
            r["stages"] = {"ingest": round(stages["ingest"], 4), "qc": round(stages["qc"], 4), **r["stages"]}
    svc.db.record_cycles(rows)
    for r in rows:
        key = (r["variable"], to_epoch(r["init_time"]))
        if svc.outcomes.get(key) != "done":
            svc.outcomes[key] = r["status"]
    if len(svc.outcomes) > 4 * MAX_BACKFILL:  # a resident worker's memory stays flat
        cutoff = to_epoch(started) - MAX_BACKFILL * int(svc.catalog.time.step_seconds)
        svc.outcomes = {k: v for k, v in svc.outcomes.items() if k[1] >= cutoff}
        svc.failed = {k for k in svc.failed if to_epoch(k[1]) >= cutoff}
    t = time.perf_counter()
    for hook in svc.hooks:
        try:
            extra = hook(svc, report)
            if extra:
                report.setdefault("hooks", {}).update(extra)
        except Exception as e:  # noqa: BLE001 - monitoring must never cost the forecast
            log.exception("cycle hook %s failed", getattr(hook, "__name__", hook))
            report["errors"].append({"hook": getattr(hook, "__name__", str(hook)), "error": f"{type(e).__name__}: {e}"})
    stages["verify"] = time.perf_counter() - t
    return _finish(svc, report, stages, t0)


def _finish(svc: Service, report: dict, stages: dict, t0: float) -> dict[str, Any]:
    stages["total"] = time.perf_counter() - t0
    report["stages"] = {k: round(v, 4) for k, v in stages.items()}
    newest = max(report["forecasts"], key=lambda f: f["init_time"], default=None)
    for key in ("init_time", "method", "fallback", "inputs"):
        report[key] = newest[key] if newest else None
    if newest:
        report["stages"] = {**report["stages"], **{f"model_{k}": v for k, v in newest["stages"].items()}}
    for f in report["forecasts"]:
        f.pop("forecast", None)
        line = {"event": "cycle", "dataset": svc.catalog.id, "variable": f["variable"], "init_time": f["init_time"],
                "method": f["method"], "fallback": (f["fallback"] or {}).get("reason"),
                "stages": report["stages"], "lateness_s": f.get("lateness_s"),
                "deadline_missed": f.get("deadline_missed"),
                "inputs": {"late": f["inputs"]["late"], "missing": f["inputs"]["missing"],
                           "revisions": [s["revision"] for s in f["inputs"]["slots"]]}}
        log.info(json.dumps(line))
    for s in report["skipped"]:
        log.info(json.dumps({"event": "skipped", "dataset": svc.catalog.id, **s}))
    if svc.metrics is not None:
        svc.metrics.observe(report)
    return report
