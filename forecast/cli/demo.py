"""``forecast demo``: the service end to end on embedded sample data, saying what it does.

1. the catalogs; realistic sample observations with every fault a feed has (``forecast sample``);
2. the history the service had before it started: 22 hours of radar and 48 hours of surface stations
   ingested as a backfill in the feed's own order, QC, a review decision, an as-of read;
3. a quick model trained on the first 18 hours and put into production by a recorded override, so that a
   model serves from the first live cycle;
4. the live service: the API (``--serve``), the worker, and a replay of the last 2 hours of the feed at 24
   times real time, printing each cycle as it happens, with a feed outage in the middle whose alert
   (``data_missing``) fires and resolves as the monitor sees it; every forecast is verified once observed;
   meanwhile the full model trains in the background, is hindcast on the held-out hours and reaches
   production only through the gate.

Run it twice: nothing is ingested or forecast twice. ``--fresh`` starts over; ``--quick`` replays half an hour
without the API or the background training (a smoke test).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console

from forecast.catalog import get_catalog, load_catalogs
from forecast.cli.demo_data import (
    DEMO_HOURS,
    DEMO_START,
    TRAIN_HOURS,
    backfill,
    describe_store,
    qc_and_review,
    sample_for,
    trained_on,
)
from forecast.cli.output import JsonOpt, err, load_settings, out, run_command
from forecast.settings import Settings
from forecast.timeutil import iso

__all__ = ["DEMO_HOURS", "DEMO_START", "QUICK_MODEL", "TRAIN_HOURS", "demo", "run_demo", "trained_on"]

#: the demo's quick model: one short epoch (it serves while the full model trains)
QUICK_MODEL = {"training": {"max_epochs": 1, "samples_per_epoch": 32, "max_val_windows": 4}}
#: hours of radar the feed delivers live (the rest is history); at this many times real time
#: (a cycle at 256 x 256 costs about a second on 2 busy cores: at 24x the 60 s deadline is 2.5 s of wall time)
LIVE_HOURS, LIVE_SPEED = 2.0, 24.0
QUICK_LIVE_HOURS, QUICK_LIVE_SPEED = 0.5, 24.0
#: something going wrong live: the radar feed goes silent (minutes after the live start, minutes long); the
#: files held back land when it ends. The monitor's data_missing alert fires, then resolves.
OUTAGE = (40, 25)
QUICK_OUTAGE = (2, 25)
RADAR, VAR = "radar_precip", "precipitation_rate"


def _fresh(settings: Settings) -> None:
    """Remove what the demo made under its home (stores, samples, inbox, archive, database, models)."""
    home = settings.home
    for name in ("demo", "inbox", "archive", "quarantine", "replay", "worker", "hindcasts", "models"):
        shutil.rmtree(home / name, ignore_errors=True)
    for loc in (settings.observation_store, settings.forecast_store_location):
        if "://" not in loc:
            shutil.rmtree(loc, ignore_errors=True)
            Path(loc + ".lock").unlink(missing_ok=True)
    if settings.database_url is None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(home / "review.db") + suffix).unlink(missing_ok=True)


def _quick_model(settings: Settings, say) -> dict:
    """Train the quick model on the first hours (or reuse it) and put it into production by override."""
    import yaml

    from forecast.model.config import parse_model_config
    from forecast.registry import ModelRegistry, promote
    from forecast.registry.training import train_model
    from forecast.stores import store_for

    cfg = parse_model_config(QUICK_MODEL)
    cfg_path = settings.home / "demo" / "model-quick.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    train_end = DEMO_START[RADAR] + timedelta(hours=TRAIN_HOURS) - timedelta(minutes=5)
    say(f"\n[bold]4. a quick model[/] (one short epoch) on the first {TRAIN_HOURS} hours, to serve while the full "
        "one trains")
    say(f"   $ forecast train {RADAR} --variable {VAR} --config {cfg_path} --end {iso(train_end)}")
    with ModelRegistry(settings.db_url, settings.models_dir) as reg:
        rec = trained_on(reg, RADAR, VAR, store_for(settings).head(), cfg)
        if rec is None:
            same = [r for r in reg.list(dataset=RADAR, variable=VAR) if r.hyperparameters == cfg.to_dict()
                    and r.created_by == "demo"]
            rec = same[-1] if same else None
        if rec is not None:
            say(f"     model {rec.version} was already trained with this config: reusing it")
        else:
            doc = train_model(settings, RADAR, VAR, config_path=cfg_path, end=train_end, by="demo")
            rec = reg.get(doc["version"])
            tr = doc["training"]
            leads = {r["lead_minutes"]: r for r in doc["metrics"]["leads"]}
            say(f"     registered [bold]{rec.version}[/] as candidate in {tr['seconds']:.0f} s; validation RMSE at "
                f"+60 min {leads[60]['rmse']:.3f} (persistence {leads[60]['rmse_persistence']:.3f})", highlight=False)
        if rec.stage != "production" and reg.production(RADAR, VAR) is None:
            why = "demo: a quick model serves while the full model trains and passes the gate"
            say(f"   $ forecast models promote {rec.version} --by duty-forecaster --override --reason '{why}'")
            promote(settings, reg, rec.version, by="duty-forecaster", reason=why, override=True)
            say("     in production by a recorded override (no hindcast behind it yet)")
        prod = reg.production(RADAR, VAR)
        return {"version": rec.version, "production": prod.version if prod else None}


def _start_api(settings: Settings, port: int, say) -> subprocess.Popen | None:
    import urllib.request

    env = {**os.environ, "FORECAST_HOME": str(settings.home.resolve()),
           "FORECAST_CATALOGS": str(Path(settings.catalogs).resolve())}
    log = open(settings.home / "demo" / "api.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port",
                             str(port), "--workers", "1", "--log-level", "warning"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    for _ in range(60):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                say(f"   the API serves at http://127.0.0.1:{port} (log {settings.home / 'demo' / 'api.log'})")
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    say(f"   [yellow]the API did not start on port {port}[/] (is it taken? see {settings.home / 'demo' / 'api.log'})")
    proc.kill()
    return None


def _tail(path: Path, say, stop: threading.Event) -> threading.Thread:
    """Print the background training's log lines as they come."""
    def run():
        pos = 0
        while not stop.is_set():
            try:
                with open(path, encoding="utf-8") as f:
                    f.seek(pos)
                    for line in f:
                        if line.strip() and not line.startswith((" ", "Traceback")):
                            say(f"   [magenta][training][/] {line.strip()}", highlight=False)
                    pos = f.tell()
            except OSError:
                pass
            stop.wait(1.0)

    th = threading.Thread(target=run, name="demo-training-log", daemon=True)
    th.start()
    return th


