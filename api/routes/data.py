"""EDR-style data routes: /collections, /collections/{id}, and position / area / cube queries on
forecast collections (``<dataset>.forecast``, ``<dataset>.forecast.<run>``) and observation collections
(``<dataset>.observations``)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from datetime import datetime, timezone
from typing import Annotated, Any

import anyio
import msgspec
import numpy as np
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Parameter, QueryParameter

from api import edr
from api.auth import BEARER, read_guard
from api.forecast_reader import ANNOTATIONS, PRODUCTION, ForecastReader, RunView
from api.geo import (
    iso,
    parse_bbox,
    parse_datetime,
    parse_instant,
    parse_names,
    parse_point,
    parse_polygon,
)
from api.obs_reader import FLAG_NAMES, ObsView, test_names
from api.problems import Problem
from api.schemas import (
    NOT_MODIFIED,
    POSITION_EXAMPLE,
    CollectionDoc,
    CollectionsDoc,
    CompactDoc,
    CoverageDoc,
    problem_specs,
)

JSON_MEDIA = "application/json"
COVJSON_MEDIA = "application/prs.coverage+json"
NETCDF_MEDIA = "application/x-netcdf"
POINT_FORMATS = ("covjson", "json")
AREA_FORMATS = ("covjson", "json", "netcdf")
_ENC = msgspec.json.Encoder()
log = logging.getLogger("api")

# -- query parameters (documented once) ------------------------------------------------------------
Coords = Annotated[str | None, Parameter(description="WKT in lon/lat: POINT(lon lat) for position, POLYGON((...)) "
                                                     "for area.", examples=[])]
ParamNames = Annotated[str | None, QueryParameter(name="parameter-name", description="Comma-separated parameters "
                                             "(default: all of the collection).")]
Datetime = Annotated[str | None, QueryParameter(name="datetime", description="Valid time instant or interval "
                                           "T1/T2 (ISO-8601, either end may be '..'); default: the latest forecast "
                                           "/ the latest observation slots.")]
InitTime = Annotated[str | None, QueryParameter(name="init_time", description="Forecast initialisation time "
                                           "(ISO-8601); default: the latest.")]
AsOf = Annotated[str | None, QueryParameter(name="as_of", description="Observations: answer from the data as known "
                                       "at this time (ISO-8601).")]
Fmt = Annotated[str | None, QueryParameter(name="f", description="Output format: covjson (default), json, or netcdf "
                                      "(area and cube only).")]
Bbox = Annotated[str | None, QueryParameter(name="bbox", description="minlon,minlat,maxlon,maxlat")]


# -- collection ids ---------------------------------------------------------------------------------

def split_id(cid: str) -> tuple[str, str, str | None]:
    parts = cid.split(".")
    if len(parts) == 2 and parts[1] == "observations":
        return "observations", parts[0], None
    if len(parts) == 2 and parts[1] == "forecast":
        return "forecast", parts[0], PRODUCTION
    if len(parts) == 3 and parts[1] == "forecast" and parts[2]:
        return "forecast", parts[0], parts[2]
    return "unknown", cid, None


def _known_ids(request: Request) -> list[str]:
    s = request.app.state.services
    ids = [f"{d}.forecast" if r == PRODUCTION else f"{d}.forecast.{r}" for d, r in s.forecasts.runs()]
    ids += [f"{d}.observations" for d in s.observations.datasets()]
    return sorted(ids)


def _unknown(request: Request, cid: str) -> Problem:
    known = _known_ids(request)
    return Problem(404, f"no collection {cid!r}; collections: {', '.join(known) or 'none yet'}")


def _fmt(f: str | None, allowed: tuple[str, ...], request: Request) -> str:
    if f is None or f == "":
        accept = request.headers.get("accept", "")
        if NETCDF_MEDIA in accept and "netcdf" in allowed:
            return "netcdf"
        return "covjson"
    if f not in allowed:
        raise Problem(400, f"f: unknown or unsupported format {f!r} for this query; valid formats: {', '.join(allowed)}")
    return f


# -- caching headers ----------------------------------------------------------------------------------

def etag_for(*parts: str) -> str:
    return '"' + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest() + '"'


def _not_modified(request: Request, etag: str) -> bool:
    inm = request.headers.get("if-none-match")
    if not inm:
        return False
    if inm.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in inm.split(","))


def _cache_control(request: Request, period_s: int, produced_s: int) -> str:
    cap = request.app.state.settings.api_cache_max_age
    remaining = produced_s + period_s - int(time.time())
    age = min(cap, remaining) if remaining > 0 else min(cap, 15)
    return f"public, max-age={max(0, age)}, must-revalidate"


class _RawASGIResponse:
    """The ASGI side of ``FastResponse``: status, encoded headers and body, sent as two events."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class FastResponse(Response):
    """A ``Response`` of ready-encoded bytes for the data routes.

    Litestar's ``Response`` -> ``ASGIResponse`` conversion re-normalises headers into a mutable header
    object per request (a measurable share of a cached point query); this one encodes its few headers
    once, in the order Litestar would (ETag, Cache-Control, Vary, extras, Content-Type, Content-Length;
    no body, Content-Type or Content-Length on a 304). Route-level headers or cookies, which these
    routes do not declare, fall back to the regular conversion.
    """

    __slots__ = ()

    def __init__(self, body: bytes, media_type: str | None, headers: dict[str, str], status_code: int = 200):
        # no Response.__init__: the attributes super().to_asgi_response reads are set here directly
        self.content = body
        self.media_type = media_type
        self.status_code = status_code
        self.headers = headers
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.response_type_encoders = None

    def to_asgi_response(self, request, *, headers=None, cookies=None, **kw):  # type: ignore[override]
        if headers or cookies or kw.get("background") is not None:
            return super().to_asgi_response(request, headers=headers, cookies=cookies, **kw)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        if self.status_code != 304:
            raw.append((b"content-type", self.media_type.encode("latin-1")))
            raw.append((b"content-length", str(len(self.content)).encode()))
        return _RawASGIResponse(self.status_code, raw, self.content if self.status_code != 304 else b"")


