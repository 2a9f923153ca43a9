"""Writing human review decisions into the flags: REVIEWED_ACCEPTED -> GOOD, REVIEWED_REJECTED -> FAIL, one
commit per batch of decisions; values never change. The review queue records decisions (CLI, API,
console); the store's writer (the worker, `forecast qc run`, `forecast qc decide`) applies them here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecast import __version__
from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.stores import ObservationStore
from forecast.stores.layout import qc_arrays
from forecast.timeutil import iso
from qc.flags import apply_review


@dataclass
class ReviewDecision:
    """A final human decision to write into the flags: cells as (slot time epoch s, iy, ix) rows."""

    decision_id: int | str
    variable: str
    cells: np.ndarray
    accepted: bool


def write_decisions(catalog: Catalog, decisions: list[ReviewDecision], *, store: ObservationStore) -> str | None:
    """Write review decisions into the flags (REVIEWED_ACCEPTED -> GOOD, REVIEWED_REJECTED -> FAIL) in
    one commit whose metadata names the decision ids. Values never change. Returns the snapshot id
    (None when there was nothing to write)."""
    import zarr

    if not decisions:
        return None
    with store.lock():
        session = store.writable()
        group = zarr.open_group(session.store, path=catalog.id, mode="a")
        by_slot: dict[tuple[str, int], list[tuple[np.ndarray, bool]]] = {}
        for d in decisions:
            qn = f"{d.variable}_qc"
            if qn not in group.array_keys():
                raise BadInputError(f"{catalog.id}.{d.variable} has no QC flags yet; run `forecast qc run` first")
            cells = np.asarray(d.cells, dtype="int64").reshape(-1, 3)
            for t in np.unique(cells[:, 0]):
                slot = catalog.time.slot_of(int(t))
                if slot is None:
                    raise BadInputError(f"decision {d.decision_id}: time {iso(int(t))} is not on the axis of {catalog.id}")
                by_slot.setdefault((d.variable, slot), []).append((cells[cells[:, 0] == t][:, 1:], d.accepted))
        for (vid, slot), items in sorted(by_slot.items()):
            qn, tn, _ = qc_arrays(vid)
            q = group[qn][slot]
            t = group[tn][slot]
            acc = np.zeros(q.shape, bool)
            rej = np.zeros(q.shape, bool)
            for yx, accepted in items:
                (acc if accepted else rej)[yx[:, 0], yx[:, 1]] = True
                (rej if accepted else acc)[yx[:, 0], yx[:, 1]] = False  # the later decision wins
            q, t = apply_review(q, t, acc, rej)
            group[qn][slot] = q
            group[tn][slot] = t
        ids = [d.decision_id for d in decisions]
        meta = {"kind": "review", "dataset": catalog.id, "decisions": ids,
                "cells": int(sum(len(np.asarray(d.cells).reshape(-1, 3)) for d in decisions)),
                "software": f"forecast {__version__}"}
        return session.commit(f"review {catalog.id}: decisions {', '.join(map(str, ids))} written to flags",
                              metadata=meta)


def apply_pending_decisions(queue, catalog: Catalog, *, store: ObservationStore, by: str = "worker") -> str | None:
    """Write every final, not yet written decision of a dataset into the store's flags (one commit)
    and record in the queue which commit carries them."""
    pending = queue.pending_writeback(catalog.id)
    if not pending:
        return None
    sid = write_decisions(catalog, [ReviewDecision(w.decision_id, w.variable, w.cells, w.accepted) for w in pending],
                          store=store)
    queue.mark_written([w.decision_id for w in pending], sid, by=by)
    return sid
