"""An Icechunk repository at one location (local path, s3://bucket/prefix or memory://): sessions, the
branch head, the writer lock, the codec the catalogs choose, and `SlotView` (reads through an index map).
The observation and forecast stores build on it.

Commits on local storage are serialised by a file lock (Icechunk's local storage does not arbitrate
concurrent commits); on object storage Icechunk's own conflict detection does.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from forecast.catalog import Catalog
from forecast.errors import StoreBusyError
from forecast.timeutil import iso

BRANCH = "main"
#: Icechunk's in-memory caches, bounded: with its defaults every commit's manifests stay cached, so a
#: long-running writer grows by megabytes per commit (measured: 88 -> 967 MiB over 300 commits of a
#: 256 x 256 store of six arrays; 89 -> 271 MiB with a bound of a million references, flat from the 200th
#: on). A reference costs roughly 175 bytes in the cache (a memray trace of the worker), and a worker holds
#: four repositories (its stores and the monitor's): 50,000 references (~9 MB each) hold a few versions
#: of the newest manifest split of a 1000 x 1000 forecast (12 inits x 1,408 references); older ones are
#: read again when asked for. (24-hour replay, worker and model process: 909 -> 1,111 MiB with 250,000 and
#: 4-hour init splits, 903 -> 1,063 MiB with 50,000 and 1-hour splits.)
CACHE_CHUNK_REFS = 50_000
CACHE_SNAPSHOT_NODES = 20_000
#: manifests split along the time axes (in chunks of one slot / init): a commit rewrites only the manifest
#: of the split it touched, so writing (and caching) a forecast or a slot costs the same on the first day of
#: a store and after a year; without it every commit rewrote every reference of the array (1,408 per init
#: for a 1000 x 1000 forecast of 22 arrays: 12 million after a month). A day of 5-minute slots per split;
#: an hour of inits (a forecast init has ~100x more chunks than an observation slot).
MANIFEST_SPLIT = {"time": 288, "init_time": 12}


def codec_for(catalog: Catalog):
    """The Blosc codec the catalog's ``storage`` section chose (values, flags and archives alike)."""
    from zarr.codecs import BloscCodec

    s = catalog.storage
    shuffle = {"byte": "shuffle", "bit": "bitshuffle", "none": "noshuffle"}[s.shuffle]
    return BloscCodec(cname=s.cname, clevel=s.clevel, shuffle=shuffle, blocksize=s.blocksize)


def quiet_icechunk() -> None:
    # Local storage warns about concurrent commits on every open; we serialise commits with a lock.
    import icechunk

    with contextlib.suppress(Exception):
        icechunk.set_logs_filter("error")


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

            quiet_icechunk()
            if self.is_local:
                Path(self.location.removeprefix("file://")).parent.mkdir(parents=True, exist_ok=True)
            with self.lock():
                caching = icechunk.CachingConfig(num_chunk_refs=CACHE_CHUNK_REFS,
                                                 num_snapshot_nodes=CACHE_SNAPSHOT_NODES)
                split = icechunk.ManifestSplittingConfig.from_dict({icechunk.ManifestSplitCondition.AnyArray(): {
                    icechunk.ManifestSplitDimCondition.DimensionName(d): n for d, n in MANIFEST_SPLIT.items()}})
                self._repo = icechunk.Repository.open_or_create(
                    self._storage(), config=icechunk.RepositoryConfig(
                        caching=caching, manifest=icechunk.ManifestConfig(splitting=split)))
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


class SlotView:
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
