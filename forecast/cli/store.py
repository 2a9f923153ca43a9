"""``forecast store ...``: the observation store's history and contents."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from forecast.cli.output import (
    JsonOpt,
    load_settings,
    out,
    run_command,
    time_option,
)

store_app = typer.Typer(help="The versioned observation store: history and contents.", no_args_is_help=True)

@store_app.command("log")
def store_log(
    dataset: str = typer.Argument(..., help="Dataset id."),
    limit: int = typer.Option(50, "--limit", help="At most this many commits, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """The store's commits touching a dataset: time, message, files."""
    from forecast.stores import store_for

    def body():
        st = load_settings()
        store = store_for(st)
        store.require()
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

    run_command(as_json, body)


@store_app.command("show")
def store_show(
    dataset: str = typer.Argument(..., help="Dataset id."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Describe the data as known at this time."),
    as_json: bool = JsonOpt,
) -> None:
    """Time range, slots filled and missing, revisions and size of a dataset."""
    from forecast.stores import dataset_summary, store_for

    def body():
        st = load_settings()
        store = store_for(st)
        store.require()
        doc = dataset_summary(store, dataset, as_of=time_option(as_of, "--as-of"))
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

    run_command(as_json, body)
