"""The monitor: what verification costs a cycle at 256 x 256, and how fast the scenarios are detected with how
many false alarms per simulated day.

    python bench/monitor.py            # full length (~10 min on 2 cores)
    python bench/monitor.py --quick    # small versions (~3 min)

**Cost per cycle** (same run, same sample, same machine): the worker's cycle (`forecast.worker.run_cycle`,
no model in production: the fallback extrapolation forecasts, as in a fresh service) over a 256 x 256
radar feed, in three scratch homes fed the same files: (A) no monitoring; (B) the monitoring pass inside
the cycle (``MonitorHook(background=False)``, `forecast cycle`'s mode: its time is the cycle's verify
stage); (C) the worker's default, the pass in a background thread of lower priority, each cycle followed
by the idle time a 5-minute feed leaves (the bench waits for the pass before dropping the next file).
Reported: medians over the cycles whose forecasts have matured (each verifies one init), the monitoring
pass's own seconds, and the added share of cycle time for B and C against A. The run plants a revised
observation, so the same homes show a preliminary and a final verification and how much the verdict moved.

**Scenarios** (`forecast.synthetic.scenarios`) through the monitor's statistics on rendered fields
(`forecast.monitoring.offline`: the same features, drift windows, `Verifier` per init, change detector and
alert rules with hysteresis as the monitoring pass): detection delay in cycles (5-minute slots or inits) and
false alarms per simulated day. Regions are the radar catalog's four radar quadrants; the reference period
is the first days of each scenario (as a model's training period would be).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE.parent))

from bench.common import Table, median, scratch_dir

START = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


def catalog_doc(n: int, *, short: str = "6h", long: str = "24h") -> dict:
    import copy

    import yaml

    doc = copy.deepcopy(yaml.safe_load((_HERE.parent / "catalogs" / "radar_precip.yaml").read_text()))
    doc["grid"]["x"]["size"] = doc["grid"]["y"]["size"] = n
    h = n // 2
    doc["feed"] = {"expected_latency": "2min", "wait_for_late": "3min", "deadline": "60s", "expire_after": "5min",
                   "settle": "0s"}
    doc["monitoring"] = {"short_window": short, "long_window": long, "long_every": "1h", "n_boot": 200, "regions": [
        {"name": "radar_nw", "cells": {"iy": [0, h], "ix": [0, h]}}, {"name": "radar_ne", "cells": {"iy": [0, h], "ix": [h, n]}},
        {"name": "radar_sw", "cells": {"iy": [h, n], "ix": [0, h]}}, {"name": "radar_se", "cells": {"iy": [h, n], "ix": [h, n]}}]}
    return doc


# -- cost per cycle ----------------------------------------------------------------------------------------------


def cost_per_cycle(n: int, cycles: int, tmp: Path) -> dict:
    import os
    import shutil

    import yaml

    from forecast.catalog import parse_catalog
    from forecast.clock import FixedClock
    from forecast.monitoring import MonitorHook
    from forecast.monitoring.report import skill_doc
    from forecast.settings import Settings
    from forecast.synthetic import generate_sample
    from forecast.timeutil import iso
    from forecast.worker.cycle import open_service, run_cycle
    from forecast.worker.inbox import feed_folders

    doc = catalog_doc(n, short="1h", long="6h")
    sample = tmp / "sample"
    cat = parse_catalog(doc, "bench")
    manifest = generate_sample(cat, start=START, hours=cycles * 5 / 60 + 0.5, out=sample, faults=["revised"], seed=7)
    status = {s["time"]: s for s in manifest["slots"]}
    rev = next(s for s in manifest["slots"] if s["status"] == "revised")
    out = {}
    for mode in ("none", "cycle", "background"):
        home = tmp / mode
        (home / "catalogs").mkdir(parents=True)
        (home / "catalogs" / "radar_precip.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        st = Settings(home=home / "home", catalogs=home / "catalogs", workers=1)
        clock = FixedClock(START)
        hook = None if mode == "none" else MonitorHook(st, background=(mode == "background"))
        svc = open_service(st, "radar_precip", clock=clock, hooks=[hook] if hook else [])
        inbox, _, _ = feed_folders(st, svc.catalog)
        totals, verify, passes, bg = [], [], [], []
        for i in range(cycles):
            t = START + i * STEP
            clock.set(t + timedelta(minutes=1))
            if status[iso(t)]["status"] not in ("missing", "late"):
                src = sample / status[iso(t)]["files"][0]
                tmpf = inbox / f".{src.name}.part"
                inbox.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, tmpf)
                os.replace(tmpf, inbox / src.name)
            if i == cycles - 2:  # the corrected file of an earlier slot arrives
                shutil.copyfile(sample / rev["files"][1], inbox / Path(rev["files"][1]).name)
            rep = run_cycle(svc)
            if hook is not None and mode == "background":
                t0 = time.perf_counter()
                hook.wait(300)  # the idle time between two slots of a 5-minute feed
                bg.append(time.perf_counter() - t0)
            mon = (rep.get("hooks") or {}).get("monitor") or {}
            if i >= 13:  # forecasts have matured: each cycle verifies one init
                totals.append(rep["stages"]["total"])
                verify.append(rep["stages"].get("verify", 0.0))
                if mode == "cycle" and mon.get("seconds") is not None:
                    passes.append(mon["seconds"])
        doc_skill = None
        if hook is not None:
            last = hook.last.get("radar_precip") or {}
            passes_bg = [p for p in [last.get("seconds")] if p]
            doc_skill = skill_doc(st, "radar_precip", n_boot=50)
            hook.close()
        out[mode] = {"total": median(totals), "verify": median(verify), "pass": median(passes) if passes else None,
                     "bg_wait": median(bg) if bg else None, "n": len(totals),
                     "pass_bg_last": passes_bg[0] if hook is not None and passes_bg else None,
                     "staged": (doc_skill or {}).get("staged"), "spread": (min(totals), max(totals)) if totals else None}
        svc.db.close()
    return out


# -- scenarios -----------------------------------------------------------------------------------------------------


def _rules(kind: str):
    from forecast.catalog.monitoring import DEFAULT_RULES, AlertRule

    return [AlertRule(**r) for r in DEFAULT_RULES if r["kind"] == kind]


def _db(tmp: Path, name: str):
    from forecast.monitoring.store import MonitorDB

    return MonitorDB(f"sqlite:///{tmp / (name + '.db')}")


def drift_scenario(name: str, n: int, *, ref_h: float, tmp: Path, every: int = 1, **changes) -> dict:
    from forecast.catalog import parse_catalog
    from forecast.monitoring.offline import drift_events, scenario_features
    from forecast.synthetic.scenarios import scenario

    cat = parse_catalog(catalog_doc(n), "bench")
    sc = scenario(name, **changes)
    t0 = time.perf_counter()
    rows = scenario_features(cat, sc, START.timestamp())
    render_s = time.perf_counter() - t0
    db = _db(tmp, f"{name}-{n}")
    ref = int(ref_h * 12)
    events = drift_events(db, cat, rows, ref, _rules("input_drift"), start=START, every=every)
    db.close()
    fired = [(i, a) for i, e, a in events if e == "fired"]
    resolved = [(i, a) for i, e, a in events if e == "resolved"]
    onset = int(sc.onset_h * 12) if sc.onset_h is not None else None
    end = int(sc.end_h * 12) if sc.end_h is not None else None
    return {"scenario": sc, "rows": len(rows), "render_s": render_s, "fired": fired, "resolved": resolved,
            "onset": onset, "end": end, "ref": ref, "monitored_days": (len(rows) - ref) / 288}


def skill_scenario(n: int, n_inits: int, degrade_from: int | None) -> dict:
    from forecast.catalog import parse_catalog
    from forecast.catalog.monitoring import DetectorConfig
    from forecast.monitoring.detector import new_state, update
    from forecast.monitoring.offline import skill_series

    cat = parse_catalog(catalog_doc(n), "bench")
    series = skill_series(cat, n_inits, start_s=START.timestamp(), degrade_from=degrade_from)
    cfg = DetectorConfig()
    st, onsets = new_state(), []
    for j, x in enumerate(series):
        was = st["alarm"]
        st = update(st, x, cfg)
        if st["alarm"] and not was:
            onsets.append(j)
    wet = None
    if degrade_from is not None:
        wet = next((j for j in range(degrade_from, n_inits) if series[j] is not None and abs(series[j]) > 0.1), None)
    return {"onsets": onsets, "n": n_inits, "degrade_from": degrade_from, "first_wet": wet,
            "days": n_inits / 288}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small versions of each part")
    args = ap.parse_args()
    q = args.quick
    print(f"bench/monitor.py{' --quick' if q else ''}: the monitor's cost per cycle and its scenarios\n", flush=True)

    with scratch_dir("bench-monitor-") as tmp:
        n = 256
        cycles = 22 if q else 30
        c = cost_per_cycle(n, cycles, tmp / "cost")
        base = c["none"]["total"]
        t = Table(["cycle at 256 x 256", "median s", "min..max", "verify stage s", "monitor pass s", "added"],
                  title=f"cost per cycle: {c['none']['n']} matured cycles each (no model: the fallback extrapolation)")
        for mode, label in (("none", "A: no monitoring"), ("cycle", "B: pass inside the cycle"),
                            ("background", "C: pass in the background (default)")):
            r = c[mode]
            lo, hi = r["spread"]
            added = "" if mode == "none" else f"{100 * (r['total'] - base) / base:+.1f} %"
            ps = r["pass"] if mode == "cycle" else r["bg_wait"]
            t.add([label, r["total"], f"{lo:.2f}..{hi:.2f}", r["verify"], ps, added])
        print(t, "\n", flush=True)
        stg = c["cycle"]["staged"] or {}
        if stg.get("n_inits"):
            w = stg.get("window") or {}
            most = [(x["moved_most"]["rmse"], x["moved_most"]["lead_minutes"]) for x in stg["inits"]
                    if x["moved_most"]["rmse"] is not None]
            shown = ", ".join(f"{d:+.3f} at +{lm} min" for d, lm in most)
            ws = [w.get("preliminary_skill"), w.get("final_skill")]
            print(f"revised observation: {stg['n_inits']} init(s) verified again (final beside preliminary); the RMSE "
                  f"moved most by {shown}; window skill at +{stg['key_lead_minutes']} min preliminary "
                  + " -> final ".join("-" if v is None else f"{v:.4f}" for v in ws) + "\n", flush=True)

        rows = Table(["scenario", "grid", "monitored", "detection delay (cycles)", "resolved after end (cycles)",
                      "named", "false alarms / day"], title="scenarios (5-minute cycles)")
        m = 128 if q else 256
        cal = (drift_scenario("calibration_fault", m, ref_h=72, tmp=tmp, hours=112, onset_h=80, end_h=90) if q else
               drift_scenario("calibration_fault", m, ref_h=72, tmp=tmp))
        f_short = [(i, a) for i, a in cal["fired"] if a.rule == "input_drift_short" and i > cal["onset"]]
        early = [x for x in cal["fired"] if x[0] <= cal["onset"]]
        res = [i for i, a in cal["resolved"] if a.rule == "input_drift_short" and i > cal["end"]]
        rows.add([f"radar calibration fault (30 % low, {cal['scenario'].end_h - cal['scenario'].onset_h:g} h)", f"{m}²",
                  f"{cal['monitored_days']:.1f} d",
                  (f_short[0][0] - cal["onset"]) if f_short else "not found",
                  (res[0] - cal["end"]) if res else "not resolved",
                  ", ".join(f_short[0][1].details["features"]) if f_short else "-",
                  f"{len(early) / (cal['onset'] - cal['ref']) * 288:.2f} (before the onset)"])
        reg = drift_scenario("regime_change", 128 if q else m, ref_h=72 if q else 144, tmp=tmp, every=3,
                             hours=120 if q else 216, onset_h=72 if q else 144, ramp_h=24 if q else 48,
                             speedup=2.0 if q else 1.6, intensify=2.0 if q else 1.6)
        f_long = [(i, a) for i, a in reg["fired"] if a.rule == "input_drift_long"]
        f_short = [x for x in reg["fired"] if x[1].rule == "input_drift_short"]
        rows.add([f"slow regime change ({reg['scenario'].ramp_h:g} h ramp)", f"{128 if q else m}²",
                  f"{reg['monitored_days']:.1f} d",
                  f"long: {f_long[0][0] - reg['onset']}" if f_long else "long: not found",
                  "-", ", ".join(f_long[0][1].details["features"]) if f_long else "-",
                  f"short window fired {len(f_short)}x"])
        sty = drift_scenario("steady", m, ref_h=72, tmp=tmp, every=1 if not q else 3, hours=96 if q else 168)
        rows.add(["steady weather: drift rules", f"{m}²", f"{sty['monitored_days']:.1f} d", "-", "-", "-",
                  f"{len(sty['fired']) / sty['monitored_days']:.2f} ({len(sty['fired'])} alerts)"])
        deg = skill_scenario(64 if q else 96, 144, degrade_from=100)
        first = next((j for j in deg["onsets"] if j >= deg["degrade_from"]), None)
        before = [j for j in deg["onsets"] if j < deg["degrade_from"]]
        rows.add(["degraded model (perturbed: shifted 9 cells, x1.8)", f"{64 if q else 96}²", "144 inits",
                  (f"{first - deg['degrade_from']} after its first init, {first - deg['first_wet']} after its first "
                   f"with rain" if first is not None else "not found"), "-", "skill_drop",
                  f"{len(before)} before"])
        steady = skill_scenario(64 if q else 96, 288 if q else 576, degrade_from=None)
        rows.add(["steady weather: change detector", f"{64 if q else 96}²", f"{steady['days']:.1f} d", "-", "-", "-",
                  f"{len(steady['onsets']) / steady['days']:.2f} ({len(steady['onsets'])} alarms)"])
        print(rows, flush=True)


if __name__ == "__main__":
    main()
