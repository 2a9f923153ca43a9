"""The forecast store: an Icechunk repository of nowcasts with their provenance and plausibility marks.

One group per (dataset, run), path ``<dataset>/<run>``: ``run`` is ``production`` (the operational series:
each init made by whichever model was in production then, or by its fallback) or a model version
(``v3``) when a forecast was asked of that model explicitly. Inside a run group:

- ``init_time`` (init_time) int64 seconds since 1970-01-01: the catalog's regular time axis (slot ``i`` is
  init ``start + i * step``; an init's index is computed, never searched), grown in blocks; labels are
  written only where a forecast is (0 elsewhere; compute others from the group's ``time_start_s`` and
  ``time_step_s``);
- ``produced_at`` (init_time) int64 seconds, 0 where no forecast was made for that init;
- ``provenance`` (init_time) UTF-8 string: the JSON provenance record ("" where none);
- ``lead_time`` (lead_time) int64 seconds; ``y``, ``x``, ``lat``, ``lon`` as in the observation store;
- ``<var>`` float32 (init_time, lead_time, y, x), chunks (1, n_lead, 128, 128): all leads of a 128 x 128 tile
  in one chunk, so a point query reads one chunk;
- ``<var>_annotation`` uint8, same shape and chunks: the plausibility annotation of each value
  (`ANNOTATIONS`);
- ``<var>_exceedance_<t>`` float32 in [0, 1], same shape and chunks, one per catalog threshold
  (`forecast.catalog.exceedance_name`): the probability of a value at or above the threshold, attrs ``units``
  "1", ``threshold``, ``threshold_units``, ``variable``, ``long_name``; with its ``_annotation`` (``ok`` or
  ``degraded_inputs``; `NO_VALUE` and a NaN probability for an init written before probabilities were
  stored). The group attr ``exceedance`` lists them; a group written before they existed gains them on its
  next write.

Writes are idempotent per (run, init, model version, input revisions): the same forecast again is
no new commit. Values are stored as the method produced them: an implausible value is marked, never
clipped. Nothing here imports torch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from forecast import __version__
from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.catalog import exceedance_name
from forecast.plausibility import ANNOTATIONS, NO_VALUE, annotation_attrs
from forecast.stores.repo import BRANCH, IcechunkRepo, SlotView, codec_for
from forecast.timeutil import iso, parse_time, to_epoch, utc

log = logging.getLogger(__name__)

#: a chunk holds every lead of a TILE x TILE tile of one init (12 leads of float32: 768 KiB before compression).
#: 32 was the first choice (a point read decompresses 48 KiB) but it made (n/32)^2 chunks per array and init:
#: at 1000 x 1000, 22 arrays, 22,500 chunk references per forecast, 12 s to write on 2 cores and a manifest
#: (and Icechunk's cache of it) growing by as many references every cycle. 128 writes the same forecast in
#: 1.6 s with 16x fewer references; a point read is still a few ms. Runs made earlier keep their chunks.
TILE = 128
#: runs: the operational series; any other run name is a model version or a baseline asked explicitly
PRODUCTION = "production"
_INIT_BLOCK = 2048  # the init axis grows by this many slots; per-init arrays are chunked by it


class UnknownForecastError(BadInputError, KeyError):
    """A forecast (dataset, run or init) that the forecast store does not hold."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class WriteResult:
    snapshot: str
    written: bool  # False: the same forecast was already stored (nothing committed)
    group: str
    init_index: int


