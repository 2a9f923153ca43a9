"""View functions: each gathers what one page shows and returns its template context (plain dicts, lists and
numbers; no HTTP here). Routes call them in a worker thread and render ``templates/<page>.html``."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from api.console import render
from api.console.data import FLAG_NAMES, ConsoleData
from api.flags import test_names
from forecast.timeutil import iso, to_epoch

PAGE_SIZE = 50
AGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
STATE_FILTERS = ("todo", "open", "pending", "decided", "all")
COMMENT_MAX = 2000
FLAGGED_MAX = 4000  # flagged cells per frame sent to the page for hover and selection

TEST_TEXT = {
    "physical_range": "outside the physical range: impossible (FAIL)",
    "climatology": "beyond the climatological record for the month (SUSPECT: plausible but rare)",
    "spike": "a spike: far from both its neighbours in time",
    "rate_of_change": "changed faster than allowed between two slots",
    "flat_line": "the same value repeated for too long (stuck sensor)",
    "spatial": "far from its spatial neighbourhood",
    "cross_variable": "inconsistent with another variable",
    "missing": "no value",
}


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# -- review queue --------------------------------------------------------------------------------------------

def queue_view(data: ConsoleData, *, dataset: str | None, state: str, age: str, offset: int,
               now: datetime | None = None) -> dict:
    now = now or datetime.now(timezone.utc)
    items = data.all_items()
    datasets = sorted({i.dataset for i in items} | set(data.catalogs()))
    if dataset:
        items = [i for i in items if i.dataset == dataset]
    counts = {s: 0 for s in ("open", "pending", "decided")}
    for i in items:
        counts[i.state] = counts.get(i.state, 0) + 1
    if age in AGES:
        since = now - timedelta(seconds=AGES[age])
        items = [i for i in items if i.created_at >= since]
    if state == "todo":
        items = [i for i in items if i.state in ("open", "pending")]
    elif state in ("open", "pending", "decided"):
        items = [i for i in items if i.state == state]
    total = len(items)
    page = items[offset:offset + PAGE_SIZE]
    rows = [{
        "id": i.id, "dataset": i.dataset, "variable": i.variable, "state": i.state, "pending_by": i.pending_by,
        "hazard": i.hazard, "exceeds_record": i.exceeds_record, "t_first": i.t_first, "t_last": i.t_last,
        "n_slots": i.n_slots, "n_cells": i.n_cells, "n_decided": i.n_decided, "peak_value": _finite(i.peak_value),
        "record": _finite(i.record), "excess": _finite(i.excess), "tests": list(i.test_names),
        "created_at": i.created_at, "resolution": i.resolution,
        "units": _units(data, i.dataset, i.variable),
    } for i in page]
    return {"rows": rows, "counts": counts, "total": total, "offset": offset, "page_size": PAGE_SIZE,
            "datasets": datasets, "filters": {"dataset": dataset or "", "state": state, "age": age},
            "states": STATE_FILTERS, "ages": ["all", *AGES], "now": now}


def _units(data: ConsoleData, dataset: str, variable: str) -> str:
    cat = data.catalog(dataset)
    var = cat.variables.get(variable) if cat is not None else None
    return var.units if var is not None else ""


def next_item_id(data: ConsoleData, current: int | None) -> int | None:
    """The next item to review after ``current`` in queue order (open or pending), wrapping; None when none."""
    todo = [i.id for i in data.all_items() if i.state in ("open", "pending")]
    if not todo:
        return None
    if current in todo:
        k = todo.index(current)
        rest = todo[k + 1:] + todo[:k]
        return rest[0] if rest else None
    ordered = [i.id for i in data.all_items()]
    if current in ordered:  # the next to-do item after the current position
        pos = ordered.index(current)
        for i in ordered[pos + 1:] + ordered[:pos]:
            if i in todo:
                return i
    return todo[0]


# -- one item ------------------------------------------------------------------------------------------------

def item_view(data: ConsoleData, item, *, user, decided: int | None = None) -> dict:
    cat = data.catalog(item.dataset)
    var = cat.variables.get(item.variable) if cat is not None else None
    units = var.units if var is not None else ""
    ctx = data.item_context(item)
    frames, flagged, series, window = [], [], None, None
    if ctx is not None:
        window = {"iy0": ctx.window[0], "iy1": ctx.window[1], "ix0": ctx.window[2], "ix1": ctx.window[3],
                  "scale": ctx.scale_factor, "peak_frame": ctx.peak_frame}
        for k, t in enumerate(ctx.times):
            frames.append({"k": k, "time": int(t), "iso": iso(int(t)), "revision": int(ctx.revision[k]),
                           "available_at": ctx.available_at[k], "n_item": int(ctx.in_item[k].sum()),
                           "n_suspect": int((ctx.qc[k] == 3).sum()), "n_fail": int((ctx.qc[k] == 4).sum()),
                           "url": f"/console/review/{item.id}/frames/{k}?s={ctx.snapshot[:12]}"})
            flagged.append(_flagged_cells(ctx, k))
        series = _series(ctx, item)
    pending = next((d for d in item.decisions if d.status == "awaiting_second"), None)
    decisions = [{
        "id": d.id, "action": d.action, "status": d.status, "outcome": d.outcome, "by": d.by, "comment": d.comment,
        "at": d.at, "n_cells": d.n_cells, "resolves": d.resolves, "written": d.written_snapshot,
        "written_at": d.written_at,
    } for d in item.decisions]
    audit = [{"id": a.id, "at": a.at, "actor": a.actor, "action": a.action, "decision_id": a.decision_id,
              "details": _details(a.details)} for a in item.audit]
    flash = None
    if decided is not None:
        d = next((d for d in item.decisions if d.id == decided), None)
        if d is not None:
            flash = _decision_sentence(d, item)
    return {
        "item": item, "units": units, "peak_value": _finite(item.peak_value), "record": _finite(item.record),
        "excess": _finite(item.excess), "relative_excess": _finite(item.relative_excess),
        "tests": _tests(cat, item), "frames": frames, "window": window,
        "page_data": {"item": item.id, "version": item.version, "frames": frames, "window": window,
                      "flagged": flagged, "series": series, "units": units, "state": item.state,
                      "flag_colours": {str(k): c for k, (_, _, c) in render.FLAG_STATES.items()},
                      "flag_names": {str(k): lab for k, (_, lab, _) in render.FLAG_STATES.items()},
                      "selection_colour": render.SELECTION_COLOUR},
        "legend": _legend(item, var), "context_missing": ctx is None,
        "pending": pending, "decisions": decisions, "audit": audit, "flash": flash,
        "can_decide": user.can_decide and item.state != "decided",
        "remaining": item.n_cells - item.n_decided, "comment_max": COMMENT_MAX,
        "overview_url": f"/console/review/{item.id}/overview",
    }


def _decision_sentence(d, item) -> str:
    if d.status == "awaiting_second":
        return (f"Reject recorded (decision {d.id}) on {d.n_cells} cell(s): the values are beyond the record, so a "
                "second, different operator must confirm it (four eyes); nothing is written to the flags yet.")
    what = "accepted as real" if d.outcome == "accepted" else "rejected as faults"
    return (f"Decision {d.id} recorded: {d.n_cells} cell(s) {what}. The worker's next cycle writes it into the "
            f"flags; the item is now {item.state}.")


def _details(details: dict) -> str:
    parts = []
    for k, v in details.items():
        if k == "comment":
            continue
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def _flagged_cells(ctx, k: int) -> list[list]:
    """[iy, ix, flag, tests bits, value, in_item] of the frame's flagged or item cells (absolute indices)."""
    qc, tests, vals, inn = ctx.qc[k], ctx.tests[k], ctx.values[k], ctx.in_item[k]
    sel = np.argwhere((qc == 3) | (qc == 4) | inn | ((tests & (3 << 16)) != 0))[:FLAGGED_MAX]
    iy0, ix0 = ctx.window[0], ctx.window[2]
    out = []
    for y, x in sel:
        v = float(vals[y, x])
        out.append([int(y) + iy0, int(x) + ix0, int(qc[y, x]), int(tests[y, x]),
                    None if math.isnan(v) else round(v, 3), bool(inn[y, x])])
    return out


