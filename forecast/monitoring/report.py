"""What the monitor reports, in one place for the command line (`forecast monitor ...`), the API
(``/monitor/...``) and the console's Monitor page: status, rolling skill by lead on the short and long
windows, input drift, strata and alerts, and acknowledging an alert.

Everything here reads the service database (verifications, the latest pass's snapshot, alerts); nothing
reads the stores, so the API answers without touching them. Skill windows end at the newest verified
init (the clock's time while a replay runs, not the wall's), so a window means the same to the worker and
to its readers.
"""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from forecast.errors import BadInputError
from forecast.monitoring.store import MonitorDB
from forecast.timeutil import iso, parse_time

__all__ = ["acknowledge", "alerts_doc", "drift_doc", "skill_doc", "status_doc", "strata_doc"]


def _db(settings, db: MonitorDB | None) -> MonitorDB:
    return db if db is not None else MonitorDB(settings.db_url)


def _close(own: bool, db: MonitorDB) -> None:
    if own:
        db.close()


def _catalog(settings, dataset: str):
    from forecast.catalog import get_catalog

    return get_catalog(settings.catalogs, dataset)


def _variable(db: MonitorDB, catalog, variable: str | None) -> str:
    if variable is not None:
        if variable not in catalog.variables:
            raise BadInputError(f"dataset {catalog.id!r} has no variable {variable!r}; it has: "
                                f"{', '.join(catalog.variables)}", param="variable")
        return variable
    have = [v for d, v in db.variables(catalog.id) if v in catalog.variables]
    if len(have) == 1 or (have and len(catalog.variables) > 1):
        return have[0]
    if len(catalog.variables) == 1:
        return next(iter(catalog.variables))
    raise BadInputError(f"dataset {catalog.id!r} has several variables ({', '.join(catalog.variables)}); name one",
                        param="variable")


def _now(db: MonitorDB, dataset: str, variable: str, now: datetime | None) -> datetime:
    """The end of the skill windows: ``now`` when given, else the newest verified init (else the latest
    pass's time, else the wall clock)."""
    if now is not None:
        return now
    last = db.last_verified(dataset, variable)
    if last is not None:
        return last
    snap = db.get_state(dataset, variable, "snapshot")
    if snap and snap.get("now"):
        return parse_time(snap["now"])
    return datetime.now(UTC)


def status_doc(settings, dataset: str | None = None, *, db: MonitorDB | None = None) -> dict[str, Any]:
    """Per dataset and variable: the latest pass (when, what it verified), the skill at the key leads on
    both windows, the detector, drifted features, the worst stratum, the feed; the firing alerts."""
    own, db = db is None, _db(settings, db)
    try:
        out: dict[str, Any] = {"datasets": {}, "alerts": {"counts": db.counts(dataset),
                                                          "firing": [a.to_json() for a in
                                                                     db.alerts(state="firing", dataset=dataset)]}}
        for ds, var, snap, at in db.states("snapshot", dataset):
            det = snap.get("detector") or {}
            out["datasets"].setdefault(ds, {})[var] = {
                "last_pass": snap.get("now"), "last_verified_init": snap.get("last_verified"),
                "verified_last_pass": snap.get("verified_this_pass"),
                "skill": {w: _key_skill(s) for w, s in (snap.get("skill") or {}).items()},
                "detector": {"statistic": det.get("s"), "threshold": det.get("h"), "alarm": det.get("alarm"),
                             "inits": det.get("n"), "method": det.get("method")},
                "drifted": {w: (d or {}).get("drifted", []) for w, d in (snap.get("drift") or {}).items()},
                "worst_stratum": {w: (s or {}).get("worst") for w, s in (snap.get("strata") or {}).items()},
                "feed": snap.get("feed"), "deadline_misses": snap.get("deadline_misses"),
                "rules": snap.get("rules"), "seconds": snap.get("seconds")}
        return out
    finally:
        _close(own, db)


def _key_skill(s: dict | None) -> dict | None:
    if not s:
        return None
    return {"n_inits": s.get("n_inits"), "enough": s.get("enough"),
            "leads": {str(x["lead_minutes"]): x.get("skill_persistence") for x in s.get("leads", [])}}


def skill_doc(settings, dataset: str, variable: str | None = None, *, now: datetime | None = None,
              windows: tuple[str, ...] = ("short", "long"), stage: str = "current", n_boot: int | None = None,
              db: MonitorDB | None = None, summary: bool = False) -> dict[str, Any]:
    """Rolling skill by lead: ``windows`` -> ``short`` / ``long`` -> per lead the model's and the references'
    scores and the skill (with its bootstrap interval); ``staged``: the inits verified twice and how much
    the verdict moved. ``summary`` keeps each window's full Verifier summary (``verifier``)."""
    from forecast.monitoring.config import monitoring_config
    from forecast.monitoring.skill import STAGES, staged_report, window_bounds, window_skill

    if stage not in STAGES:
        raise BadInputError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}", param="stage")
    bad = [w for w in windows if w not in ("short", "long")]
    if bad:
        raise BadInputError(f"window must be short or long, got {', '.join(bad)}", param="window")
    catalog = _catalog(settings, dataset)
    cfg = monitoring_config(catalog)
    own, db = db is None, _db(settings, db)
    try:
        var = _variable(db, catalog, variable)
        now = _now(db, dataset, var, now)
        out: dict[str, Any] = {"dataset": dataset, "variable": var, "now": iso(now), "stage": stage,
                               "key_leads_minutes": list(cfg.key_leads_minutes), "windows": {}}
        for w in windows:
            start, end = window_bounds(cfg, now, w)
            doc = window_skill(db, catalog, var, cfg, start=start, end=end, stage=stage, n_boot=n_boot)
            doc["window"] = cfg.short_window if w == "short" else cfg.long_window
            s = doc.pop("summary", None)
            if summary and s is not None:
                doc["verifier"] = s
            out["windows"][w] = doc
        start, end = window_bounds(cfg, now, "long")
        out["staged"] = staged_report(db, catalog, var, cfg, start=start, end=end)
        det = db.get_state(dataset, var, "detector")
        out["detector"] = det and {**det, "h": cfg.detector.h, "k": cfg.detector.k, "method": cfg.detector.method}
        out["series"] = _series(db, dataset, var, start, end, cfg)
        return out
    finally:
        _close(own, db)


