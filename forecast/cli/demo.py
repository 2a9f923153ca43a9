"""``forecast demo``: the whole chain built so far, end to end, on embedded sample data.

It grows with each capability. Today: catalogs -> realistic sample observations with planted faults
-> ingest in the order an operational feed delivers them (main batch, then late and duplicate files,
then a revision) -> QC and a review decision -> store summary, history and an as-of read that shows the
revision policy -> train the nowcast model (registered as a candidate) -> promote it -> forecasts with
provenance and plausibility marks, and the fallback when the model misses its deadline.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from forecast.catalog import get_catalog, load_catalogs
from forecast.cli.output import JsonOpt, err, load_settings, out, run_command
from forecast.ingest.batch import ingest
from forecast.quality import apply_pending_decisions, run_qc
from forecast.settings import Settings
from forecast.stores import dataset_summary, open_observations, store_for
from forecast.timeutil import iso

DEMO_START = {"radar_precip": datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc),
              "surface_obs": datetime(2026, 7, 14, 0, 0, tzinfo=timezone.utc)}
DEMO_HOURS = {"radar_precip": 24.0, "surface_obs": 48.0}
#: the demo's model config: the defaults, or (--quick) one short epoch for smoke tests
QUICK_MODEL = {"training": {"max_epochs": 1, "samples_per_epoch": 32, "max_val_windows": 4}}
#: the model learns from the first hours; the rest is held back for the hindcast behind the gate
TRAIN_HOURS = 18


def run_demo(settings: Settings, console: Console, *, fresh: bool = False, seed: int = 42, quick: bool = False) -> dict:
    from forecast.review import ReviewQueue
    from forecast.synthetic.generate import generate_sample

    home = settings.home
    demo_dir = home / "demo"
    if fresh:
        shutil.rmtree(demo_dir, ignore_errors=True)
        shutil.rmtree(Path(settings.observation_store), ignore_errors=True)
    store = store_for(settings)
    say = console.print
    say(f"[bold]forecast demo[/]  (home {home.resolve()})")
    cats = load_catalogs(settings.catalogs)
    say(f"[bold]1. catalogs[/] {len(cats)} valid in {settings.catalogs}: {', '.join(sorted(cats))}")
    summary: dict = {"datasets": {}}
    for n, dsid in enumerate(("radar_precip", "surface_obs"), start=2):
        cat = get_catalog(settings.catalogs, dsid)
        start, hours = DEMO_START[dsid], DEMO_HOURS[dsid]
        out = demo_dir / "samples" / dsid
        say(f"\n[bold]{n}. {dsid}[/]: {cat.title}")
        say(f"   $ forecast sample {dsid} --start {iso(start)} --hours {hours:g} --out {out} --faults all --seed {seed}")
        if (out / "manifest.json").exists():
            manifest = json.loads((out / "manifest.json").read_text())
            say("   sample files already there (re-using them; `forecast demo --fresh` starts over)")
        else:
            manifest = generate_sample(cat, start=start, hours=hours, out=out, faults=["all"], seed=seed)
        b = manifest["batches"]
        say(f"   {len(b['main'])} files on time, {len(b['late'])} late, {len(b['duplicates'])} duplicate, "
            f"{len(b['revised'])} revised; planted: {', '.join(sorted({f['kind'] for f in manifest['faults']}))}")
        end = start + timedelta(hours=hours)
        # the main batch is a backfill of the live feed: each file available at its own time
        batches = [
            ("main", [out / p for p in b["main"]], None),
            ("late + duplicates", [out / p for p in b["late"] + b["duplicates"]], end + timedelta(minutes=40)),
            ("revised", [out / p for p in b["revised"]], end + timedelta(hours=2)),
        ]
        reports = []
        for label, files, at in batches:
            if not files:
                continue
            when = "--latency 0s" if at is None else f"--available-at {iso(at)}"
            say(f"   $ forecast ingest {dsid} <{len(files)} {label} files> {when}")
            rep = ingest(cat, files, store=store, available_at=at, latency=timedelta(0) if at is None else None,
                         quarantine_dir=settings.quarantine_dir,
                         scheduler=settings.dask_scheduler, workers=settings.workers)
            reports.append(rep.to_json())
            state = f"commit {rep.snapshot}" if rep.committed else "nothing new, no commit"
            say(f"     {len(rep.written)} slots written ({len(rep.late)} late, {len(rep.revisions)} revised), "
                f"{len(rep.duplicates)} duplicate, {len(rep.rejected)} rejected in {rep.seconds:.1f} s: {state}")
            for r in rep.rejected:
                say(f"     [yellow]quarantined[/] {Path(r['file']).name}: {r['reason']}", highlight=False)
        say(f"   $ forecast qc run {dsid}")
        settings.home.mkdir(parents=True, exist_ok=True)
        queue = ReviewQueue(settings.db_url)
        qrep = run_qc(cat, store=store, queue=queue)
        if qrep.committed:
            say(f"     {qrep.slots_checked} slots checked in {qrep.seconds:.1f} s, commit {qrep.snapshot}")
            for vid, c in qrep.counts.items():
                say(f"     {vid}: " + ", ".join(f"{k} {v}" for k, v in c.items() if v), highlight=False)
            say(f"     review queue: {qrep.events_added} new items ({qrep.events_existing} already queued)")
        else:
            say("     nothing new to check")
        _say_faults(say, store, dsid, manifest)
        _review(say, queue, cat, store)
        queue.close()
        info = dataset_summary(store, dsid)
        say(f"   $ forecast store show {dsid}")
        say(f"     {info['first']} .. {info['last']}: {info['slots_filled']} slots filled, "
            f"{info['slots_missing']} missing; "
            + "; ".join(f"{v}: {d['revised_slots']} revised, {d['archived_revisions']} old revisions kept"
                        for v, d in info["variables"].items()))
        rev = [f for f in manifest["faults"] if f["kind"] == "revised"]
        if rev:
            t = rev[0]["times"][0]
            var = rev[0]["variable"]
            before = open_observations(dsid, store=store, as_of=end + timedelta(hours=1)).sel(time=t.rstrip("Z"))
            after = open_observations(dsid, store=store).sel(time=t.rstrip("Z"))
            say(f"   as-of read of the revised slot {t} ({var}): as known at {iso(end + timedelta(hours=1))} "
                f"revision {int(before[f'{var}_revision'])} (mean {float(np.nanmean(before[var].values)):.3f}), "
                f"now revision {int(after[f'{var}_revision'])} (mean {float(np.nanmean(after[var].values)):.3f})")
        summary["datasets"][dsid] = {"ingests": reports, "qc": qrep.to_json(), "store": info}
    log = store.log()
    say(f"\n[bold]history[/]: {len(log)} commits in {store.location}; newest: {log[0]['message']}")
    say("   $ forecast store log radar_precip")
    summary["model"] = _model_steps(say, settings, quick=quick)
    lat, lon = get_catalog(settings.catalogs, "radar_precip").grid.latlon()
    cy, cx = lat.shape[0] // 2, lat.shape[1] // 2
    point = f"POINT({lon[cy, cx]:.3f} {lat[cy, cx]:.3f})"
    say("\n[bold]HTTP API[/] (`make demo` serves it next at http://127.0.0.1:8000; or "
        "`.venv/bin/uvicorn api.app:app --port 8000`):")
    for url in ("/collections", f"/collections/radar_precip.forecast/position?coords={point}",
                f"/collections/radar_precip.observations/position?coords={point}", "/models",
                "/schema", "/ready", "/metrics"):
        say(f"   http://127.0.0.1:8000{url}", highlight=False)
    say("   review queue (a token: `forecast users add NAME --role operator`): "
        "curl -H 'Authorization: Bearer TOKEN' http://127.0.0.1:8000/review/items", highlight=False)
    summary["api_point"] = point
    return summary


def _say_faults(say, store, dsid: str, manifest: dict) -> None:
    """What QC made of each planted fault: the flags at the planted cells (values are untouched)."""
    from qc.flags import QCFlag

    ds = open_observations(dsid, store=store)
    seen: dict[str, list[str]] = {}
    for f in manifest["faults"]:
        var = f.get("variable")
        if not var or f"{var}_qc" not in ds or f["kind"] not in ("spike", "impossible", "stuck", "record_extreme"):
            continue
        when = f["times"][-1]
        cells = f.get("cells_by_time", {}).get(when) or f.get("cells") or [[y, x] for y in range(f["bbox"][0], f["bbox"][1] + 1)
                                   for x in range(f["bbox"][2], f["bbox"][3] + 1)]
        q = ds[f"{var}_qc"].sel(time=np.datetime64(when.rstrip("Z"))).values
        flags = sorted({QCFlag(int(q[y, x])).name for y, x in cells})
        seen.setdefault(f["kind"], []).extend(flags)
    if seen:
        say("     planted faults as flagged: " + "; ".join(
            f"{k} -> {'/'.join(sorted(set(v)))}" for k, v in seen.items()), highlight=False)


def _review(say, queue, cat, store) -> None:
    """The duty operator accepts the most hazardous open item when it is a real extreme (the
    planted record-breaking storm / heat), and the decision lands in the flags."""
    items = queue.list(dataset=cat.id, state="open")
    top = next((i for i in items if "climatology" in i.test_names and i.n_cells > 4), None)
    if top is None:
        return
    say(f"   $ forecast qc queue {cat.id}   ->  {len(items)} open items; most hazardous: item {top.id}, "
        f"{top.n_cells} cells over {top.n_slots} slots, peak {top.peak_value:.1f} beyond the record {top.record:.1f}")
    why = "confirmed by the radar loop and rain gauges" if "precip" in top.variable else "confirmed by nearby stations"
    say(f"   $ forecast qc decide {top.id} accept --by duty-forecaster --comment '{why}'")
    queue.decide(top.id, "accept", by="duty-forecaster", comment=why)
    sid = apply_pending_decisions(queue, cat, store=store, by="duty-forecaster")
    say(f"     accepted: its {top.n_cells} cells are now GOOD with the REVIEWED_ACCEPTED bit (commit {sid}); "
        "the values are unchanged")


def _model_steps(say, settings: Settings, *, quick: bool) -> dict:
    """Train on the first 18 hours (or reuse a model trained on this very snapshot), hindcast the rest
    against the baselines, pass (or fail) the promotion gate, then forecast, with one deadline fallback."""
    import yaml

    from forecast.evaluation.hindcast import run_hindcast
    from forecast.model.config import parse_model_config
    from forecast.nowcast.predict import predict
    from forecast.registry.promotion import PromotionRefused, promote
    from forecast.registry.store import ModelRegistry

    dsid, var = "radar_precip", "precipitation_rate"
    store = store_for(settings)
    snapshot = store.head()
    registry = ModelRegistry(settings.db_url, settings.models_dir)
    cfg = parse_model_config(QUICK_MODEL if quick else {})
    cfg_path = settings.home / "demo" / ("model-quick.yaml" if quick else "model.yaml")
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    start, hours = DEMO_START[dsid], DEMO_HOURS[dsid]
    end = start + timedelta(hours=hours)
    step = timedelta(minutes=5)
    train_end = start + timedelta(hours=TRAIN_HOURS) - step
    say(f"\n[bold]model[/]: the nowcast U-Net ({cfg.inputs} inputs -> {cfg.leads} leads of 5 min), trained on the "
        f"first {TRAIN_HOURS} hours; the last {hours - TRAIN_HOURS:g} hours are kept for the hindcast")
    say(f"   $ forecast train {dsid} --variable {var} --config {cfg_path} --end {iso(train_end)}")
    rec = trained_on(registry, dsid, var, snapshot, cfg)
    if rec is not None:
        say(f"     model {rec.version} was already trained on this snapshot with this config: reusing it")
        doc = rec.to_json()
    else:
        from forecast.registry.training import train_model

        doc = train_model(settings, dsid, var, config_path=cfg_path, end=train_end, by="demo")
        tr = doc["training"]
        say(f"     registered [bold]{doc['version']}[/] as candidate: {tr['epochs']} epochs in {tr['seconds']:.0f} s "
            f"({tr['samples_per_second']} samples/s), {tr['train_windows']} training / {tr['val_windows']} "
            f"validation windows split by time with a {tr['gap_slots']}-slot gap")
        rec = registry.get(doc["version"])
    leads = doc["metrics"]["leads"]
    picks = [r for r in leads if r["lead_minutes"] in (15, 30, 60)]
    say("     validation RMSE (mm/h) model vs persistence: " + "; ".join(
        f"+{r['lead_minutes']} min {r['rmse']:.3f} vs {r['rmse_persistence']:.3f}" for r in picks)
        + f"; beats persistence at every lead: {doc['metrics']['beats_persistence_at_every_lead']}", highlight=False)
    say(f"     recorded: snapshot {doc['snapshot']}, catalog {doc['catalog_hash'][:12]}, QC config "
        f"{doc['qc_config_hash'][:12]}, git {doc['git_commit'] or 'n/a'}, torch {doc['versions'].get('torch')}, "
        f"checkpoint sha256 {doc['checkpoint_sha256'][:12]}", highlight=False)

    # hindcast over the held-back hours: inputs as known at each init, verified on the latest revision
    hc_start = start + timedelta(hours=TRAIN_HOURS) + (cfg.inputs - 1) * step
    hc_end = end - step - cfg.leads * step
    every = "30min" if quick else "10min"
    say(f"   $ forecast hindcast {dsid} --model {rec.version} --start {iso(hc_start)} --end {iso(hc_end)} --every {every}")
    hc = run_hindcast(settings, dsid, model=rec.version, start=hc_start, end=hc_end, every=every,
                      n_boot=200 if quick else 1000)
    m = hc["summary"]["methods"]
    idx = [cfg.leads // 2 - 1, cfg.leads - 1]
    say(f"     {hc['inits']['verified']} inits in {hc['seconds']:.0f} s; RMSE at +{(idx[0] + 1) * 5} / +{(idx[1] + 1) * 5} min: "
        + "; ".join(f"{name} {m[name]['continuous']['rmse'][idx[0]]:.3f} / {m[name]['continuous']['rmse'][idx[1]]:.3f}"
                    for name in m), highlight=False)
    say(f"     {hc['verdict']}", highlight=False)
    say(f"     report: {hc['report']['html']}", highlight=False)
    out: dict = {"version": rec.version, "hindcast": {"out": hc["out"], "verdict": hc["verdict"],
                                                     "inits": hc["inits"]}, "forecasts": []}
    rec = registry.get(rec.version)
    if rec.stage != "production":
        report_path = Path(hc["report"]["json"])
        say(f"   $ forecast models promote {rec.version} --by duty-forecaster --reason 'beats persistence and S-PROG'")
        try:
            done = promote(settings, registry, rec.version, by="duty-forecaster",
                           reason="hindcast beats persistence and S-PROG", report=report_path)
            say(f"     the gate passed: {rec.version} is the production model (report recorded)")
        except PromotionRefused as e:
            say(f"     [yellow]the gate refused[/]: {e.decision.message()}", highlight=False)
            why = "demo: a quick model, promoted to show forecasting" if quick else "demo: promoted despite the gate"
            say(f"   $ forecast models promote {rec.version} --by duty-forecaster --override --reason '{why}'")
            done = promote(settings, registry, rec.version, by="duty-forecaster", reason=why, override=True,
                           report=report_path)
            say("     promoted as an override, recorded with the refused report")
        out["gate"] = done.decision.to_json()
    cat = get_catalog(settings.catalogs, dsid)
    inits = [end - step * (1 + 12 * i) for i in (2, 1, 0)]
    for init in inits:
        say(f"   $ forecast predict {dsid} --init {iso(init)}")
        rep = predict(settings, dsid, init, registry=registry)
        _say_forecast(say, rep, cat)
        out["forecasts"].append({k: rep[k] for k in ("init_time", "method", "fallback", "snapshot", "written")})
    init = inits[-1] - step
    say(f"   $ forecast predict {dsid} --init {iso(init)} --deadline 0   (the model cannot make it)")
    rep = predict(settings, dsid, init, registry=registry, deadline=0.0)
    _say_forecast(say, rep, cat)
    out["fallback_demo"] = {k: rep[k] for k in ("init_time", "method", "fallback")}
    registry.close()
    return out


def trained_on(registry, dataset: str, variable: str, snapshot: str, cfg):
    """The newest model of (dataset, variable) trained on ``snapshot`` with config ``cfg``, or None:
    training again would give the same model, so the demo and the model bench reuse it."""
    same = [r for r in registry.list(dataset=dataset, variable=variable)
            if r.snapshot == snapshot and r.hyperparameters == cfg.to_dict()]
    return same[-1] if same else None


def _say_forecast(say, rep: dict, cat) -> None:
    prov = rep["provenance"]
    q = prov["qc"]["input_quality"]
    state = "new commit" if rep["written"] else "already stored, unchanged"
    fb = rep["fallback"]
    say(f"     by {rep['method']}" + (f" [yellow](fallback: {fb['reason']})[/]" if fb else
                                     f" (model {prov['model']['version']}, {prov['model']['stage']})")
        + f"; forecast store {rep['snapshot']} ({state})", highlight=False)
    revs = [s["revision"] for s in prov["observations"]["input_slots"]]
    say(f"     inputs: {len(revs)} slots, revisions {revs} (-1: not yet arrived), GOOD {q['GOOD']:.1%} "
        f"NOT_EVALUATED {q['NOT_EVALUATED']:.1%} SUSPECT {q['SUSPECT']:.2%} FAIL {q['FAIL']:.2%} "
        f"MISSING {q['MISSING']:.1%}; values: "
        + ", ".join(f"{k} {v}" for k, v in rep["annotations"].items() if v), highlight=False)


def demo(
    fresh: bool = typer.Option(False, "--fresh", help="Start over: remove the demo's samples and the store."),
    seed: int = typer.Option(42, "--seed", help="Seed of the sample observations."),
    quick: bool = typer.Option(False, "--quick", help="One short training epoch (a smoke test of the chain)."),
    as_json: bool = JsonOpt,
) -> None:
    """Run everything built so far end to end on embedded sample data, saying what it does."""
    def body():
        st = load_settings()
        console = err if as_json else out
        return run_demo(st, console, fresh=fresh, seed=seed, quick=quick), 0

    run_command(as_json, body)
