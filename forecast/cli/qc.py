"""``forecast qc ...``: run QC over the store, list, show and decide review items."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from forecast.cli.output import (
    JsonOpt,
    load_settings,
    out,
    progress,
    run_command,
    time_option,
)
from forecast.errors import BadInputError
from forecast.settings import Settings

qc_app = typer.Typer(help="Quality control: flag values (never change them) and review suspects.",
                     no_args_is_help=True)

@qc_app.command("run")
def qc_run(
    dataset: str = typer.Argument(..., help="Dataset id."),
    since: Optional[str] = typer.Option(None, "--since", help="Also re-check every slot from this time on."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="dask.distributed scheduler address (default: FORECAST_DASK_SCHEDULER or threads)."),
    as_json: bool = JsonOpt,
) -> None:
    """Flag new and revised slots (with the history temporal checks need); one commit of flags; then write
    review decisions taken since (e.g. through the API) into the flags."""
    from forecast.catalog import get_catalog
    from forecast.quality import apply_pending_decisions, run_qc
    from forecast.stores import store_for

    def body():
        st = load_settings()
        cat = get_catalog(st.catalogs, dataset)
        store = store_for(st)
        with progress(f"qc {dataset}", not as_json) as tick, _queue(st) as queue:
            rep = run_qc(cat, store=store, since=time_option(since, "--since"), progress=tick, queue=queue,
                         scheduler=scheduler or st.dask_scheduler)
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

    run_command(as_json, body)


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
        st = load_settings()
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

    run_command(as_json, body)


@qc_app.command("show")
def qc_show(item: int = typer.Argument(..., help="Item id."), as_json: bool = JsonOpt) -> None:
    """One review item with its cells' summary, decisions and audit trail."""
    from forecast.review import ItemNotFound

    def body():
        st = load_settings()
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

    run_command(as_json, body)


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
    from forecast.catalog import get_catalog
    from forecast.quality import apply_pending_decisions
    from forecast.review import (
        FourEyesError,
        InvalidRequest,
        ItemNotFound,
        ReviewConflict,
    )
    from forecast.stores import store_for

    def body():
        st = load_settings()
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
                t = time_option(parts[0], f"--cell {c!r}")
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

    run_command(as_json, body)
