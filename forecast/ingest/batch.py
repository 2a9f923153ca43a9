"""Ingesting a batch: NetCDF files -> the observation store, in parallel, one atomic commit per batch.

Each file is decoded, validated against its catalog (variables, units, grid, time on the axis),
converted to canonical units, hashed and written by a worker into a fork of one writable session; the
parent merges the forks, archives superseded revisions, updates the per-slot bookkeeping and commits
once. The same file again is a duplicate (nothing written); a file for an empty slot behind the newest
one is late; different content for a filled slot is a new revision. Bad files are copied to quarantine
with a one-line reason while the rest of the batch lands.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from forecast import __version__
from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.stores import ObservationStore
from forecast.fileutil import sha256_file
from forecast.ingest.decode import Rejected, digest, read_fields, scan_file
from forecast.timeutil import iso, stamp, to_epoch

log = logging.getLogger(__name__)

@dataclass
class FileResult:
    path: str
    sha256: str | None = None
    reason: str | None = None
    # slot -> var -> "new" | "revision" | "duplicate"
    status: dict[int, dict[str, str]] = field(default_factory=dict)
    digests: dict[int, dict[str, str]] = field(default_factory=dict)
    fork: Any = None


@dataclass
class IngestReport:
    dataset: str
    snapshot: str | None
    committed: bool
    available_at: str
    files: int
    written: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    revisions: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    duplicate_files: list[str] = field(default_factory=list)
    quarantine: list[str] = field(default_factory=list)
    layout_commits: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FileTask:
    path: str
    catalog: Catalog
    # slot -> var -> (known shas, known digests, current revision)
    known: dict[int, dict[str, tuple[set, set, int]]]
    fork: Any = None  # a ForkSession, or None to write into ``session`` in-process
    session: Any = None
    archiver: Callable[[int, str], None] | None = None


def process_file(task: FileTask) -> FileResult:
    """Worker: hash, decode, validate, classify and write one file into its fork. Never raises for a
    bad file: the reason comes back in the result and nothing of it is written."""
    import zarr

    res = FileResult(path=task.path)
    path = Path(task.path)
    cat = task.catalog
    try:
        res.sha256 = sha256_file(path)
        sha = bytes.fromhex(res.sha256)
        target = task.fork if task.fork is not None else task.session
        arrays: dict[str, Any] = {}
        for slot, vid, arr in read_fields(path, cat):
            shas, digs, rev = task.known.get(slot, {}).get(vid, (set(), set(), -1))
            d = digest(arr)
            res.digests.setdefault(slot, {})[vid] = d.hex()
            if sha in shas or d in digs:
                res.status.setdefault(slot, {})[vid] = "duplicate"
                continue
            status = "new" if rev < 0 else "revision"
            if status == "revision" and task.archiver is not None:
                task.archiver(slot, vid)
            if vid not in arrays:
                # the array alone (one metadata read, not the group's and then the array's)
                arrays[vid] = zarr.open_array(target.store, path=f"{cat.id}/{vid}", mode="r+")
            arrays[vid][slot] = arr
            res.status.setdefault(slot, {})[vid] = status
    except Rejected as e:
        res.reason = str(e)
        res.status, res.fork = {}, None
        return res
    except OSError as e:
        res.reason = f"cannot be read ({e.strerror or e})"
        res.status = {}
        return res
    if task.fork is not None and any(s != "duplicate" for v in res.status.values() for s in v.values()):
        res.fork = task.fork
    return res


# -- the batch (parent process) -----------------------------------------------------------------------

def expand_paths(paths: Sequence[str | Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Files to ingest (a folder means its *.nc files) and the paths that are not there."""
    files, missing = [], []
    seen = set()
    for p in map(Path, paths):
        if p.is_dir():
            cand = sorted(q for q in p.iterdir() if q.is_file() and q.suffix in (".nc", ".nc4", ".netcdf"))
        elif p.is_file():
            cand = [p]
        else:
            missing.append({"file": str(p), "reason": "does not exist"})
            continue
        for q in cand:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                files.append(q)
    return files, missing