def _respond(request: Request, body: bytes, media: str, etag: str, cache: str, extra: dict | None = None) -> Response:
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Accept, Authorization"}
    if extra:
        headers.update(extra)
    return FastResponse(body, media, headers)


def _304(etag: str, cache: str) -> Response:
    return FastResponse(b"", None, {"ETag": etag, "Cache-Control": cache}, status_code=304)


def _url_parts(request: Request) -> tuple[str, str]:
    """(path, query) of the request as ``request.url`` gives them, without building the URL object."""
    scope = request.scope
    return scope.get("root_path", "") + scope["path"], scope.get("query_string", b"").decode()


# -- forecast helpers -------------------------------------------------------------------------------------

def _init_param(init_time: str | None) -> int | None:
    return None if init_time is None or not init_time.strip() else int(parse_instant(init_time, "init_time").timestamp())


def _records(catalog, name: str, months: list[int]) -> tuple[list[float | None], list[float | None]]:
    var = catalog.variables.get(name) if catalog is not None else None
    if var is None:
        return [None] * len(months), [None] * len(months)
    r = var.climatological_record
    hi = [r.max[m - 1] if r.max else None for m in months]
    lo = [r.min[m - 1] if r.min else None for m in months]
    return lo, hi


def annotate(codes: np.ndarray, values: np.ndarray, lo: list, hi: list) -> tuple[list[str], list[float | None]]:
    """Per value: its annotation name and, for an extreme, the climatological record it went beyond."""
    names = [ANNOTATIONS[c] if c < len(ANNOTATIONS) else "unknown" for c in codes.ravel().tolist()]
    recs: list[float | None] = [None] * len(names)
    if "extreme" in names:
        flat = np.asarray(values, dtype="float64").ravel()
        n_t = len(hi)
        per_t = len(names) // max(n_t, 1)
        for k, a in enumerate(names):
            if a == "extreme":
                t = k // per_t if per_t else 0
                v = flat[k]
                if hi[t] is not None and v > hi[t]:
                    recs[k] = hi[t]
                elif lo[t] is not None and v < lo[t]:
                    recs[k] = lo[t]
                else:
                    recs[k] = hi[t] if hi[t] is not None else lo[t]
    return names, recs


def _months(times_s: np.ndarray) -> list[int]:
    return [datetime.fromtimestamp(int(t), tz=timezone.utc).month for t in times_s]


def _store_member(view: RunView) -> dict:
    return {"collection": view.collection_id, "run": view.run, "snapshot": view.snapshot}


# -- routes -----------------------------------------------------------------------------------------------------

def _collection_docs(request: Request, only: str | None = None) -> list[CollectionDoc]:
    s = request.app.state.services
    base = str(request.base_url).rstrip("/")
    docs = []
    runs = s.forecasts.runs()
    for d, r in runs:
        cid = f"{d}.forecast" if r == PRODUCTION else f"{d}.forecast.{r}"
        if only is not None and cid != only:
            continue
        v = s.forecasts.view(d, r)
        docs.append(_forecast_collection(request, base, v, s))
    for d in s.observations.datasets():
        cid = f"{d}.observations"
        if only is not None and cid != only:
            continue
        docs.append(_obs_collection(base, s.observations.view(d), s))
    return docs


def _queries(base: str, cid: str, area: bool = True) -> dict:
    q = {"position": {"link": {"href": f"{base}/collections/{cid}/position?coords=POINT(lon lat)", "rel": "data",
                               "variables": {"query_type": "position", "output_formats": list(POINT_FORMATS)}}}}
    if area:
        for k, ex in (("area", "coords=POLYGON((...))"), ("cube", "bbox=minlon,minlat,maxlon,maxlat")):
            q[k] = {"link": {"href": f"{base}/collections/{cid}/{k}?{ex}", "rel": "data",
                             "variables": {"query_type": k, "output_formats": list(AREA_FORMATS)}}}
    return q


