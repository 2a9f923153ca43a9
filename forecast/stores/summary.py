"""What `forecast store show` reports of a dataset: range, slots filled and missing, revisions, size."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import numpy as np

from forecast.errors import BadInputError
from forecast.stores.observations import ObservationStore, select_revisions
from forecast.timeutil import iso, to_epoch


def dataset_summary(store: ObservationStore, dataset: str, *, as_of: datetime | None = None) -> dict[str, Any]:
    """What ``forecast store show`` prints: range, slots filled, revisions, size."""
    import zarr

    session = store.readonly()
    if not store.has_dataset(session, dataset):
        raise BadInputError(f"dataset {dataset!r} has no data in the observation store {store.location}; ingest it first")
    cat = store.stored_catalog(session, dataset)
    g = zarr.open_group(session.store, path=dataset, mode="r")
    state = store.dataset_state(session, cat)
    as_of_s = to_epoch(as_of) if as_of is not None else None
    per_var = {}
    all_filled = np.zeros(state.hi - state.base, dtype=bool)
    for vid, vs in state.vars.items():
        rows, rev, av = select_revisions(vs, state.base, state.hi, state.capacity, as_of_s)
        filled = rev >= 0
        all_filled |= filled
        per_var[vid] = {
            "slots_filled": int(filled.sum()),
            "revised_slots": int((rev > 0).sum()),
            "max_revision": int(rev.max()) if len(rev) else -1,
            "archived_revisions": int(len(vs.archive_slot)),
        }
    idx = np.flatnonzero(all_filled) + state.base
    first, last = (int(idx[0]), int(idx[-1])) if len(idx) else (None, None)
    expected = (last - first + 1) if first is not None else 0
    size = None
    with contextlib.suppress(Exception):
        size = int(store.repo.chunk_storage_stats().native_bytes)
    return {
        "dataset": dataset,
        "snapshot": session.snapshot_id,
        "as_of": iso(as_of_s) if as_of_s is not None else "latest",
        "time_step": cat.time.step,
        "first": iso(int(cat.time.label(first))) if first is not None else None,
        "last": iso(int(cat.time.label(last))) if last is not None else None,
        "slots_in_range": expected,
        "slots_filled": int(len(idx)),
        "slots_missing": int(expected - len(idx)),
        "capacity": state.capacity,
        "grid": {"crs": cat.grid.crs, "shape": list(cat.grid.shape)},
        "variables": per_var,
        "codec": g.attrs.get("codec"),
        "catalog_hash": g.attrs.get("catalog_hash"),
        "store_bytes": size,
        "location": store.location,
    }