def _rounds(scanned: list[tuple[Path, list[int]]]) -> list[list[tuple[Path, list[int]]]]:
    """Split files so that no two files of one round write the same slot (their order decides which
    becomes the newer revision)."""
    rounds: list[list] = []
    claimed: list[set] = []  # the slots each round writes
    for item in scanned:
        slots = set(item[1])
        for k, c in enumerate(claimed):
            if not (c & slots):
                rounds[k].append(item)
                c |= slots
                break
        else:
            rounds.append([item])
            claimed.append(set(slots))
    return rounds


def _quarantine(rejected: list[dict[str, str]], folder: Path, dataset: str, stamp: str) -> list[str]:
    out = []
    qdir = folder / dataset
    for r in rejected:
        src = Path(r["file"])
        if not src.is_file():
            continue
        qdir.mkdir(parents=True, exist_ok=True)
        dst = qdir / f"{stamp}_{src.name}"
        shutil.copy2(src, dst)
        dst.with_name(dst.name + ".reason.txt").write_text(f"{src}: {r['reason']}\n")
        out.append(str(dst))
    return out


def ingest(
    catalog: Catalog,
    paths: Sequence[str | Path],
    *,
    store: ObservationStore,
    available_at: datetime | None = None,
    latency: timedelta | None = None,
    quarantine_dir: Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_conflict_retries: int = 3,
) -> IngestReport:
    """Ingest a batch of files into ``catalog``'s dataset; see the module docstring.

    ``available_at`` declares when the batch became available (default: now). ``latency`` instead declares
    it per slot, as the slot's time plus ``latency``: a backfill of a live feed whose files each arrived
    that long after their nominal time (so that as-of reads at any time inside the period see what a
    live run would have seen).
    """
    import multiprocessing
    import time as _time

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a spawned worker re-running an unguarded script would wait on the store's lock for minutes
        raise RuntimeError("ingest() was called while a worker process starts: guard the calling script "
                           "with `if __name__ == '__main__':`")
    t0 = _time.perf_counter()
    now = datetime.now(timezone.utc)
    avail = available_at or now
    avail_s = to_epoch(avail)
    if latency is not None:
        if latency.total_seconds() < 0:
            raise BadInputError(f"latency must not be negative, got {latency}")
        avail_s = ("latency", int(latency.total_seconds()))
    files, rejected = expand_paths(paths)
    if not files and not rejected:
        raise BadInputError("no input files given (pass NetCDF files or folders holding *.nc files)")
    from forecast.parallel import start_local_pool

    # worker processes start (spawn, imports) while this process scans and prepares the store
    pool = start_local_pool(len(files), scheduler=scheduler, workers=workers, warm=_WORKER_MODULES)
    try:
        scanned: list[tuple[Path, list[int]]] = []
        for f in files:
            try:
                scanned.append((f, scan_file(f, catalog)))
            except Rejected as e:
                rejected.append({"file": str(f), "reason": str(e)})
        import icechunk

        attempt = 0
        while True:
            attempt += 1
            try:
                report = _ingest_locked(catalog, scanned, store, avail_s, scheduler, workers, progress, len(files),
                                        pool)
                break
            except icechunk.ConflictError:
                if attempt > max_conflict_retries:
                    raise
                log.warning("commit conflict on %s, retrying the batch (%d)", catalog.id, attempt)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    report.rejected = rejected + report.rejected
    report.available_at = (iso(avail_s) if latency is None
                           else f"slot time + {int(latency.total_seconds())} s")
    if quarantine_dir is not None and report.rejected:
        report.quarantine = _quarantine(report.rejected, quarantine_dir, catalog.id, stamp(now, seconds=True))
    report.seconds = round(_time.perf_counter() - t0, 3)
    return report


_WORKER_MODULES = ("forecast.ingest.batch", "forecast.ingest.decode", "xarray", "netCDF4", "zarr", "icechunk")