def _cycle_printer(say, counts: dict):
    def show(report: dict) -> None:
        ing = report["ingest"]
        for r in ing.get("rejected", []):
            say(f"   [yellow]quarantined[/] {Path(r['file']).name}: {r['reason']}", highlight=False)
        if ing.get("duplicates"):
            say(f"   duplicate file(s) for {', '.join(ing['duplicates'])}: nothing new stored", highlight=False)
        if ing.get("revisions"):
            say(f"   revision of {', '.join(ing['revisions'])} stored (the old one stays readable; no new forecast "
                "of the past)", highlight=False)
        for f in report["forecasts"]:
            counts["forecasts"] += 1
            counts["methods"][f["method"]] = counts["methods"].get(f["method"], 0) + 1
            fb = f["fallback"]
            if fb:
                counts["fallbacks"] += 1
            miss = " [red]deadline missed[/]" if f["deadline_missed"] else ""
            notes = []
            if f["inputs"]["missing"]:
                notes.append(f"missing {', '.join(t[11:16] for t in f['inputs']['missing'])}")
            if f["inputs"]["late"]:
                notes.append(f"late {', '.join(t[11:16] for t in f['inputs']['late'])}")
            say(f"   [{report['now'][11:19]}] init {f['init_time'][11:16]} by [bold]{f['method']}[/]"
                + (f" {f['model']}" if f["model"] else "") + f", served {f['lateness_s']:.0f} s after due{miss}"
                + (f" ({'; '.join(notes)})" if notes else "")
                + (f" [yellow]fallback: {fb['reason']}[/]" if fb else ""), highlight=False)
        for s in report["skipped"]:
            counts["skipped"] += 1
            say(f"   init {s['init_time'][11:16]} skipped: {s['reason']}", highlight=False)

    return show


def _alert_printer(settings: Settings, say, stop: threading.Event, seen: list) -> threading.Thread:
    """Print the monitor's alert history as it is written (fired, resolved, delivered), as an operator's
    pager would show it."""
    from forecast.monitoring.store import MonitorDB

    db = MonitorDB(settings.db_url)
    last = max((e["id"] for e in db.events_since(0)), default=0)

    def run():
        nonlocal last
        try:
            while True:
                done = stop.wait(0.5)
                for e in db.events_since(last):
                    last = e["id"]
                    a = db.alert(e["alert_id"])
                    seen.append({"id": a.id, "rule": a.rule, "event": e["kind"], "at": iso(e["at"])})
                    colour = {"fired": "red", "resolved": "green"}.get(e["kind"], "cyan")
                    msg = (e.get("details") or {}).get("message") or a.message
                    say(f"   [{colour}]ALERT {e['kind']}[/] #{a.id} {a.rule} ({a.severity}) on {a.dataset} at "
                        f"{iso(e['at'])[11:16]}: {msg}", highlight=False)
                if done:
                    return
        finally:
            db.close()

    th = threading.Thread(target=run, name="demo-alerts", daemon=True)
    th.start()
    return th


