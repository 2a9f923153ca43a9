"""The versioned observation store: an Icechunk repository, one group per dataset, a regular time axis.

Layout of group ``<dataset>`` (every array a zarr v3 array with ``dimension_names``):

- ``time`` (time) int64 seconds since 1970-01-01 UTC, pre-sized in blocks of the catalog's ``block``;
  ``x``, ``y``, ``lat``, ``lon``, ``elevation`` (when the catalog has one) and the ``crs`` grid mapping.
- ``<v>`` (time, y, x) float32, one chunk per slot (and spatial tile), NaN where nothing arrived.
- ``<v>_revision`` (time) int16 (-1 = nothing yet, 0 = first arrival), ``<v>_available_at`` (time) int64
  seconds (when that revision became available), ``<v>_sha256`` / ``<v>_digest`` (time, 32) uint8: the
  source file's sha256 and a digest of the decoded values (a re-encoded identical file is no revision).
- ``<v>_archive`` (entry, y, x) with ``<v>_archive_{slot,revision,available_at,sha256,digest}``: every
  superseded revision, kept in the current snapshot so that as-of reads never depend on old snapshots
  (which an operator may expire to bound storage).

Commits on local storage are serialised by a file lock (Icechunk's local storage does not arbitrate
concurrent commits); on object storage Icechunk's own conflict detection does.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from forecast import __version__
from forecast.catalog.models import Catalog, parse_catalog
from forecast.errors import BadInputError, StoreBusyError, StoreError
from forecast.timeutil import iso, to_epoch, utc

log = logging.getLogger(__name__)

NO_TIME = np.iinfo("int64").min  # fill for "never available"
HASH_BYTES = 32
BRANCH = "main"
_META_CHUNK_BLOCKS = 16  # per-slot metadata arrays: one chunk spans this many time blocks


def per_slot_arrays(vid: str) -> tuple[str, ...]:
    """The arrays of a variable that run along the time axis (values and per-slot bookkeeping)."""
    return (vid, f"{vid}_revision", f"{vid}_available_at", f"{vid}_sha256", f"{vid}_digest")


def qc_arrays(vid: str) -> tuple[str, ...]:
    """The QC layer beside a variable: flags, test bitmask, and the value revision they judge."""
    return (f"{vid}_qc", f"{vid}_qc_tests", f"{vid}_qc_revision")


def codec_for(catalog: Catalog):
    """The Blosc codec the catalog's ``storage`` section chose (values, flags and archives alike)."""
    from zarr.codecs import BloscCodec

    s = catalog.storage
    shuffle = {"byte": "shuffle", "bit": "bitshuffle", "none": "noshuffle"}[s.shuffle]
    return BloscCodec(cname=s.cname, clevel=s.clevel, shuffle=shuffle, blocksize=s.blocksize)


def _quiet_icechunk() -> None:
    # Local storage warns about concurrent commits on every open; we serialise commits with a lock.
    import icechunk

    with contextlib.suppress(Exception):
        icechunk.set_logs_filter("error")


def hex_digest(row: np.ndarray) -> str | None:
    b = bytes(np.asarray(row, dtype="uint8"))
    return None if not any(b) else b.hex()


@dataclass
class VarState:
    """Per-slot bookkeeping of one variable over a window of slots [base, base + len) (small: no
    values). Only the window holding data is read: the axis may be pre-sized to ~10^6 slots."""

    base: int
    revision: np.ndarray  # int16, -1 = empty
    available_at: np.ndarray  # int64 seconds
    sha256: np.ndarray  # (n, 32) uint8
    digest: np.ndarray  # (n, 32) uint8
    archive_slot: np.ndarray
    archive_revision: np.ndarray
    archive_available_at: np.ndarray
    archive_sha256: np.ndarray
    archive_digest: np.ndarray

    def known_hashes(self, slot: int) -> tuple[set[bytes], set[bytes]]:
        """sha256 and digests of every revision this slot ever held (current and archived)."""
        shas, digs = set(), set()
        i = slot - self.base
        if 0 <= i < len(self.revision) and self.revision[i] >= 0:
            shas.add(bytes(self.sha256[i]))
            digs.add(bytes(self.digest[i]))
        for i in np.flatnonzero(self.archive_slot == slot):
            shas.add(bytes(self.archive_sha256[i]))
            digs.add(bytes(self.archive_digest[i]))
        return shas, digs