class ForecastStore(IcechunkRepo):
    """The forecast repository at one location (local path, s3://bucket/prefix or memory://)."""

    label = "forecast store"

    # -- discovery --------------------------------------------------------------------------------
    def _group(self, dataset: str, run: str, snapshot: str | None = None, *, session=None):
        import zarr

        if not self.exists():
            raise UnknownForecastError(f"the forecast store {self.location} does not exist yet; run `forecast predict` first")
        session = session or self.readonly(snapshot)
        try:
            return zarr.open_group(session.store, path=f"{dataset}/{run}", mode="r")
        except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
            known = ", ".join(f"{d}/{r}" for d, r in self.runs(session=session)) or "none yet"
            raise UnknownForecastError(
                f"the forecast store holds no forecasts of {dataset!r} for run {run!r} (it holds: {known})") from None

    def runs(self, dataset: str | None = None, *, snapshot: str | None = None, session=None) -> list[tuple[str, str]]:
        """The (dataset, run) pairs the store holds."""
        import zarr

        if not self.exists():
            return []
        session = session or self.readonly(snapshot)
        root = zarr.open_group(session.store, mode="r")
        out = []
        for d, g in sorted(root.groups()):
            if dataset is not None and d != dataset:
                continue
            out.extend((d, r) for r, _ in sorted(g.groups()))
        return out

    def inits(self, dataset: str, run: str = PRODUCTION, *, snapshot: str | None = None) -> np.ndarray:
        """The init times (datetime64[s]) that have a forecast, ascending."""
        g = self._group(dataset, run, snapshot)
        idx = _written(g)
        return g["init_time"][idx[0]:idx[-1] + 1][idx - idx[0]].astype("datetime64[s]") if len(idx) else np.array([], "datetime64[s]")

    def latest_init(self, dataset: str, run: str = PRODUCTION, *, snapshot: str | None = None) -> datetime | None:
        g = self._group(dataset, run, snapshot)
        latest = g.attrs.get("latest_init")
        return parse_time(latest) if latest else None

    def provenance(self, dataset: str, init: datetime | str, run: str = PRODUCTION, *,
                   snapshot: str | None = None) -> dict | None:
        """The provenance record of the forecast made at ``init`` (None when there is none)."""
        g = self._group(dataset, run, snapshot)
        i = _init_index(g, init)
        if i is None or i >= g["provenance"].shape[0]:
            return None
        text = str(g["provenance"][i])
        return json.loads(text) if text else None

    def open(self, dataset: str, run: str = PRODUCTION, *, snapshot: str | None = None):
        """The forecasts of one run as a lazy ``xarray.Dataset`` with dims (init_time, lead_time, y, x),
        holding only the inits that have a forecast; coordinates ``valid_time``, ``lat``, ``lon``."""
        import dask.array as da
        import xarray as xr

        session = self.readonly(snapshot)
        g = self._group(dataset, run, session=session)
        idx = _written(g)
        t = g["init_time"][idx[0]:idx[-1] + 1][idx - idx[0]] if len(idx) else np.zeros(0, "int64")
        inits = t.astype("datetime64[s]").astype("datetime64[ns]")
        leads = (g["lead_time"][:].astype("int64") * np.timedelta64(1, "s")).astype("timedelta64[ns]")
        coords = {
            "init_time": ("init_time", inits),
            "lead_time": ("lead_time", leads),
            "y": ("y", g["y"][:], dict(g["y"].attrs)),
            "x": ("x", g["x"][:], dict(g["x"].attrs)),
            "lat": (("y", "x"), g["lat"][:], dict(g["lat"].attrs)),
            "lon": (("y", "x"), g["lon"][:], dict(g["lon"].attrs)),
            "valid_time": (("init_time", "lead_time"), inits[:, None] + leads[None, :]),
        }
        data = {}
        for vid in [*g.attrs["variables"], *exceedance_of(g)]:
            for name in (vid, f"{vid}_annotation"):
                a = g[name]
                # through an index map: no dask graph over the whole pre-sized, mostly empty init axis
                view = SlotView(a, a, idx, a.shape[0], fill=a.fill_value)
                arr = da.from_array(view, chunks=(1, *a.chunks[1:]), asarray=True, fancy=False,
                                    name=f"fcst-{dataset}-{run}-{name}-{session.snapshot_id}")
                data[name] = (("init_time", "lead_time", "y", "x"), arr, dict(a.attrs))
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update({k: v for k, v in g.attrs.items() if k not in ("variables", "exceedance")})
        ds.attrs["snapshot"] = session.snapshot_id
        return ds

    # -- writing ----------------------------------------------------------------------------------
    def write(self, catalog: Catalog, run: str, init: datetime, fcst, provenance: dict, *,
              message: str | None = None) -> WriteResult:
        """Store one forecast (an ``xarray.Dataset`` of (lead_time, y, x) variables, each with a
        ``<var>_annotation`` beside it, and the exceedance probabilities ``<var>_exceedance_<t>`` of
        `forecast.nowcast.forecaster.Produced.stored`) at ``init`` in run ``run``, with its provenance record.

        Idempotent: when the stored forecast of this init was made by the same model version (or
        method) from the same input revisions, nothing is written and no commit is made.
        """
        import zarr

        if not run or "/" in run:
            raise BadInputError(f"run name {run!r} must be a non-empty name without '/'")
        init = utc(init)
        slot = catalog.time.slot_of(to_epoch(init))
        if slot is None:
            raise BadInputError(f"init time {iso(init)} is not on the time axis of {catalog.id} "
                                f"(start {iso(catalog.time.start)}, step {catalog.time.step})")
        named = [v for v in fcst.data_vars if not v.endswith("_annotation")]
        exceed = [v for v in named if _is_exceedance(v, fcst[v].attrs)]
        variables = [v for v in named if v not in exceed]
        for v in named:
            if f"{v}_annotation" not in fcst:
                raise BadInputError(f"forecast variable {v!r} comes without its {v}_annotation")
            if fcst[v].dims != ("lead_time", "y", "x"):
                raise BadInputError(f"forecast variable {v!r} must have dims (lead_time, y, x), got {fcst[v].dims}")
        leads_s = (fcst["lead_time"].values.astype("timedelta64[s]").astype("int64"))
        path = f"{catalog.id}/{run}"
        with self.lock():
            session = self.writable()
            root = zarr.open_group(session.store, mode="a")
            if path not in root:
                _create_run(root, path, catalog, run, fcst, variables, leads_s)
            g = zarr.open_group(session.store, path=path, mode="a")
            _check_compatible(g, path, fcst, variables, leads_s)
            _add_exceedance(g, catalog, fcst, [v for v in exceed if v not in exceedance_of(g)])
            cap = g["init_time"].shape[0]
            if slot < cap:
                old = str(g["provenance"][slot])
                if old and _same_forecast(json.loads(old), provenance):
                    return WriteResult(snapshot=session.snapshot_id, written=False, group=path, init_index=slot)
            else:
                _grow(g, slot)
            for v in variables:
                g[v][slot] = np.asarray(fcst[v].values, dtype="float32")
                g[f"{v}_annotation"][slot] = np.asarray(fcst[f"{v}_annotation"].values, dtype="uint8")
            for v in exceedance_of(g):  # one absent from this forecast is cleared: never a stale probability
                a, ann = g[v], g[f"{v}_annotation"]
                if v in exceed:
                    a[slot] = np.asarray(fcst[v].values, dtype="float32")
                    ann[slot] = np.asarray(fcst[f"{v}_annotation"].values, dtype="uint8")
                elif slot < cap:
                    a[slot] = np.full(a.shape[1:], np.nan, "float32")
                    ann[slot] = np.full(ann.shape[1:], NO_VALUE, "uint8")
            g["init_time"][slot] = to_epoch(init)
            now = datetime.now(timezone.utc)
            g["produced_at"][slot] = to_epoch(now)
            g["provenance"][slot] = json.dumps(provenance, sort_keys=True, default=str)
            first = int(g.attrs.get("first_init_index", -1))
            latest = int(g.attrs.get("latest_init_index", -1))
            attrs = {"first_init_index": slot if first < 0 else min(first, slot)}
            if slot >= latest:
                attrs.update({"latest_init_index": slot, "latest_init": iso(init)})
            g.attrs.update(attrs)
            model = (provenance.get("model") or {}).get("version")
            snap = session.commit(
                message or f"forecast {catalog.id}/{run} init {iso(init)} by {provenance.get('method')}"
                + (f" (model {model})" if model else ""),
                metadata={"kind": "forecast", "dataset": catalog.id, "run": run, "init_time": iso(init),
                          "method": provenance.get("method"), "model": model,
                          "fallback": provenance.get("fallback"), "software": f"forecast {__version__}"})
        return WriteResult(snapshot=snap, written=True, group=path, init_index=slot)