def _series(ctx, item) -> dict:
    """The peak cell's and its 8 neighbours' values and flags over the frames."""
    _, piy, pix = item.peak
    iy0, iy1, ix0, ix1 = ctx.window
    out = {"times": [int(t) for t in ctx.times], "cells": []}
    for dy in (0, -1, 1):
        for dx in (0, -1, 1):
            y, x = piy + dy, pix + dx
            if not (iy0 <= y < iy1 and ix0 <= x < ix1):
                continue
            vals = ctx.values[:, y - iy0, x - ix0]
            out["cells"].append({
                "label": "peak" if (dy, dx) == (0, 0) else f"iy {y}, ix {x}", "iy": y, "ix": x,
                "peak": (dy, dx) == (0, 0),
                "values": [None if math.isnan(v) else round(float(v), 3) for v in vals],
                "flags": [int(f) for f in ctx.qc[:, y - iy0, x - ix0]],
                "tests": [test_names(int(b)) for b in ctx.tests[:, y - iy0, x - ix0]],
            })
    return out


def _tests(cat, item) -> list[dict]:
    """The tests that fired on the item, each with its configured thresholds and what it means."""
    stages = {}
    qc = getattr(cat, "qc", None) if cat is not None else None
    for st in (getattr(qc, "variables", {}) or {}).get(item.variable, []) or []:
        d = st.model_dump(exclude_none=True) if hasattr(st, "model_dump") else dict(st)
        stages[d.pop("test", "?")] = d
    var = cat.variables.get(item.variable) if cat is not None else None
    month = item.peak[0].month
    out = []
    for name in item.test_names:
        params = dict(stages.get(name, {}))
        if name == "physical_range" and var is not None:
            params.setdefault("range", list(var.physical_range))
        if name == "climatology" and var is not None:
            if var.record_max:
                params["record max (month of the peak)"] = var.record_max[month - 1]
            if var.record_min:
                params["record min (month of the peak)"] = var.record_min[month - 1]
            params.pop("record_max", None)
            params.pop("record_min", None)
        out.append({"name": name, "text": TEST_TEXT.get(name, name), "params": params})
    return out


