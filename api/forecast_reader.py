"""Fast read access to the forecast store for the API.

Per forecast-store snapshot, each run group is opened once (``RunView``): arrays, lead times, the
regular grid (indexed arithmetically from lon/lat through a cached pyproj transformer), the written
inits and their provenance. The branch head is looked up at most every ``api_head_check_s`` seconds,
so a new forecast is visible within about a second. A point query reads one chunk per array (all
lead times of a 32 x 32 tile; a point query's chunks are fetched concurrently with zarr's async API);
decoded chunks stay in a small LRU keyed by (run, array, init,
produced_at, tile), so a re-written init is never served stale.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api._common import HeadReader
from api.geo import Grid, iso
from api.problems import Problem

PRODUCTION = "production"
ANNOTATIONS = ("ok", "extreme", "implausible", "degraded_inputs")
CHUNK_CACHE_BYTES = 256 * 2**20


class ChunkCache:
    """A byte-bounded LRU of decoded chunks (thread-safe)."""

    def __init__(self, max_bytes: int = CHUNK_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._d: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            a = self._d.get(key)
            if a is not None:
                self._d.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return a

    def put(self, key: tuple, a: np.ndarray) -> None:
        with self._lock:
            if key in self._d:
                return
            self._d[key] = a
            self._bytes += a.nbytes
            while self._bytes > self.max_bytes and self._d:
                _, old = self._d.popitem(last=False)
                self._bytes -= old.nbytes


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
    _prov: dict[int, dict] = field(default_factory=dict)
    _times: dict[int, list[str]] = field(default_factory=dict)
    _produced: dict[int, int] = field(default_factory=dict)
    _memo: dict[tuple, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._produced = dict(zip(self.written.tolist(), self.produced.tolist()))

    def memo(self, key: tuple, make):
        """Per-view memo of small derived values (months of valid times, records, ...)."""
        v = self._memo.get(key)
        if v is None:
            if len(self._memo) > 4096:
                self._memo.clear()
            v = self._memo[key] = make()
        return v

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
        p = self._prov.get(idx)
        if p is None:
            text = str(self.group["provenance"][idx])
            p = json.loads(text) if text else {}
            self._prov[idx] = p
        return p or None

    def valid_times(self, idx: int) -> list[str]:
        t = self._times.get(idx)
        if t is None:
            base = self.init_s(idx)
            t = [iso(base + int(s)) for s in self.leads]
            self._times[idx] = t
        return t

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
            d = self._memo.get("default-choice")
            if d is None:
                mask = np.ones(len(self.leads), bool)
                mask.flags.writeable = False
                d = self._memo["default-choice"] = (int(self.written[-1]), mask)
            return d
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


class ForecastReader(HeadReader):
    _what = "forecast store"

    def __init__(self, settings, services=None):
        super().__init__(settings, services)
        self._views: dict[tuple[str, str], RunView] = {}
        self._runs: list[tuple[str, str]] | None = None
        self.chunks = ChunkCache()

    # -- store and snapshot -----------------------------------------------------------------------
    def _open_store(self):
        from forecast.stores.forecasts import ForecastStore

        return ForecastStore(self.settings.forecast_store_location, lock_timeout=self.settings.lock_timeout)

    def _location(self) -> str:
        return self.settings.forecast_store_location

    def _forget(self) -> None:
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
        with self._lock:
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
        with self._lock:
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
        for v in variables:
            arrays[v] = g[v]
            arrays[f"{v}_annotation"] = g[f"{v}_annotation"]
        ch = arrays[variables[0]].chunks
        return RunView(snapshot=head, dataset=dataset, run=run, grid=grid, variables=variables,
                       units=dict(attrs.get("units") or {}), attrs=attrs, leads=g["lead_time"][:].astype("int64"),
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
