"""One monitoring pass over a dataset: verify what matured, recompute what was revised, extract input
features, update the change detector, judge skill, drift and strata on the short and long windows, run the
alert rules, and leave a snapshot for status pages and Prometheus.

The worker runs a pass after each cycle (`forecast.monitoring.hook.MonitorHook`); `forecast monitor run`
runs one by hand. Everything a pass needs to know about earlier ones is in the service database, so a pass
after a restart (or after a database outage) picks up where the last one stopped.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from forecast.monitoring import detector
from forecast.monitoring.alerts import Evidence, apply_observations, evaluate_rules
from forecast.monitoring.config import alert_rules_for, monitoring_config
from forecast.monitoring.drift import reference_statistics, slot_features, window_drift
from forecast.monitoring.skill import strata_report, window_bounds, window_skill
from forecast.monitoring.store import MonitorDB
from forecast.monitoring.strata import is_precipitation, region_masks
from forecast.monitoring.verification import Verification
from forecast.timeutil import from_epoch, iso, parse_time, to_epoch, utc

log = logging.getLogger("forecast.monitor")

__all__ = ["Monitor", "reference_from_store"]

#: at most this many inits are verified per pass (a monitor catching up spreads the work over passes)
MAX_INITS_PER_PASS = 24
#: slots read per batch when extracting features
FEATURE_BATCH = 48


def _usable_fail(ds, variable: str, suspect: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from qc.flags import QCFlag, TestBit, usable_mask

    values = np.asarray(ds[variable].values, dtype=np.float32)
    finite = np.isfinite(values)
    if f"{variable}_qc" in ds:
        q = np.asarray(ds[f"{variable}_qc"].values)
        t = np.asarray(ds[f"{variable}_qc_tests"].values)
        usable = np.asarray(usable_mask(q, t, include_unreviewed_suspect=suspect)) & finite
        fail = ((q == QCFlag.FAIL) | ((t & np.uint32(TestBit.REVIEWED_REJECTED)) != 0)) & finite
    else:
        usable, fail = finite, np.zeros(values.shape, bool)
    return values, usable, fail


def features_of_slots(store, catalog, variable: str, lo_s: int, hi_s: int, regions, *, suspect: bool = True,
                      snapshot: str | None = None) -> list[tuple[datetime, int, dict]]:
    """(slot time, revision, features) of every slot in [lo_s, hi_s] that holds data (latest revision)."""
    from forecast.stores import open_observations

    step = int(catalog.time.step_seconds)
    precip = is_precipitation(catalog, variable)
    km = abs(catalog.grid.x.step) / 1000.0 if catalog.grid.x.units == "m" else 111.0 * abs(catalog.grid.x.step)
    out = []
    prev = None
    t = lo_s - step  # one slot before: the motion / tendency of the first
    while t <= hi_s:
        b_hi = min(hi_s, t + (FEATURE_BATCH - 1) * step)
        ds = open_observations(catalog.id, store=store, start=from_epoch(t), end=from_epoch(b_hi), snapshot=snapshot)
        keep = [n for n in (variable, f"{variable}_qc", f"{variable}_qc_tests") if n in ds]
        revs = ds[f"{variable}_revision"].values
        times = ds["time"].values.astype("datetime64[s]").astype("int64")
        ds = ds[keep].load()
        values, usable, fail = _usable_fail(ds, variable, suspect)
        for k in range(len(times)):
            ts = int(times[k])
            cur = np.where(usable[k], values[k], np.nan)
            if ts >= lo_s and revs[k] >= 0:
                feats = slot_features(values[k], usable[k], fail[k], precipitation=precip, regions=regions,
                                      prev=prev, km_per_px=km, step_h=step / 3600.0)
                out.append((from_epoch(ts), int(revs[k]), feats))
            prev = cur if revs[k] >= 0 else None
        t = b_hi + step
    return out


def reference_from_store(store, catalog, variable: str, start: datetime, end: datetime, regions, *,
                         source: str, snapshot: str | None = None) -> dict | None:
    """`reference_statistics` of the inputs over [start, end] read from the store (None: no data there)."""
    feats = features_of_slots(store, catalog, variable, to_epoch(start), to_epoch(end), regions, snapshot=snapshot)
    if not feats:
        return None
    return reference_statistics([f for _, _, f in feats], [iso(t) for t, _, _ in feats],
                                period=[iso(start), iso(end)], source=source)


class Monitor:
    """The monitor of one dataset (see the module docstring)."""

    def __init__(self, settings, catalog, *, store=None, fstore=None, db: MonitorDB | None = None, notifier=None,
                 clock=None):
        from forecast.monitoring.delivery import Notifier
        from forecast.stores import forecast_store_for, store_for

        self.settings = settings
        self.catalog = catalog
        self.cfg = monitoring_config(catalog)
        self.rules, self.rules_source = alert_rules_for(settings, catalog)
        self.regions = region_masks(catalog, self.cfg.regions)
        self.store = store or store_for(settings)
        self.fstore = fstore or forecast_store_for(settings)
        self.db = db or MonitorDB(settings.db_url)
        self.verification = Verification(catalog, self.cfg, self.store, self.fstore, self.regions)
        self.notifier = notifier or Notifier(settings, record=lambda aid, kind, d: self.db.add_event(
            aid, kind, actor="delivery", details=d))
        self.clock = clock
        self._thresholds: dict[tuple, dict] = {}
        self._references: dict[str, tuple[str, dict | None]] = {}
        self.passes = 0

    # -- the pass -----------------------------------------------------------------------------------------

    def variables(self) -> list[str]:
        out = list(self.verification.forecast_variables())
        for v in self.catalog.feed.variables:
            if v not in out:
                out.append(v)
        if not out and len(self.catalog.variables) == 1:
            out = list(self.catalog.variables)
        return out

    def run(self, now: datetime | None = None, *, max_inits: int | None = MAX_INITS_PER_PASS,
            long: bool | None = None) -> dict[str, Any]:
        """One pass at clock time ``now``; returns what it did per variable (``long``: force or skip the
        long-window evaluation; default: when ``monitoring.long_every`` has passed)."""
        now = utc(now or (self.clock.now() if self.clock else datetime.now().astimezone()))
        t0 = time.perf_counter()
        out: dict[str, Any] = {"dataset": self.catalog.id, "now": iso(now), "variables": {}}
        if not self.store.exists():
            out["note"] = "the observation store does not exist yet"
            return out
        cfg, step = self.cfg, int(self.catalog.time.step_seconds)
        back = max(cfg.seconds("verify_horizon"), cfg.seconds("revision_horizon"), cfg.seconds("short_window"))
        self.verification.prefetch(to_epoch(now) - int(back) - 2 * step, to_epoch(now))
        for variable in self.variables():
            out["variables"][variable] = self._variable(variable, now, max_inits=max_inits, long=long)
        self.passes += 1
        out["seconds"] = round(time.perf_counter() - t0, 4)
        return out

    def _variable(self, variable: str, now: datetime, *, max_inits: int | None, long: bool | None) -> dict[str, Any]:
        cfg, ds = self.cfg, self.catalog.id
        timing: dict[str, float] = {}
        t = time.perf_counter()
        verified = self._verify(variable, now, max_inits)
        timing["verify"] = time.perf_counter() - t
        t = time.perf_counter()
        n_feat = self._features(variable, now)
        timing["features"] = time.perf_counter() - t

        last_long = self.db.get_state(ds, variable, "last_long")
        due_long = long if long is not None else (
            last_long is None or (now - parse_time(last_long)).total_seconds() >= cfg.seconds("long_every"))
        ev = Evidence(dataset=ds, variable=variable, now=now)
        t = time.perf_counter()
        windows = ("short", "long") if due_long else ("short",)
        anchor = self.db.last_verified(ds, variable) or now  # skill windows end at the newest verified init
        for w in windows:
            start, end = window_bounds(cfg, anchor, w)
            ev.skill[w] = window_skill(self.db, self.catalog, variable, cfg, start=start, end=end,
                                       n_boot=cfg.n_boot if w == "short" else min(cfg.n_boot, 200))
        timing["skill"] = time.perf_counter() - t
        t = time.perf_counter()
        ref = self.reference(variable, now)
        for w in windows:
            ev.drift[w] = self._drift(variable, now, w, ref)
        timing["drift"] = time.perf_counter() - t
        t = time.perf_counter()
        # strata cost a bootstrap per stratum: only for the windows a stratum rule watches
        strata_windows = [w for w in windows if any(r.kind == "stratum_below_reference" and (r.window or "long") == w
                                                     and r.applies(ds, variable) for r in self.rules)]
        for w in strata_windows:
            start, end = window_bounds(cfg, anchor, w)
            ev.strata[w] = strata_report(self.db, self.catalog, variable, cfg, start=start, end=end, n_boot=100)
        timing["strata"] = time.perf_counter() - t
        ev.detector = {**(self.db.get_state(ds, variable, "detector") or detector.new_state()),
                       "h": cfg.detector.h, "method": cfg.detector.method}
        ev.feed = self._feed(variable, now)
        ev.deadline_misses = self._deadline_misses(now)
        ev.review_oldest_s, ev.review_item = self._review(variable)
        t = time.perf_counter()
        observations = evaluate_rules(self.rules, ev, self.db.firing(ds, variable))
        changes = apply_observations(self.db, ev, observations, self.rules, self.notifier.notify)
        timing["alerts"] = time.perf_counter() - t
        if due_long:
            self.db.put_state(ds, variable, "last_long", iso(now), now)
        snap = self._snapshot(variable, now, ev, verified, changes, due_long)
        snap["seconds"] = {k: round(v, 4) for k, v in timing.items()}
        self.db.put_state(ds, variable, "snapshot", snap, now)
        return {"verified": verified, "features": n_feat, "long": bool(due_long), "alerts": changes,
                "seconds": snap["seconds"]}

    # -- verification and the detector --------------------------------------------------------------------

    def _verify(self, variable: str, now: datetime, max_inits: int | None) -> dict[str, Any]:
        cfg, ds = self.cfg, self.catalog.id
        since = now - timedelta(seconds=max(cfg.seconds("verify_horizon"), cfg.seconds("revision_horizon")))
        verified = self.db.verified(ds, variable, since)
        due = self.verification.due(variable, now, verified)
        due.sort(key=lambda d: (d.reason != "new", d.init))
        if max_inits is not None:
            due = due[:max_inits]
        state = self.db.get_state(ds, variable, "detector") or detector.new_state()
        done = {"new": 0, "revised": 0, "skipped": []}
        obs_snapshot = self.store.head()
        for d in due:
            try:
                rows = self.verification.verify_init(variable, d.init, now, obs_snapshot=obs_snapshot)
            except Exception as e:
                from forecast.errors import BadInputError

                if not isinstance(e, BadInputError):
                    log.exception("verification of %s/%s %s failed", ds, variable, iso(d.init))
                done["skipped"].append({"init_time": iso(d.init), "reason": str(e)})
                continue
            self.db.add_verifications(rows)
            done[d.reason] += 1
            if d.reason == "new":
                skill = next(r["skill"] for r in rows if r["method"] == "model")
                state = detector.update(state, skill, cfg.detector, init=iso(d.init))
        if done["new"]:
            self.db.put_state(ds, variable, "detector", state, now)
        return done

    # -- features and drift --------------------------------------------------------------------------------

    def _features(self, variable: str, now: datetime) -> int:
        """Features of slots not yet featured (back to the verify horizon) and of revised ones."""
        cfg, ds, step = self.cfg, self.catalog.id, int(self.catalog.time.step_seconds)
        horizon = now - timedelta(seconds=max(cfg.seconds("short_window"), min(cfg.seconds("verify_horizon"),
                                                                                cfg.seconds("long_window"))))
        have = self.db.feature_revisions(ds, variable, horizon)
        lo_s = to_epoch(horizon)
        lo_s -= (lo_s - self.catalog.time.start_s) % step
        hi_s = to_epoch(now)
        lo, rev, av = self.verification.slot_revisions(lo_s, hi_s, variable)
        if len(rev) == 0:
            return 0
        times = self.catalog.time.label(np.arange(lo, lo + len(rev)))
        known = {to_epoch(k): v for k, v in have.items()}
        # slots available by now (a store filled ahead of a replayed clock holds slots not yet "arrived")
        todo = [int(ts) for ts, r, a in zip(times, rev, av) if r >= 0 and a <= hi_s and known.get(int(ts)) != int(r)]
        if not todo:
            return 0
        rows = features_of_slots(self.store, self.catalog, variable, min(todo), max(todo), self.regions,
                                 suspect=cfg.include_unreviewed_suspect)
        rows = [r for r in rows if to_epoch(r[0]) in set(todo)]
        self.db.put_features(ds, variable, rows, now)
        return len(rows)

    def reference(self, variable: str, now: datetime) -> dict | None:
        """The inputs' reference statistics (see `forecast.monitoring.drift`), cached by their source."""
        cfg, ds = self.cfg, self.catalog.id
        rec = None
        try:
            from forecast.registry import ModelRegistry

            with ModelRegistry(self.settings.db_url, self.settings.models_dir) as reg:
                rec = reg.production(ds, variable)
        except Exception as e:
            log.debug("registry unreadable for the drift reference: %s", e)
        if rec is not None:
            cached = self._references.get(variable)
            if cached and cached[0] == f"model {rec.version}":
                return cached[1]
            kept = self.db.get_state(ds, variable, f"reference:{rec.version}")  # kept at registration
            if kept and kept.get("reference"):
                self._references[variable] = (f"model {rec.version}", kept["reference"])
                return kept["reference"]
        period, source = None, None
        summary = ((rec.extra or {}).get("input_reference") or {}) if rec is not None else {}
        if rec is not None and summary.get("period"):
            period = [parse_time(p) for p in summary["period"]]
            source = f"model {rec.version} training period (its record's input_reference; features from the store)"
        elif rec is not None and ((rec.extra or {}).get("training") or {}).get("period"):
            period = [parse_time(p) for p in rec.extra["training"]["period"]]
            source = f"model {rec.version} training period (computed from the store)"
        if period is None and cfg.reference_period:
            period = [parse_time(p) for p in cfg.reference_period]
            source = "monitoring.reference_period (computed from the store)"
        elif period is None:
            first = self._first_time()
            if first is None:
                return None
            period = [first, first + timedelta(hours=cfg.reference_hours)]
            source = f"the first {cfg.reference_hours:g} h of data (computed from the store)"
            if period[1] > now:
                return None  # not yet: the reference period is still running
        key = f"{source}: {iso(period[0])}..{iso(period[1])}"
        cached = self._references.get(variable)
        if cached and cached[0] == key:
            return cached[1]
        stored = self.db.get_state(ds, variable, "reference")
        if stored and stored.get("key") == key:
            self._references[variable] = (key, stored["reference"])
            return stored["reference"]
        ref = reference_from_store(self.store, self.catalog, variable, period[0], period[1], self.regions,
                                   source=source)
        if ref is not None:
            self.db.put_state(ds, variable, "reference", {"key": key, "reference": ref}, now)
        self._references[variable] = (key, ref)
        return ref

    def _first_time(self) -> datetime | None:
        import zarr

        session = self.store.readonly()
        if not self.store.has_dataset(session, self.catalog.id):
            return None
        first = int(zarr.open_group(session.store, path=self.catalog.id, mode="r").attrs.get("first_slot", -1))
        return None if first < 0 else from_epoch(int(self.catalog.time.label(first)))

    def _drift(self, variable: str, now: datetime, window: str, ref: dict | None) -> dict | None:
        if ref is None:
            return None
        cfg = self.cfg
        start, end = window_bounds(cfg, now, window)
        ref_end = parse_time(ref["period"][1]) if ref.get("period") else None
        if ref_end is not None and start < ref_end:
            start = ref_end  # a window overlapping the reference compares it with itself
        rows = [f for t, _, f in self.db.features(self.catalog.id, variable, since=start + timedelta(seconds=1),
                                                  until=end)]
        cache = self._thresholds.setdefault((variable, window), {})
        rep = window_drift(rows, ref, self._nominal(window), cfg.drift, cache)
        rep.update(window=window, start=iso(start), end=iso(end), reference={
            k: ref.get(k) for k in ("period", "source", "n_slots")})
        return rep

    def _nominal(self, window: str) -> int:
        return int(self.cfg.seconds("short_window" if window == "short" else "long_window")
                   // int(self.catalog.time.step_seconds))

    # -- the feed, deadlines, reviews ------------------------------------------------------------------------

    def _feed(self, variable: str, now: datetime) -> dict[str, Any]:
        feed, step = self.catalog.feed, int(self.catalog.time.step_seconds)
        late_rule = next((r for r in self.rules if r.kind == "data_late" and r.applies(self.catalog.id, variable)),
                         None)
        fail_rule = next((r for r in self.rules if r.kind == "fail_share" and r.applies(self.catalog.id, variable)),
                         None)
        late_window = (late_rule.window if late_rule and late_rule.window else "1h")
        max_late = (late_rule.max_late if late_rule and late_rule.max_late else "10min")
        from forecast.catalog.monitoring import duration_s

        due_after = feed.seconds("expected_latency") + feed.seconds("wait_for_late")
        now_s = to_epoch(now)
        newest = now_s - due_after
        span = max(duration_s(late_window), 12 * step)
        lo_s = newest - span
        lo_s -= (lo_s - self.catalog.time.start_s) % step
        lo, rev, av = self.verification.slot_revisions(lo_s, newest, variable)
        if len(rev) == 0:
            return {}
        times = self.catalog.time.label(np.arange(lo, lo + len(rev)))
        first = self._first_time()
        arrived = (rev >= 0) & (av <= now_s)
        run, since = 0, None
        for k in range(len(rev) - 1, -1, -1):
            if arrived[k] or (first is not None and times[k] < to_epoch(first)):
                break
            run += 1
            since = iso(int(times[k]))
        win = times >= newest - duration_s(late_window)
        got = arrived & win
        late = got & ((av - times) > duration_s(max_late))
        out = {"missing_run": run, "missing_since": since, "late_window": late_window, "max_late": max_late,
               "late_share": float(late.sum() / got.sum()) if got.any() else None}
        n_fail = (fail_rule.slots if fail_rule and fail_rule.slots else 3)
        rows = self.db.features(self.catalog.id, variable, since=from_epoch(now_s - 4 * n_fail * step))
        shares = [f.get("fail_share") for _, _, f in rows[-n_fail:] if f.get("fail_share") is not None]
        out.update(fail_share=float(np.mean(shares)) if shares else None, fail_slots=len(shares))
        return out

    def _deadline_misses(self, now: datetime) -> int | None:
        rule = next((r for r in self.rules if r.kind == "deadline_miss"), None)
        if rule is None:
            return None
        from forecast.catalog.monitoring import duration_s
        from forecast.worker.state import WorkerState

        try:
            with WorkerState(self.settings.db_url) as st:
                doc = st.summary(self.catalog.id, since=now - timedelta(seconds=duration_s(rule.window or "1h")))
            return int(doc["deadline_misses"])
        except Exception as e:
            log.debug("deadline misses unreadable: %s", e)
            return None

    def _review(self, variable: str) -> tuple[float | None, int | None]:
        if not any(r.kind == "review_waiting" for r in self.rules):
            return None, None
        from forecast.review import ReviewQueue

        try:
            with ReviewQueue(self.settings.db_url) as q:
                items = [i for i in q.list(dataset=self.catalog.id, variable=variable)
                         if i.state in ("open", "pending")]
        except Exception as e:
            log.debug("review queue unreadable: %s", e)
            return None, None
        if not items:
            return None, None
        oldest = min(items, key=lambda i: i.created_at)
        return (datetime.now(oldest.created_at.tzinfo) - oldest.created_at).total_seconds(), oldest.id

    # -- the snapshot --------------------------------------------------------------------------------------------

    def _snapshot(self, variable: str, now: datetime, ev: Evidence, verified: dict, changes: dict,
                  due_long: bool) -> dict[str, Any]:
        prev = self.db.get_state(self.catalog.id, variable, "snapshot") or {}

        def skill_doc(d):
            if d is None:
                return None
            return {"n_inits": d["n_inits"], "enough": d["enough"], "start": d["start"], "end": d["end"],
                    "leads": [{"lead_minutes": x["lead_minutes"], "model_rmse": x["model"]["rmse"],
                               **{f"{r}_rmse": x[r]["rmse"] for r in self.cfg.references},
                               **{f"skill_{r}": x["skill"][r]["rmse_skill"] for r in self.cfg.references},
                               "lower": x["skill"]["persistence"]["lower"], "upper": x["skill"]["persistence"]["upper"]}
                              for x in d["leads"]]}

        def drift_doc(d):
            if d is None:
                return None
            return {"drifted": d.get("drifted", []), "n_slots": d.get("n_slots"), "note": d.get("note"),
                    "reference": d.get("reference"),
                    "features": {f["feature"]: {"value": f.get("value"), "threshold": f.get("threshold"),
                                                "ratio": f.get("ratio"), "statistic": f.get("statistic")}
                                 for f in d.get("features", [])}}

        def strata_doc(d):
            if d is None:
                return None
            return {"worst": d.get("worst"), "below": [s["stratum"] for s in d.get("strata", []) if s["below_reference"]],
                    "strata": {s["stratum"]: {"kind": s["kind"], "skill": s.get("skill"), "gap": s.get("gap"),
                                              "n_inits": s["n_inits"]} for s in d.get("strata", [])},
                    "mean_skill": (d.get("mean") or {}).get("skill")}

        snap = {"now": iso(now), "dataset": self.catalog.id, "variable": variable,
                "last_verified": iso(self.db.last_verified(self.catalog.id, variable))
                if self.db.last_verified(self.catalog.id, variable) else None,
                "verified_this_pass": verified, "alerts": changes,
                "skill": {"short": skill_doc(ev.skill.get("short")),
                          "long": skill_doc(ev.skill.get("long")) if due_long else (prev.get("skill") or {}).get("long")},
                "drift": {"short": drift_doc(ev.drift.get("short")),
                          "long": drift_doc(ev.drift.get("long")) if due_long else (prev.get("drift") or {}).get("long")},
                "strata": {w: strata_doc(ev.strata.get(w)) if w in ev.strata else (prev.get("strata") or {}).get(w)
                           for w in ("short", "long")},
                "detector": {k: ev.detector.get(k) for k in ("n", "mean", "var", "s", "h", "alarm", "alarm_since",
                                                              "last_init", "last_x", "last_z", "alarms", "method")},
                "feed": ev.feed, "deadline_misses": ev.deadline_misses, "review_oldest_s": ev.review_oldest_s,
                "rules": self.rules_source}
        return snap