# -- helpers --------------------------------------------------------------------------------------------

def _written(g) -> np.ndarray:
    """Absolute indices of the inits that hold a forecast."""
    first = int(g.attrs.get("first_init_index", -1))
    latest = int(g.attrs.get("latest_init_index", -1))
    if first < 0 or latest < first:
        return np.zeros(0, dtype="int64")
    produced = g["produced_at"][first:latest + 1]
    return first + np.flatnonzero(produced != 0)


def _init_index(g, init: datetime | str) -> int | None:
    init = parse_time(init) if isinstance(init, str) else utc(init)
    start = int(g.attrs["time_start_s"])
    step = int(g.attrs["time_step_s"])
    off = to_epoch(init) - start
    if off < 0 or off % step:
        return None
    return off // step


def _same_forecast(old: dict, new: dict) -> bool:
    """Two provenance records describe the same forecast: same model / method, same input revisions."""
    def key(p: dict):
        obs = p.get("observations") or {}
        return ((p.get("model") or {}).get("version"), (p.get("model") or {}).get("checkpoint_sha256"),
                p.get("method"), p.get("init_time"),
                json.dumps(obs.get("input_slots"), sort_keys=True, default=str))
    return key(old) == key(new)


def _create_run(root, path: str, catalog: Catalog, run: str, fcst, variables: list[str], leads_s: np.ndarray) -> None:
    if catalog.time.months is not None:
        raise BadInputError(f"dataset {catalog.id} has a monthly time axis; nowcasts need a regular axis")
    g = root.require_group(path)
    ny, nx = fcst.sizes["y"], fcst.sizes["x"]
    codec = codec_for(catalog)
    units = {v: fcst[v].attrs.get("units", catalog.variables[v].units if v in catalog.variables else "") for v in variables}
    from pyproj import CRS

    g.attrs.update({
        "dataset": catalog.id, "run": run, "variables": variables, "units": units,
        "catalog_hash": catalog.hash, "time_step": catalog.time.step,
        "time_start": iso(catalog.time.start), "time_start_s": to_epoch(catalog.time.start),
        "time_step_s": int(catalog.time.step_seconds), "crs": str(catalog.grid.crs),
        "crs_wkt": CRS.from_user_input(catalog.grid.crs).to_wkt(), "tile": TILE,
        "first_init_index": -1, "latest_init_index": -1, "latest_init": None,
        "annotations": list(ANNOTATIONS), "Conventions": "CF-1.8",
        "created_with": f"forecast {__version__}",
    })
    lt = g.create_array("lead_time", shape=(len(leads_s),), dtype="int64", dimension_names=("lead_time",))
    lt[:] = leads_s
    lt.attrs.update({"units": "seconds", "long_name": "forecast lead time"})
    for name in ("y", "x"):
        a = g.create_array(name, shape=(fcst.sizes[name],), dtype="float64", dimension_names=(name,))
        a[:] = np.asarray(fcst[name].values, dtype="float64")
        a.attrs.update(fcst[name].attrs)
    for name in ("lat", "lon"):
        if name in fcst.coords:
            a = g.create_array(name, shape=(ny, nx), dtype="float64", dimension_names=("y", "x"))
            a[:] = np.asarray(fcst[name].values, dtype="float64")
            a.attrs.update(fcst[name].attrs)
    if "lat" not in g:
        lat, lon = catalog.grid.latlon()
        for name, vals in (("lat", lat), ("lon", lon)):
            a = g.create_array(name, shape=(ny, nx), dtype="float64", dimension_names=("y", "x"))
            a[:] = vals
    t = g.create_array("init_time", shape=(0,), chunks=(_INIT_BLOCK,), dtype="int64", dimension_names=("init_time",),
                       fill_value=0)
    t.attrs.update({"units": "seconds since 1970-01-01 00:00:00", "standard_name": "forecast_reference_time"})
    g.create_array("produced_at", shape=(0,), chunks=(_INIT_BLOCK,), dtype="int64", dimension_names=("init_time",),
                   fill_value=0).attrs.update({"units": "seconds since 1970-01-01 00:00:00"})
    g.create_array("provenance", shape=(0,), chunks=(1,), dtype=str, fill_value="", dimension_names=("init_time",))
    n_lead = len(leads_s)
    chunks = (1, n_lead, min(TILE, ny), min(TILE, nx))
    for v in variables:
        a = g.create_array(v, shape=(0, n_lead, ny, nx), chunks=chunks, dtype="float32", fill_value=np.nan,
                           compressors=[codec], dimension_names=("init_time", "lead_time", "y", "x"))
        attrs = {k: val for k, val in fcst[v].attrs.items() if isinstance(val, (str, int, float, list))}
        attrs.update({"units": units[v], "ancillary_variables": f"{v}_annotation", "coordinates": "lat lon"})
        if v in catalog.variables:
            cv = catalog.variables[v]
            attrs.update({"standard_name": cv.standard_name, "physical_range": list(cv.physical_range)})
        a.attrs.update(attrs)
        g.create_array(f"{v}_annotation", shape=(0, n_lead, ny, nx), chunks=chunks, dtype="uint8", fill_value=0,
                       compressors=[codec], dimension_names=("init_time", "lead_time", "y", "x")).attrs.update(
            annotation_attrs())


