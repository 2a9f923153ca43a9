"""The demo's history: realistic sample observations (radar and surface stations, every fault an
operational feed produces), the part of them the service "had before it started" ingested as a backfill
in the order the feed delivered it, QC with a review decision, the store's summary and an as-of read."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from forecast.catalog import get_catalog
from forecast.ingest import ingest
from forecast.quality import apply_pending_decisions, run_qc
from forecast.settings import Settings
from forecast.stores import dataset_summary, open_observations, store_for
from forecast.timeutil import iso

DEMO_START = {"radar_precip": datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc),
              "surface_obs": datetime(2026, 7, 14, 0, 0, tzinfo=timezone.utc)}
DEMO_HOURS = {"radar_precip": 24.0, "surface_obs": 48.0}
#: the model learns from the first hours; the rest is held back for the hindcast behind the gate
TRAIN_HOURS = 18


def sample_for(settings: Settings, dsid: str, seed: int, say) -> tuple[Path, dict]:
    """The demo's sample folder of a dataset (written once) and its manifest."""
    from forecast.synthetic import generate_sample

    cat = get_catalog(settings.catalogs, dsid)
    start, hours = DEMO_START[dsid], DEMO_HOURS[dsid]
    out = settings.home / "demo" / "samples" / dsid
    say(f"   $ forecast sample {dsid} --start {iso(start)} --hours {hours:g} --out {out} --faults all --seed {seed}")
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
        say("   sample files already there (re-using them; `forecast demo --fresh` starts over)")
    else:
        manifest = generate_sample(cat, start=start, hours=hours, out=out, faults=["all"], seed=seed)
    b = manifest["batches"]
    say(f"   {len(b['main'])} files on time, {len(b['late'])} late, {len(b['duplicates'])} duplicate, "
        f"{len(b['revised'])} revised; planted: {', '.join(sorted({f['kind'] for f in manifest['faults']}))}")
    return out, manifest


def backfill(settings: Settings, dsid: str, sample: Path, *, until: datetime | None, seed: int, say) -> list[dict]:
    """Ingest what the feed delivered before ``until`` (None: all of it), as it delivered it: the files on
    time in one batch, each slot available ``expected_latency`` after its time; the late, duplicate and
    revised files each at its own arrival (`forecast.worker.replay.schedule` is the feed's order)."""
    from forecast.worker.replay import schedule

    cat = get_catalog(settings.catalogs, dsid)
    drops = [d for d in schedule(sample, cat, seed=seed) if until is None or d.at < until]
    store = store_for(settings)
    latency = timedelta(seconds=cat.feed.seconds("expected_latency"))
    batches = [("on time", [d.source for d in drops if d.kind in ("on_time", "corrupt")], None)]
    for d in drops:
        if d.kind in ("late", "duplicate", "revised"):
            batches.append((d.kind, [d.source], d.at))
    reports = []
    for label, files, at in batches:
        if not files:
            continue
        when = f"--latency {int(latency.total_seconds() // 60)}min" if at is None else f"--available-at {iso(at)}"
        rep = ingest(cat, files, store=store, available_at=at, latency=latency if at is None else None,
                     quarantine_dir=settings.quarantine_dir, scheduler=settings.dask_scheduler,
                     workers=settings.workers)
        reports.append(rep.to_json())
        if at is None or rep.committed:
            state = f"commit {rep.snapshot}" if rep.committed else "nothing new, no commit"
            say(f"   $ forecast ingest {dsid} <{len(files)} {label} file(s)> {when}", highlight=False)
            say(f"     {len(rep.written)} slots written ({len(rep.late)} late, {len(rep.revisions)} revised), "
                f"{len(rep.duplicates)} duplicate, {len(rep.rejected)} rejected in {rep.seconds:.1f} s: {state}",
                highlight=False)
        for r in rep.rejected:
            say(f"     [yellow]quarantined[/] {Path(r['file']).name}: {r['reason']}", highlight=False)
    return reports


def qc_and_review(settings: Settings, dsid: str, manifest: dict, say) -> dict:
    """QC over the store, what became of the planted faults, and the duty operator's review decision."""
    from forecast.review import ReviewQueue

    cat = get_catalog(settings.catalogs, dsid)
    store = store_for(settings)
    say(f"   $ forecast qc run {dsid}")
    with ReviewQueue(settings.db_url) as queue:
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
    return qrep.to_json()


def describe_store(settings: Settings, dsid: str, manifest: dict, say) -> dict:
    """The store's summary and an as-of read of the revised slot (as known before its revision and now)."""
    store = store_for(settings)
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
        now = open_observations(dsid, store=store).sel(time=t.rstrip("Z"))
        if int(now[f"{var}_revision"]) > 0:
            before_t = datetime.fromisoformat(t) + timedelta(minutes=30)
            before = open_observations(dsid, store=store, as_of=before_t).sel(time=t.rstrip("Z"))
            say(f"   as-of read of the revised slot {t} ({var}): as known at {iso(before_t)} revision "
                f"{int(before[f'{var}_revision'])} (mean {float(np.nanmean(before[var].values)):.3f}), now revision "
                f"{int(now[f'{var}_revision'])} (mean {float(np.nanmean(now[var].values)):.3f})")
    return info


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
        if np.datetime64(when.rstrip("Z"), "ns") not in ds.indexes["time"]:
            continue  # planted in the part of the feed the live service replays later
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


def trained_on(registry, dataset: str, variable: str, snapshot: str, cfg):
    """The newest model of (dataset, variable) trained on ``snapshot`` with config ``cfg``, or None:
    training again would give the same model, so the demo and the model bench reuse it."""
    same = [r for r in registry.list(dataset=dataset, variable=variable)
            if r.snapshot == snapshot and r.hyperparameters == cfg.to_dict()]
    return same[-1] if same else None


