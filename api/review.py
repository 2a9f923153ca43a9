"""The review queue over HTTP: list, read with context, decide (operator), audit (operator).
Decisions are recorded under the bearer token's user; the worker writes final ones into the flags."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Annotated, Any

import anyio
import numpy as np
from litestar import Request, get, post
from litestar.params import Parameter

from api.auth import BEARER, current_user, require, require_operator
from api.edr.params import parse_instant
from api.flags import FLAG_NAMES
from api.openapi import problem_specs, query_param
from api.problems import Problem
from api.schemas import AuditDoc, DecisionIn, DecisionOut, ItemsDoc
from forecast.review import STATES
from forecast.serialize import jsonable
from forecast.timeutil import iso, to_epoch

CONTEXT_CELLS = 48  # at most this many rows / columns of context around an item
CONTEXT_SLOTS = 36  # and this many slots
CELLS_SHOWN = 2000
MAX_ID = 2**53  # ids beyond any database's reach are refused up front
ItemId = Annotated[int, Parameter(ge=1, le=MAX_ID, description="Review item id")]


def item_doc(item) -> dict:
    d = asdict(item)
    d.pop("cells", None)
    for dec in d.get("decisions", []) or []:
        dec.pop("cells", None)
    return jsonable(d)


@get("/review/items", guards=[require("reader")], security=BEARER, tags=["review"], summary="Review items",
     responses=problem_specs(400, 401, 403, 500))
async def list_items(request: Request,
                     dataset: Annotated[str | None, query_param("dataset", "Only items of this dataset.")] = None,
                     item_state: Annotated[str | None, query_param(
                         "state", "open, pending (a reject awaits a second operator) or decided.",
                         enum=list(STATES))] = None,
                     variable: Annotated[str | None, query_param("variable", "Only items of this variable.")] = None,
                     limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Parameter(ge=0, le=MAX_ID)] = 0) -> ItemsDoc:
    """Items most hazardous first. ``pending`` marks a reject awaiting its second operator (four eyes)."""
    if item_state is not None and item_state not in STATES:
        raise Problem(400, f"state: must be open, pending or decided, got {item_state!r}")
    q = request.app.state.services.queue
    items = await anyio.to_thread.run_sync(
        lambda: q.list(dataset=dataset, state=item_state, variable=variable, limit=limit, offset=offset))
    return ItemsDoc(items=[item_doc(i) for i in items], count=len(items))


def _context(request: Request, item) -> dict | None:
    """Values and flags of the item's cells and their neighbours over the surrounding slots."""
    reader = request.app.state.services.observations
    try:
        view = reader.view(item.dataset)
    except Problem:
        return None
    cat = view.catalog
    t = cat.time
    s_first = t.slot_of(to_epoch(item.t_first))
    s_last = t.slot_of(to_epoch(item.t_last))
    if s_first is None or s_last is None:
        return None
    lo, hi = max(0, s_first - 1), min(max(view.n_slots - 1, s_last), s_last + 1)
    if hi - lo + 1 > CONTEXT_SLOTS:
        peak = t.slot_of(to_epoch(item.peak[0])) or s_first
        lo = max(lo, peak - CONTEXT_SLOTS // 2)
        hi = lo + CONTEXT_SLOTS - 1
    iy0, iy1, ix0, ix1 = item.bbox
    iy0, ix0 = max(0, iy0 - 1), max(0, ix0 - 1)
    iy1, ix1 = min(view.grid.ny, iy1 + 2), min(view.grid.nx, ix1 + 2)  # bbox ends are inclusive
    _, piy, pix = item.peak
    if iy1 - iy0 > CONTEXT_CELLS:
        iy0 = max(0, min(piy - CONTEXT_CELLS // 2, view.grid.ny - CONTEXT_CELLS))
        iy1 = iy0 + CONTEXT_CELLS
    if ix1 - ix0 > CONTEXT_CELLS:
        ix0 = max(0, min(pix - CONTEXT_CELLS // 2, view.grid.nx - CONTEXT_CELLS))
        ix1 = ix0 + CONTEXT_CELLS
    data, times_s = reader.read(view, lo, hi, None, [item.variable], (iy0, iy1, ix0, ix1))
    vals, qc, tests, rev, _ = data[item.variable]
    in_item = np.zeros(vals.shape, bool)
    cells = item.cells
    if cells is not None and len(cells):
        tpos = {int(s): k for k, s in enumerate(times_s)}
        for ts, cy, cx in cells:
            k = tpos.get(int(ts))
            if k is not None and iy0 <= cy < iy1 and ix0 <= cx < ix1:
                in_item[k, cy - iy0, cx - ix0] = True
    return {
        "times": [iso(x) for x in times_s], "iy0": iy0, "ix0": ix0, "shape": list(vals.shape),
        "axis_order": ["t", "y", "x"], "unit": cat.variables[item.variable].units,
        "values": [None if math.isnan(v) else round(v, 4) for v in vals.astype("float64").ravel().tolist()],
        "qc": [FLAG_NAMES.get(int(q), str(int(q))) for q in qc.ravel().tolist()],
        "in_item": in_item.ravel().tolist(), "revision": [int(r) for r in rev],
        "snapshot": view.snapshot,
    }


@get("/review/items/{item_id:int}", guards=[require("reader")], security=BEARER, tags=["review"],
     summary="One review item with context", responses=problem_specs(400, 401, 403, 404, 500))
async def get_item(request: Request, item_id: ItemId) -> dict[str, Any]:
    """The event summary, its decisions and audit trail, its cells (the first 2000, as (time, iy, ix)) and
    context: values and QC flags of its cells and their neighbours over the surrounding slots."""
    q = request.app.state.services.queue
    detail = await anyio.to_thread.run_sync(lambda: q.get(item_id))
    doc = item_doc(detail)
    cells = detail.cells if detail.cells is not None else np.zeros((0, 3), "int64")
    doc["cells"] = [[iso(int(c[0])), int(c[1]), int(c[2])] for c in cells[:CELLS_SHOWN]]
    doc["cells_truncated"] = len(cells) > CELLS_SHOWN
    doc["context"] = await anyio.to_thread.run_sync(lambda: _context(request, detail))
    return doc


@post("/review/items/{item_id:int}/decision", guards=[require_operator], security=BEARER, tags=["review"],
      summary="Decide a review item (operator)", status_code=201,
      responses=problem_specs(400, 401, 403, 404, 409, 413, 422, 500))
async def decide(request: Request, item_id: ItemId, data: DecisionIn) -> DecisionOut:
    """``accept`` (a real extreme) or ``reject`` (a fault), with a comment, on the whole item or on some of
    its cells. Recorded under the token's user. A reject of a value beyond the climatological record puts
    the item in ``pending`` until a second, different operator confirms (four eyes). If someone decided
    first: 409 naming who and when. Final decisions reach the flags on the worker's next cycle."""
    user = current_user(request)
    cells = None
    if data.cells is not None:
        if not data.cells:
            raise Problem(422, "cells: give at least one [time, iy, ix] cell, or omit cells to decide the whole item")
        rows = []
        for k, (ts, iy, ix) in enumerate(data.cells):
            try:
                t = parse_instant(ts, f"cells[{k}]", "time")
            except Problem as p:
                raise Problem(422, p.detail) from None
            rows.append([to_epoch(t), int(iy), int(ix)])
        cells = np.array(rows, dtype="int64")
    q = request.app.state.services.queue
    dec = await anyio.to_thread.run_sync(lambda: q.decide(item_id, data.action, by=user.name, comment=data.comment,
                                                          cells=cells, expected_version=data.expected_version))
    wb = {"final": "the flags are written by the worker's next cycle",
          "awaiting_second": "pending: a second, different operator must confirm this reject (four eyes)"}
    return DecisionOut(item=item_id, decision=dec.id, action=dec.action, status=dec.status, outcome=dec.outcome,
                       by=dec.by, at=iso(dec.at), item_state=dec.item_state,
                       item_version=dec.item_version, n_cells=dec.n_cells, writeback=wb.get(dec.status, dec.status))


@get("/review/audit", guards=[require_operator], security=BEARER, tags=["review"], summary="The audit log (operator)",
     responses=problem_specs(400, 401, 403, 500))
async def audit(request: Request, item_id: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
                since_id: Annotated[int, Parameter(ge=0, le=MAX_ID)] = 0,
                limit: Annotated[int, Parameter(ge=1, le=5000)] = 500) -> AuditDoc:
    """Append-only audit rows, oldest first; page with ``since_id``."""
    q = request.app.state.services.queue
    rows = await anyio.to_thread.run_sync(lambda: q.audit_log(item_id=item_id, since_id=since_id, limit=limit))
    entries = [jsonable(asdict(r)) for r in rows]
    return AuditDoc(entries=entries, next_since_id=rows[-1].id if rows else since_id)


ROUTES = [list_items, get_item, decide, audit]
