"""The versioned observation store: an Icechunk repository, one group per dataset (layout in
`forecast.stores.layout`), and reading it: the latest revision of every slot, or each slot as it was known
at a past time (as-of reads), as a lazy ``xarray.Dataset``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.stores.layout import NO_TIME, DatasetState, ObservationLayout, VarState
from forecast.stores.repo import IcechunkRepo, SlotView
from forecast.timeutil import iso, to_epoch, utc


class ObservationStore(ObservationLayout, IcechunkRepo):
    """The observation repository at one location (local path, or s3://bucket/prefix)."""

    label = "observation store"

    def require(self) -> ObservationStore:
        """This store, or a BadInputError saying it does not exist yet (nothing was ingested)."""
        if not self.exists():
            raise BadInputError(f"the observation store {self.location} does not exist yet; ingest some files first")
        return self


# -- reading -----------------------------------------------------------------------------------------

def select_revisions(vs: VarState, lo: int, hi: int, n_main: int, as_of_s: int | None):
    """For slots [lo, hi): which row to read (slot index into the main array, n_main + i into the
    archive, or -1) and the revision / available_at shown, as of ``as_of_s`` (None = latest)."""
    n = max(hi - lo, 0)
    rows = np.arange(lo, lo + n, dtype="int64")
    rev = np.full(n, -1, "int16")
    av = np.full(n, NO_TIME, "int64")
    a, b = max(lo, vs.base), min(hi, vs.base + len(vs.revision))  # overlap with the window read
    if b > a:
        rev[a - lo:b - lo] = vs.revision[a - vs.base:b - vs.base]
        av[a - lo:b - lo] = vs.available_at[a - vs.base:b - vs.base]
    arch_slot, arch_rev, arch_av = vs.archive_slot, vs.archive_revision, vs.archive_available_at
    if as_of_s is None:
        rows[rev < 0] = -1
        return rows, rev, av
    ok_main = (rev >= 0) & (av <= as_of_s)
    rows[~ok_main] = -1
    rev[~ok_main] = -1
    av[~ok_main] = NO_TIME
    # slots whose current revision was not yet available: newest archived revision that was
    sel = (arch_slot >= lo) & (arch_slot < hi) & (arch_av <= as_of_s)
    for i in np.flatnonzero(sel):
        j = int(arch_slot[i] - lo)
        if not ok_main[j] and arch_rev[i] > rev[j]:
            rows[j] = n_main + i
            rev[j] = arch_rev[i]
            av[j] = arch_av[i]
    return rows, rev, av


def open_observations(
    dataset: str | Catalog,
    *,
    as_of: datetime | str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    store: ObservationStore | str | Path | None = None,
    snapshot: str | None = None,
):
    """The observations of one dataset as a lazy ``xarray.Dataset`` (dims time, y, x).

    With ``as_of=T`` every slot holds its newest revision whose ``available_at <= T`` (NaN where
    nothing was available yet), so hindcasts never see data from their own future. Coordinates
    ``<v>_revision`` and ``<v>_available_at`` give, per slot, the revision shown and when it became
    available. The time range is [start, end] (default: the first to the last filled slot).
    ``store`` defaults to the location in the environment's settings; ``snapshot`` pins a commit.
    """
    import dask.array as da
    import xarray as xr
    import zarr

    from forecast.timeutil import parse_time

    if store is None:
        from forecast.settings import Settings

        st = Settings()
        store = ObservationStore(st.observation_store, lock_timeout=st.lock_timeout)
    elif not isinstance(store, ObservationStore):
        store = ObservationStore(store)
    dsid = dataset.id if isinstance(dataset, Catalog) else dataset
    store.require()
    session = store.readonly(snapshot)
    if not store.has_dataset(session, dsid):
        raise BadInputError(f"dataset {dsid!r} has no data in the observation store {store.location}; ingest it first")
    cat = store.stored_catalog(session, dsid)
    g = zarr.open_group(session.store, path=dsid, mode="r")
    as_of_s = None
    if as_of is not None:
        as_of_s = to_epoch(parse_time(as_of) if isinstance(as_of, str) else as_of)
    def _slot(t, default):
        if t is None:
            return default
        t = parse_time(t) if isinstance(t, str) else utc(t)
        return cat.time.slot_of(to_epoch(t))

    # default range: first to last slot holding data (as of T); an explicit range needs no scan
    state = None
    if start is None or end is None:
        state = store.dataset_state(session, cat)
        idx = filled_slots(state, as_of_s)
    lo = _slot(start, int(idx[0]) if state is not None and len(idx) else 0)
    hi_incl = _slot(end, int(idx[-1]) if state is not None and len(idx) else -1)
    if lo is None or hi_incl is None:
        raise BadInputError(f"start/end {start!r}/{end!r} is not on the time axis of {dsid} (step {cat.time.step})")
    hi = hi_incl + 1
    n = max(hi - lo, 0)
    times = cat.time.label(np.arange(lo, lo + n)).astype("datetime64[s]").astype("datetime64[ns]")
    coords: dict[str, Any] = {
        "time": ("time", times),
        "y": ("y", g["y"][:], dict(g["y"].attrs)),
        "x": ("x", g["x"][:], dict(g["x"].attrs)),
        "lat": (("y", "x"), g["lat"][:], dict(g["lat"].attrs)),
        "lon": (("y", "x"), g["lon"][:], dict(g["lon"].attrs)),
    }
    if "elevation" in g.array_keys():
        coords["elevation"] = (("y", "x"), g["elevation"][:], dict(g["elevation"].attrs))
    if state is None or start is not None or end is not None:
        state = store.dataset_state(session, cat, lo=lo, hi=hi)
    data_vars = {}
    for vid, vs in state.vars.items():
        main = g[vid]
        cap = main.shape[0]
        rows, rev, av = select_revisions(vs, lo, hi, cap, as_of_s)
        view = SlotView(main, g[f"{vid}_archive"], rows, cap)
        chunks = (1, *main.chunks[1:])
        arr = da.from_array(view, chunks=chunks, name=f"obs-{dsid}-{vid}-{session.snapshot_id}-{as_of_s}-{lo}-{hi}",
                            asarray=True, fancy=False)
        attrs = {k: v for k, v in main.attrs.items() if k not in ("revision_variables",)}
        data_vars[vid] = (("time", "y", "x"), arr, attrs)
        if f"{vid}_qc" in g.array_keys():
            # flags judge one revision of the values: where another revision is shown (as-of reads
            # of a since-revised slot) the flags are not known here, so NOT_EVALUATED
            qrev = g[f"{vid}_qc_revision"][lo:min(hi, cap)] if hi > lo else np.zeros(0, "int16")
            qrev = np.concatenate([qrev, np.full(n - len(qrev), -2, "int16")])
            qrows = np.where((rows >= 0) & (rows < cap) & (qrev == rev) | (rev < 0) & (qrev == -1), np.arange(lo, lo + n), -1)
            for suffix, fill in (("qc", 2), ("qc_tests", 0)):
                src = g[f"{vid}_{suffix}"]
                v = SlotView(src, src, qrows, cap, fill=fill)
                data_vars[f"{vid}_{suffix}"] = (("time", "y", "x"), da.from_array(
                    v, chunks=chunks, asarray=True, fancy=False,
                    name=f"obs-{dsid}-{vid}_{suffix}-{session.snapshot_id}-{as_of_s}-{lo}-{hi}"), dict(src.attrs))
            attrs["ancillary_variables"] = f"{vid}_qc {vid}_qc_tests"
        av_dt = np.where(av == NO_TIME, np.datetime64("NaT"), av.astype("datetime64[s]")).astype("datetime64[ns]")
        coords[f"{vid}_revision"] = ("time", rev, {"long_name": f"revision of {vid} shown (-1: none available)"})
        coords[f"{vid}_available_at"] = ("time", av_dt, {"long_name": f"when the shown revision of {vid} became available"})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({
        "dataset": dsid,
        "title": cat.title,
        "Conventions": "CF-1.8",
        "snapshot": session.snapshot_id,
        "catalog_hash": g.attrs.get("catalog_hash"),
        "as_of": iso(as_of_s) if as_of_s is not None else "latest",
        "time_step": cat.time.step,
    })
    return ds


def filled_slots(state: DatasetState, as_of_s: int | None) -> np.ndarray:
    """Slots (absolute indices) holding data of any variable, as of a time (None: latest)."""
    n = state.hi - state.base
    filled = np.zeros(n, dtype=bool)
    extra: list[np.ndarray] = []
    for vs in state.vars.values():
        ok = vs.revision >= 0
        if as_of_s is not None:
            ok &= vs.available_at <= as_of_s
            extra.append(vs.archive_slot[vs.archive_available_at <= as_of_s])
        filled |= ok
    idx = np.flatnonzero(filled) + state.base
    if extra:
        idx = np.union1d(idx, np.concatenate(extra).astype("int64"))
    return idx


def store_for(settings) -> ObservationStore:
    return ObservationStore(settings.observation_store, lock_timeout=settings.lock_timeout)


__all__ = ["ObservationStore", "filled_slots", "open_observations", "select_revisions", "store_for"]