def _legend(item, var) -> dict:
    scale = render.scale_for(item.variable, var) if var is not None else None
    return {"scale": scale.legend if scale else (), "units": var.units if var is not None else ""}


def parse_cells(text: str, item) -> np.ndarray | None:
    """Cells posted by the map selection: ``epoch,iy,ix;...`` (None when empty). Raises ValueError."""
    text = (text or "").strip()
    if not text:
        return None
    rows = []
    for k, part in enumerate(text.split(";")):
        if not part.strip():
            continue
        bits = part.split(",")
        if len(bits) != 3:
            raise ValueError(f"selected cell {k + 1} is not 'time,iy,ix': {part[:40]!r}")
        try:
            rows.append([int(b) for b in bits])
        except ValueError:
            raise ValueError(f"selected cell {k + 1} is not three integers: {part[:40]!r}") from None
        if len(rows) > item.n_cells:
            raise ValueError(f"more cells selected than the item has ({item.n_cells})")
    return np.array(rows, dtype="int64") if rows else None


# -- forecasts -----------------------------------------------------------------------------------------------

def forecasts_view(data: ConsoleData, *, dataset: str | None, run: str | None, init: int | None,
                   variable: str | None) -> dict:
    cats = data.catalogs()
    datasets = sorted(cats)
    with_runs = {d: data.forecast_runs(d) for d in datasets}
    if not dataset or dataset not in cats:
        dataset = next((d for d in datasets if with_runs[d]), datasets[0] if datasets else None)
    runs = with_runs.get(dataset, []) if dataset else []
    ctx: dict[str, Any] = {"datasets": datasets, "dataset": dataset, "runs": runs, "run": None, "field": None,
                           "inits": [], "note": None}
    if dataset is None:
        ctx["note"] = "No dataset catalogs are configured."
        return ctx
    if not runs:
        ctx["note"] = (f"No forecasts of {dataset} yet: the worker's cycle (or `forecast predict {dataset} --init T`) "
                       "writes them into the forecast store.")
        return ctx
    run = run if run in runs else ("production" if "production" in runs else runs[0])
    ctx["run"] = run
    inits = data.forecast_inits(dataset, run)
    ctx["inits"] = list(reversed(inits[-48:]))
    f = data.forecast_field(dataset, run, init if init in inits else None, variable)
    if f is None:
        ctx["note"] = f"The run {run} of {dataset} holds no forecast at that init time."
        return ctx
    init_s = to_epoch(f.init)
    frames = []
    for k, lead in enumerate(f.leads_s):
        a = f.annotations[k]
        frames.append({"k": k, "lead_s": lead, "lead": f"+{lead // 60} min", "valid": iso(init_s + lead),
                       "url": f"/console/forecasts/{dataset}/{run}/{init_s}/{k}?v={f.variable}&s={f.snapshot[:12]}",
                       "marks": {name: int((a == code).sum()) for code, (name, _, _) in
                                 render.ANNOTATION_STATES.items()}})
    cat = cats[dataset]
    var = cat.variables.get(f.variable)
    scale = render.scale_for(f.variable, var) if var is not None else None
    prov = f.provenance or {}
    ctx.update({
        "field": f, "init": init_s, "frames": frames, "provenance": prov, "fallback": prov.get("fallback"),
        "method": prov.get("method"), "model": prov.get("model") or {},
        "legend": scale.legend if scale else (), "units": f.units,
        "page_data": {"dataset": dataset, "run": run, "init": init_s, "variable": f.variable, "frames": frames,
                      "ny": int(f.values.shape[1]), "nx": int(f.values.shape[2]), "scale": f.scale_factor,
                      "units": f.units},
    })
    return ctx