def _check_compatible(g, path: str, fcst, variables: list[str], leads_s: np.ndarray) -> None:
    stored = g["lead_time"][:]
    if len(stored) != len(leads_s) or np.any(stored != leads_s):
        raise BadInputError(f"forecast {path} holds lead times {list(stored)} s; this forecast has {list(leads_s)} s "
                            "(write it under another run name)")
    for v in variables:
        if v not in g.attrs["variables"]:
            raise BadInputError(f"forecast {path} has no variable {v!r} (it holds {g.attrs['variables']})")
        if g[v].shape[2:] != (fcst.sizes["y"], fcst.sizes["x"]):
            raise BadInputError(f"forecast {path} has a {g[v].shape[2:]} grid; this forecast has "
                                f"{(fcst.sizes['y'], fcst.sizes['x'])}")


def exceedance_of(g) -> dict[str, dict]:
    """The exceedance arrays of a run group: name -> {variable, threshold, threshold_units} (empty for a group
    written before probabilities were stored)."""
    return dict(g.attrs.get("exceedance") or {})


def _is_exceedance(name: str, attrs) -> bool:
    """Whether a forecast variable is an exceedance probability (named by the contract after its attrs)."""
    try:
        return name == exceedance_name(str(attrs["variable"]), float(attrs["threshold"]))
    except (KeyError, TypeError, ValueError):
        return False


