"""Alert rules evaluated on each monitoring pass, with hysteresis and deduplication.

Each rule (`forecast.catalog.monitoring.AlertRule`) looks at what the pass measured (`Evidence`) and says,
per subject (a lead, a window, a stratum), whether its condition holds now (`Observation`; ``None`` when
there is nothing to judge, e.g. too few verified inits or a dry spell over a drifted region: a firing alert
then holds). An alert fires
after ``for_cycles`` consecutive passes in which it holds and resolves after ``clear_cycles`` in which it
does not; numeric rules also have a clear threshold (a firing skill alert resolves only once skill is back
above ``clear_threshold``), so a value hovering at the threshold does not flap. One alert per (rule,
dataset, variable, subject) is open at a time (a database index enforces it): a condition that keeps
holding updates the open alert instead of raising a new one. Fired and resolved alerts are handed to the
notifier (webhook, email), which delivers them in the background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from collections.abc import Callable

from forecast.catalog.monitoring import AlertRule, duration_s
from forecast.monitoring.store import alert_key
from forecast.timeutil import iso

log = logging.getLogger(__name__)

__all__ = ["Evidence", "Observation", "apply_observations", "evaluate_rules"]


@dataclass
class Evidence:
    """What one monitoring pass of one dataset and variable measured (None: not measured this pass)."""

    dataset: str
    variable: str
    now: datetime
    skill: dict[str, dict | None] = field(default_factory=dict)  # window -> window_skill doc
    detector: dict | None = None
    drift: dict[str, dict | None] = field(default_factory=dict)  # window -> drift report
    strata: dict[str, dict | None] = field(default_factory=dict)  # window -> strata report
    feed: dict | None = None  # newest slots: missing run, late share, fail share
    deadline_misses: int | None = None
    review_oldest_s: float | None = None  # age of the oldest open review item (wall clock)
    review_item: int | None = None


@dataclass
class Observation:
    rule: AlertRule
    subject: str
    active: bool | None  # None: nothing to judge this pass (counts as not holding)
    value: float | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _skill(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    window = rule.window or "short"
    ref = rule.reference or "persistence"
    subject = f"{window} window, lead {rule.lead_minutes} min, vs {ref}"
    doc = ev.skill.get(window)
    if doc is None:
        return None  # not evaluated this pass (the long window is evaluated less often): keep the counters
    lead = next((x for x in doc.get("leads", []) if x["lead_minutes"] >= rule.lead_minutes), None)
    if not doc.get("enough") or lead is None or lead["skill"].get(ref) is None:
        return [Observation(rule, subject, None, None, f"too few verified inits in the {window} window "
                            f"({doc.get('n_inits', 0)})")]
    sk = lead["skill"][ref]
    value = sk["rmse_skill"]
    thr = rule.threshold if rule.threshold is not None else 0.0
    clear = rule.clear_threshold if rule.clear_threshold is not None else thr
    is_firing = alert_key(rule.name, ev.dataset, ev.variable, subject) in firing
    bar = clear if is_firing else thr
    active = value is not None and value < bar
    if rule.significant and not is_firing:
        active = active and sk["worse"]
    msg = (f"skill of the forecast against {ref} at +{lead['lead_minutes']} min over the {window} window is "
           f"{_fmt(value)} ({doc['n_inits']} inits; RMSE {_fmt(lead['model']['rmse'])} vs {_fmt(lead[ref]['rmse'])}, "
           f"difference interval [{_fmt(sk['lower'])}, {_fmt(sk['upper'])}]); "
           + ("below" if active else "not below") + f" {bar:g}")
    return [Observation(rule, subject, active, value, msg, {"window": window, "lead_minutes": lead["lead_minutes"],
                                                             "reference": ref, "n_inits": doc["n_inits"], **sk})]


def _change(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    st = ev.detector
    subject = "per-init skill vs persistence"
    if st is None:
        return None
    if st.get("last_z") is None and not st.get("alarm"):
        return [Observation(rule, subject, None, None, f"the change detector is warming up ({st.get('n', 0)} inits)")]
    msg = (f"the change detector ({st.get('method', 'cusum')}) {'found' if st['alarm'] else 'finds no'} a drop of the "
           f"per-init skill against persistence: statistic {_fmt(st['s'])} (threshold {_fmt(st.get('h'))}), last init "
           f"{st.get('last_init')} skill {_fmt(st.get('last_x'))} against a baseline of {_fmt(st.get('mean'))}")
    return [Observation(rule, subject, bool(st["alarm"]), st["s"], msg,
                        {k: st.get(k) for k in ("s", "h", "mean", "var", "last_init", "last_x", "last_z", "alarm_since")})]


def _drift(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    from fnmatch import fnmatchcase

    window = rule.window or "short"
    subject = f"{window} window inputs"
    rep = ev.drift.get(window)
    if rep is None:
        return None
    feats = [f for f in rep["features"] if not rule.features or any(fnmatchcase(f["feature"], p)
                                                                      for p in rule.features)]
    judged = [f for f in feats if f.get("ratio") is not None]
    if not judged:
        return [Observation(rule, subject, None, None, f"no input feature could be judged on the {window} window")]
    alert = firing.get(alert_key(rule.name, ev.dataset, ev.variable, subject)) if isinstance(firing, dict) else None
    is_firing = alert_key(rule.name, ev.dataset, ev.variable, subject) in firing
    bar = 0.8 if is_firing else 1.0  # a firing drift alert holds until the statistic is back below 80 % of it
    drifted = sorted((f for f in judged if f["ratio"] > bar), key=lambda f: -f["ratio"])
    top = max(judged, key=lambda f: f["ratio"])
    unjudged = {f["feature"] for f in feats if f.get("ratio") is None}
    if not drifted and alert is not None and unjudged & set(alert.details.get("features") or []):
        # the features that drifted cannot be judged now (a dry spell over the region): no evidence that the
        # fault ended, the alert holds
        return [Observation(rule, subject, None, None, f"the drifted feature(s) cannot be judged on the {window} "
                            "window now (too few slots with data); the alert holds")]
    if drifted:
        names = ", ".join(f"{f['feature']} ({f['statistic']} {_fmt(f['value'])} > {_fmt(f['threshold'])})"
                          for f in drifted[:4])
        msg = f"input drift on the {window} window: {names}"
    else:
        msg = f"no input drift on the {window} window (largest: {top['feature']} at {_fmt(top['ratio'])} of its threshold)"
    return [Observation(rule, subject, bool(drifted), top["ratio"], msg,
                        {"window": window, "features": [f["feature"] for f in drifted],
                         "drifted": [{k: f.get(k) for k in ("feature", "statistic", "value", "threshold", "ratio",
                                                             "window_mean", "reference_mean")} for f in drifted[:8]]})]


def _missing(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    if not ev.feed:
        return None
    n = ev.feed.get("missing_run", 0)
    need = rule.slots or 3
    msg = (f"the newest {n} slot(s) have not arrived (since {ev.feed.get('missing_since')})" if n
           else "the newest slots have arrived")
    return [Observation(rule, "newest slots", n >= need, float(n), msg, {"missing_run": n,
                                                                        "since": ev.feed.get("missing_since")})]


def _late(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    if not ev.feed or ev.feed.get("late_share") is None:
        return None
    share = ev.feed["late_share"]
    thr = rule.threshold if rule.threshold is not None else 0.5
    msg = (f"{share:.0%} of the slots of the last {ev.feed.get('late_window')} arrived more than "
           f"{ev.feed.get('max_late')} after their time")
    return [Observation(rule, "arrivals", share > thr, share, msg, {k: ev.feed.get(k) for k in
                                                                    ("late_share", "late_window", "max_late")})]


def _fail(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    if not ev.feed or ev.feed.get("fail_share") is None:
        return None
    share = ev.feed["fail_share"]
    is_firing = alert_key(rule.name, ev.dataset, ev.variable, "newest slots") in firing
    bar = rule.clear_threshold if is_firing and rule.clear_threshold is not None else rule.threshold
    msg = f"{share:.2%} of the values of the newest {ev.feed.get('fail_slots')} slot(s) are FAIL"
    return [Observation(rule, "newest slots", share > bar, share, msg, {"fail_share": share})]


def _deadline(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    if ev.deadline_misses is None:
        return None
    n = ev.deadline_misses
    thr = rule.threshold if rule.threshold is not None else 1
    return [Observation(rule, "cycle deadlines", n >= thr, float(n),
                        f"{n} forecast(s) stored after their deadline in the last {rule.window or '1h'}")]


def _review(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    if ev.review_oldest_s is None:
        return [Observation(rule, "review queue", False, 0.0, "no review item is waiting")]
    limit = duration_s(rule.max_age, "max_age")
    age = ev.review_oldest_s
    return [Observation(rule, "review queue", age > limit, age,
                        f"review item {ev.review_item} has waited {age / 3600:.1f} h (limit {rule.max_age})",
                        {"item": ev.review_item, "age_s": age})]


def _stratum(rule: AlertRule, ev: Evidence, firing: set[str]) -> list[Observation]:
    window = rule.window or "long"
    rep = ev.strata.get(window)
    if rep is None:
        return None
    out = []
    mean = (rep.get("mean") or {}).get("skill")
    for s in rep.get("strata", []):
        subject = f"{s['kind']} {s['stratum']}, lead {rep['lead_minutes']} min"
        enough = s["n_inits"] >= (rule.min_inits or 2) and s.get("skill") is not None
        active = bool(enough and s.get("worse") and mean is not None and mean >= 0)
        msg = (f"{s['kind']} {s['stratum']}: skill {_fmt(s.get('skill'))} against persistence at "
               f"+{rep['lead_minutes']} min over {s['n_inits']} inits while the whole grid's is {_fmt(mean)}")
        out.append(Observation(rule, subject, active if enough else None, s.get("skill"), msg,
                               {"stratum": s["stratum"], "kind": s["kind"], "skill": s.get("skill"),
                                "mean_skill": mean, "gap": s.get("gap"), "lower": s.get("lower"),
                                "upper": s.get("upper"), "n_inits": s["n_inits"]}))
    return out


#: rule kind -> its evaluator: a list of observations (empty: evaluated, no subject), None: no evidence this
#: pass (the counters of its alerts are kept as they are)
_EVALUATORS: dict[str, Callable[[AlertRule, Evidence, set[str]], list[Observation] | None]] = {
    "skill_below_reference": _skill, "skill_change": _change, "input_drift": _drift, "data_missing": _missing,
    "data_late": _late, "fail_share": _fail, "deadline_miss": _deadline, "review_waiting": _review,
    "stratum_below_reference": _stratum,
}


@dataclass
class Observations(list):
    """The observations of a pass, and the rules that had evidence to judge (``evaluated``)."""

    evaluated: set[str] = field(default_factory=set)


def evaluate_rules(rules: list[AlertRule], ev: Evidence, firing) -> Observations:
    """Every rule's observations on this pass (``firing``: the alerts firing now by key, or their keys)."""
    out = Observations()
    for rule in rules:
        if not rule.applies(ev.dataset, ev.variable):
            continue
        try:
            got = _EVALUATORS[rule.kind](rule, ev, firing)
        except Exception:
            log.exception("alert rule %s failed on %s/%s", rule.name, ev.dataset, ev.variable)
            continue
        if got is not None:
            out.evaluated.add(rule.name)
            out.extend(got)
    return out