def _spatial(grid) -> dict:
    return {"bbox": [list(grid.lonlat_extent)], "crs": edr.CRS84,
            "grid": {"crs": grid.crs, "shape": [grid.ny, grid.nx],
                     "x": {"start": grid.x0, "step": grid.dx, "size": grid.nx},
                     "y": {"start": grid.y0, "step": grid.dy, "size": grid.ny}}}


def _forecast_collection(request: Request, base: str, v: RunView, s) -> CollectionDoc:
    cat = s.catalog(v.dataset)
    first = iso(v.init_s(int(v.written[0]))) if len(v.written) else None
    latest = iso(v.init_s(int(v.written[-1]))) if len(v.written) else None
    last_valid = iso(v.init_s(int(v.written[-1])) + int(v.leads.max())) if len(v.written) else None
    prod = None
    reg = None
    try:
        reg = s.registry
    except Exception:  # noqa: BLE001 - the registry is optional for reads
        reg = None
    if reg is not None:
        prod = {}
        for var in v.variables:
            try:
                rec = reg.production(v.dataset, var)
            except Exception:  # noqa: BLE001
                rec = None
            prod[var] = None if rec is None else {"version": rec.version, "stage": rec.stage}
    prov = v.provenance(int(v.written[-1])) if len(v.written) else None
    return CollectionDoc(
        id=v.collection_id, kind="forecast", dataset=v.dataset, run=v.run,
        title=f"Nowcast of {cat.title if cat else v.dataset}" + ("" if v.run == PRODUCTION else f" (run {v.run})"),
        description="Operational series: each init made by the production model, or its fallback."
        if v.run == PRODUCTION else f"Forecasts asked of {v.run} explicitly.",
        extent={"spatial": _spatial(v.grid),
                "temporal": {"interval": [[first, last_valid]], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
                             "init_step": v.attrs.get("time_step"), "inits": len(v.written)}},
        parameter_names=edr.catalog_parameters(cat, v.variables, v.units),
        data_queries=_queries(base, v.collection_id), output_formats=list(AREA_FORMATS),
        links=[{"href": f"{base}/collections/{v.collection_id}", "rel": "self", "type": JSON_MEDIA}],
        latest_init=latest, lead_times=[int(x) for x in v.leads],
        production_model={"by_variable": prod, "latest_init_model": (prov or {}).get("model"),
                          "latest_init_method": (prov or {}).get("method")},
        snapshot=v.snapshot,
    )