def series_view(data: ConsoleData, *, dataset: str, run: str, init: int, variable: str | None, iy: int,
                ix: int) -> dict:
    f = data.forecast_field(dataset, run, init, variable)
    if f is None:
        return {"error": "that forecast is no longer in the store; reload the page"}
    ny, nx = f.values.shape[1:]
    if not (0 <= iy < ny and 0 <= ix < nx):
        return {"error": f"cell (iy {iy}, ix {ix}) is outside the grid ({ny} x {nx})"}
    init_s = to_epoch(f.init)
    valid = [init_s + lead for lead in f.leads_s]
    fc = [None if math.isnan(float(v)) else round(float(v), 3) for v in f.values[:, iy, ix]]
    marks = [render.ANNOTATION_STATES.get(int(a), ("ok",))[0] for a in f.annotations[:, iy, ix]]
    obs = data.observed_at(dataset, f.variable, valid, iy, ix)
    rows = [{"valid": iso(t), "lead": f"+{lead // 60} min", "fcst": fc[k], "mark": marks[k],
             "obs": obs[k]["value"], "flag": obs[k]["flag"], "flag_name": FLAG_NAMES.get(obs[k]["flag"]),
             "revision": obs[k]["revision"]} for k, (t, lead) in enumerate(zip(valid, f.leads_s))]
    n_arrived = sum(1 for o in obs if o["revision"] >= 0)
    return {"error": None, "iy": iy, "ix": ix, "units": f.units, "rows": rows, "n_arrived": n_arrived,
            "chart": {"times": valid, "fcst": fc, "obs": [o["value"] for o in obs], "flags": [o["flag"] for o in obs],
                      "marks": marks, "units": f.units,
                      "flag_colours": {str(k): c for k, (_, _, c) in render.FLAG_STATES.items()},
                      "flag_names": {str(k): lab for k, (_, lab, _) in render.FLAG_STATES.items()}}}


# -- data quality --------------------------------------------------------------------------------------------

def quality_view(data: ConsoleData, *, now: datetime | None = None) -> dict:
    out = []
    for dsid in sorted(data.catalogs()):
        q = data.quality(dsid, now=now)
        if q is not None:
            out.append(q)
    return {"datasets": out, "hours": 24}


# -- monitor ---------------------------------------------------------------------------------------------------

def _monitor_db(data: ConsoleData):
    """The monitor's tables, opened once per console (the service database)."""
    db = getattr(data, "_monitor_db", None)
    if db is None:
        from forecast.monitoring.store import MonitorDB

        db = MonitorDB(data.settings.db_url)
        data._monitor_db = db
    return db


#: the performance diagram's size and margins (SVG units)
PD_W, PD_H, PD_L, PD_B = 340, 320, 44, 36


