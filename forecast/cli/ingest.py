"""``forecast ingest``: a batch of files into the observation store, one atomic commit."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from forecast.cli.output import (
    JsonOpt,
    duration_option,
    load_settings,
    out,
    progress,
    run_command,
    time_option,
)
from forecast.errors import BadInputError


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
    from forecast.catalog import get_catalog
    from forecast.ingest.batch import ingest
    from forecast.stores import store_for

    def body():
        st = load_settings()
        cat = get_catalog(st.catalogs, dataset)
        avail = time_option(available_at, "--available-at")
        lag = duration_option(latency, "--latency")
        if avail is not None and lag is not None:
            raise BadInputError("give either --available-at or --latency, not both")
        with progress(f"ingest {dataset}", not as_json) as tick:
            rep = ingest(cat, paths, store=store_for(st), available_at=avail, latency=lag,
                         quarantine_dir=st.quarantine_dir,
                         scheduler=scheduler or st.dask_scheduler, workers=st.workers, progress=tick)
        doc = rep.to_json()
        if not as_json:
            _print_ingest(doc)
        return doc, (2 if rep.rejected else 0)

    run_command(as_json, body)


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