def _obs_collection(base: str, v: ObsView, s) -> CollectionDoc:
    cat = v.catalog
    t = cat.time
    first = iso(int(t.label(v.first_slot))) if v.first_slot >= 0 else None
    last = iso(int(t.label(v.n_slots - 1))) if v.n_slots > 0 else None
    return CollectionDoc(
        id=v.collection_id, kind="observations", dataset=v.dataset, title=cat.title, description=cat.description,
        extent={"spatial": _spatial(v.grid), "temporal": {"interval": [[first, last]], "step": t.step,
                                                          "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}},
        parameter_names=edr.catalog_parameters(cat, v.variables),
        data_queries=_queries(base, v.collection_id), output_formats=list(AREA_FORMATS),
        links=[{"href": f"{base}/collections/{v.collection_id}", "rel": "self", "type": JSON_MEDIA}],
        snapshot=v.snapshot,
    )


@get("/collections", guards=[read_guard], security=BEARER, tags=["collections"],
     summary="Forecast and observation collections",
     responses=problem_specs(401, 403))
async def collections(request: Request) -> CollectionsDoc:
    """Every collection: spatial and temporal extent, parameters with units, CF standard names, physical
    ranges and climatological records; for forecasts the latest init and the production model."""
    docs = await anyio.to_thread.run_sync(_collection_docs, request)
    base = str(request.base_url).rstrip("/")
    return CollectionsDoc(collections=docs, links=[{"href": f"{base}/collections", "rel": "self", "type": JSON_MEDIA}])


@get("/collections/{collection_id:str}", guards=[read_guard], security=BEARER, tags=["collections"],
     summary="One collection", responses=problem_specs(401, 403, 404))
async def collection(request: Request, collection_id: str) -> CollectionDoc:
    """One collection's metadata (see /collections)."""
    kind, _, _ = split_id(collection_id)
    docs = await anyio.to_thread.run_sync(lambda: _collection_docs(request, collection_id)) if kind != "unknown" else []
    if not docs:
        raise _unknown(request, collection_id)
    return docs[0]


_POS_RESP = {200: ResponseSpec(data_container=CoverageDoc | CompactDoc, description="CoverageJSON (f=covjson) or "
                               "compact JSON (f=json).", generate_examples=False,
                               examples=[Example(summary="A forecast at one point (CoverageJSON)", value=POSITION_EXAMPLE)]),
             **NOT_MODIFIED, **problem_specs(400, 401, 403, 404)}
_AREA_RESP = {200: ResponseSpec(data_container=CoverageDoc | CompactDoc, description="CoverageJSON (f=covjson), "
                                "compact JSON (f=json) or NetCDF-4 (f=netcdf, application/x-netcdf).",
                                generate_examples=False),
              **NOT_MODIFIED, **problem_specs(400, 401, 403, 404)}


@get("/collections/{collection_id:str}/position", security=BEARER, tags=["queries"],
     summary="Values at the grid point nearest to a point", responses=_POS_RESP)
async def position(request: Request, collection_id: str, coords: Coords = None, parameter_name: ParamNames = None,
                   datetime_: Datetime = None, init_time: InitTime = None, as_of: AsOf = None,
                   f: Fmt = None) -> Response[CoverageDoc]:
    """Forecasts: all lead times of the latest init (or ``init_time``; ``datetime`` filters valid times and
    picks the latest init covering them) at the nearest grid point, each value with its plausibility
    annotation, plus the provenance record. Observations: the latest slots (or ``datetime``), as known now
    or ``as_of``, each value with its QC flag and the tests that raised it."""
    # read_guard is called here rather than declared in guards=[...]: Litestar copies the whole route
    # handler object per guard call, a sizeable share of a cached point query. It runs first, as a guard would.
    await read_guard(request, None)
    kind, dataset, run = split_id(collection_id)
    fmt = _fmt(f, POINT_FORMATS, request)
    lon, lat = parse_point(coords)
    interval = parse_datetime(datetime_)
    s = request.app.state.services
    if kind == "forecast":
        reader: ForecastReader = s.forecasts
        if (dataset, run) not in reader.runs():
            raise _unknown(request, collection_id)
        view = reader.view(dataset, run)
        return await _forecast_position(request, reader, view, lon, lat, parameter_name, interval,
                                        _init_param(init_time), fmt)
    if kind == "observations":
        return await anyio.to_thread.run_sync(
            lambda: _obs_query(request, dataset, "position", (lon, lat), parameter_name, interval, as_of, fmt))
    raise _unknown(request, collection_id)


async def _forecast_position(request, reader: ForecastReader, view: RunView, lon, lat, parameter_name, interval,
                             init_s, fmt) -> Response:
    names = parse_names(parameter_name, view.variables)
    cell = view.grid.index(lon, lat)
    if cell is None:
        raise Problem(400, f"coords: the point ({lon:.4f} {lat:.4f}) lies outside the grid of {view.collection_id}, "
                           f"which covers {view.grid.extent_text()}", extent=list(view.grid.lonlat_extent))
    iy, ix = cell
    idx, mask = view.choose(init_s, interval)
    etag = etag_for(view.snapshot, *_url_parts(request))
    cache = _cache_control(request, view.step_s, view.produced_at(int(view.written[-1])))
    if _not_modified(request, etag):
        return _304(etag, cache)
    arrays = {}
    missing = []
    for n in names:
        for a in (n, f"{n}_annotation"):
            got = reader.cached_point(view, a, idx, iy, ix)
            if got is None:
                missing.append(a)
            else:
                arrays[a] = got
    if missing:
        arrays.update(await reader.read_points(view, missing, idx, iy, ix))
    body, media = _forecast_point_fast(request, view, idx, mask, iy, ix, lon, lat, names, arrays, fmt)
    return _respond(request, body, media, etag, cache)


# A point response is, per (snapshot, init, lead-time mask, parameters, format), one fixed document with a few
# per-cell holes (grid lon/lat, values, annotations, records, the point member). The document is encoded once
# with a marker string in each hole and split there; a request encodes only the holes and joins the pieces.
# The bytes are those of encoding the whole document (msgspec keeps dict order): each template's first rendering
# is compared with _forecast_point_body's, and a template that differs is dropped for the plain path.
_HOLE = "@@fcst-hole-{}@@"
_HOLE_RE = re.compile(rb'"@@fcst-hole-(\d+)@@"')


class _PointTemplate:
    __slots__ = ("parts", "order", "media", "checked")

    def __init__(self, doc: dict, n_holes: int, media: str):
        self.checked = False
        pieces = _HOLE_RE.split(_ENC.encode(doc))
        self.parts = pieces[0::2]
        self.order = [int(k) for k in pieces[1::2]]
        self.media = media
        if sorted(self.order) != list(range(n_holes)):
            raise ValueError("a hole marker is missing or repeated in the point document")

    def render(self, holes: list) -> bytes:
        enc = _ENC.encode
        parts = self.parts
        out = [parts[0]]
        for i, k in enumerate(self.order, 1):
            out.append(enc(holes[k]))
            out.append(parts[i])
        return b"".join(out)


def _point_template(request, view: RunView, idx, mask, names, fmt) -> _PointTemplate | None:
    """The template of a point document: holes 0 lon, 1 lat, 2 point, then per name values, codes, records."""
    h = [_HOLE.format(k) for k in range(3 + 3 * len(names))]
    glon, glat, point = h[0], h[1], h[2]
    values = {n: h[3 + 3 * i] for i, n in enumerate(names)}
    annots = {n: (h[4 + 3 * i], h[5 + 3 * i]) for i, n in enumerate(names)}
    times = [t for t, m in zip(view.valid_times(idx), mask) if m]
    cat = request.app.state.services.catalog(view.dataset)
    doc, media = _point_document(view, cat, idx, mask, names, fmt, glon, glat, point, times, values, annots)
    try:
        return _PointTemplate(doc, len(h), media)
    except ValueError:  # a marker string inside the provenance or catalog text: use the plain path
        return None


def _forecast_point_fast(request, view: RunView, idx, mask, iy, ix, lon, lat, names, arrays, fmt):
    """``_forecast_point_body``'s bytes, from the per-snapshot template of the document."""
    mkey = mask.tobytes()
    tkey = ("point-template", idx, mkey, tuple(names), fmt)
    tmpl = view.memo(tkey, lambda: _point_template(request, view, idx, mask, names, fmt) or False)
    if tmpl is False:
        return _forecast_point_body(request, view, idx, mask, iy, ix, lon, lat, names, arrays, fmt)
    full = bool(mask.all())
    months = view.memo(("months", idx, mkey), lambda: _months(view.init_s(idx) + view.leads[mask]))
    grid = view.grid
    px, py = grid.x0 + ix * grid.dx, grid.y0 + iy * grid.dy
    glon, glat = grid.to_lonlat(px, py)
    glon, glat = round(float(glon), 6), round(float(glat), 6)
    holes: list = [glon, glat, {"requested": [lon, lat], "lon": glon, "lat": glat, "iy": iy, "ix": ix, "x": px,
                                "y": py, "crs": grid.crs}]
    for n in names:
        v = arrays[n] if full else arrays[n][mask]
        c = arrays[f"{n}_annotation"] if full else arrays[f"{n}_annotation"][mask]
        rec = view.memo(("records", n, idx, mkey),
                        lambda: _records(request.app.state.services.catalog(view.dataset), n, months))
        codes, recs = annotate(c, v, *rec)
        holes += [edr.float32s(v), codes, recs]
    body = tmpl.render(holes)
    if not tmpl.checked:
        plain = _forecast_point_body(request, view, idx, mask, iy, ix, lon, lat, names, arrays, fmt)
        if plain != (body, tmpl.media):
            log.warning("point response template of %s differs from the plain document; not used",
                        view.collection_id)
            view._memo[tkey] = False
            return plain
        tmpl.checked = True
    return body, tmpl.media


def _forecast_point_body(request, view: RunView, idx, mask, iy, ix, lon, lat, names, arrays, fmt):
    services = request.app.state.services
    cat = services.catalog(view.dataset)
    all_times = view.valid_times(idx)
    full = bool(mask.all())
    times = all_times if full else [t for t, m in zip(all_times, mask) if m]
    mkey = mask.tobytes()
    months = view.memo(("months", idx, mkey), lambda: _months(view.init_s(idx) + view.leads[mask]))
    px, py = view.grid.x0 + ix * view.grid.dx, view.grid.y0 + iy * view.grid.dy
    glon, glat = view.grid.to_lonlat(px, py)
    glon, glat = round(float(glon), 6), round(float(glat), 6)
    values, annots = {}, {}
    for n in names:
        v = arrays[n] if full else arrays[n][mask]
        c = arrays[f"{n}_annotation"] if full else arrays[f"{n}_annotation"][mask]
        lo, hi = view.memo(("records", n, idx, mkey), lambda: _records(cat, n, months))
        codes, recs = annotate(c, v, lo, hi)
        values[n] = edr.float32s(v)
        annots[n] = (codes, recs)
    point = {"requested": [lon, lat], "lon": glon, "lat": glat, "iy": iy, "ix": ix, "x": px, "y": py,
             "crs": view.grid.crs}
    doc, media = _point_document(view, cat, idx, mask, names, fmt, glon, glat, point, times, values, annots)
    return _ENC.encode(doc), media


def _point_document(view: RunView, cat, idx, mask, names, fmt, glon, glat, point, times, values, annots):
    """The point document (compact JSON or CoverageJSON) and its media type; the template path passes
    hole markers where the plain path passes values, so both render the very same document."""
    prov = view.provenance(idx) or {}
    if fmt == "json":
        doc = {"collection": view.collection_id, "kind": "forecast", "init_time": iso(view.init_s(idx)),
               "valid_time": times, "lead_time": [int(x) for x in view.leads[mask]], "point": point,
               "parameters": {n: {"unit": view.units.get(n), "values": values[n], "annotation": annots[n][0],
                                  "record": annots[n][1]} for n in names},
               "provenance": prov, "store": _store_member(view)}
        return doc, JSON_MEDIA
    members = {
        "fcst:provenance": prov,
        "fcst:annotations": {n: {"axisNames": ["t"], "shape": [len(times)], "values": annots[n][0],
                                 "record": annots[n][1]} for n in names},
        "fcst:initTime": iso(view.init_s(idx)),
        "fcst:leadTime": [int(x) for x in view.leads[mask]],
        "fcst:point": point,
        "fcst:store": _store_member(view),
    }
    doc = edr.point_coverage(lon=glon, lat=glat, times=times, parameters=_params_cached(view, cat, names),
                             ranges=values, members=members)
    return doc, COVJSON_MEDIA


_PARAMS: dict[tuple, dict] = {}


def _params_cached(view: RunView, cat, names: list[str]) -> dict:
    key = (view.dataset, view.run, view.snapshot, tuple(names))
    p = _PARAMS.get(key)
    if p is None:
        if len(_PARAMS) > 256:
            _PARAMS.clear()
        p = edr.catalog_parameters(cat, names, view.units)
        _PARAMS[key] = p
    return p


def _area_geom(kind: str, coords: str | None, bbox: str | None):
    if kind == "area":
        return parse_polygon(coords, "coords"), "coords"
    return parse_bbox(bbox, "bbox"), "bbox"


def _check_size(request, n_cells: int, n_values: int, param: str) -> None:
    st = request.app.state.settings
    if n_cells > st.api_max_cells:
        raise Problem(400, f"{param}: the request covers {n_cells} grid cells; at most {st.api_max_cells} are served "
                           "per request (ask for a smaller area)", limit=st.api_max_cells)
    if n_values > st.api_max_values:
        raise Problem(400, f"{param}: the request holds {n_values} values (cells x times x parameters); at most "
                           f"{st.api_max_values} are served per request (fewer parameters, a shorter interval or a "
                           "smaller area)", limit=st.api_max_values)


async def _area_route(request: Request, kind: str, collection_id: str, coords, bbox, parameter_name, datetime_,
                      init_time, as_of, f) -> Response:
    ckind, dataset, run = split_id(collection_id)
    fmt = _fmt(f, AREA_FORMATS, request)
    geom, param = _area_geom(kind, coords, bbox)
    interval = parse_datetime(datetime_)
    s = request.app.state.services
    if ckind == "forecast":
        if (dataset, run) not in s.forecasts.runs():
            raise _unknown(request, collection_id)
        view = s.forecasts.view(dataset, run)
        return await anyio.to_thread.run_sync(
            lambda: _forecast_area(request, s.forecasts, view, geom, param, parameter_name, interval,
                                   _init_param(init_time), fmt))
    if ckind == "observations":
        return await anyio.to_thread.run_sync(
            lambda: _obs_query(request, dataset, kind, (geom, param), parameter_name, interval, as_of, fmt))
    raise _unknown(request, collection_id)


@get("/collections/{collection_id:str}/area", guards=[read_guard], security=BEARER, tags=["queries"],
     summary="Values inside a polygon", responses=_AREA_RESP)
async def area(request: Request, collection_id: str, coords: Coords = None, parameter_name: ParamNames = None,
               datetime_: Datetime = None, init_time: InitTime = None, as_of: AsOf = None,
               f: Fmt = None) -> Response[CoverageDoc]:
    """The grid cells whose centres lie in ``coords`` (a lon/lat POLYGON), on the native grid (cells of the
    bounding window outside the polygon are null). Bounded by ``api_max_cells`` / ``api_max_values``."""
    return await _area_route(request, "area", collection_id, coords, None, parameter_name, datetime_, init_time,
                             as_of, f)


@get("/collections/{collection_id:str}/cube", guards=[read_guard], security=BEARER, tags=["queries"],
     summary="Values inside a lon/lat box", responses=_AREA_RESP)
async def cube(request: Request, collection_id: str, bbox: Bbox = None, parameter_name: ParamNames = None,
               datetime_: Datetime = None, init_time: InitTime = None, as_of: AsOf = None,
               f: Fmt = None) -> Response[CoverageDoc]:
    """The grid cells inside ``bbox`` (minlon,minlat,maxlon,maxlat), as for ``area``."""
    return await _area_route(request, "cube", collection_id, None, bbox, parameter_name, datetime_, init_time,
                             as_of, f)


def _forecast_area(request, reader: ForecastReader, view: RunView, geom, param, parameter_name, interval, init_s,
                   fmt) -> Response:
    names = parse_names(parameter_name, view.variables)
    iy0, iy1, ix0, ix1, g = view.grid.window(geom, param)
    idx, mask = view.choose(init_s, interval)
    n_cells = (iy1 - iy0) * (ix1 - ix0)
    _check_size(request, n_cells, n_cells * int(mask.sum()) * len(names), param)
    etag = etag_for(view.snapshot, *_url_parts(request))
    cache = _cache_control(request, view.step_s, view.produced_at(int(view.written[-1])))
    if _not_modified(request, etag):
        return _304(etag, cache)
    inside = view.grid.inside_mask(g, iy0, iy1, ix0, ix1)
    cat = request.app.state.services.catalog(view.dataset)
    tsec = view.init_s(idx) + view.leads[mask]
    times = [iso(t) for t in tsec]
    months = _months(tsec)
    prov = view.provenance(idx) or {}
    data, ann = {}, {}
    for n in names:
        v = reader.read_window(view, n, idx, iy0, iy1, ix0, ix1)[mask].astype("float32")
        c = reader.read_window(view, f"{n}_annotation", idx, iy0, iy1, ix0, ix1)[mask]
        v[:, ~inside] = np.nan
        data[n], ann[n] = v, c
    if fmt == "netcdf":
        from forecast.stores.forecasts import annotation_attrs

        nc = {}
        for n in names:
            nc[n] = (data[n], {"units": view.units.get(n, ""), "ancillary_variables": f"{n}_annotation"})
            nc[f"{n}_annotation"] = (ann[n].astype("uint8"), annotation_attrs())
        body = edr.to_netcdf(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times_s=tsec, data=nc,
                             attrs={"collection": view.collection_id, "init_time": iso(view.init_s(idx)),
                                    "provenance": json.dumps(prov), "snapshot": view.snapshot})
        return _respond(request, body, NETCDF_MEDIA, etag, cache,
                        {"Content-Disposition": f'attachment; filename="{view.collection_id}-{iso(view.init_s(idx))}.nc"'})
    values, annots = {}, {}
    for n in names:
        lo, hi = _records(cat, n, months)
        codes, recs = annotate(ann[n], data[n], lo, hi)
        outside = np.broadcast_to(~inside, data[n].shape).ravel()
        codes = [None if o else c for c, o in zip(codes, outside)]
        values[n], annots[n] = edr.floats(data[n]), (codes, recs)
    shape = [len(times), iy1 - iy0, ix1 - ix0]
    grid_doc = {"crs": view.grid.crs, "x": (view.grid.x0 + view.grid.dx * np.arange(ix0, ix1)).tolist(),
                "y": (view.grid.y0 + view.grid.dy * np.arange(iy0, iy1)).tolist(), "iy0": iy0, "ix0": ix0,
                "shape": shape, "axis_order": ["t", "y", "x"]}
    if fmt == "json":
        doc = {"collection": view.collection_id, "kind": "forecast", "init_time": iso(view.init_s(idx)),
               "valid_time": times, "lead_time": [int(x) for x in view.leads[mask]], "grid": grid_doc,
               "parameters": {n: {"unit": view.units.get(n), "values": values[n], "annotation": annots[n][0],
                                  "record": annots[n][1]} for n in names},
               "provenance": prov, "store": _store_member(view)}
        return _respond(request, _ENC.encode(doc), JSON_MEDIA, etag, cache)
    members = {"fcst:provenance": prov,
               "fcst:annotations": {n: {"axisNames": ["t", "y", "x"], "shape": shape, "values": annots[n][0],
                                        "record": annots[n][1]} for n in names},
               "fcst:initTime": iso(view.init_s(idx)), "fcst:leadTime": [int(x) for x in view.leads[mask]],
               "fcst:store": _store_member(view)}
    doc = edr.grid_coverage(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times=times,
                            parameters=_params_cached(view, cat, names), ranges=values, members=members)
    return _respond(request, _ENC.encode(doc), COVJSON_MEDIA, etag, cache)


# -- observations -------------------------------------------------------------------------------------------

def _obs_query(request: Request, dataset: str, kind: str, where, parameter_name, interval, as_of, fmt) -> Response:
    s = request.app.state.services
    st = request.app.state.settings
    reader = s.observations
    if dataset not in reader.datasets():
        raise _unknown(request, f"{dataset}.observations")
    view = reader.view(dataset)
    names = parse_names(parameter_name, view.variables)
    as_of_s = None if as_of is None or not as_of.strip() else int(parse_instant(as_of, "as_of").timestamp())
    if kind == "position":
        lon, lat = where
        cell = view.grid.index(lon, lat)
        if cell is None:
            raise Problem(400, f"coords: the point ({lon:.4f} {lat:.4f}) lies outside the grid of {view.collection_id}, "
                               f"which covers {view.grid.extent_text()}", extent=list(view.grid.lonlat_extent))
        window = (cell[0], cell[0] + 1, cell[1], cell[1] + 1)
        max_slots = max(1, st.api_max_values // max(1, len(names)))
        inside = None
    else:
        geom, param = where
        iy0, iy1, ix0, ix1, g = view.grid.window(geom, param)
        window = (iy0, iy1, ix0, ix1)
        n_cells = (iy1 - iy0) * (ix1 - ix0)
        _check_size(request, n_cells, 0, param)
        max_slots = max(1, st.api_max_values // max(1, n_cells * len(names)))
        inside = view.grid.inside_mask(g, iy0, iy1, ix0, ix1)
    lo, hi = view.slot_range(interval, as_of_s, st.api_obs_default_slots, min(max_slots, 2016))
    etag = etag_for(view.snapshot, *_url_parts(request))
    step = view.catalog.time.step_seconds or 3600
    cache = _cache_control(request, step, int(view.catalog.time.label(view.n_slots - 1)))
    if _not_modified(request, etag):
        return _304(etag, cache)
    data, times_s = reader.read(view, lo, hi, as_of_s, names, window)
    times = [iso(t) for t in times_s]
    iy0, iy1, ix0, ix1 = window
    prov = {"dataset": dataset, "snapshot": view.snapshot, "as_of": iso(as_of_s) if as_of_s is not None else "latest",
            "catalog_hash": view.catalog.hash,
            "revisions": {n: [int(r) for r in data[n][3]] for n in names},
            "available_at": {n: data[n][4] for n in names}}
    if inside is not None:
        for n in names:
            data[n][0][:, ~inside] = np.nan
    if fmt == "netcdf":
        nc = {}
        for n in names:
            vals, qc, tests, _, _ = data[n]
            nc[n] = (vals.astype("float32"), {"units": view.catalog.variables[n].units,
                                              "ancillary_variables": f"{n}_qc {n}_qc_tests"})
            nc[f"{n}_qc"] = (qc.astype("uint8"), {"flag_values": np.array([1, 2, 3, 4, 9], "uint8"),
                                                  "flag_meanings": "GOOD NOT_EVALUATED SUSPECT FAIL MISSING"})
            nc[f"{n}_qc_tests"] = (tests.astype("uint32"), {"flag_meanings": " ".join(test_names(2**32 - 1))})
        body = edr.to_netcdf(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times_s=times_s, data=nc,
                             attrs={"collection": view.collection_id, "provenance": json.dumps(prov)})
        return _respond(request, body, NETCDF_MEDIA, etag, cache,
                        {"Content-Disposition": f'attachment; filename="{view.collection_id}.nc"'})
    values, qcs = {}, {}
    for n in names:
        vals, qc, tests, _, _ = data[n]
        outside = None if inside is None else np.broadcast_to(~inside, vals.shape).ravel()
        flags = [FLAG_NAMES.get(int(q), str(int(q))) for q in qc.ravel().tolist()]
        tnames = [test_names(int(t)) for t in tests.ravel().tolist()]
        if outside is not None:
            flags = [None if o else fl for fl, o in zip(flags, outside)]
            tnames = [None if o else tn for tn, o in zip(tnames, outside)]
        values[n] = edr.float32s(vals) if kind == "position" else edr.floats(vals)
        qcs[n] = {"flags": flags, "tests": tnames}
    params = edr.catalog_parameters(view.catalog, names)
    if kind == "position":
        ix, iy = window[2], window[0]
        px, py = view.grid.x0 + ix * view.grid.dx, view.grid.y0 + iy * view.grid.dy
        glon, glat = (round(float(c), 6) for c in view.grid.to_lonlat(px, py))
        point = {"requested": list(where), "lon": glon, "lat": glat, "iy": iy, "ix": ix, "x": px, "y": py,
                 "crs": view.grid.crs}
        if fmt == "json":
            doc = {"collection": view.collection_id, "kind": "observations", "valid_time": times, "point": point,
                   "parameters": {n: {"unit": view.catalog.variables[n].units, "values": values[n],
                                      "qc": qcs[n]["flags"], "qc_tests": qcs[n]["tests"]} for n in names},
                   "provenance": prov}
            return _respond(request, _ENC.encode(doc), JSON_MEDIA, etag, cache)
        members = {"fcst:provenance": prov, "fcst:point": point,
                   "fcst:qc": {n: {"axisNames": ["t"], "shape": [len(times)], **qcs[n]} for n in names}}
        doc = edr.point_coverage(lon=glon, lat=glat, times=times, parameters=params, ranges=values, members=members)
        return _respond(request, _ENC.encode(doc), COVJSON_MEDIA, etag, cache)
    shape = [len(times), iy1 - iy0, ix1 - ix0]
    if fmt == "json":
        grid_doc = {"crs": view.grid.crs, "x": (view.grid.x0 + view.grid.dx * np.arange(ix0, ix1)).tolist(),
                    "y": (view.grid.y0 + view.grid.dy * np.arange(iy0, iy1)).tolist(), "iy0": iy0, "ix0": ix0,
                    "shape": shape, "axis_order": ["t", "y", "x"]}
        doc = {"collection": view.collection_id, "kind": "observations", "valid_time": times, "grid": grid_doc,
               "parameters": {n: {"unit": view.catalog.variables[n].units, "values": values[n],
                                  "qc": qcs[n]["flags"], "qc_tests": qcs[n]["tests"]} for n in names},
               "provenance": prov}
        return _respond(request, _ENC.encode(doc), JSON_MEDIA, etag, cache)
    members = {"fcst:provenance": prov,
               "fcst:qc": {n: {"axisNames": ["t", "y", "x"], "shape": shape, **qcs[n]} for n in names}}
    doc = edr.grid_coverage(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times=times, parameters=params,
                            ranges=values, members=members)
    return _respond(request, _ENC.encode(doc), COVJSON_MEDIA, etag, cache)


ROUTES = [collections, collection, position, area, cube]

_ = (Any, math)
