"""What the console reads, in one place: the stores (heads looked up at most every ``api_head_check_s``),
the review queue, the registry and the users through the app's ``Services``, and the arrays behind the
pages (an item's surroundings, a forecast's fields, a dataset's last 24 hours), cached per store snapshot.

Only package-level APIs of ``forecast`` are used here, so that the restructure of its modules leaves the
console alone. Everything is synchronous: handlers call it through ``anyio.to_thread``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from cachetools import LRUCache

from api.console import render
from api.console.quality import DatasetQuality, expected_latency, strip
from forecast.stores import forecast_store_for, open_observations, store_for
from forecast.timeutil import iso, to_epoch

log = logging.getLogger(__name__)

FLAG_NAMES = {code: name for code, (name, _, _) in render.FLAG_STATES.items()}
WINDOW_MIN, WINDOW_MAX, WINDOW_MARGIN = 24, 96, 6  # cells around an item shown on its frames
FRAMES_MAX, FRAMES_MARGIN = 24, 2  # slots of an item's animation
QUEUE_CACHE_S = 2.0  # the review queue's list is refreshed (in the background) when older than this
QUEUE_STALE_S = 30.0  # and read again before answering when older than this
QUALITY_HOURS = 24
SLOT_CACHE_BYTES = 256 * 2**20  # whole-grid slots kept per process


class _Cache:
    """A small thread-safe LRU."""

    def __init__(self, size: int):
        self._c: LRUCache = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key, make):
        with self._lock:
            hit = self._c.get(key, _MISS)
        if hit is not _MISS:
            return hit
        value = make()
        with self._lock:
            self._c[key] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._c.clear()


_MISS = object()


class _ByteCache:
    """A thread-safe LRU bounded by bytes (whole-grid slots: ~0.6 MB at 256 x 256, ~9 MB at 1000 x 1000)."""

    def __init__(self, max_bytes: int):
        self._c: LRUCache = LRUCache(maxsize=max_bytes, getsizeof=lambda e: e[1])
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._c.get(key)
        return None if hit is None else hit[0]

    def put(self, key, value, nbytes: int) -> None:
        with self._lock:
            if nbytes <= self._c.maxsize:
                self._c[key] = (value, nbytes)

    def clear(self) -> None:
        with self._lock:
            self._c.clear()


class _Head:
    """A store opened on first use, its head looked up at most every ``every_s`` seconds."""

    def __init__(self, make, every_s: float):
        self._make, self.every_s = make, every_s
        self._store = None
        self._head: str | None = None
        self._at = -1e9
        self._lock = threading.Lock()

    @property
    def store(self):
        if self._store is None:
            self._store = self._make()
        return self._store

    def head(self) -> str | None:
        now = time.monotonic()
        if now - self._at < self.every_s:
            return self._head
        with self._lock:
            head = None
            try:
                if self.store.exists():
                    head = self.store.head()
            except Exception as e:  # noqa: BLE001 - an unreadable store reads as "no data yet"
                log.warning("console: store %s cannot be read: %s", getattr(self.store, "location", "?"), e)
            self._head, self._at = head, now
            return head

    def refresh(self) -> None:
        self._at = -1e9


# -- what the pages show -----------------------------------------------------------------------------------

@dataclass
class ItemContext:
    """An item's surroundings: frames (slots) x window (cells) of values and flags, from one snapshot."""

    snapshot: str
    dataset: str
    variable: str
    units: str
    times: np.ndarray  # (T,) epoch seconds of the frames
    revision: np.ndarray  # (T,) revision shown per frame (-1: nothing arrived)
    available_at: list[str | None]
    window: tuple[int, int, int, int]  # iy0, iy1, ix0, ix1 (end exclusive)
    values: np.ndarray  # (T, Y, X) float32
    qc: np.ndarray  # (T, Y, X) uint8
    tests: np.ndarray  # (T, Y, X) uint32
    in_item: np.ndarray  # (T, Y, X) bool
    peak_frame: int
    scale_factor: int


@dataclass
class ForecastField:
    snapshot: str
    dataset: str
    run: str
    variable: str
    units: str
    init: datetime
    leads_s: list[int]
    values: np.ndarray  # (L, Y, X) float32
    annotations: np.ndarray  # (L, Y, X) uint8
    provenance: dict | None
    scale_factor: int