def _pd_xy(sr: float, pod: float) -> tuple[float, float]:
    return PD_L + sr * (PD_W - PD_L - 10), PD_H - PD_B - pod * (PD_H - PD_B - 10)


def performance_diagram(points: list[dict]) -> dict:
    """The performance diagram (Roebber 2009): success ratio 1 - FAR across, POD up, CSI as curves, frequency
    bias as lines through the origin; one point per method and threshold at a key lead."""
    csi = []
    for c in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        pts = []
        for k in range(1, 101):
            sr = k / 100
            den = 1 / c + 1 - 1 / sr
            if den <= 0:
                continue
            pod = 1 / den
            if 0 <= pod <= 1:
                pts.append(_pd_xy(sr, pod))
        if len(pts) > 1:
            x, y = pts[-1]
            csi.append({"d": "M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in pts), "label": f"{c:.1f}",
                        "lx": x - 20, "ly": y + 12})
    bias = []
    for b in (0.5, 1.0, 2.0):
        sr_end = min(1.0, 1.0 / b)
        x0, y0 = _pd_xy(0, 0)
        x1, y1 = _pd_xy(sr_end, min(1.0, b * sr_end))
        bias.append({"d": f"M{x0:.1f},{y0:.1f} L{x1:.1f},{y1:.1f}", "label": f"bias {b:g}", "lx": x1 - 34, "ly": y1 + 14})
    colours = {"model": "#0550ae", "persistence": "#b04a00", "extrapolation": "#1a7f37"}
    marks = []
    for p in points:
        if p.get("pod") is None or p.get("far") is None:
            continue
        x, y = _pd_xy(1 - p["far"], p["pod"])
        marks.append({**p, "x": round(x, 1), "y": round(y, 1), "colour": colours.get(p["method"], "#57606a")})
    ticks = [{"v": f"{t:.1f}", "x": _pd_xy(t, 0)[0], "y": _pd_xy(0, t)[1]} for t in (0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    return {"w": PD_W, "h": PD_H, "l": PD_L, "b": PD_B, "csi": csi, "bias": bias, "marks": marks, "ticks": ticks,
            "colours": colours}


def monitor_view(data: ConsoleData, *, dataset: str | None = None, variable: str | None = None,
                 user=None) -> dict:
    """The monitor page: skill by lead on the short and long windows against persistence (and extrapolation),
    the per-init skill over time, the performance diagram at the key leads, drift per feature, strata (the
    worst first) and the alerts (firing ones can be acknowledged by operators). Everything comes from
    `forecast.monitoring.report` (the CLI's and the API's code path); ``available`` is False until the
    worker's monitor has verified something."""
    from forecast.monitoring import report

    db = _monitor_db(data)
    pairs = db.variables()
    firing = [a.to_json() for a in db.alerts(state="firing", events=True)]
    recent = [a.to_json() for a in db.alerts(state="resolved", limit=10)]
    base = {"available": bool(pairs), "pairs": [{"dataset": d, "variable": v} for d, v in pairs],
            "firing": firing, "resolved": recent, "can_ack": bool(user is not None and user.can("operator"))}
    if not pairs:
        return base
    cats = data.catalogs()
    pairs = [(d, v) for d, v in pairs if d in cats] or pairs
    if dataset not in {d for d, _ in pairs}:
        dataset, variable = pairs[0]
    elif (dataset, variable) not in set(pairs):
        variable = next(v for d, v in pairs if d == dataset)
    settings = data.settings
    skill = report.skill_doc(settings, dataset, variable, db=db, n_boot=200)
    drift = report.drift_doc(settings, dataset, variable, db=db)
    strata = report.strata_doc(settings, dataset, variable, db=db)
    rows, key_points = [], []
    short, long_ = skill["windows"].get("short") or {}, skill["windows"].get("long") or {}
    by_lead = {x["lead_minutes"]: x for x in long_.get("leads", [])}
    for x in short.get("leads", []):
        lg = by_lead.get(x["lead_minutes"])
        rows.append({"lead": x["lead_minutes"], "key": x["key"],
                     "short": {"model": x["model"]["rmse"], "persistence": x["persistence"]["rmse"],
                               "extrapolation": (x.get("extrapolation") or {}).get("rmse"),
                               **{k: x["skill"]["persistence"][k] for k in ("rmse_skill", "skill_lower", "skill_upper",
                                                                           "better", "worse")}},
                     "long": None if lg is None else {
                         "model": lg["model"]["rmse"], "persistence": lg["persistence"]["rmse"],
                         **{k: lg["skill"]["persistence"][k] for k in ("rmse_skill", "skill_lower", "skill_upper",
                                                                      "better", "worse")}}})
    window_for_pd = long_ if long_.get("n_inits") else short
    for x in window_for_pd.get("leads", []):
        if not x["key"]:
            continue
        for m in skill["windows"]["short"]["methods"] if short else ("model", "persistence"):
            if m not in x:
                continue
            for thr, pod in x[m]["pod"].items():
                key_points.append({"method": m, "lead": x["lead_minutes"], "threshold": thr, "pod": pod,
                                   "far": x[m]["far"][thr], "csi": x[m]["csi"][thr],
                                   "bias": x[m]["frequency_bias"][thr]})
    strata_rows = sorted(strata.get("strata", []), key=lambda s: (s.get("skill") is None, s.get("skill") or 0))
    series = skill.get("series") or {}
    page_data = {
        "lead_chart": {"leads": [r["lead"] for r in rows],
                       "short": [r["short"]["rmse_skill"] for r in rows],
                       "long": [r["long"]["rmse_skill"] if r["long"] else None for r in rows]},
        "series": {"times": [to_epoch(datetime.fromisoformat(t.replace("Z", "+00:00"))) for t in series.get(
            "init_time", [])], "skill": series.get("skill", []), "rmse_model": series.get("rmse_model", []),
            "rmse_persistence": series.get("rmse_persistence", []), "lead_minutes": series.get("lead_minutes")},
    }
    units = ""
    cat = cats.get(dataset)
    if cat is not None and variable in cat.variables:
        units = cat.variables[variable].units
    return {**base, "dataset": dataset, "variable": variable, "units": units, "skill": skill, "rows": rows,
            "short": short, "long": long_, "drift": drift, "strata": strata, "strata_rows": strata_rows,
            "pd": performance_diagram(key_points), "pd_points": key_points, "detector": skill.get("detector"),
            "staged": skill.get("staged"), "page_data": page_data}


# -- models --------------------------------------------------------------------------------------------------

def models_view(data: ConsoleData) -> dict:
    reg = data.registry
    if reg is None:
        return {"models": [], "note": "This installation has no model registry."}
    models = reg.list()
    return {"models": list(reversed(models)), "note": None if models else
            "No models registered yet: `forecast train` registers a candidate."}


def model_view(data: ConsoleData, version: str, *, user) -> dict:
    """One model: its record, stage history, newest hindcast report and the gate's verdict on it."""
    from forecast.registry import check_promotion, find_report, load_report

    reg = data.registry
    rec = reg.get(version)  # UnknownModelError (a KeyError) -> 404
    settings = data.settings
    report_path = find_report(settings, version)
    report, report_error, gate = None, None, None
    if report_path is not None:
        try:
            report, _ = load_report(report_path)
            gate = check_promotion(settings, reg, version, report)
        except Exception as e:  # noqa: BLE001 - shown on the page: a broken report is the forecaster's to fix
            report_error = str(e)
    summary = (report or {}).get("summary") or {}
    production = reg.production(rec.dataset, rec.variable)
    can_promote = user.can_promote and rec.stage != "production"
    return {
        "model": rec, "history": list(rec.history), "report_path": str(report_path) if report_path else None,
        "report": report, "report_error": report_error, "gate": gate, "summary": summary,
        "verdict": (report or {}).get("verdict"), "production": production,
        "can_promote": can_promote, "can_override": can_promote and user.is_admin,
        "promoter_role": _promoter_role(),
    }


def _promoter_role() -> str:
    from api.console.session import PROMOTER_ROLE

    return PROMOTER_ROLE


# -- users ---------------------------------------------------------------------------------------------------

def users_view(data: ConsoleData) -> dict:
    from forecast.db.users import ROLES

    return {"users": data.users.list(), "roles": ROLES}