def _series(db: MonitorDB, dataset: str, variable: str, start: datetime, end: datetime, cfg) -> dict[str, Any]:
    """Per verified init: its skill against persistence (the detector's input) and the model's and
    persistence's RMSE at the first key lead (the console's skill-over-time chart)."""
    rows = db.verifications(dataset, variable, since=start, until=end, methods=["model", "persistence"],
                            heavy=True)
    key = min(cfg.key_leads_minutes)
    by: dict[datetime, dict] = {}
    for r in rows:
        by.setdefault(r["init_time"], {})[r["method"]] = r
    times, skill, rm, rp, stage = [], [], [], [], []
    for t in sorted(by):
        g = by[t]
        if "model" not in g:
            continue
        m = g["model"]
        i = next((k for k, s in enumerate(m["lead_s"]) if s // 60 >= key), len(m["lead_s"]) - 1)
        times.append(iso(t))
        skill.append(m["skill"])
        rm.append(m["scores"]["rmse"][i])
        rp.append(g["persistence"]["scores"]["rmse"][i] if "persistence" in g else None)
        stage.append(m["stage"])
    return {"lead_minutes": key, "init_time": times, "skill": skill, "rmse_model": rm, "rmse_persistence": rp,
            "stage": stage}


def drift_doc(settings, dataset: str, variable: str | None = None, *, db: MonitorDB | None = None) -> dict[str, Any]:
    """Input drift per feature on the short and long windows as the latest pass judged it, and the
    reference it was judged against (its period and source)."""
    catalog = _catalog(settings, dataset)
    own, db = db is None, _db(settings, db)
    try:
        var = _variable(db, catalog, variable)
        snap = db.get_state(dataset, var, "snapshot") or {}
        judged = next((d.get("reference") for d in (snap.get("drift") or {}).values() if d and d.get("reference")),
                      None)
        ref = db.get_state(dataset, var, "reference") or {}
        r = judged or ref.get("reference") or {}
        windows = {}
        for w, d in (snap.get("drift") or {}).items():
            if d is None:
                windows[w] = None
                continue
            feats = [{"feature": k, **v, "drifted": k in d.get("drifted", [])} for k, v in d.get("features", {}).items()]
            feats.sort(key=lambda f: -(f.get("ratio") or 0))
            windows[w] = {"drifted": d.get("drifted", []), "n_slots": d.get("n_slots"), "note": d.get("note"),
                          "features": feats}
        return {"dataset": dataset, "variable": var, "now": snap.get("now"), "windows": windows,
                "reference": {"period": r.get("period"), "source": r.get("source"), "n_slots": r.get("n_slots"),
                              "summary": r.get("summary")} if r else None}
    finally:
        _close(own, db)


def strata_doc(settings, dataset: str, variable: str | None = None, *, window: str = "long",
               lead_minutes: int | None = None, now: datetime | None = None, db: MonitorDB | None = None) -> dict:
    """Skill per region and regime over a window, the worst stratum, and the strata below persistence."""
    from forecast.monitoring.config import monitoring_config
    from forecast.monitoring.skill import strata_report, window_bounds

    if window not in ("short", "long"):
        raise BadInputError(f"window must be short or long, got {window!r}", param="window")
    catalog = _catalog(settings, dataset)
    cfg = monitoring_config(catalog)
    own, db = db is None, _db(settings, db)
    try:
        var = _variable(db, catalog, variable)
        now = _now(db, dataset, var, now)
        start, end = window_bounds(cfg, now, window)
        doc = strata_report(db, catalog, var, cfg, start=start, end=end, lead_minutes=lead_minutes)
        return {"dataset": dataset, "variable": var, "now": iso(now), "window": window, **doc}
    finally:
        _close(own, db)


def alerts_doc(settings, *, state: str | None = None, dataset: str | None = None, limit: int = 200,
               events: bool = True, db: MonitorDB | None = None) -> dict[str, Any]:
    own, db = db is None, _db(settings, db)
    try:
        alerts = db.alerts(state=state, dataset=dataset, limit=limit, events=events)
        return {"alerts": [a.to_json() for a in alerts], "count": len(alerts), "counts": db.counts(dataset)}
    finally:
        _close(own, db)


def acknowledge(settings, alert_id: int, *, by: str, comment: str, db: MonitorDB | None = None) -> dict[str, Any]:
    """Acknowledge an alert (who and why, kept in its history). Raises UnknownAlertError / AlertConflict /
    BadInputError (no name or comment)."""
    own, db = db is None, _db(settings, db)
    try:
        return db.acknowledge(int(alert_id), by=by, comment=comment).to_json()
    finally:
        _close(own, db)
