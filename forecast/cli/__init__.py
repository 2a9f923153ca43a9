"""The ``forecast`` command line (typer): the one user surface for operators and developers.

Every reporting command takes ``--json`` and then prints exactly one JSON document on stdout. Exit
codes: 0 success, 2 bad input (partly or wholly rejected), 1 internal failure.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from forecast.errors import BadInputError, CatalogError, ForecastError, StoreBusyError
from forecast.settings import Settings

app = typer.Typer(help="Operational forecasting service with plausibility guards.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
catalog_app = typer.Typer(help="Dataset catalogs: validate, export the JSON Schema.", no_args_is_help=True)
store_app = typer.Typer(help="The versioned observation store: history and contents.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
qc_app = typer.Typer(help="Quality control: flag values (never change them) and review suspects.",
                     no_args_is_help=True)
app.add_typer(store_app, name="store")
app.add_typer(qc_app, name="qc")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("forecast")

JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")


class Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def _settings() -> Settings:
    return Settings()


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _run(as_json: bool, body: Callable[[], tuple[Any, int]]) -> None:
    """Run a command body returning (json document, exit code); map errors to one sentence + code."""
    try:
        doc, code = body()
    except CatalogError as e:
        _fail(as_json, 2, e.problems[0] if len(e.problems) == 1 else str(e), problems=e.problems)
    except (StoreBusyError, BadInputError) as e:  # a busy store: the user retries later
        _fail(as_json, 2, str(e))
    except ForecastError as e:
        _fail(as_json, 1, str(e))
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail(as_json, 1, "interrupted")
    except Exception as e:  # noqa: BLE001 - last line of defence: one sentence, not a traceback
        if os.environ.get("FORECAST_DEBUG"):
            raise
        log.debug("internal failure", exc_info=True)
        _fail(as_json, 1, f"internal failure: {type(e).__name__}: {e} (set FORECAST_DEBUG=1 for the traceback)")
    else:
        if as_json:
            _emit_json(doc)
        raise typer.Exit(code)


def _fail(as_json: bool, code: int, message: str, **extra: Any) -> None:
    if as_json:
        _emit_json({"error": message, "exit_code": code, **extra})
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def _time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    from forecast.timeutil import parse_time

    try:
        return parse_time(value)
    except ValueError as e:
        raise BadInputError(f"{what}: {e}") from None


def _duration(value: str | None, what: str):
    """A duration such as 2min, 90s, 1h (pandas spelling) as a timedelta, or a one-sentence error."""
    if value is None:
        return None
    from forecast.timeutil import parse_duration

    try:
        return parse_duration(value)
    except ValueError as e:
        raise BadInputError(f"{what}: {e}") from None


def _progress(description: str, enabled: bool):
    """A rich progress bar on stderr (never on stdout, which --json keeps clean)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if not enabled or not err.is_terminal:
        class _Null:
            def __enter__(self):
                return lambda done, total: None

            def __exit__(self, *a):
                return False

        return _Null()

    class _Bar:
        def __enter__(self):
            self.p = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              console=err, transient=True)
            self.p.__enter__()
            self.task = self.p.add_task(description, total=None)
            return lambda done, total: self.p.update(self.task, completed=done, total=total)

        def __exit__(self, *a):
            return self.p.__exit__(*a)

    return _Bar()


# -- catalog ---------------------------------------------------------------------------------------

@catalog_app.command("validate")
def catalog_validate(
    paths: Optional[List[Path]] = typer.Argument(None, help="Catalog files or folders (default: FORECAST_CATALOGS)."),
    as_json: bool = JsonOpt,
) -> None:
    """Validate catalogs strictly; every problem is reported with its file and path."""
    from forecast.catalog.models import catalog_files, load_catalog

    def body():
        st = _settings()
        targets: list[Path] = []
        for p in paths or [st.catalogs]:
            targets.extend(catalog_files(p) if p.is_dir() else [p])
        if not targets:
            raise BadInputError(f"no catalog files (*.yaml) found in {', '.join(map(str, paths or [st.catalogs]))}")
        results, problems = [], []
        for t in targets:
            try:
                c = load_catalog(t)
                results.append({"file": str(t), "id": c.id, "valid": True, "hash": c.hash, "problems": []})
            except CatalogError as e:
                results.append({"file": str(t), "valid": False, "problems": e.problems})
                problems.extend(e.problems)
        if not as_json:
            for r in results:
                if r["valid"]:
                    out.print(f"[green]ok[/]    {r['file']}  ({r['id']}, hash {r['hash'][:12]})", highlight=False)
                else:
                    out.print(f"[red]FAIL[/]  {r['file']}", highlight=False)
                    for p in r["problems"]:
                        out.print(f"      {p}", highlight=False, soft_wrap=True)
        return {"valid": not problems, "catalogs": results, "problems": problems}, (2 if problems else 0)

    _run(as_json, body)