def apply_observations(db, ev: Evidence, observations: list[Observation], rules: list[AlertRule],
                       notify: Callable[[Any, str, AlertRule], None] | None = None) -> dict[str, Any]:
    """Advance each subject's hysteresis counters, fire and resolve alerts, and hand transitions to
    ``notify(alert, event, rule)``. Firing alerts of a rule whose subject was not observed this pass (a
    stratum no longer reported) count as not holding. Returns what changed."""
    counters = db.get_state(ev.dataset, ev.variable, "rule_counters", {}) or {}
    firing = db.firing(ev.dataset, ev.variable)
    seen: set[str] = set()
    fired, resolved, updated = [], [], 0
    by_name = {r.name: r for r in rules}
    for ob in observations:
        key = alert_key(ob.rule.name, ev.dataset, ev.variable, ob.subject)
        seen.add(key)
        c = counters.get(key, {"true": 0, "false": 0})
        if ob.active is None and key in firing:  # nothing to judge: a firing alert holds as it is
            continue
        if ob.active:
            c = {"true": c["true"] + 1, "false": 0}
        else:
            c = {"true": 0, "false": c["false"] + 1}
        counters[key] = c
        alert = firing.get(key)
        if alert is None and ob.active and c["true"] >= ob.rule.for_cycles:
            a = db.fire(rule=ob.rule.name, kind=ob.rule.kind, dataset=ev.dataset, variable=ev.variable,
                        subject=ob.subject, severity=ob.rule.severity, since=ev.now, value=ob.value,
                        message=ob.message, details={**ob.details, "rule": ob.rule.description or ob.rule.kind})
            if a is not None:
                fired.append(a)
                log.warning("alert %s fired: %s/%s %s: %s", ob.rule.name, ev.dataset, ev.variable, ob.subject,
                            ob.message)
                if notify:
                    notify(a, "fired", ob.rule)
        elif alert is not None and not ob.active and c["false"] >= ob.rule.clear_cycles:
            a = db.resolve(alert.id, at=ev.now, value=ob.value, message=ob.message)
            if a is not None:
                resolved.append(a)
                log.warning("alert %s resolved: %s/%s %s", ob.rule.name, ev.dataset, ev.variable, ob.subject)
                if notify:
                    notify(a, "resolved", ob.rule)
        elif alert is not None and ob.active:
            db.update_firing(alert.id, value=ob.value, message=ob.message, details=ob.details, at=ev.now)
            updated += 1
    # a firing alert whose subject disappeared (its rule removed, or its rule judged and the subject no longer
    # reported, e.g. a stratum); a rule without evidence this pass leaves its alerts as they are
    evaluated = getattr(observations, "evaluated", {ob.rule.name for ob in observations})
    for key, alert in firing.items():
        if key in seen or (alert.rule in by_name and alert.rule not in evaluated):
            continue
        c = counters.get(key, {"true": 0, "false": 0})
        c = {"true": 0, "false": c["false"] + 1}
        counters[key] = c
        rule = by_name.get(alert.rule)
        if rule is None or c["false"] >= rule.clear_cycles:
            a = db.resolve(alert.id, at=ev.now, value=None,
                           message="no longer observed" if rule else "its rule no longer exists")
            if a is not None:
                resolved.append(a)
                if notify and rule is not None:
                    notify(a, "resolved", rule)
    db.put_state(ev.dataset, ev.variable, "rule_counters", counters, ev.now)
    return {"fired": [a.id for a in fired], "resolved": [a.id for a in resolved], "updated": updated,
            "at": iso(ev.now)}


def since_for(window: str | None, now: datetime, default: str = "1h") -> datetime:
    return now - timedelta(seconds=duration_s(window or default, "window"))
