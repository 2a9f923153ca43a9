"""QC over the observation store: incremental, dask-parallel, one commit of flags beside the values.

A slot needs QC when its value revision differs from the revision its flags judge (new, late or
revised data), when the dataset's QC config changed, or when ``since`` asks for it. Temporal checks
need history: each dirty slot is re-checked together with the slots whose flags it can change (those
within the checks' forward reach before it, their backward reach after it), read with the history and
future those flags look at. Values are never written here. A human decision (the
REVIEWED bits) survives a re-run unless the value it judged changed.
"""

from __future__ import annotations

import logging
import time as _time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable

import numpy as np

from forecast import __version__
from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.memory import tune_malloc
from forecast.stores import ObservationStore, open_observations
from forecast.stores.layout import qc_arrays
from forecast.stores.repo import codec_for
from forecast.timeutil import iso, to_epoch
from qc.config import QCConfig, default_config
from qc.flags import QCFlag, TestBit, apply_review, cf_attrs
from qc.pipeline import run_checks, time_reach

log = logging.getLogger(__name__)

_REVIEW_BITS = np.uint32(TestBit.REVIEWED_ACCEPTED | TestBit.REVIEWED_REJECTED)
_NEVER = -2  # qc_revision of a slot never checked (-1: checked while empty)


@dataclass
class QCReport:
    dataset: str
    snapshot: str | None
    committed: bool
    qc_config_hash: str
    slots_checked: int = 0
    ranges: list[list[str]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reviews_kept: int = 0
    reviews_dropped: int = 0
    events_added: int = 0
    events_existing: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def qc_config(catalog: Catalog) -> QCConfig:
    """The catalog's QC stages, or the defaults for its variables when it names none."""
    return catalog.qc if catalog.qc is not None else default_config(list(catalog.variables))


def dirty_segments(dirty: np.ndarray, reach: tuple[int, int], lo: int, hi: int, block: int) -> list[tuple[int, int]]:
    """Write ranges [a, b) covering the dirty slots and the slots whose flags they can change (``fwd``
    before each, ``back`` after it, for ``reach = (back, fwd)``), merged and cut into blocks of at most
    ``block`` slots. The newest slot thus re-checks itself and ``fwd`` slots before it, not the whole
    history a flat line looks back over."""
    if not dirty.any():
        return []
    back, fwd = reach
    touched = np.zeros(hi - lo, dtype=bool)
    for i in np.flatnonzero(dirty):
        touched[max(0, i - fwd):min(hi - lo, i + back + 1)] = True
    out = []
    idx = np.flatnonzero(touched)
    start = prev = int(idx[0])
    for i in map(int, idx[1:]):
        if i != prev + 1:
            out.append((start, prev + 1))
            start = i
        prev = i
    out.append((start, prev + 1))
    cut = []
    for a, b in out:
        for s in range(a, b, block):
            cut.append((lo + s, lo + min(b, s + block)))
    return cut


def _plain(attrs: dict) -> dict:
    """CF flag attributes as JSON-able values (zarr attributes are JSON)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v)
            for k, v in attrs.items()}


def _ensure_qc_arrays(group, catalog: Catalog, cfg: QCConfig) -> None:
    codec = codec_for(catalog)
    present = set(group.array_keys())
    for vid in cfg.variables:
        qn, tn, rn = qc_arrays(vid)
        main = group[vid]
        if qn not in present:
            attrs = cf_attrs(vid, standard_name=catalog.variables[vid].standard_name)
            a = group.create_array(qn, shape=main.shape, chunks=main.chunks, dtype="uint8",
                                   fill_value=int(QCFlag.NOT_EVALUATED), compressors=[codec],
                                   dimension_names=("time", "y", "x"))
            a.attrs.update(_plain(attrs["qc"]))
            t = group.create_array(tn, shape=main.shape, chunks=main.chunks, dtype="uint32", fill_value=0,
                                   compressors=[codec], dimension_names=("time", "y", "x"))
            t.attrs.update(_plain(attrs["tests"]))
            r = group.create_array(rn, shape=(main.shape[0],), chunks=group[f"{vid}_revision"].chunks,
                                   dtype="int16", fill_value=_NEVER, dimension_names=("time",))
            r.attrs["long_name"] = f"revision of {vid} the flags judge (-1: judged empty, -2: never checked)"
            main.attrs["ancillary_variables"] = f"{qn} {tn}"


def run_qc(
    catalog: Catalog,
    *,
    store: ObservationStore,
    since: datetime | None = None,
    block_cells: int = 150_000_000,
    progress: Callable[[int, int], None] | None = None,
    scheduler: str | None = None,
    queue: Any = None,
) -> QCReport:
    """Flag new or revised slots of a dataset (see the module docstring); one commit, or none.

    ``scheduler``: dask's threads by default, ``"sync"``, or a dask.distributed scheduler address (the
    checks are computed on the cluster; the flags are written here, in one commit).
    """
    t0 = _time.perf_counter()
    tune_malloc()
    client = None
    sched: Any = scheduler or "threads"
    if scheduler and "://" in scheduler:  # a dask.distributed cluster computes the checks
        from distributed import Client

        client = Client(scheduler, set_as_default=False)
        sched = client.get
    try:
        return _run_qc(catalog, store=store, since=since, block_cells=block_cells, progress=progress, sched=sched,
                       queue=queue, t0=t0)
    finally:
        if client is not None:
            client.close()


def _run_qc(catalog: Catalog, *, store: ObservationStore, since, block_cells: int, progress, sched, queue,
            t0: float) -> QCReport:
    import dask
    import dask.array as da
    import zarr

    cfg = qc_config(catalog)
    chash = cfg.config_hash()
    report = QCReport(dataset=catalog.id, snapshot=None, committed=False, qc_config_hash=chash)
    store.require()
    with store.lock():
        session = store.writable()
        if not store.has_dataset(session, catalog.id):
            raise BadInputError(f"dataset {catalog.id!r} has no data in the observation store; ingest it first")
        store.check_compatible(session, catalog)
        group = zarr.open_group(session.store, path=catalog.id, mode="a")
        _ensure_qc_arrays(group, catalog, cfg)
        state = store.dataset_state(session, catalog)
        lo, hi = state.base, state.hi
        if hi <= lo:
            report.snapshot = store.head()
            return report
        stored_hashes = dict(group.attrs.get("qc_config_hash", {}) or {})
        dirty = np.zeros(hi - lo, dtype=bool)
        qrevs: dict[str, np.ndarray] = {}
        for vid in cfg.variables:
            vs = state.vars[vid]
            qrev = group[f"{vid}_qc_revision"][lo:hi]
            qrevs[vid] = qrev
            dirty |= qrev != vs.revision
            if stored_hashes.get(vid) != chash:
                dirty[:] = True
        if since is not None:
            s = catalog.time.slot_of(to_epoch(since))
            if s is None:
                s = max(lo, min(hi, int(np.searchsorted(catalog.time.label(np.arange(lo, hi)), to_epoch(since)))))
            dirty[max(0, s - lo):] = True
        back, fwd = time_reach(cfg)
        ny, nx = catalog.grid.shape
        block = max(2 * max(back, fwd, 1), block_cells // max(1, ny * nx))
        segments = dirty_segments(dirty, (back, fwd), lo, hi, block)
        if not segments:
            report.snapshot = store.head()
            report.seconds = round(_time.perf_counter() - t0, 3)
            return report
        counts = {vid: {f.name: 0 for f in QCFlag} for vid in cfg.variables}
        snapshot = session.snapshot_id  # the values QC reads: unchanged by this session
        done = 0
        total = sum(b - a for a, b in segments)
        for a, b in segments:
            ra, rb = max(lo, a - back), min(hi, b + fwd)  # what the flags of [a, b) look at
            ds = open_observations(catalog.id, store=store, snapshot=snapshot,
                                   start=catalog.time.label_datetime(ra), end=catalog.time.label_datetime(rb - 1))
            ds = ds[list(cfg.variables)]
            # the halo slots are context only: chunk boundaries at a and b let dask compute the flags of
            # [a, b) alone (halo_map hands each block its neighbours' edge slots), not of every slot read
            tchunks = tuple(n for n in (a - ra, b - a, rb - b) if n)
            ds = ds.chunk({"time": tchunks, "y": min(ny, 500), "x": min(nx, 500)})
            flags = run_checks(ds, cfg, variables_meta=catalog.variables).isel(time=slice(a - ra, b - ra))
            # each block lands in its place of one array per output (no concatenation of the blocks)
            names = [n for vid in cfg.variables for n in qc_arrays(vid)[:2]]
            if isinstance(sched, str):
                results = {n: np.empty(flags[n].shape, dtype=flags[n].dtype) for n in names}
                with dask.config.set(scheduler=sched):
                    da.store([flags[n].data for n in names], [results[n] for n in names], lock=False)
            else:  # a cluster's workers cannot write into this process's arrays: the blocks come back
                results = dict(zip(names, dask.compute(*[flags[n].data for n in names], scheduler=sched)))
            for vid in cfg.variables:
                vs = state.vars[vid]
                qn, tn, rn = qc_arrays(vid)
                new_q = results[qn]
                new_t = results[tn]
                rev = vs.revision[a - lo:b - lo]
                old_t = group[tn][a:b]
                np.bitwise_and(old_t, _REVIEW_BITS, out=old_t)  # only the review bits matter here
                if old_t.any():  # usually nothing in the range was ever reviewed: no full-size masks
                    had_review = old_t != 0
                    same_value = (qrevs[vid][a - lo:b - lo] == rev)[:, None, None]
                    keep = had_review & same_value
                    report.reviews_kept += int(keep.sum())
                    report.reviews_dropped += int((had_review & ~same_value).sum())
                    if keep.any():
                        acc = keep & ((old_t & np.uint32(TestBit.REVIEWED_ACCEPTED)) != 0)
                        rej = keep & ((old_t & np.uint32(TestBit.REVIEWED_REJECTED)) != 0)
                        new_q, new_t = apply_review(new_q, new_t, acc, rej)
                # write every chunk: zarr's emptiness check (all_equal per chunk, inline on its event-loop
                # thread) costs more than encoding a chunk of zeros, which Blosc does in its thread pool
                group[qn].with_config({"write_empty_chunks": True})[a:b] = new_q
                group[tn].with_config({"write_empty_chunks": True})[a:b] = new_t
                group[rn][a:b] = rev
                if queue is not None and (new_q == QCFlag.SUSPECT).any():
                    _enqueue(queue, catalog, vid, ds[vid].isel(time=slice(a - ra, b - ra)), new_q, new_t, report)
                cnt = _code_counts(new_q)
                for f in QCFlag:
                    counts[vid][f.name] += int(cnt[int(f)])
            done += b - a
            report.ranges.append([iso(int(catalog.time.label(a))), iso(int(catalog.time.label(b - 1)))])
            if progress:
                progress(done, total)
        stored_hashes.update({vid: chash for vid in cfg.variables})
        group.attrs["qc_config_hash"] = stored_hashes
        report.slots_checked = total
        report.counts = counts
        meta = {
            "kind": "qc",
            "dataset": catalog.id,
            "qc_config_hash": chash,
            "ranges": report.ranges,
            "slots_checked": total,
            "counts": counts,
            "reviews_kept": report.reviews_kept,
            "reviews_dropped": report.reviews_dropped,
            "values_snapshot": snapshot,
            "catalog_hash": catalog.hash,
            "software": f"forecast {__version__}",
        }
        report.snapshot = session.commit(f"qc {catalog.id}: {total} slots checked (config {chash[:12]})",
                                         metadata=meta)
        report.committed = True
    report.seconds = round(_time.perf_counter() - t0, 3)
    return report


def _code_counts(q: np.ndarray) -> np.ndarray:
    """Cells per flag code (index = code) of a uint8 array: bincount over pieces of ~2 M cells (it
    casts its input to intp; np.unique would sort the whole array)."""
    flat = q.reshape(len(q), -1) if q.ndim > 1 else q.reshape(1, -1)
    step = max(1, (1 << 21) // max(1, flat.shape[1]))
    cnt = np.zeros(256, dtype=np.int64)
    for s in range(0, len(flat), step):
        cnt += np.bincount(flat[s:s + step].reshape(-1), minlength=256)
    return cnt


def _enqueue(queue, catalog: Catalog, vid: str, values, q: np.ndarray, t: np.ndarray, report: QCReport) -> None:
    """Suspect cells -> review events (a storm is one item, however many cells), idempotently."""
    from forecast.review import find_events

    var = catalog.variables[vid]
    months = values.time.dt.month.values
    rec_max, rec_min = var.record_max, var.record_min
    rmax = np.array([rec_max[m - 1] for m in months], "float64") if rec_max else None
    rmin = np.array([rec_min[m - 1] for m in months], "float64") if rec_min else None
    # records of temperatures sit far from zero: measure the excess against the record's span
    scale = float(np.mean(np.subtract(rec_max, rec_min))) if rec_max and rec_min else None
    events = find_events(values.values, q, t, times=values.time.values, variable=vid, dataset=catalog.id,
                         record=rmax, record_min=rmin, lat=values.lat.values, lon=values.lon.values, scale=scale)
    res = queue.enqueue(events)
    report.events_added += int(res.added)
    report.events_existing += int(res.existing)