def _ingest_locked(catalog, scanned, store: ObservationStore, avail_s, scheduler, workers, progress, n_files,
                   pool=None):
    import zarr

    from forecast.parallel import run_tasks

    report = IngestReport(dataset=catalog.id, snapshot=None, committed=False, available_at="", files=n_files)
    with store.lock():
        session = store.writable()
        # Layout changes (new dataset, longer time axis) are their own commit: Icechunk forks only
        # from a clean session, and the data commit stays one atomic batch.
        if not store.has_dataset(session, catalog.id):
            store.create_dataset(session, catalog)
        else:
            store.check_compatible(session, catalog)
            store.add_missing_variables(session, catalog)
        max_slot = max((max(s) for _, s in scanned if s), default=-1)
        if max_slot >= 0:
            store.ensure_capacity(session, catalog, max_slot)
        if session.has_uncommitted_changes:
            sid = session.commit(
                f"layout {catalog.id}: time axis sized for slot {max_slot}",
                metadata={"kind": "layout", "dataset": catalog.id, "catalog_hash": catalog.hash,
                          "software": f"forecast {__version__}"},
            )
            report.layout_commits.append(sid)
            session = store.writable()
        batch_slots = [x for _, sl in scanned for x in sl]
        g0 = zarr.open_group(session.store, path=catalog.id, mode="r")
        first0, n0 = int(g0.attrs.get("first_slot", -1)), int(g0.attrs.get("n_slots", 0))
        win_lo = min(([first0] if first0 >= 0 else []) + batch_slots or [0])
        win_hi = max([n0, *(x + 1 for x in batch_slots)])
        state = store.dataset_state(session, catalog, lo=win_lo, hi=win_hi)
        base = state.base
        head_before = state.n_slots
        group = zarr.open_group(session.store, path=catalog.id, mode="a")

        written: dict[int, dict[str, str]] = defaultdict(dict)  # slot -> var -> status
        dup_slots: set[int] = set()
        files_meta: list[dict[str, Any]] = []
        done = [0]

        def archive(slot: int, vid: str) -> None:
            vs = state.vars[vid]
            n = group[f"{vid}_archive"].shape[0]
            for name in ("archive", "archive_slot", "archive_revision", "archive_available_at",
                         "archive_sha256", "archive_digest"):
                a = group[f"{vid}_{name}"]
                a.resize((n + 1, *a.shape[1:]))
            group[f"{vid}_archive"][n] = group[vid][slot]
            group[f"{vid}_archive_slot"][n] = slot
            i = slot - base
            group[f"{vid}_archive_revision"][n] = vs.revision[i]
            group[f"{vid}_archive_available_at"][n] = vs.available_at[i]
            group[f"{vid}_archive_sha256"][n] = vs.sha256[i]
            group[f"{vid}_archive_digest"][n] = vs.digest[i]
            # keep the in-memory state in step for later rounds of this batch
            vs.archive_slot = np.append(vs.archive_slot, slot)
            vs.archive_revision = np.append(vs.archive_revision, vs.revision[i])
            vs.archive_available_at = np.append(vs.archive_available_at, vs.available_at[i])
            vs.archive_sha256 = np.vstack([vs.archive_sha256, vs.sha256[i][None]])
            vs.archive_digest = np.vstack([vs.archive_digest, vs.digest[i][None]])

        def known_for(slots: list[int]):
            out: dict[int, dict[str, tuple[set, set, int]]] = {}
            for s in slots:
                out[s] = {}
                for vid, vs in state.vars.items():
                    shas, digs = vs.known_hashes(s)
                    out[s][vid] = (shas, digs, int(vs.revision[s - base]))
            return out

        def tick(*_):  # counts files over all rounds (run_tasks counts per round)
            done[0] += 1
            if progress:
                progress(done[0], n_files)

        for k, rnd in enumerate(_rounds(scanned)):
            # Icechunk forks only from a clean session: the first round runs in parallel on forks (one
            # per file, so a rejected file's partial writes are simply never merged); the rare later
            # rounds (a slot delivered twice within one batch) write in-process, in order.
            forked = k == 0 and not session.has_uncommitted_changes
            tasks = [FileTask(path=str(p), catalog=catalog, known=known_for(s),
                              fork=session.fork() if forked else None,
                              session=None if forked else session, archiver=None if forked else archive)
                     for p, s in rnd]
            if forked:
                results = run_tasks(process_file, tasks, scheduler=scheduler, workers=workers, pool=pool,
                                    progress=tick)
            else:
                results = []
                for t in tasks:
                    results.append(process_file(t))
                    tick()
            if forked:
                # archive superseded values before the forks overwrite them
                for r in results:
                    for slot, per in r.status.items():
                        for vid, st in per.items():
                            if st == "revision":
                                archive(slot, vid)
                forks = [r.fork for r in results if r.fork is not None]
                if forks:
                    session.merge(*forks)
            for r in results:
                if r.reason:
                    report.rejected.append({"file": r.path, "reason": r.reason})
                    continue
                statuses = {st for per in r.status.values() for st in per.values()}
                files_meta.append({"name": Path(r.path).name, "sha256": r.sha256,
                                   "slots": [iso(int(catalog.time.label(s))) for s in sorted(r.status)],
                                   "status": "duplicate" if statuses == {"duplicate"} else "written"})
                if statuses == {"duplicate"}:
                    report.duplicate_files.append(r.path)
                for slot, per in r.status.items():
                    for vid, st in per.items():
                        if st == "duplicate":
                            continue
                        written[slot][vid] = st
                        vs, i = state.vars[vid], slot - base
                        vs.revision[i] = vs.revision[i] + 1 if vs.revision[i] >= 0 else 0
                        vs.available_at[i] = (avail_s if not isinstance(avail_s, tuple)
                                              else int(catalog.time.label(slot)) + avail_s[1])
                        vs.sha256[i] = np.frombuffer(bytes.fromhex(r.sha256), "uint8")
                        vs.digest[i] = np.frombuffer(bytes.fromhex(r.digests[slot][vid]), "uint8")
                    if all(st == "duplicate" for st in per.values()):
                        dup_slots.add(slot)

        label = lambda s: iso(int(catalog.time.label(s)))  # noqa: E731
        if not written:
            report.duplicates = [label(s) for s in sorted(dup_slots)]
            report.snapshot = store.head()
            return report
        # per-slot bookkeeping: write back only the range of slots touched
        lo = min(written)
        hi = max(written) + 1
        for vid, vs in state.vars.items():
            group[f"{vid}_revision"][lo:hi] = vs.revision[lo - base:hi - base]
            group[f"{vid}_available_at"][lo:hi] = vs.available_at[lo - base:hi - base]
            group[f"{vid}_sha256"][lo:hi] = vs.sha256[lo - base:hi - base]
            group[f"{vid}_digest"][lo:hi] = vs.digest[lo - base:hi - base]
        group.attrs.update({"first_slot": min([lo] + ([first0] if first0 >= 0 else [])),
                            "n_slots": max(n0, hi)})

        report.written = [label(s) for s in sorted(written)]
        report.revisions = [label(s) for s in sorted(written) if "revision" in written[s].values()]
        report.late = [label(s) for s in sorted(written)
                       if s < head_before and "revision" not in written[s].values()]
        report.duplicates = [label(s) for s in sorted(dup_slots - set(written))]
        meta = {
            "kind": "ingest",
            "dataset": catalog.id,
            "files": files_meta,
            "written": report.written,
            "late": report.late,
            "revisions": report.revisions,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "available_at": iso(avail_s) if not isinstance(avail_s, tuple) else f"slot time + {avail_s[1]} s",
            "catalog_hash": catalog.hash,
            "software": f"forecast {__version__}",
            "codec": f"blosc {catalog.storage.cname} level {catalog.storage.clevel} {catalog.storage.shuffle}-shuffle"
                     f" blocksize {catalog.storage.blocksize or 'auto'}",
        }
        msg = (f"ingest {catalog.id}: {len(report.written)} slots written ({len(report.late)} late, "
               f"{len(report.revisions)} revised) from {len(files_meta)} files")
        report.snapshot = session.commit(msg, metadata=meta)
        report.committed = True
    return report