def _add_exceedance(g, catalog: Catalog, fcst, names: list[str]) -> None:
    """Create the arrays of new exceedance probabilities, sized and chunked as the values beside them (their
    existing inits read as NaN, annotated `NO_VALUE`)."""
    if not names:
        return
    base = g[g.attrs["variables"][0]]
    codec = codec_for(catalog)
    listed = exceedance_of(g)
    for v in names:
        a = fcst[v].attrs
        meta = {"variable": str(a["variable"]), "threshold": float(a["threshold"]),
                "threshold_units": str(a.get("threshold_units", ""))}
        arr = g.create_array(v, shape=base.shape, chunks=base.chunks, dtype="float32", fill_value=np.nan,
                             compressors=[codec], dimension_names=("init_time", "lead_time", "y", "x"))
        arr.attrs.update({"units": "1", "long_name": str(a.get("long_name", f"probability of {v}")), **meta,
                          "valid_range": [0.0, 1.0], "ancillary_variables": f"{v}_annotation",
                          "coordinates": "lat lon"})
        ann = g.create_array(f"{v}_annotation", shape=base.shape, chunks=base.chunks, dtype="uint8",
                             fill_value=NO_VALUE, compressors=[codec],
                             dimension_names=("init_time", "lead_time", "y", "x"))
        ann.attrs.update({**annotation_attrs(), "no_value": NO_VALUE})
        listed[v] = meta
    g.attrs.update({"exceedance": listed})


def _grow(g, slot: int) -> None:
    new_cap = (slot // _INIT_BLOCK + 1) * _INIT_BLOCK
    arrays = [*g.attrs["variables"], *exceedance_of(g)]
    for name in ("init_time", "produced_at", "provenance", *arrays, *(f"{v}_annotation" for v in arrays)):
        a = g[name]
        a.resize((new_cap, *a.shape[1:]))


def forecast_store_for(settings) -> ForecastStore:
    return ForecastStore(settings.forecast_store_location, lock_timeout=settings.lock_timeout)


__all__ = ["ANNOTATIONS", "BRANCH", "ForecastStore", "PRODUCTION", "UnknownForecastError", "WriteResult",
           "annotation_attrs", "exceedance_of", "forecast_store_for"]