def _monitor_summary(settings: Settings, say) -> dict:
    """What continuous verification made of the live hours so far (the short window)."""
    from forecast.monitoring.report import skill_doc

    try:
        doc = skill_doc(settings, RADAR, windows=("short",), n_boot=200)
    except Exception as e:  # noqa: BLE001 - the summary is a courtesy; the demo's story does not hang on it
        say(f"   monitor: no skill to show yet ({e})", highlight=False)
        return {}
    w = doc["windows"]["short"]
    parts = []
    for lead in w["leads"]:
        sk = (lead.get("skill") or {}).get("persistence") or {}
        if lead["key"] and sk.get("rmse_skill") is not None:
            ci = (f" [{sk['skill_lower']:+.2f}, {sk['skill_upper']:+.2f}]"
                  if sk.get("skill_lower") is not None and sk.get("skill_upper") is not None else "")
            parts.append(f"+{lead['lead_minutes']} min {sk['rmse_skill']:+.2f}{ci}")
    say(f"   monitor: {w['n_inits']} forecasts verified against the observations that came after them; RMSE skill "
        f"against persistence (95% interval): {'; '.join(parts) or 'not enough yet'}", highlight=False)
    return {"verified_inits": w["n_inits"], "key_leads": parts}


def run_demo(settings: Settings, console: Console, *, fresh: bool = False, seed: int = 42, quick: bool = False,
             serve: bool = False, port: int = 8000) -> dict:
    from forecast.clock import write_replay_clock
    from forecast.monitoring import monitor_hook
    from forecast.worker.replay import replay
    from forecast.worker.service import Worker

    say = console.print
    if fresh:
        _fresh(settings)
    (settings.home / "demo").mkdir(parents=True, exist_ok=True)
    say(f"[bold]forecast demo[/]  (home {settings.home.resolve()})")
    cats = load_catalogs(settings.catalogs)
    say(f"[bold]1. catalogs[/] {len(cats)} valid in {settings.catalogs}: {', '.join(sorted(cats))}")
    live_hours, speed = (QUICK_LIVE_HOURS, QUICK_LIVE_SPEED) if quick else (LIVE_HOURS, LIVE_SPEED)
    live_start = DEMO_START[RADAR] + timedelta(hours=DEMO_HOURS[RADAR] - live_hours)
    summary: dict = {"datasets": {}}
    samples = {}
    for n, dsid in enumerate((RADAR, "surface_obs"), start=2):
        cat = get_catalog(settings.catalogs, dsid)
        say(f"\n[bold]{n}. {dsid}[/]: {cat.title} - the history before the service started")
        sample, manifest = sample_for(settings, dsid, seed, say)
        samples[dsid] = sample
        until = live_start if dsid == RADAR else None
        reports = backfill(settings, dsid, sample, until=until, seed=seed, say=say)
        qc = qc_and_review(settings, dsid, manifest, say)
        info = describe_store(settings, dsid, manifest, say)
        summary["datasets"][dsid] = {"ingests": reports, "qc": qc, "store": info}
    summary["model"] = _quick_model(settings, say)

    say(f"\n[bold]5. the live service[/]: the worker runs each cycle (ingest, QC, forecast due inits within their "
        f"deadline, verify) while the feed's last {live_hours:g} hours arrive at {speed:g}x real time")
    procs: list[subprocess.Popen] = []
    api = _start_api(settings, port, say) if serve else None
    if api is not None:
        procs.append(api)
    stop_tail = threading.Event()
    training = None
    if not quick:
        log = settings.home / "demo" / "training.log"
        log.write_text("")
        env = {**os.environ, "FORECAST_HOME": str(settings.home.resolve()),
               "FORECAST_CATALOGS": str(Path(settings.catalogs).resolve())}
        training = subprocess.Popen([sys.executable, "-m", "forecast.cli.demo_training"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=open(settings.home / "demo" / "training.err", "wb"))
        procs.append(training)
        say(f"   in the background: the full model trains (nice), then its hindcast and the gate (log {log})")
        _tail(log, say, stop_tail)
    counts = {"forecasts": 0, "fallbacks": 0, "skipped": 0, "methods": {}}
    # the service runs on the feed's time from the start (the replay keeps this clock)
    write_replay_clock(settings.home, RADAR, sim0=live_start, speed=speed)
    hook = monitor_hook(settings)  # verification, drift and alerts after each cycle, in the background
    # the alerts are printed below as they are recorded; their log lines would say it twice
    logging.getLogger("forecast.monitoring.alerts").setLevel(logging.ERROR)
    alerts: list[dict] = []
    stop_alerts = threading.Event()
    alert_thread = _alert_printer(settings, say, stop_alerts, alerts)
    worker = Worker(settings, [RADAR], on_cycle=_cycle_printer(say, counts), hooks=[hook])
    wthread = threading.Thread(target=worker.run, name="demo-worker", daemon=True)
    wthread.start()
    after, minutes = QUICK_OUTAGE if quick else OUTAGE
    outage = (live_start + timedelta(minutes=after), live_start + timedelta(minutes=after + minutes))
    window = f"{iso(outage[0])}/{iso(outage[1])}"
    say(f"   $ forecast worker {RADAR}   (worker {worker.id}; the monitor verifies each forecast once observed)",
        highlight=False)
    say(f"   $ forecast replay {RADAR} {samples[RADAR]} --speed {speed:g} --outage {window}", highlight=False)
    say(f"   (something goes wrong: the radar feed goes silent for {minutes} minutes at {iso(outage[0])[11:16]}; "
        "watch the alert)", highlight=False)
    try:
        rep = replay(settings, RADAR, samples[RADAR], speed=speed, seed=seed, start=live_start, outage=outage)
        time.sleep(max(2.0, 600 / speed))  # the last files' cycles (10 feed minutes)
        hook.wait(60.0)  # the last monitoring pass
        stop_alerts.set()
        alert_thread.join(10)
        summary["live"] = {"replay": rep, **counts, "alerts": alerts}
        say(f"\n   the feed delivered {rep['files']} files in {rep['wall_seconds']:.0f} s: "
            + ", ".join(f"{k} {n}" for k, n in sorted(rep["kinds"].items()))
            + f"; {counts['forecasts']} forecasts served ({', '.join(f'{k} {n}' for k, n in counts['methods'].items())}),"
            f" {counts['fallbacks']} by a fallback, {counts['skipped']} inits skipped", highlight=False)
        fired = sorted({a["rule"] for a in alerts if a["event"] == "fired"})
        resolved = sorted({a["rule"] for a in alerts if a["event"] == "resolved"})
        say(f"   alerts: fired {', '.join(fired) or 'none'}; resolved {', '.join(resolved) or 'none'} "
            "(`forecast monitor alerts`, /console/monitor; deliver them with FORECAST_ALERT_WEBHOOK or "
            "FORECAST_SMTP_URL)", highlight=False)
        summary["monitor"] = _monitor_summary(settings, say)
        lat, lon = get_catalog(settings.catalogs, RADAR).grid.latlon()
        cy, cx = lat.shape[0] // 2, lat.shape[1] // 2
        point = f"POINT({lon[cy, cx]:.3f} {lat[cy, cx]:.3f})"
        summary["api_point"] = point
        say(f"\n[bold]6. what to look at[/] (the API{' serves now' if api else ': `make demo` serves it'} at "
            f"http://127.0.0.1:{port}):")
        for url in ("/collections", f"/collections/{RADAR}.forecast/position?coords={point}",
                    f"/collections/{RADAR}.observations/position?coords={point}", "/models", "/ready", "/metrics",
                    "/console/ (sign in with a token: `forecast users add NAME --role operator`)", "/schema"):
            say(f"   http://127.0.0.1:{port}{url}", highlight=False)
        say("   $ forecast worker status   $ forecast monitor skill radar_precip   $ forecast monitor alerts   "
            "$ forecast models list")
        if serve:
            running = ["the worker (on the replay clock, which keeps running)", "the API"]
            if training is not None and training.poll() is None:
                running.append("the full model's training, hindcast and gate (its lines appear above as they come)")
            say("\n[bold]still running[/]: " + "; ".join(running) + ". Ctrl-C stops everything.")
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        say("\nstopping the demo's service")
    finally:
        worker.stop.set()
        wthread.join(30)
        hook.close(10.0)
        stop_alerts.set()
        stop_tail.set()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return summary


def demo(
    fresh: bool = typer.Option(False, "--fresh", help="Start over: remove what the demo made under FORECAST_HOME."),
    seed: int = typer.Option(42, "--seed", help="Seed of the sample observations."),
    quick: bool = typer.Option(False, "--quick", help="Replay half an hour, no API, no background training (a smoke "
                               "test of the chain)."),
    serve: bool = typer.Option(False, "--serve", help="Serve the API during the demo and keep the service running "
                               "afterwards, until Ctrl-C (`make demo` does)."),
    port: int = typer.Option(8000, "--port", help="Port of the API with --serve."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the service end to end on embedded sample data, saying what it does (see `forecast.cli.demo`)."""
    def body():
        st = load_settings()
        console = err if as_json else out
        return run_demo(st, console, fresh=fresh, seed=seed, quick=quick, serve=serve, port=port), 0

    run_command(as_json, body)
