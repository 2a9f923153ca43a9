"""Fast read access to the forecast store for the API.

Per forecast-store snapshot, each run group is opened once (``RunView``): arrays, lead times, the
regular grid (indexed arithmetically from lon/lat through a cached pyproj transformer), the written
inits and their provenance. The branch head is looked up at most every ``api_head_check_s`` seconds,
so a new forecast is visible within about a second. A point query reads one chunk per array (all
lead times of a 128 x 128 tile (32 x 32 in runs written before); a point query's chunks are fetched concurrently with zarr's async API);
decoded chunks stay in a byte-bounded LRU keyed by (run, array, init, produced_at, tile), so a
re-written init is never served stale.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from cachetools import LRUCache

from api.grid import Grid
from api.problems import Problem
from api.readers.base import HeadReader
from forecast.stores import PRODUCTION
from forecast.timeutil import iso

CHUNK_CACHE_BYTES = 256 * 2**20
MEMO_ITEMS = 4096  # small derived values per view (provenance, valid times, templates, ...)


def _nbytes(a: np.ndarray) -> int:
    return a.nbytes


class ChunkCache:
    """Decoded chunks, least recently used out first, bounded by their bytes (``cachetools.LRUCache``
    sized by ``nbytes``, behind a lock: cachetools' caches are not thread-safe)."""

    def __init__(self, max_bytes: int = CHUNK_CACHE_BYTES):
        self._lru: LRUCache = LRUCache(maxsize=max_bytes, getsizeof=_nbytes)
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            return self._lru.get(key)

    def put(self, key: tuple, a: np.ndarray) -> None:
        with self._lock:
            if key not in self._lru and a.nbytes <= self._lru.maxsize:
                self._lru[key] = a


@dataclass
class RunView:
    """One (dataset, run) group of the forecast store at one snapshot."""

    snapshot: str
    dataset: str
    run: str
    grid: Grid
    variables: list[str]
    units: dict[str, str]
    attrs: dict[str, Any]
    leads: np.ndarray  # int64 seconds
    start_s: int
    step_s: int
    written: np.ndarray  # absolute init indices holding a forecast, ascending
    produced: np.ndarray  # produced_at of those
    arrays: dict[str, Any]
    tile: tuple[int, int]
    group: Any
    #: the exceedance probabilities the run holds: name -> {variable, threshold, threshold_units} (none in a
    #: run written before probabilities were stored)
    exceedance: dict[str, dict] = field(default_factory=dict)
    _produced: dict[int, int] = field(default_factory=dict)
    _memo: LRUCache = field(default_factory=lambda: LRUCache(MEMO_ITEMS))
    _memo_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._produced = dict(zip(self.written.tolist(), self.produced.tolist()))

    def memo(self, key: tuple, make: Callable[[], Any]):
        """Per-view memo of small derived values (provenance, valid times, months, records, templates):
        ``make()`` once per key while the key stays among the ``MEMO_ITEMS`` most recently used."""
        with self._memo_lock:
            v = self._memo.get(key)
        if v is None:
            v = make()
            self.remember(key, v)
        return v

    def remember(self, key: tuple, value: Any) -> None:
        """Set (or replace) a memo entry."""
        with self._memo_lock:
            self._memo[key] = value

    @property
    def parameters(self) -> list[str]:
        """Every parameter the run serves: its variables, then their exceedance probabilities."""
        return [*self.variables, *self.exceedance]

    @property
    def collection_id(self) -> str:
        return f"{self.dataset}.forecast" if self.run == PRODUCTION else f"{self.dataset}.forecast.{self.run}"

    def init_s(self, idx: int) -> int:
        return self.start_s + idx * self.step_s

    @property
    def latest(self) -> int | None:
        return int(self.written[-1]) if len(self.written) else None

    def produced_at(self, idx: int) -> int:
        return self._produced.get(idx, 0)

    def provenance(self, idx: int) -> dict | None:
        """The provenance record of the init at ``idx`` (None when it has none)."""
        return self.memo(("provenance", idx), lambda: self._read_provenance(idx)) or None

    def _read_provenance(self, idx: int) -> dict:
        text = str(self.group["provenance"][idx])
        return json.loads(text) if text else {}

    def valid_times(self, idx: int) -> list[str]:
        """ISO valid times of every lead time of the init at ``idx``."""
        return self.memo(("valid-times", idx), lambda: [iso(self.init_s(idx) + int(s)) for s in self.leads])

    def init_index_of(self, t_s: int, param: str) -> int:
        off = t_s - self.start_s
        idx = off // self.step_s if off >= 0 and off % self.step_s == 0 else None
        if idx is None or self.produced_at(idx) == 0:
            raise Problem(404, f"{param}: there is no forecast initialised at {iso(t_s)} in {self.collection_id}; "
                               f"inits available: {self.inits_text()}")
        return int(idx)

    def inits_text(self) -> str:
        if not len(self.written):
            return "none"
        a, b = iso(self.init_s(int(self.written[0]))), iso(self.init_s(int(self.written[-1])))
        return f"{len(self.written)} from {a} to {b} every {self.step_s // 60} min"

    def choose(self, init_time: int | None, interval: tuple[int | None, int | None] | None) -> tuple[int, np.ndarray]:
        """(init index, boolean mask over lead times) for a query's init_time / datetime (the mask is
        read-only: the default choice, the latest init with all lead times, is shared)."""
        if init_time is None and interval is None and len(self.written):
            return self.memo(("default-choice",), self._default_choice)
        if not len(self.written):
            raise Problem(404, f"{self.collection_id} holds no forecast yet")
        if init_time is not None:
            idx = self.init_index_of(init_time, "init_time")
        else:
            idx = int(self.written[-1])
            if interval is not None:
                lo, hi = interval
                # the latest init whose lead times reach into the interval
                first_valid = self.start_s + self.written * self.step_s + int(self.leads.min())
                last_valid = self.start_s + self.written * self.step_s + int(self.leads.max())
                ok = np.ones(len(self.written), bool)
                if lo is not None:
                    ok &= last_valid >= lo
                if hi is not None:
                    ok &= first_valid <= hi
                cand = np.flatnonzero(ok)
                if not len(cand):
                    raise Problem(404, f"datetime: no forecast of {self.collection_id} has valid times in the interval; "
                                       f"inits available: {self.inits_text()} with lead times "
                                       f"{int(self.leads.min()) // 60}..{int(self.leads.max()) // 60} min")
                idx = int(self.written[cand[-1]])
        valid = self.init_s(idx) + self.leads
        mask = np.ones(len(self.leads), bool)
        if interval is not None:
            lo, hi = interval
            if lo is not None:
                mask &= valid >= lo
            if hi is not None:
                mask &= valid <= hi
            if not mask.any():
                raise Problem(404, f"datetime: the forecast initialised at {iso(self.init_s(idx))} has no valid time in "
                                   f"the interval (it covers {iso(int(valid.min()))}..{iso(int(valid.max()))})")
        return idx, mask


    def _default_choice(self) -> tuple[int, np.ndarray]:
        mask = np.ones(len(self.leads), bool)
        mask.flags.writeable = False
        return int(self.written[-1]), mask


class ForecastReader(HeadReader):
    """The forecast store as the API reads it: runs, one ``RunView`` per run and snapshot, chunk reads."""

    what = "forecast store"

    def __init__(self, settings, services=None):
        super().__init__(settings, services)
        self._views: dict[tuple[str, str], RunView] = {}
        self._runs: list[tuple[str, str]] | None = None
        self.chunks = ChunkCache()

    # -- store and snapshot -----------------------------------------------------------------------
    def open_store(self):
        from forecast.stores import ForecastStore

        return ForecastStore(self.settings.forecast_store_location, lock_timeout=self.settings.lock_timeout)

    def location(self) -> str:
        return self.settings.forecast_store_location

    def forget(self) -> None:
        self._views = {}
        self._runs = None
        self._session = None

    def _session_for(self, head: str):
        s = getattr(self, "_session", None)
        if s is None or s.snapshot_id != head:
            s = self.store.readonly(head)
            self._session = s
        return s

    def runs(self) -> list[tuple[str, str]]:
        head = self.head()
        if head is None:
            return []
        with self.lock:
            if self._runs is None:
                import zarr

                root = zarr.open_group(self._session_for(head).store, mode="r")
                runs = []
                for d, g in sorted(root.groups()):
                    runs.extend((d, r) for r, _ in sorted(g.groups()))
                self._runs = runs
            return self._runs

    def view(self, dataset: str, run: str = PRODUCTION) -> RunView:
        head = self.head()
        key = (dataset, run)
        v = self._views.get(key)
        if v is not None and v.snapshot == head:
            return v
        if head is None:
            raise Problem(404, f"the forecast store {self.settings.forecast_store_location} holds no forecasts yet")
        if key not in self.runs():
            known = ", ".join(f"{d}/{r}" for d, r in self.runs()) or "none"
            raise Problem(404, f"no forecasts of {dataset!r} run {run!r} (the store holds: {known})")
        with self.lock:
            v = self._views.get(key)
            if v is None or v.snapshot != head:
                v = self._open(head, dataset, run)
                self._views[key] = v
            return v

    def _open(self, head: str, dataset: str, run: str) -> RunView:
        import zarr

        g = zarr.open_group(self._session_for(head).store, path=f"{dataset}/{run}", mode="r")
        attrs = dict(g.attrs)
        variables = list(attrs["variables"])
        grid = Grid.from_axes(attrs.get("crs") or attrs.get("crs_wkt"), g["x"][:], g["y"][:])
        first = int(attrs.get("first_init_index", -1))
        latest = int(attrs.get("latest_init_index", -1))
        if first >= 0 and latest >= first:
            produced = g["produced_at"][first:latest + 1]
            nz = np.flatnonzero(produced != 0)
            written, prod = first + nz, produced[nz]
        else:
            written, prod = np.zeros(0, "int64"), np.zeros(0, "int64")
        arrays = {}
        exceedance = dict(attrs.get("exceedance") or {})
        for v in [*variables, *exceedance]:
            arrays[v] = g[v]
            arrays[f"{v}_annotation"] = g[f"{v}_annotation"]
        ch = arrays[variables[0]].chunks
        units = {**dict(attrs.get("units") or {}), **{n: "1" for n in exceedance}}
        return RunView(snapshot=head, dataset=dataset, run=run, grid=grid, variables=variables,
                       units=units, attrs=attrs, exceedance=exceedance, leads=g["lead_time"][:].astype("int64"),
                       start_s=int(attrs["time_start_s"]), step_s=int(attrs["time_step_s"]),
                       written=written.astype("int64"), produced=prod.astype("int64"), arrays=arrays,
                       tile=(int(ch[2]), int(ch[3])), group=g)

    # -- reading ----------------------------------------------------------------------------------
    def chunk_key(self, view: RunView, name: str, idx: int, iy: int, ix: int) -> tuple:
        ty, tx = view.tile
        return (view.dataset, view.run, name, idx, view.produced_at(idx), iy // ty, ix // tx)

    def cached_point(self, view: RunView, name: str, idx: int, iy: int, ix: int) -> np.ndarray | None:
        c = self.chunks.get(self.chunk_key(view, name, idx, iy, ix))
        if c is None:
            return None
        ty, tx = view.tile
        return c[:, iy % ty, ix % tx]

    def read_point(self, view: RunView, name: str, idx: int, iy: int, ix: int) -> np.ndarray:
        """All lead times of one array at one cell (reads and caches the cell's chunk)."""
        key = self.chunk_key(view, name, idx, iy, ix)
        ty, tx = view.tile
        c = self.chunks.get(key)
        if c is None:
            cy, cx = iy // ty, ix // tx
            c = np.asarray(view.arrays[name][idx, :, cy * ty:(cy + 1) * ty, cx * tx:(cx + 1) * tx])
            self.chunks.put(key, c)
        return c[:, iy % ty, ix % tx]

    async def read_points(self, view: RunView, names: list[str], idx: int, iy: int, ix: int) -> dict[str, np.ndarray]:
        """``read_point`` of several arrays at once, from the caller's event loop: the chunks are fetched
        concurrently through zarr's async API (no worker-thread hop, no waiting for one chunk before asking
        for the next); the event loop is not blocked while the store reads."""
        ty, tx = view.tile
        cy, cx = iy // ty, ix // tx
        sel = (idx, slice(None), slice(cy * ty, (cy + 1) * ty), slice(cx * tx, (cx + 1) * tx))
        got = await asyncio.gather(*(view.arrays[n].async_array.getitem(sel) for n in names))
        out = {}
        for n, c in zip(names, got):
            c = np.asarray(c)
            self.chunks.put(self.chunk_key(view, n, idx, iy, ix), c)
            out[n] = c[:, iy % ty, ix % tx]
        return out

    def read_window(self, view: RunView, name: str, idx: int, iy0: int, iy1: int, ix0: int, ix1: int) -> np.ndarray:
        return np.asarray(view.arrays[name][idx, :, iy0:iy1, ix0:ix1])