@dataclass
class DatasetState:
    catalog: Catalog
    capacity: int
    base: int  # the window of slots read: [base, hi)
    hi: int
    first_slot: int  # -1 when empty
    n_slots: int  # high-water mark: last filled slot + 1 (0 when empty)
    vars: dict[str, VarState] = field(default_factory=dict)


class IcechunkRepo:
    """An Icechunk repository at one location (local path, s3://bucket/prefix or memory://): sessions,
    head, and the writer lock. The observation and forecast stores build on it."""

    label = "store"

    def __init__(self, location: str | Path, *, lock_timeout: float = 600.0):
        self.location = str(location)
        self.lock_timeout = lock_timeout
        self._repo = None
        self._lock = None

    # -- repository and sessions -------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return "://" not in self.location or self.location.startswith("file://")

    def _storage(self):
        import icechunk

        loc = self.location
        if loc.startswith("memory://"):
            return icechunk.in_memory_storage()
        if loc.startswith("s3://"):
            bucket, _, prefix = loc[5:].partition("/")
            return icechunk.s3_storage(bucket=bucket, prefix=prefix or None, from_env=True)
        path = loc.removeprefix("file://")
        return icechunk.local_filesystem_storage(str(Path(path).absolute()))

    @property
    def repo(self):
        if self._repo is None:
            import icechunk

            _quiet_icechunk()
            if self.is_local:
                Path(self.location.removeprefix("file://")).parent.mkdir(parents=True, exist_ok=True)
            with self.lock():
                self._repo = icechunk.Repository.open_or_create(self._storage())
        return self._repo

    def exists(self) -> bool:
        if self._repo is not None:
            return True
        if self.is_local:
            return Path(self.location.removeprefix("file://")).exists()
        return True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise writers on local storage (an flock: released by the OS when a writer dies)."""
        if not self.is_local:
            yield
            return
        from filelock import FileLock, Timeout

        if self._lock is None:  # one instance per store: FileLock is re-entrant per instance
            path = Path(self.location.removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(path) + ".lock")
        lk = self._lock
        try:
            lk.acquire(timeout=self.lock_timeout)
        except Timeout:
            raise StoreBusyError(
                f"another writer has held the {self.label} {self.location} for more than "
                f"{self.lock_timeout:.0f} s; try again later or raise FORECAST_LOCK_TIMEOUT"
            ) from None
        try:
            yield
        finally:
            lk.release()

    def readonly(self, snapshot: str | None = None):
        if snapshot:
            return self.repo.readonly_session(snapshot_id=snapshot)
        return self.repo.readonly_session(branch=BRANCH)

    def writable(self):
        return self.repo.writable_session(BRANCH)

    def head(self) -> str:
        return self.repo.lookup_branch(BRANCH)



class ObservationStore(IcechunkRepo):
    """The observation repository at one location (local path, or s3://bucket/prefix)."""

    label = "observation store"

    # -- dataset layout -------------------------------------------------------------------------
    @staticmethod
    def has_dataset(session, dataset: str) -> bool:
        import zarr
        from zarr.errors import GroupNotFoundError

        try:
            root = zarr.open_group(session.store, mode="r")
        except (GroupNotFoundError, FileNotFoundError):
            return False  # a new repository has no root group yet
        return dataset in root.group_keys()

    @staticmethod
    def stored_catalog(session, dataset: str) -> Catalog:
        import zarr

        g = zarr.open_group(session.store, path=dataset, mode="r")
        return parse_catalog(json.loads(g.attrs["catalog"]), f"store group {dataset!r}")

    def check_compatible(self, session, catalog: Catalog) -> None:
        """The store's layout is fixed by the catalog it was created with; a catalog whose grid or time
        axis moved would silently misplace data, so it is refused."""
        stored = self.stored_catalog(session, catalog.id)
        problems = []
        if stored.grid.model_dump(exclude={"tolerance"}) != catalog.grid.model_dump(exclude={"tolerance"}):
            problems.append("grid")
        if (stored.time.start, stored.time.step, stored.time.block) != (
            catalog.time.start,
            catalog.time.step,
            catalog.time.block,
        ):
            problems.append("time axis (start, step or block)")
        if set(stored.variables) - set(catalog.variables):
            problems.append(f"variables removed: {sorted(set(stored.variables) - set(catalog.variables))}")
        if problems:
            raise StoreError(
                f"catalog {catalog.id} no longer matches the store it created ({', '.join(problems)} changed); "
                "a moved grid or time axis needs a new dataset id"
            )

    def create_dataset(self, session, catalog: Catalog) -> None:
        """Create the group with its coordinates and empty (zero-length) time axis arrays."""
        import zarr

        g = zarr.open_group(session.store, mode="a").require_group(catalog.id)
        ny, nx = catalog.grid.shape
        cy = catalog.storage.chunk_y or ny
        cx = catalog.storage.chunk_x or nx
        codec = codec_for(catalog)
        g.attrs.update(
            {
                "dataset": catalog.id,
                "title": catalog.title,
                "source": catalog.source,
                "licence": catalog.licence,
                "Conventions": "CF-1.8",
                "catalog": json.dumps(catalog.model_dump(mode="json", exclude={"path"})),
                "catalog_hash": catalog.hash,
                "time_start": iso(catalog.time.start),
                "time_step": catalog.time.step,
                "codec": {"name": "blosc", "cname": catalog.storage.cname, "clevel": catalog.storage.clevel,
                          "shuffle": catalog.storage.shuffle, "blocksize": catalog.storage.blocksize},
                "first_slot": -1,
                "n_slots": 0,
                "created_with": f"forecast {__version__}",
            }
        )
        ax = catalog.grid
        for name, axis, std in (("x", ax.x, "projection_x_coordinate"), ("y", ax.y, "projection_y_coordinate")):
            a = g.create_array(name, shape=(axis.size,), dtype="float64", dimension_names=(name,), overwrite=True)
            a[:] = axis.values()
            a.attrs.update({"units": axis.units, "standard_name": std, "axis": name.upper()})
        lat, lon = ax.latlon()
        for name, vals, std, units in (("lat", lat, "latitude", "degrees_north"), ("lon", lon, "longitude", "degrees_east")):
            a = g.create_array(name, shape=(ny, nx), dtype="float64", dimension_names=("y", "x"), overwrite=True)
            a[:] = vals
            a.attrs.update({"units": units, "standard_name": std})
        elev = ax.elevation_field()
        if elev is not None:
            a = g.create_array("elevation", shape=(ny, nx), dtype="float32", dimension_names=("y", "x"), overwrite=True)
            a[:] = elev
            a.attrs.update({"units": "m", "standard_name": "surface_altitude"})
        from pyproj import CRS

        crs = g.create_array("crs", shape=(), dtype="int32", overwrite=True, fill_value=0)
        crs.attrs.update(CRS.from_user_input(ax.crs).to_cf())
        tchunk = catalog.time.block * _META_CHUNK_BLOCKS
        t = g.create_array("time", shape=(0,), chunks=(tchunk,), dtype="int64", dimension_names=("time",), fill_value=0)
        t.attrs.update({"units": "seconds since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian",
                        "standard_name": "time", "axis": "T"})
        for vid, var in catalog.variables.items():
            self._create_variable(g, catalog, vid, var, codec, (cy, cx))

    def _create_variable(self, g, catalog: Catalog, vid: str, var, codec, chunks) -> None:
        ny, nx = catalog.grid.shape
        tchunk = catalog.time.block * _META_CHUNK_BLOCKS
        a = g.create_array(vid, shape=(0, ny, nx), chunks=(1, *chunks), dtype="float32", fill_value=np.nan,
                           compressors=[codec], dimension_names=("time", "y", "x"))
        a.attrs.update({
            "units": var.units, "standard_name": var.standard_name, "long_name": var.long_name or vid,
            "grid_mapping": "crs", "coordinates": "lat lon",
            "physical_range": list(var.physical_range),
            "revision_variables": f"{vid}_revision {vid}_available_at {vid}_sha256",
        })
        meta = {
            "revision": ("int16", -1, {"long_name": f"revision of {vid} in the slot (0 = first arrival, -1 = none)"}),
            "available_at": ("int64", NO_TIME, {"long_name": f"when that revision of {vid} became available",
                                                "units": "seconds since 1970-01-01 00:00:00"}),
        }
        for suffix, (dtype, fill, attrs) in meta.items():
            m = g.create_array(f"{vid}_{suffix}", shape=(0,), chunks=(tchunk,), dtype=dtype, fill_value=fill,
                               dimension_names=("time",))
            m.attrs.update(attrs)
        for suffix, what in (("sha256", "sha256 of the source file"), ("digest", "blake2b-256 of the decoded values")):
            m = g.create_array(f"{vid}_{suffix}", shape=(0, HASH_BYTES), chunks=(tchunk, HASH_BYTES), dtype="uint8",
                               fill_value=0, dimension_names=("time", "hash_byte"))
            m.attrs["long_name"] = what
        g.create_array(f"{vid}_archive", shape=(0, ny, nx), chunks=(1, *chunks), dtype="float32", fill_value=np.nan,
                       compressors=[codec], dimension_names=("archive_entry", "y", "x")).attrs.update(
            {"units": var.units, "long_name": f"superseded revisions of {vid}"})
        for suffix, dtype, fill in (("slot", "int64", -1), ("revision", "int16", -1), ("available_at", "int64", NO_TIME)):
            g.create_array(f"{vid}_archive_{suffix}", shape=(0,), chunks=(1024,), dtype=dtype, fill_value=fill,
                           dimension_names=("archive_entry",))
        for suffix in ("sha256", "digest"):
            g.create_array(f"{vid}_archive_{suffix}", shape=(0, HASH_BYTES), chunks=(1024, HASH_BYTES), dtype="uint8",
                           fill_value=0, dimension_names=("archive_entry", "hash_byte"))

    def ensure_capacity(self, session, catalog: Catalog, max_slot: int) -> bool:
        """Grow the time axis (whole blocks) so that ``max_slot`` fits; True when it grew."""
        import zarr

        g = zarr.open_group(session.store, path=catalog.id, mode="a")
        t = g["time"]
        cap = t.shape[0]
        if max_slot < cap:
            return False
        block = catalog.time.block
        new_cap = (max_slot // block + 1) * block
        t.resize((new_cap,))
        t[cap:new_cap] = catalog.time.label(np.arange(cap, new_cap))
        present = set(g.array_keys())
        for vid in catalog.variables:
            for name in (*per_slot_arrays(vid), *qc_arrays(vid)):
                if name in present:
                    a = g[name]
                    a.resize((new_cap, *a.shape[1:]))
        return True

    def add_missing_variables(self, session, catalog: Catalog) -> list[str]:
        """A catalog may gain variables over time; their arrays are created on the existing axis."""
        import zarr

        g = zarr.open_group(session.store, path=catalog.id, mode="a")
        added = [v for v in catalog.variables if v not in g.array_keys()]
        if added:
            ny, nx = catalog.grid.shape
            chunks = (catalog.storage.chunk_y or ny, catalog.storage.chunk_x or nx)
            cap = g["time"].shape[0]
            for vid in added:
                self._create_variable(g, catalog, vid, catalog.variables[vid], codec_for(catalog), chunks)
                for name in per_slot_arrays(vid):
                    a = g[name]
                    a.resize((cap, *a.shape[1:]))
        return added

    def dataset_state(self, session, catalog: Catalog, *, lo: int | None = None, hi: int | None = None) -> DatasetState:
        """Bookkeeping over slots [lo, hi) (default: the slots that hold data), clipped to the axis."""
        import zarr

        g = zarr.open_group(session.store, path=catalog.id, mode="r")
        cap = g["time"].shape[0]
        first = int(g.attrs.get("first_slot", -1))
        n_slots = int(g.attrs.get("n_slots", 0))
        lo = max(0, min(lo if lo is not None else (first if first >= 0 else 0), cap))
        hi = max(lo, min(hi if hi is not None else n_slots, cap))
        st = DatasetState(catalog=catalog, capacity=cap, base=lo, hi=hi, first_slot=first, n_slots=n_slots)
        names = set(g.array_keys())
        for vid in catalog.variables:
            if vid not in names:
                continue
            st.vars[vid] = VarState(
                base=lo,
                revision=g[f"{vid}_revision"][lo:hi],
                available_at=g[f"{vid}_available_at"][lo:hi],
                sha256=g[f"{vid}_sha256"][lo:hi],
                digest=g[f"{vid}_digest"][lo:hi],
                archive_slot=g[f"{vid}_archive_slot"][:],
                archive_revision=g[f"{vid}_archive_revision"][:],
                archive_available_at=g[f"{vid}_archive_available_at"][:],
                archive_sha256=g[f"{vid}_archive_sha256"][:],
                archive_digest=g[f"{vid}_archive_digest"][:],
            )
        return st

    # -- history ------------------------------------------------------------------------------------
    def log(self, dataset: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits on the main branch, newest first (only those touching ``dataset`` when given)."""
        out = []
        for snap in self.repo.ancestry(branch=BRANCH):
            meta = dict(snap.metadata or {})
            if dataset is not None and meta.get("dataset") != dataset:
                continue
            out.append({
                "snapshot": snap.id,
                "time": iso(snap.written_at),
                "message": snap.message,
                "kind": meta.get("kind"),
                "files": [f.get("name") for f in meta.get("files", [])],
                "metadata": meta,
            })
            if limit and len(out) >= limit:
                break
        return out


# -- reading -----------------------------------------------------------------------------------------

class _SlotView:
    """A zarr array seen through a slot-index map (lazy, for dask): row i reads ``source[rows[i]]``
    where rows < 0 give NaN. Avoids building a dask graph over the whole pre-sized axis."""

    def __init__(self, main, archive, rows: np.ndarray, n_main: int, fill=np.nan):
        self.main, self.archive, self.rows, self.n_main, self.fill = main, archive, rows, n_main, fill
        self.shape = (len(rows), *main.shape[1:])
        self.dtype = np.dtype(main.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        rows = self.rows[key[0]]
        scalar = np.ndim(rows) == 0
        rows = np.atleast_1d(rows)
        rest = tuple(k if isinstance(k, slice) else slice(k, k + 1) for k in key[1:])
        shape_rest = tuple(len(range(*s.indices(n))) for s, n in zip(rest, self.shape[1:]))
        out = np.full((len(rows), *shape_rest), self.fill, dtype=self.dtype)
        for i, r in enumerate(rows):
            if r < 0:
                continue
            src = self.main if r < self.n_main else self.archive
            out[i] = src[(int(r if r < self.n_main else r - self.n_main), *rest)]
        return out[0] if scalar else out


def _select_revisions(vs: VarState, lo: int, hi: int, n_main: int, as_of_s: int | None):
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
    if not store.exists():
        raise BadInputError(f"the observation store {store.location} does not exist yet; ingest some files first")
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
        idx = _filled_slots(state, as_of_s)
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
        rows, rev, av = _select_revisions(vs, lo, hi, cap, as_of_s)
        view = _SlotView(main, g[f"{vid}_archive"], rows, cap)
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
                v = _SlotView(src, src, qrows, cap, fill=fill)
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


def _filled_slots(state: DatasetState, as_of_s: int | None) -> np.ndarray:
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
        rows, rev, av = _select_revisions(vs, state.base, state.hi, state.capacity, as_of_s)
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


def store_for(settings) -> ObservationStore:
    return ObservationStore(settings.observation_store, lock_timeout=settings.lock_timeout)


__all__ = ["ObservationStore", "open_observations", "dataset_summary", "store_for"]