class ConsoleData:
    def __init__(self, settings, services):
        self.settings = settings
        self.services = services
        every = float(getattr(settings, "api_head_check_s", 1.0))
        self.obs = _Head(lambda: store_for(settings), every)
        self.fc = _Head(lambda: forecast_store_for(settings), every)
        self._contexts = _Cache(64)
        self._pngs = _Cache(512)
        self._fields = _Cache(4)
        self._quality = _Cache(16)
        self._meta = _Cache(64)
        self._slots = _ByteCache(SLOT_CACHE_BYTES)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-prefetch")
        self._prefetching: dict[int, bool] = {}
        self._queue: tuple[float, list] | None = None
        self._queue_lock = threading.Lock()
        self._queue_refreshing = False

    # -- catalogs, queue, registry ---------------------------------------------------------------------------
    def catalogs(self) -> dict:
        return self.services.catalogs()

    def catalog(self, dataset: str):
        return self.catalogs().get(dataset)

    @property
    def queue(self):
        return self.services.queue

    @property
    def registry(self):
        return self.services.registry

    @property
    def users(self):
        return self.services.users

    def all_items(self) -> list:
        """Every review item, most hazardous first, from one query reused while fresh.

        Listing 1,000 items costs ~50 ms (the queue has no count or age filter to ask for): a page never
        waits for it while a list younger than ``QUEUE_STALE_S`` exists; one older than ``QUEUE_CACHE_S`` is
        refreshed in the background. A decision taken here refreshes it at once (``queue_changed``)."""
        now = time.monotonic()
        cached = self._queue
        if cached is not None and now - cached[0] < QUEUE_STALE_S:
            if now - cached[0] > QUEUE_CACHE_S and not self._queue_refreshing:
                self._queue_refreshing = True
                self._pool.submit(self._refresh_queue)
            return cached[1]
        return self._refresh_queue()

    def _refresh_queue(self) -> list:
        try:
            with self._queue_lock:
                items = self.queue.list()
                self._queue = (time.monotonic(), items)
                return items
        finally:
            self._queue_refreshing = False

    def queue_changed(self) -> None:
        """Called after a decision taken here: the next page shows it."""
        self._refresh_queue()

    # -- observations: one lazy dataset per store head, whole-grid slots cached -----------------------------
    def _observations(self, dataset: str):
        """``(head, lazy dataset of the first..last filled slot, {slot epoch: index})`` or None when there is no
        data. Opened once per store head (a cycle's commit), so an item page reads only the chunks it shows."""
        head = self.obs.head()
        if head is None:
            return None

        def make():
            try:
                ds = open_observations(dataset, store=self.obs.store, snapshot=head)
            except Exception as e:  # noqa: BLE001 - "no data" for the pages
                log.info("console: no observations of %s: %s", dataset, e)
                return None
            epochs = ds["time"].values.astype("datetime64[s]").astype("int64")
            return head, ds, {int(t): k for k, t in enumerate(epochs)}

        return self._meta.get(("obs", head, dataset), make)

    def slots(self, dataset: str, variable: str, times) -> dict[int, tuple] | None:
        """Whole-grid ``(values, qc, tests, revision, available_at)`` of ``variable`` at the slot times ``times``
        (epoch s; slots outside the data are absent from the answer). Each slot is read once per store head and
        kept in a byte-bounded cache: an operator stepping through items of one storm reads each slot once."""
        obs = self._observations(dataset)
        if obs is None:
            return None
        head, ds, index = obs
        if variable not in ds:
            return None
        out, todo = {}, []
        for t in times:
            k = index.get(int(t))
            if k is None:
                continue
            hit = self._slots.get((head, dataset, variable, int(t)))
            if hit is not None:
                out[int(t)] = hit
            else:
                todo.append((int(t), k))
        if todo:
            names = [n for n in (variable, f"{variable}_qc", f"{variable}_qc_tests") if n in ds]
            sub = ds[names].isel(time=[k for _, k in todo]).compute(scheduler="synchronous")
            rev = ds[f"{variable}_revision"].values if f"{variable}_revision" in ds.coords else None
            av = ds[f"{variable}_available_at"].values if f"{variable}_available_at" in ds.coords else None
            for j, (t, k) in enumerate(todo):
                values = np.ascontiguousarray(sub[variable].values[j], dtype="float32")
                qc = (np.ascontiguousarray(sub[f"{variable}_qc"].values[j], dtype="uint8") if f"{variable}_qc" in sub
                      else np.full(values.shape, 2, "uint8"))
                tests = (np.ascontiguousarray(sub[f"{variable}_qc_tests"].values[j], dtype="uint32")
                         if f"{variable}_qc_tests" in sub else np.zeros(values.shape, "uint32"))
                a = None if av is None or np.isnat(av[k]) else int(av[k].astype("datetime64[s]").astype("int64"))
                entry = (values, qc, tests, int(rev[k]) if rev is not None else 0, a)
                self._slots.put((head, dataset, variable, t), entry, values.nbytes + qc.nbytes + tests.nbytes)
                out[t] = entry
        return out

    # -- an item's surroundings ------------------------------------------------------------------------------
    def item_context(self, item) -> ItemContext | None:
        """Values and flags around an item (None when the store or the dataset is not there)."""
        head = self.obs.head()
        if head is None:
            return None
        return self._contexts.get((head, item.id), lambda: self._read_context(item, head))

    def prefetch(self, item_id: int | None) -> None:
        """Read the surroundings of the item an operator will probably open next, in the background."""
        if item_id is None or self._prefetching.get(item_id):
            return
        self._prefetching[item_id] = True

        def work():
            try:
                self.item_context(self.queue.get(item_id))
            except Exception as e:  # noqa: BLE001 - a prefetch that fails is simply not there
                log.debug("console: prefetch of item %s failed: %s", item_id, e)
            finally:
                self._prefetching.pop(item_id, None)

        self._pool.submit(work)

    def _read_context(self, item, head: str) -> ItemContext | None:
        cat = self.catalog(item.dataset)
        if cat is None or item.variable not in cat.variables:
            return None
        t = cat.time
        s_first = t.slot_of(to_epoch(item.t_first))
        s_last = t.slot_of(to_epoch(item.t_last))
        s_peak = t.slot_of(to_epoch(item.peak[0]))
        if s_first is None or s_last is None:
            return None
        s_peak = s_peak if s_peak is not None else s_first
        lo, hi = max(0, s_first - FRAMES_MARGIN), s_last + FRAMES_MARGIN
        if hi - lo + 1 > FRAMES_MAX:
            lo = max(0, min(s_peak - FRAMES_MAX // 2, s_last - FRAMES_MAX + 1))
            hi = lo + FRAMES_MAX - 1
        ny, nx = cat.grid.shape
        iy0, iy1, ix0, ix1 = item.bbox
        _, piy, pix = item.peak
        wy = _window(iy0, iy1, piy, ny)
        wx = _window(ix0, ix1, pix, nx)
        times = t.label(np.arange(lo, hi + 1)).astype("int64")
        v = item.variable
        try:
            got = self.slots(item.dataset, v, times)
        except Exception as e:  # noqa: BLE001 - the page says the surroundings cannot be read
            log.warning("console: observations of item %s cannot be read: %s", item.id, e)
            return None
        if got is None:
            return None
        shape = (len(times), wy[1] - wy[0], wx[1] - wx[0])
        values = np.full(shape, np.nan, "float32")
        qc = np.full(shape, 9, "uint8")  # nothing arrived: MISSING
        tests = np.zeros(shape, "uint32")
        rev = np.full(len(times), -1, int)
        available: list[str | None] = [None] * len(times)
        for k, ts in enumerate(times):
            hit = got.get(int(ts))
            if hit is None:
                continue
            values[k] = hit[0][wy[0]:wy[1], wx[0]:wx[1]]
            qc[k] = hit[1][wy[0]:wy[1], wx[0]:wx[1]]
            tests[k] = hit[2][wy[0]:wy[1], wx[0]:wx[1]]
            rev[k] = hit[3]
            available[k] = iso(hit[4]) if hit[4] is not None else None
        in_item = np.zeros(shape, bool)
        cells = item.cells if getattr(item, "cells", None) is not None else np.zeros((0, 3), "int64")
        pos = {int(s): k for k, s in enumerate(times)}
        for ts, cy, cx in cells:
            k = pos.get(int(ts))
            if k is not None and wy[0] <= cy < wy[1] and wx[0] <= cx < wx[1]:
                in_item[k, cy - wy[0], cx - wx[0]] = True
        return ItemContext(snapshot=head, dataset=item.dataset, variable=v, units=cat.variables[v].units,
                           times=times, revision=rev, available_at=available,
                           window=(wy[0], wy[1], wx[0], wx[1]), values=values, qc=qc, tests=tests, in_item=in_item,
                           peak_frame=pos.get(int(t.label(s_peak)), 0),
                           scale_factor=render.upscale_factor(shape[1], shape[2]))

    def frame_png(self, item, ctx: ItemContext, k: int) -> bytes:
        cat = self.catalog(item.dataset)
        scale = render.scale_for(item.variable, cat.variables[item.variable])
        return self._pngs.get(("frame", ctx.snapshot, item.id, k), lambda: render.field_png(
            ctx.values[k], scale, flags=ctx.qc[k], scale_factor=ctx.scale_factor)[0])

    def overview_png(self, item) -> bytes | None:
        """The whole grid at the item's peak slot, the item's extent framed."""
        head = self.obs.head()
        cat = self.catalog(item.dataset)
        if head is None or cat is None:
            return None

        def make():
            t = to_epoch(item.peak[0])
            got = self.slots(item.dataset, item.variable, [t]) or {}
            if t not in got:
                return None
            values, qc = got[t][0], got[t][1]
            scale = render.scale_for(item.variable, cat.variables[item.variable])
            return render.field_png(values, scale, flags=qc, box=item.bbox,
                                    scale_factor=render.upscale_factor(*cat.grid.shape, target=256))[0]

        return self._pngs.get(("overview", head, item.id), make)

    def clear_caches(self) -> None:
        """Forget everything read (benchmarks measure the first read of a page this way)."""
        for c in (self._contexts, self._pngs, self._fields, self._quality, self._meta, self._slots):
            c.clear()
        self._queue = None

    # -- forecasts -------------------------------------------------------------------------------------------
    def forecast_runs(self, dataset: str) -> list[str]:
        """The runs of a dataset in the forecast store (per head, all datasets read at once)."""
        head = self.fc.head()
        if head is None:
            return []

        def read():
            try:
                pairs = self.fc.store.runs(snapshot=head)
            except Exception as e:  # noqa: BLE001 - an unreadable store reads as "no forecasts yet"
                log.warning("console: forecast runs cannot be read: %s", e)
                pairs = []
            out: dict[str, list[str]] = {}
            for d, r in pairs:
                out.setdefault(d, []).append(r)
            return out

        return self._meta.get(("runs", head), read).get(dataset, [])

    def forecast_inits(self, dataset: str, run: str) -> list[int]:
        head = self.fc.head()
        if head is None:
            return []
        return self._meta.get(("inits", head, dataset, run), lambda: [
            int(x) for x in self.fc.store.inits(dataset, run, snapshot=head).astype("int64")])

    def forecast_field(self, dataset: str, run: str, init: int | None, variable: str | None) -> ForecastField | None:
        """One forecast (all leads) of a run: the latest init unless ``init`` is given; None when there is none."""
        head = self.fc.head()
        cat = self.catalog(dataset)
        if head is None or cat is None:
            return None
        if init is None:
            inits = self.forecast_inits(dataset, run)
            if not inits:
                return None
            init = inits[-1]
        return self._fields.get((head, dataset, run, init, variable),
                                lambda: self._read_field(head, cat, run, init, variable))

    def _read_field(self, head, cat, run, init, variable) -> ForecastField | None:
        ds = self.fc.store.open(cat.id, run, snapshot=head)
        variables = [v for v in ds.data_vars if not v.endswith("_annotation")]
        if not variables:
            return None
        v = variable if variable in variables else variables[0]
        when = np.datetime64(init, "s").astype("datetime64[ns]")
        if when not in ds["init_time"].values:
            return None
        one = ds[[v, f"{v}_annotation"]].sel(init_time=when).compute(scheduler="synchronous")
        leads = [int(x) for x in ds["lead_time"].values.astype("timedelta64[s]").astype("int64")]
        values = one[v].values.astype("float32")
        prov = self.fc.store.provenance(cat.id, iso(init), run, snapshot=head)
        units = cat.variables[v].units if v in cat.variables else str(one[v].attrs.get("units", ""))
        return ForecastField(snapshot=head, dataset=cat.id, run=run, variable=v, units=units,
                             init=datetime.fromtimestamp(init, tz=timezone.utc), leads_s=leads, values=values,
                             annotations=one[f"{v}_annotation"].values.astype("uint8"), provenance=prov,
                             scale_factor=render.upscale_factor(*values.shape[1:]))

    def forecast_png(self, f: ForecastField, k: int) -> bytes:
        cat = self.catalog(f.dataset)
        var = cat.variables.get(f.variable) if cat is not None else None
        scale = render.scale_for(f.variable, var) if var is not None else render._scale(
            f.variable, f.units, "", float(np.nanmin(f.values)), float(np.nanmax(f.values)))
        return self._pngs.get(("fc", f.snapshot, f.dataset, f.run, to_epoch(f.init), f.variable, k),
                              lambda: render.field_png(f.values[k], scale, annotations=f.annotations[k],
                                                       scale_factor=f.scale_factor)[0])

    def observed_at(self, dataset: str, variable: str, times: list[int], iy: int, ix: int) -> list[dict]:
        """Observations (latest revision) and flags of one cell at the given slot times, as they have arrived."""
        out = [{"time": t, "value": None, "flag": None, "revision": -1} for t in times]
        try:
            got = self.slots(dataset, variable, times) or {}
        except Exception as e:  # noqa: BLE001 - no observations yet: the series shows the forecast alone
            log.info("console: no observations of %s for the series: %s", dataset, e)
            return out
        for row in out:
            hit = got.get(row["time"])
            if hit is not None and hit[3] >= 0:
                x = float(hit[0][iy, ix])
                row.update(value=None if math.isnan(x) else x, flag=int(hit[1][iy, ix]), revision=int(hit[3]))
        return out

    # -- data quality ----------------------------------------------------------------------------------------
    def quality(self, dataset: str, *, now: datetime | None = None) -> DatasetQuality | None:
        cat = self.catalog(dataset)
        if cat is None or cat.time.step_seconds is None:
            return None
        head = self.obs.head()
        now = now or datetime.now(timezone.utc)
        now_slot = math.floor((to_epoch(now) - cat.time.start_s) / cat.time.step_seconds)
        return self._quality.get((head, dataset, now_slot), lambda: self._read_quality(cat, head, now))

    def _read_quality(self, cat, head, now: datetime) -> DatasetQuality:
        step = int(cat.time.step_seconds)
        latency_s, source = expected_latency(cat)
        n = QUALITY_HOURS * 3600 // step
        now_s = to_epoch(now)
        hi = max(0, math.floor((now_s - cat.time.start_s) / step))
        q = DatasetQuality(dataset=cat.id, title=cat.title, step_s=step, expected_latency_s=latency_s,
                           latency_source=source, start=0, end=0, slot_times=[])
        ds = None
        first = last = None
        if head is not None:
            try:
                ds = open_observations(cat.id, store=self.obs.store, snapshot=head)  # first..last filled slot
                if ds.sizes.get("time", 0):
                    tt = ds["time"].values.astype("datetime64[s]").astype("int64")
                    first, last = int(tt[0]), int(tt[-1])
            except Exception as e:  # noqa: BLE001 - no data: the strip is all missing
                log.info("console: %s has no observations yet: %s", cat.id, e)
                ds = None
        q.last_slot = last
        if last is not None and last < cat.time.start_s + (hi - n + 1) * step:
            # nothing in the last 24 h: show the 24 h before the last data, and say the feed is stale
            q.stale = True
            hi = cat.time.slot_of(last)
        lo = max(0, hi - n + 1)
        times = [int(x) for x in cat.time.label(np.arange(lo, hi + 1))]
        q.start, q.end, q.slot_times = times[0], times[-1], times
        q.ticks = [times[min(len(times) - 1, k * (len(times) - 1) // 4)] for k in range(5)]
        if ds is not None:
            ds = open_observations(cat.id, store=self.obs.store, snapshot=head, start=iso(times[0]), end=iso(times[-1]))
        for v in cat.variables:
            q.strips.append(strip(ds, v, times, step, latency_s, now_s, first))
        if last is None:
            q.note = "no observations of this dataset have arrived yet"
        return q


def _window(a0: int, a1: int, peak: int, n: int) -> tuple[int, int]:
    """Cells [lo, hi) around an inclusive extent [a0, a1]: a margin, at least WINDOW_MIN, at most WINDOW_MAX
    (then centred on the peak), inside [0, n)."""
    lo, hi = a0 - WINDOW_MARGIN, a1 + WINDOW_MARGIN + 1
    if hi - lo < WINDOW_MIN:
        grow = WINDOW_MIN - (hi - lo)
        lo -= grow // 2
        hi = lo + WINDOW_MIN
    if hi - lo > WINDOW_MAX:
        lo = peak - WINDOW_MAX // 2
        hi = lo + WINDOW_MAX
    if lo < 0:
        hi, lo = hi - lo, 0
    if hi > n:
        lo, hi = max(0, lo - (hi - n)), n
    return lo, hi

