"""Observation reads for the API: the store's head looked up at most every ``api_head_check_s``,
per-dataset layout cached per snapshot, values read through ``open_observations`` (as-of aware) over
an explicit slot range so that no request scans the whole time axis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from api.grid import Grid
from api.problems import Problem
from api.readers.base import HeadReader
from forecast.timeutil import from_epoch, iso


@dataclass
class ObsView:
    """One dataset of the observation store at one snapshot: its stored catalog, grid and slot range."""

    snapshot: str
    dataset: str
    catalog: object
    grid: Grid
    variables: list[str]
    first_slot: int
    n_slots: int

    @property
    def collection_id(self) -> str:
        return f"{self.dataset}.observations"

    def slot_range(self, interval, as_of_s: int | None, default_slots: int, max_slots: int) -> tuple[int, int]:
        """Inclusive slot range [lo, hi] of a query."""
        t = self.catalog.time
        if self.n_slots <= 0:
            raise Problem(404, f"{self.collection_id} holds no observations yet")
        last = self.n_slots - 1
        if as_of_s is not None:
            s = _floor_slot(t, as_of_s)
            if s is None:
                raise Problem(404, f"as_of: {iso(as_of_s)} is before the first slot of {self.dataset}")
            last = min(last, s)
        if interval is None:
            hi = last
            lo = max(0, self.first_slot if self.first_slot >= 0 else 0, hi - default_slots + 1)
        else:
            a, b = interval
            hi = last if b is None else _floor_slot(t, b)
            if hi is not None:
                hi = min(hi, last)  # nothing past the store's last slot (or the as-of slot) exists to read
            # an open start counts the default window back from the interval's end, not from the store's
            lo = _ceil_slot(t, a) if a is not None else (None if hi is None else max(0, hi - default_slots + 1))
            if hi is None or lo is None or hi < lo:
                raise Problem(404, f"datetime: no slot of {self.dataset} (every {t.step}) lies in the interval")
        if hi - lo + 1 > max_slots:
            raise Problem(400, f"datetime: the interval spans {hi - lo + 1} slots of {t.step}; at most {max_slots} "
                               "may be asked at once for this query (narrow the interval)")
        return lo, hi


def _floor_slot(t, s: int) -> int | None:
    step = t.step_seconds
    if step is None:
        return t.slot_of(s)
    off = s - t.start_s
    return None if off < 0 else off // step


def _ceil_slot(t, s: int) -> int | None:
    step = t.step_seconds
    if step is None:
        return t.slot_of(s)
    off = s - t.start_s
    return max(0, -(-off // step))


class ObservationReader(HeadReader):
    """The observation store as the API reads it: datasets, one ``ObsView`` per dataset and snapshot,
    values with flags over a slot range (as-of aware)."""

    what = "observation store"

    def __init__(self, settings, services=None):
        super().__init__(settings, services)
        self._views: dict[str, ObsView] = {}
        self._datasets: list[str] | None = None

    def open_store(self):
        from forecast.stores import ObservationStore

        return ObservationStore(self.settings.observation_store, lock_timeout=self.settings.lock_timeout)

    def location(self) -> str:
        return self.settings.observation_store

    def forget(self) -> None:
        self._views, self._datasets = {}, None

    def datasets(self) -> list[str]:
        head = self.head()
        if head is None:
            return []
        with self.lock:
            if self._datasets is None:
                import zarr

                try:
                    root = zarr.open_group(self.store.readonly(head).store, mode="r")
                    self._datasets = sorted(k for k in root.group_keys())
                except Exception:  # noqa: BLE001 - an empty repository has no root group
                    self._datasets = []
            return self._datasets

    def view(self, dataset: str) -> ObsView:
        head = self.head()
        v = self._views.get(dataset)
        if v is not None and v.snapshot == head:
            return v
        if dataset not in self.datasets():
            raise Problem(404, f"the observation store holds no dataset {dataset!r} "
                               f"(it holds: {', '.join(self.datasets()) or 'none'})")
        import zarr

        with self.lock:
            session = self.store.readonly(head)
            cat = self.store.stored_catalog(session, dataset)
            g = zarr.open_group(session.store, path=dataset, mode="r")
            grid = Grid.from_axes(cat.grid.crs, g["x"][:], g["y"][:])
            v = ObsView(snapshot=head, dataset=dataset, catalog=cat, grid=grid,
                        variables=[k for k in cat.variables if k in set(g.array_keys())],
                        first_slot=int(g.attrs.get("first_slot", -1)), n_slots=int(g.attrs.get("n_slots", 0)))
            self._views[dataset] = v
            return v

    def read(self, view: ObsView, lo: int, hi: int, as_of_s: int | None, variables: list[str],
             window: tuple[int, int, int, int]):
        """Values, flags and test bits over slots [lo, hi] and cells [iy0:iy1, ix0:ix1]: a dict
        ``{var: (values, qc, tests, revision, available_at)}`` plus the slot times (epoch s)."""
        from forecast.stores import open_observations

        t = view.catalog.time
        start, end = from_epoch(t.label(lo)), from_epoch(t.label(hi))
        as_of = from_epoch(as_of_s) if as_of_s is not None else None
        ds = open_observations(view.dataset, as_of=as_of, start=start, end=end, store=self.store, snapshot=view.snapshot)
        iy0, iy1, ix0, ix1 = window
        sub = ds.isel(y=slice(iy0, iy1), x=slice(ix0, ix1))
        out = {}
        for v in variables:
            vals = np.asarray(sub[v].values)
            qc = np.asarray(sub[f"{v}_qc"].values) if f"{v}_qc" in sub else np.full(vals.shape, 2, "uint8")
            tests = np.asarray(sub[f"{v}_qc_tests"].values) if f"{v}_qc_tests" in sub else np.zeros(vals.shape, "uint32")
            rev = np.asarray(ds[f"{v}_revision"].values)
            av = ds[f"{v}_available_at"].values
            av_s = [None if np.isnat(a) else iso(int(a.astype("datetime64[s]").astype("int64"))) for a in av]
            out[v] = (vals, qc, tests, rev, av_s)
        times = t.label(np.arange(lo, hi + 1))
        return out, times
