"""Rolling skill: the verifications of a window (the last 6 hours, the last 30 days) summed exactly into one
`Verifier` (`forecast.monitoring.records`) whose ``summary`` gives every score per lead and the paired
moving-block bootstrap of the model against each reference (`forecast.evaluation.bootstrap`, as the
promotion gate); the same per region and regime (strata); and how much the verdict moved between the
preliminary and the final verification of inits whose observations were revised.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from collections.abc import Iterable

import numpy as np

from forecast.monitoring.records import MODEL, InitRecord, verifier_config, window_verifier
from forecast.timeutil import iso, to_epoch, utc

__all__ = ["STAGES", "staged_report", "strata_report", "window_bounds", "window_rows", "window_skill"]

#: which verification of an init a window uses: the newest (final where there is one), or the first
STAGES = ("current", "preliminary")


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def window_rows(db, dataset: str, variable: str, start: datetime, end: datetime, *, stage: str = "current",
                methods: Iterable[str] | None = None) -> list[dict]:
    """The verification rows of a window: the current version of each init and method, or the preliminary
    (version 0) one."""
    if stage == "current":
        return db.verifications(dataset, variable, since=start, until=end, methods=methods, current=True)
    rows = db.verifications(dataset, variable, since=start, until=end, methods=methods, current=None)
    return [r for r in rows if r["version"] == 0]


def _signature(r: dict) -> tuple:
    conf = (r.get("scores") or {}).get("config") or {}
    return (tuple(r["lead_s"]), tuple(conf.get("thresholds") or ()), tuple(conf.get("fss_windows") or ()),
            tuple(conf.get("fss_thresholds") or conf.get("thresholds") or ()))


def _group(rows: list[dict], methods: list[str]) -> tuple[dict[str, list[tuple[int, InitRecord]]], list[int], tuple]:
    """Records per method over the inits every method has, with the model verified on at least one cell,
    made with the most common configuration (leads, thresholds, FSS windows)."""
    by_init: dict[int, dict[str, dict]] = {}
    for r in rows:
        by_init.setdefault(to_epoch(r["init_time"]), {})[r["method"]] = r
    sigs = Counter(_signature(r) for r in rows if r["method"] == MODEL)
    sig = sigs.most_common(1)[0][0] if sigs else ((), (), (), ())
    out: dict[str, list] = {m: [] for m in methods}
    inits = []
    for init_s in sorted(by_init):
        got = by_init[init_s]
        if not all(m in got for m in methods) or _signature(got[MODEL]) != sig:
            continue
        recs = {m: InitRecord.unpack(got[m]["record"]) for m in methods}
        if int(recs[MODEL].n.sum()) == 0:  # nothing verifiable (the hindcast skips such inits too)
            continue
        inits.append(init_s)
        for m in methods:
            out[m].append((init_s, recs[m]))
    return out, inits, sig


def window_skill(db, catalog, variable: str, cfg, *, start: datetime, end: datetime, stage: str = "current",
                 n_boot: int | None = None, thresholds=None) -> dict[str, Any]:
    """Per-lead scores of the model and the references over [start, end], with skill against each reference
    and its bootstrap interval (see the module docstring). ``verifier`` holds the window's Verifier summary."""
    from forecast.evaluation.references import default_thresholds

    methods = [MODEL, *cfg.references]
    rows = window_rows(db, catalog.id, variable, start, end, stage=stage, methods=methods)
    records, inits, sig = _group(rows, methods)
    lead_s = list(sig[0])
    thr = tuple(thresholds or sig[1] or cfg.thresholds or default_thresholds(catalog, variable))
    windows = list(sig[2] or cfg.fss_windows)
    fss_thr = list(sig[3] or thr)
    doc: dict[str, Any] = {"start": iso(start), "end": iso(end), "stage": stage, "n_inits": len(inits),
                           "first_init": iso(inits[0]) if inits else None,
                           "last_init": iso(inits[-1]) if inits else None, "reference": "persistence",
                           "methods": methods, "leads": [], "enough": len(inits) >= cfg.min_inits}
    if not inits:
        return doc
    fallback = Counter(r["forecast_method"] for r in rows if r["method"] == MODEL and to_epoch(r["init_time"]) in
                       set(inits))
    doc["forecast_methods"] = dict(fallback)
    conf = verifier_config(lead_s, thr, windows, fss_thr)
    ver = window_verifier(conf, catalog.grid.shape, records)
    summary = ver.summary(reference="persistence", compare=(MODEL,), n_boot=int(n_boot or cfg.n_boot), seed=0)
    doc["summary"] = summary
    key = [int(k) for k in cfg.key_leads_minutes]
    for i, s in enumerate(lead_s):
        lead = {"lead_minutes": s // 60, "lead_s": s, "key": s // 60 in key}
        for m in methods:
            sc = summary["methods"][m]
            lead[m] = {"rmse": sc["continuous"]["rmse"][i], "mae": sc["continuous"]["mae"][i],
                       "bias": sc["continuous"]["bias"][i], "n": sc["continuous"]["n"][i],
                       "csi": {t: b["csi"][i] for t, b in sc["categorical"].items()},
                       "pod": {t: b["pod"][i] for t, b in sc["categorical"].items()},
                       "far": {t: b["far"][i] for t, b in sc["categorical"].items()},
                       "frequency_bias": {t: b["frequency_bias"][i] for t, b in sc["categorical"].items()},
                       "fss": {t: {w: v[i] for w, v in ws.items()} for t, ws in sc["fss"].items()}}
        sk = {}
        for ref in cfg.references:
            b = summary["bootstrap"][MODEL][ref]["rmse"]
            r_ref = lead[ref]["rmse"]
            skill = 1 - lead[MODEL]["rmse"] / r_ref if lead[MODEL]["rmse"] is not None and r_ref else None
            lo, hi = b["lower"][i], b["upper"][i]
            sk[ref] = {"rmse_skill": _f(skill), "rmse_diff": _f(b["diff"][i]), "lower": _f(lo), "upper": _f(hi),
                       "skill_lower": _f(-hi / r_ref) if hi is not None and r_ref else None,
                       "skill_upper": _f(-lo / r_ref) if lo is not None and r_ref else None,
                       "better": bool(b["better"][i]), "worse": bool(lo is not None and lo > 0),
                       "csi_diff": {t: _f(v["diff"][i]) for t, v in summary["bootstrap"][MODEL][ref]["csi"].items()}}
        lead["skill"] = sk
        doc["leads"].append(lead)
    return doc


def staged_report(db, catalog, variable: str, cfg, *, start: datetime, end: datetime) -> dict[str, Any]:
    """Inits verified more than once (an observation they used was revised or came late): the preliminary
    and the final verification side by side, and the window's skill on either, so a report says how much
    the verdict moved. The monitor itself uses the final ones."""
    staged = db.staged_inits(catalog.id, variable, since=start)
    staged = [t for t in staged if t <= end]
    key = min(cfg.key_leads_minutes)
    out: dict[str, Any] = {"n_inits": len(staged), "inits": [], "key_lead_minutes": key}
    for t in staged[-50:]:
        rows = db.verifications(catalog.id, variable, current=None, init=t, methods=[MODEL, "persistence"])
        versions: dict[int, dict] = {}
        for r in rows:
            versions.setdefault(r["version"], {})[r["method"]] = r
        if 0 not in versions:
            continue
        newest = max(versions)

        def at_key(v: dict) -> dict:
            m, p = v[MODEL], v.get("persistence")
            i = next((k for k, s in enumerate(m["lead_s"]) if s // 60 >= key), len(m["lead_s"]) - 1)
            rm = m["scores"]["rmse"][i]
            rp = p["scores"]["rmse"][i] if p else None
            return {"stage": m["stage"], "version": m["version"], "obs_revisions": m["obs_revisions"],
                    "computed_at": iso(m["computed_at"]), "rmse": rm, "rmse_persistence": rp,
                    "skill": 1 - rm / rp if rm is not None and rp else None, "per_init_skill": m["skill"]}

        pre, fin = at_key(versions[0]), at_key(versions[newest])
        # where the verdict moved most: the lead of the revised slot
        a, b = versions[0][MODEL]["scores"]["rmse"], versions[newest][MODEL]["scores"]["rmse"]
        deltas = [(y - x, s // 60) for x, y, s in zip(a, b, versions[0][MODEL]["lead_s"]) if x is not None and y is not None]
        big = max(deltas, key=lambda d: abs(d[0]), default=(None, None))
        out["inits"].append({"init_time": iso(t), "preliminary": pre, "final": fin,
                             "moved": None if pre["rmse"] is None or fin["rmse"] is None else fin["rmse"] - pre["rmse"],
                             "moved_most": {"rmse": big[0], "lead_minutes": big[1]}})
    if staged:
        a = window_skill(db, catalog, variable, cfg, start=start, end=end, stage="preliminary", n_boot=50)
        b = window_skill(db, catalog, variable, cfg, start=start, end=end, stage="current", n_boot=50)

        def skill_at(d):
            lead = next((x for x in d["leads"] if x["lead_minutes"] >= key), None)
            return lead["skill"]["persistence"]["rmse_skill"] if lead else None

        out["window"] = {"preliminary_skill": skill_at(a), "final_skill": skill_at(b)}
    return out


def strata_report(db, catalog, variable: str, cfg, *, start: datetime, end: datetime, lead_minutes: int | None = None,
                  min_inits: int | None = None, n_boot: int = 200) -> dict[str, Any]:
    """Skill against persistence per region and per regime over [start, end] at ``lead_minutes`` (default the
    first key lead): each stratum's RMSE of model and persistence, its skill and the gap to the whole grid's,
    the paired block-bootstrap interval of the RMSE difference, and ``below_reference`` where the model is
    significantly worse than persistence in the stratum while the mean is not."""
    from forecast.evaluation.bootstrap import paired_block_bootstrap

    lead_minutes = lead_minutes or min(cfg.key_leads_minutes)
    min_inits = min_inits or cfg.min_inits
    rows = window_rows(db, catalog.id, variable, start, end, methods=[MODEL, "persistence"])
    by_init: dict[int, dict[str, dict]] = {}
    for r in rows:
        by_init.setdefault(to_epoch(r["init_time"]), {})[r["method"]] = r
    inits = sorted(i for i, g in by_init.items() if MODEL in g and "persistence" in g)
    out: dict[str, Any] = {"start": iso(start), "end": iso(end), "lead_minutes": lead_minutes, "strata": [],
                           "n_inits": len(inits)}
    if not inits:
        return out
    lead_s = by_init[inits[-1]][MODEL]["lead_s"]
    li = next((k for k, s in enumerate(lead_s) if s // 60 >= lead_minutes), len(lead_s) - 1)
    thr_keys = list(by_init[inits[-1]][MODEL]["scores"]["csi"])

    def stratum(name: str, kind: str, parts: list[tuple[int, dict, dict]]) -> dict[str, Any]:
        n = len(parts)
        doc: dict[str, Any] = {"stratum": name, "kind": kind, "n_inits": n}
        if n == 0:
            return doc
        nm = np.array([p[1]["n"] for p in parts], dtype=np.int64)
        sm = np.array([p[1]["sse"] for p in parts], dtype=np.float64)
        hm = np.array([p[1]["hmf"] for p in parts], dtype=np.int64)
        npr = np.array([p[2]["n"] for p in parts], dtype=np.int64)
        sp = np.array([p[2]["sse"] for p in parts], dtype=np.float64)
        hp = np.array([p[2]["hmf"] for p in parts], dtype=np.int64)
        cells = int(nm[:, li].sum())
        if cells == 0:
            doc.update(rmse=None, rmse_persistence=None, skill=None, cells=0)
            return doc
        rm = math.sqrt(math.fsum(sm[:, li]) / cells)
        rp = math.sqrt(math.fsum(sp[:, li]) / max(int(npr[:, li].sum()), 1))
        doc.update(rmse=rm, rmse_persistence=rp, skill=1 - rm / rp if rp else None, cells=cells)
        if n >= 2:
            b = paired_block_bootstrap((nm, sm, hm), (npr, sp, hp), thr_keys, n_boot=n_boot, seed=0)["rmse"]
            doc.update(rmse_diff=_f(b["diff"][li]), lower=_f(b["lower"][li]), upper=_f(b["upper"][li]),
                       worse=bool(b["lower"][li] is not None and b["lower"][li] > 0))
        return doc

    def whole(i: int) -> tuple[dict, dict]:
        g = by_init[i]
        m, p = InitRecord.unpack(g[MODEL]["record"]), InitRecord.unpack(g["persistence"]["record"])
        return ({"n": m.n.tolist(), "sse": m.sse.tolist(), "hmf": m.hmf.tolist()},
                {"n": p.n.tolist(), "sse": p.sse.tolist(), "hmf": p.hmf.tolist()})

    full = {i: whole(i) for i in inits}
    mean = stratum("all", "all", [(i, *full[i]) for i in inits])
    out["mean"] = mean
    regions = sorted({name for i in inits for name in by_init[i][MODEL]["strata"]})
    for name in regions:
        parts = [(i, by_init[i][MODEL]["strata"][name], by_init[i]["persistence"]["strata"][name]) for i in inits
                 if name in by_init[i][MODEL]["strata"] and name in by_init[i]["persistence"]["strata"]]
        out["strata"].append(stratum(name, "region", parts))
    regimes = sorted({g for i in inits for g in by_init[i][MODEL]["regimes"]})
    for name in regimes:
        parts = [(i, *full[i]) for i in inits if name in by_init[i][MODEL]["regimes"]]
        out["strata"].append(stratum(name, "regime", parts))
    ms = mean.get("skill")
    judged = [s for s in out["strata"] if s["n_inits"] >= min_inits and s.get("skill") is not None]
    for s in out["strata"]:
        s["gap"] = s["skill"] - ms if s.get("skill") is not None and ms is not None else None
        s["judged"] = s in judged
        s["below_reference"] = bool(s in judged and s.get("worse") and ms is not None and ms >= 0)
    worst = min(judged, key=lambda s: s["skill"], default=None)
    out["worst"] = worst and {k: worst[k] for k in ("stratum", "kind", "skill", "gap", "n_inits")}
    return out


def window_bounds(cfg, now: datetime, name: str) -> tuple[datetime, datetime]:
    """[start, end] of the ``short`` or ``long`` window ending at ``now`` (init times). Skill windows end at
    the newest verified init (an init is verified a forecast horizon after it was made), so that "the last
    6 hours" holds 6 hours of verified inits; drift windows end at the clock's now (slot times)."""
    secs = cfg.seconds("short_window" if name == "short" else "long_window")
    return utc(now) - timedelta(seconds=secs), utc(now)