@catalog_app.command("schema")
def catalog_schema(
    out_path: Path = typer.Option(Path("catalogs/schema.json"), "--out", help="Where to write the JSON Schema."),
) -> None:
    """Export the catalogs' JSON Schema (for editors) to catalogs/schema.json."""
    from forecast.catalog.models import json_schema

    def body():
        out_path.write_text(json.dumps(json_schema(), indent=2) + "\n")
        out.print(f"wrote {out_path}")
        return None, 0

    _run(False, body)


# -- sample --------------------------------------------------------------------------------------------

@app.command("sample")
def sample(
    dataset: str = typer.Argument(..., help="Dataset id from the catalogs (e.g. radar_precip)."),
    start: str = typer.Option(..., "--start", help="First slot, ISO-8601 UTC (e.g. 2026-07-15T12:00Z)."),
    hours: float = typer.Option(..., "--hours", help="Length of the period in hours."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the NetCDF files and manifest.json."),
    faults: str = typer.Option("", "--faults", help="Comma-separated faults to plant, or 'all'."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same data)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write realistic synthetic observations, one CF NetCDF file per slot, optionally with faults."""
    from forecast.catalog.models import get_catalog
    from forecast.synthetic.generate import generate_sample

    def body():
        st = _settings()
        cat = get_catalog(st.catalogs, dataset)
        t0 = _time(start, "--start")
        flist = [f.strip() for f in faults.split(",") if f.strip()]
        with _progress(f"sample {dataset}", not as_json) as tick:
            manifest = generate_sample(cat, start=t0, hours=hours, out=out_dir, faults=flist, seed=seed, progress=tick)
        if not as_json:
            b = manifest.get("batches", {})
            out.print(f"wrote {len(manifest.get('files', []))} files for {dataset} into {out_dir} "
                      f"({', '.join(f'{k}: {len(v)}' for k, v in b.items())})")
            if manifest.get("faults"):
                kinds = sorted({f['kind'] for f in manifest['faults']})
                out.print(f"planted faults: {', '.join(kinds)} (see {out_dir / 'manifest.json'})")
        return manifest, 0

    _run(as_json, body)


# -- ingest ---------------------------------------------------------------------------------------------

@app.command("ingest")
def ingest_cmd(
    dataset: str = typer.Argument(..., help="Dataset id from the catalogs."),
    paths: List[Path] = typer.Argument(..., help="NetCDF files, or folders of *.nc files."),
    available_at: Optional[str] = typer.Option(
        None, "--available-at", help="When these data became available (for backfills); default: now."),
    latency: Optional[str] = typer.Option(
        None, "--latency", help="Backfill of a live feed: each slot became available this long after its time "
        "(e.g. 2min); instead of --available-at."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="dask.distributed scheduler address (default: FORECAST_DASK_SCHEDULER or local)."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest a batch of files: one atomic commit; duplicates, late files and revisions handled."""
    from forecast.catalog.models import get_catalog
    from forecast.ingest.batch import ingest
    from forecast.stores import store_for

    def body():
        st = _settings()
        cat = get_catalog(st.catalogs, dataset)
        avail = _time(available_at, "--available-at")
        lag = _duration(latency, "--latency")
        if avail is not None and lag is not None:
            raise BadInputError("give either --available-at or --latency, not both")
        with _progress(f"ingest {dataset}", not as_json) as tick:
            rep = ingest(cat, paths, store=store_for(st), available_at=avail, latency=lag,
                         quarantine_dir=st.quarantine_dir,
                         scheduler=scheduler or st.dask_scheduler, workers=st.workers, progress=tick)
        doc = rep.to_json()
        if not as_json:
            _print_ingest(doc)
        return doc, (2 if rep.rejected else 0)

    _run(as_json, body)


def _print_ingest(doc: dict) -> None:
    state = f"commit {doc['snapshot']}" if doc["committed"] else "no data commit"
    out.print(f"[bold]{doc['dataset']}[/]: {doc['files']} files in {doc['seconds']:.1f} s, {state}", highlight=False)
    for key in ("written", "late", "revisions", "duplicates"):
        vals = doc[key]
        if vals:
            shown = ", ".join(vals[:4]) + (f", ... ({len(vals)} in all)" if len(vals) > 4 else "")
            out.print(f"  {key:<10} {len(vals):>5}  {shown}", highlight=False)
        else:
            out.print(f"  {key:<10} {0:>5}", highlight=False)
    for r in doc["rejected"]:
        out.print(f"  [red]rejected[/]  {r['file']}: {r['reason']}", highlight=False, soft_wrap=True)
    if doc["quarantine"]:
        out.print(f"  quarantined copies in {Path(doc['quarantine'][0]).parent}", highlight=False)


# -- store ----------------------------------------------------------------------------------------------

@store_app.command("log")
def store_log(
    dataset: str = typer.Argument(..., help="Dataset id."),
    limit: int = typer.Option(50, "--limit", help="At most this many commits, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """The store's commits touching a dataset: time, message, files."""
    from forecast.stores import store_for

    def body():
        st = _settings()
        store = store_for(st)
        if not store.exists():
            raise BadInputError(f"the observation store {store.location} does not exist yet; ingest some files first")
        entries = store.log(dataset, limit=limit)
        if not as_json:
            t = Table(title=f"commits touching {dataset}")
            for c in ("snapshot", "time", "message", "files"):
                t.add_column(c)
            for e in entries:
                files = ", ".join(e["files"][:3]) + (" ..." if len(e["files"]) > 3 else "")
                t.add_row(e["snapshot"], e["time"], e["message"], files)
            out.print(t)
        return {"dataset": dataset, "commits": entries}, 0

    _run(as_json, body)


@store_app.command("show")
def store_show(
    dataset: str = typer.Argument(..., help="Dataset id."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Describe the data as known at this time."),
    as_json: bool = JsonOpt,
) -> None:
    """Time range, slots filled and missing, revisions and size of a dataset."""
    from forecast.stores import dataset_summary, store_for

    def body():
        st = _settings()
        store = store_for(st)
        if not store.exists():
            raise BadInputError(f"the observation store {store.location} does not exist yet; ingest some files first")
        doc = dataset_summary(store, dataset, as_of=_time(as_of, "--as-of"))
        if not as_json:
            out.print(f"[bold]{dataset}[/] ({doc['as_of']}) snapshot {doc['snapshot']}", highlight=False)
            out.print(f"  range   {doc['first']} .. {doc['last']} every {doc['time_step']}", highlight=False)
            out.print(f"  slots   {doc['slots_filled']} filled, {doc['slots_missing']} missing "
                      f"(axis pre-sized to {doc['capacity']})", highlight=False)
            for v, d in doc["variables"].items():
                out.print(f"  {v}: {d['slots_filled']} slots, {d['revised_slots']} revised, "
                          f"{d['archived_revisions']} superseded revisions kept", highlight=False)
            if doc["store_bytes"] is not None:
                out.print(f"  size    {doc['store_bytes'] / 1e6:.1f} MB (whole repository)", highlight=False)
        return doc, 0

    _run(as_json, body)


# -- qc ------------------------------------------------------------------------------------------------------

@qc_app.command("run")
def qc_run(
    dataset: str = typer.Argument(..., help="Dataset id."),
    since: Optional[str] = typer.Option(None, "--since", help="Also re-check every slot from this time on."),
    as_json: bool = JsonOpt,
) -> None:
    """Flag new and revised slots (with the history temporal checks need); one commit of flags; then write
    review decisions taken since (e.g. through the API) into the flags."""
    from forecast.catalog.models import get_catalog
    from forecast.quality import apply_pending_decisions, run_qc
    from forecast.stores import store_for

    def body():
        st = _settings()
        cat = get_catalog(st.catalogs, dataset)
        store = store_for(st)
        with _progress(f"qc {dataset}", not as_json) as tick, _queue(st) as queue:
            rep = run_qc(cat, store=store, since=_time(since, "--since"), progress=tick, queue=queue)
            decisions = apply_pending_decisions(queue, cat, store=store, by="qc-run")
        doc = rep.to_json()
        doc["decisions_snapshot"] = decisions
        if decisions and not as_json:
            out.print(f"[bold]{dataset}[/]: review decisions written into the flags, commit {decisions}",
                      highlight=False)
        if not as_json:
            if not rep.committed:
                out.print(f"[bold]{dataset}[/]: nothing new to check (config {rep.qc_config_hash[:12]})")
            else:
                out.print(f"[bold]{dataset}[/]: {rep.slots_checked} slots checked in {rep.seconds:.1f} s, "
                          f"commit {rep.snapshot} (config {rep.qc_config_hash[:12]})", highlight=False)
                for vid, c in rep.counts.items():
                    shown = ", ".join(f"{k} {v}" for k, v in c.items() if v)
                    out.print(f"  {vid}: {shown}", highlight=False)
                out.print(f"  review queue: {rep.events_added} new items, {rep.events_existing} already queued")
                if rep.reviews_kept or rep.reviews_dropped:
                    out.print(f"  human decisions kept: {rep.reviews_kept} cells; dropped because the value "
                              f"changed: {rep.reviews_dropped}")
        return doc, 0

    _run(as_json, body)


def _queue(st: Settings):
    from forecast.review import ReviewQueue

    st.home.mkdir(parents=True, exist_ok=True)
    return ReviewQueue(st.db_url)


def _item_doc(item) -> dict:
    from dataclasses import asdict

    doc = asdict(item)
    doc.pop("cells", None)
    for d in doc.get("decisions", []) or []:
        d.pop("cells", None)
    from forecast.serialize import jsonable

    return jsonable(doc)


@qc_app.command("queue")
def qc_queue(
    dataset: str = typer.Argument(..., help="Dataset id."),
    state: Optional[str] = typer.Option(None, "--state", help="open, pending (awaiting a second operator) or decided."),
    as_json: bool = JsonOpt,
) -> None:
    """Review items of a dataset, most hazardous first."""

    def body():
        st = _settings()
        if state not in (None, "open", "pending", "decided"):
            raise BadInputError(f"--state must be open, pending or decided, not {state!r}")
        with _queue(st) as queue:
            items = queue.list(dataset=dataset, state=state)
        if not as_json:
            t = Table(title=f"review queue: {dataset}" + (f" ({state})" if state else ""))
            for c in ("item", "state", "variable", "time span", "cells", "peak", "record", "tests"):
                t.add_column(c)
            for i in items:
                t.add_row(str(i.id), i.state, i.variable, f"{i.t_first:%Y-%m-%d %H:%M}..{i.t_last:%H:%M}",
                          str(i.n_cells), f"{i.peak_value:.1f}" if i.peak_value is not None else "",
                          f"{i.record:.1f}" if i.record is not None else "", ",".join(i.test_names))
            out.print(t)
        return {"dataset": dataset, "state": state, "items": [_item_doc(i) for i in items]}, 0

    _run(as_json, body)


@qc_app.command("show")
def qc_show(item: int = typer.Argument(..., help="Item id."), as_json: bool = JsonOpt) -> None:
    """One review item with its cells' summary, decisions and audit trail."""
    from forecast.review import ItemNotFound

    def body():
        st = _settings()
        with _queue(st) as queue:
            try:
                detail = queue.get(item)
            except ItemNotFound:
                raise BadInputError(f"review item {item} does not exist") from None
        doc = _item_doc(detail)
        if not as_json:
            out.print(f"[bold]item {detail.id}[/] {detail.state}: {detail.dataset}.{detail.variable} "
                      f"{detail.t_first:%Y-%m-%dT%H:%MZ}..{detail.t_last:%H:%MZ}, {detail.n_cells} cells, "
                      f"peak {detail.peak_value} (record {detail.record}), tests {', '.join(detail.test_names)}",
                      highlight=False)
            for d in detail.decisions:
                out.print(f"  decision {d.id}: {d.action} by {d.by} at {d.at:%Y-%m-%dT%H:%MZ} ({d.status}): {d.comment}",
                          highlight=False)
        return doc, 0

    _run(as_json, body)


@qc_app.command("decide")
def qc_decide(
    item: int = typer.Argument(..., help="Item id."),
    action: str = typer.Argument(..., help="accept (a real extreme) or reject (a fault)."),
    by: str = typer.Option(..., "--by", help="The deciding operator."),
    comment: str = typer.Option(..., "--comment", help="Why (required)."),
    cells: Optional[List[str]] = typer.Option(
        None, "--cell", help="Decide only these cells: TIME,IY,IX (repeatable); default: the whole item."),
    as_json: bool = JsonOpt,
) -> None:
    """Decide a review item; final decisions are written into the store's flags at once."""
    from forecast.catalog.models import get_catalog
    from forecast.quality import apply_pending_decisions
    from forecast.review import (
        FourEyesError,
        InvalidRequest,
        ItemNotFound,
        ReviewConflict,
    )
    from forecast.stores import store_for

    def body():
        st = _settings()
        if action not in ("accept", "reject"):
            raise BadInputError(f"action must be accept or reject, not {action!r}")
        selection = None
        if cells:
            import numpy as np

            rows = []
            for c in cells:
                parts = c.split(",")
                if len(parts) != 3:
                    raise BadInputError(f"--cell {c!r}: expected TIME,IY,IX like 2026-07-15T14:35Z,120,33")
                t = _time(parts[0], f"--cell {c!r}")
                try:
                    rows.append([int(t.timestamp()), int(parts[1]), int(parts[2])])
                except ValueError:
                    raise BadInputError(f"--cell {c!r}: IY and IX must be integers") from None
            selection = np.array(rows, dtype="int64")
        with _queue(st) as queue:
            try:
                dec = queue.decide(item, action, by=by, comment=comment, cells=selection)
            except ItemNotFound:
                raise BadInputError(f"review item {item} does not exist") from None
            except (ReviewConflict, FourEyesError, InvalidRequest) as e:
                raise BadInputError(str(e)) from None
            detail = queue.get(item)
            sid = apply_pending_decisions(queue, get_catalog(st.catalogs, detail.dataset), store=store_for(st), by=by)
        doc = {"item": item, "decision": dec.id, "status": dec.status, "outcome": dec.outcome,
               "item_state": dec.item_state, "flags_snapshot": sid}
        if not as_json:
            what = {"awaiting_second": "recorded; a second operator must confirm the reject (four eyes)",
                    "final": f"final ({dec.outcome}); flags written in commit {sid}"}.get(dec.status, dec.status)
            out.print(f"decision {dec.id} on item {item}: {what}", highlight=False)
        return doc, 0

    _run(as_json, body)


# -- model: train, predict -----------------------------------------------------------------------------

@app.command("train")
def train_cmd(
    dataset: str = typer.Argument(..., help="Dataset id (a catalog)."),
    variable: str = typer.Option(..., "--variable", help="The variable to forecast, e.g. precipitation_rate."),
    config: Optional[Path] = typer.Option(None, "--config", help="Model config YAML (default: built-in)."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Override training.max_epochs."),
    start: Optional[str] = typer.Option(None, "--start", help="First slot of the training period (default: first)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last slot of the training period (default: last)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who trains (default: the login name)."),
    as_json: bool = JsonOpt,
) -> None:
    """Train the nowcast model on the store's current snapshot and register it as a candidate."""

    def body():
        from forecast.registry.training import train_model

        st = _settings()
        doc = train_model(st, dataset, variable, config_path=config, max_epochs=max_epochs,
                          start=_time(start, "--start"), end=_time(end, "--end"), progress=not as_json and err.is_terminal,
                          by=by)
        if not as_json:
            _print_train(doc)
        return doc, 0

    _run(as_json, body)


def _print_train(doc: dict) -> None:
    tr = doc["training"]
    out.print(f"registered model [bold]{doc['version']}[/] ({doc['dataset']}/{doc['variable']}) as {doc['stage']}: "
              f"{tr['epochs']} epochs in {tr['seconds']:.0f} s ({tr['samples_per_second']} samples/s on {tr['device']}), "
              f"snapshot {doc['snapshot']}, checkpoint sha256 {doc['checkpoint_sha256'][:16]}...", highlight=False)
    table = Table("lead", "RMSE model", "RMSE persistence", "skill", title="validation (held-out period)")
    for r in doc["metrics"]["leads"]:
        skill = r["skill_vs_persistence"]
        table.add_row(f"+{r['lead_minutes']} min", f"{r['rmse']:.3f}", f"{r['rmse_persistence']:.3f}",
                      "-" if skill is None else f"{skill:+.1%}")
    out.print(table)


@app.command("predict")
def predict_cmd(
    dataset: str = typer.Argument(..., help="Dataset id (a catalog)."),
    init: str = typer.Option(..., "--init", help="Init time (ISO 8601, UTC), on the dataset's time axis."),
    model: Optional[str] = typer.Option(None, "--model", help="Model version (default: the production model)."),
    variable: Optional[str] = typer.Option(None, "--variable", help="Variable (default: the model's, or the only one)."),
    deadline: Optional[float] = typer.Option(None, "--deadline", help="Seconds the model may take before the fallback."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Read observations as known at this time (default: the init time)."),
    as_json: bool = JsonOpt,
) -> None:
    """Forecast from observations as known at the init time, with fallback, provenance and plausibility marks."""

    def body():
        from forecast.nowcast.predict import predict

        if deadline is not None and deadline < 0:
            raise BadInputError(f"--deadline must be >= 0 seconds, got {deadline}")
        st = _settings()
        doc = predict(st, dataset, _time(init, "--init"), model=model, variable=variable, deadline=deadline,
                      as_of=_time(as_of, "--as-of"))
        if not as_json:
            fb = doc["fallback"]
            q = doc["provenance"]["qc"]["input_quality"]
            out.print(f"{doc['dataset']}/{doc['variable']} init {doc['init_time']} by [bold]{doc['method']}[/]"
                      + (f" (fallback: {fb['reason']})" if fb else "")
                      + (f", stored as run {doc['run']}, snapshot {doc['snapshot']}" if doc["written"]
                         else f", already stored (run {doc['run']}, snapshot {doc['snapshot']})"), highlight=False)
            out.print("inputs: " + ", ".join(f"{k} {v:.1%}" for k, v in q.items() if v) + "; values: "
                      + ", ".join(f"{k} {v}" for k, v in doc["annotations"].items() if v), highlight=False)
        return doc, 0

    _run(as_json, body)


# -- demo -------------------------------------------------------------------------------------------------

@app.command("demo")
def demo(
    fresh: bool = typer.Option(False, "--fresh", help="Start over: remove the demo's samples and the store."),
    seed: int = typer.Option(42, "--seed", help="Seed of the sample observations."),
    quick: bool = typer.Option(False, "--quick", help="One short training epoch (a smoke test of the chain)."),
    as_json: bool = JsonOpt,
) -> None:
    """Run everything built so far end to end on embedded sample data, saying what it does."""
    from forecast.cli.demo import run_demo

    def body():
        st = _settings()
        console = err if as_json else out
        return run_demo(st, console, fresh=fresh, seed=seed, quick=quick), 0

    _run(as_json, body)


# -- sub-command groups defined in their own modules register here (one line each) --
import forecast.cli.hindcast  # noqa: E402,F401
from forecast.cli.models import models_app  # noqa: E402

app.add_typer(models_app, name="models")
from forecast.cli.users import users_app  # noqa: E402

app.add_typer(users_app, name="users")


def main() -> None:
    logging.basicConfig(level=os.environ.get("FORECAST_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app()

