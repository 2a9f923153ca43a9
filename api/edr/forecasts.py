"""Answers of forecast queries: the values at a point (all lead times of one init, read chunk-wise and
rendered from a per-snapshot template) or in a window, each value with its plausibility annotation and,
for an extreme, the climatological record it went beyond; the provenance record beside them.

Exceedance probabilities (``<variable>_exceedance_<t>``, unit "1") are served when ``parameter-name`` names
them (the default stays the run's variables, so a request that worked before answers as before); an init
written before probabilities were stored answers null values and null annotations for them."""

from __future__ import annotations

import json
import logging

import numpy as np
from litestar import Request, Response

from api.edr.caching import cache_control, etag_for, not_modified, url_parts
from api.edr.fastpath import Template, holes, not_modified_response, respond
from api.edr.params import check_size, parse_names
from api.edr.responses import (
    COVJSON_MEDIA,
    JSON_MEDIA,
    NETCDF_MEDIA,
    encode,
    float32s,
    floats,
    forecast_parameters,
    grid_coverage,
    grid_member,
    point_coverage,
    threshold_member,
    to_netcdf,
)
from api.problems import Problem
from api.readers.forecasts import ForecastReader, RunView
from forecast.plausibility import ANNOTATIONS, NO_VALUE
from forecast.timeutil import from_epoch, iso

log = logging.getLogger("api")


# -- annotations -----------------------------------------------------------------------------------------

def records(catalog, name: str, months: list[int]) -> tuple[list[float | None], list[float | None]]:
    """(lower, upper) climatological records of ``name`` for each month of ``months`` (None: no record)."""
    var = catalog.variables.get(name) if catalog is not None else None
    if var is None:
        return [None] * len(months), [None] * len(months)
    hi = [var.record_max[m - 1] if var.record_max else None for m in months]
    lo = [var.record_min[m - 1] if var.record_min else None for m in months]
    return lo, hi


def annotate(codes: np.ndarray, values: np.ndarray, lo: list, hi: list) -> tuple[list[str], list[float | None]]:
    """Per value: its annotation name (None where no value was ever written) and, for an extreme, the
    climatological record it went beyond."""
    names = [ANNOTATIONS[c] if c < len(ANNOTATIONS) else (None if c == NO_VALUE else "unknown")
             for c in codes.ravel().tolist()]
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


def months_of(times_s: np.ndarray) -> list[int]:
    return [from_epoch(t).month for t in times_s]


def store_member(view: RunView) -> dict:
    return {"collection": view.collection_id, "run": view.run, "snapshot": view.snapshot}


def parameters(view: RunView, cat, names: list[str]) -> dict:
    """The CoverageJSON ``parameters`` of ``names`` (memoised per view)."""
    return view.memo(("parameters", tuple(names)),
                     lambda: forecast_parameters(cat, names, view.units, view.exceedance))


def query_names(view: RunView, parameter_name: str | None) -> list[str]:
    """The parameters a query asks for: those named (any of the run's variables and exceedance
    probabilities; an unknown name is a 400 listing them), or by default the run's variables."""
    if parameter_name is None or not parameter_name.strip():
        return list(view.variables)
    return parse_names(parameter_name, view.parameters)


def json_parameter(view: RunView, n: str, values, annots) -> dict:
    """One parameter of the compact JSON: unit, values, annotations, records; for an exceedance
    probability also its variable and threshold."""
    out = {"unit": view.units.get(n), "values": values, "annotation": annots[0], "record": annots[1]}
    if n in view.exceedance:
        out.update(threshold_member(view.exceedance[n]))
    return out


# -- position -------------------------------------------------------------------------------------------------

async def position(request: Request, reader: ForecastReader, view: RunView, lon: float, lat: float,
                   parameter_name: str | None, interval, init_s: int | None, fmt: str) -> Response:
    """All lead times (of the chosen init, filtered by ``interval``) at the grid cell nearest to (lon, lat)."""
    names = query_names(view, parameter_name)
    cell = view.grid.index(lon, lat)
    if cell is None:
        raise Problem(400, f"coords: the point ({lon:.4f} {lat:.4f}) lies outside the grid of {view.collection_id}, "
                           f"which covers {view.grid.extent_text()}", extent=list(view.grid.lonlat_extent))
    iy, ix = cell
    idx, mask = view.choose(init_s, interval)
    etag = etag_for(view.snapshot, *url_parts(request))
    cache = cache_control(request, view.step_s, view.produced_at(int(view.written[-1])))
    if not_modified(request, etag):
        return not_modified_response(etag, cache)
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
    body, media = _point_bytes(request, view, idx, mask, iy, ix, lon, lat, names, arrays, fmt)
    return respond(body, media, etag, cache)


# A point response is, per (snapshot, init, lead-time mask, parameters, format), one fixed document with a few
# per-cell holes (grid lon/lat, values, annotations, records, the point member): a fastpath.Template. Each
# template's first rendering is compared with _point_body's, and a template that differs is dropped for the
# plain path.

def _point_template(request, view: RunView, idx, mask, names, fmt) -> Template | None:
    """The template of a point document: holes 0 lon, 1 lat, 2 point, then per name values, codes, records."""
    h = holes(3 + 3 * len(names))
    glon, glat, point = h[0], h[1], h[2]
    values = {n: h[3 + 3 * i] for i, n in enumerate(names)}
    annots = {n: (h[4 + 3 * i], h[5 + 3 * i]) for i, n in enumerate(names)}
    times = [t for t, m in zip(view.valid_times(idx), mask) if m]
    cat = request.app.state.services.catalog(view.dataset)
    doc, media = _point_document(view, cat, idx, mask, names, fmt, glon, glat, point, times, values, annots)
    try:
        return Template(doc, len(h), media)
    except ValueError:  # a marker string inside the provenance or catalog text: use the plain path
        return None


def _point_bytes(request, view: RunView, idx, mask, iy, ix, lon, lat, names, arrays, fmt):
    """``_point_body``'s bytes, from the per-snapshot template of the document."""
    mkey = mask.tobytes()
    tkey = ("point-template", idx, mkey, tuple(names), fmt)
    tmpl = view.memo(tkey, lambda: _point_template(request, view, idx, mask, names, fmt) or False)
    if tmpl is False:
        return _point_body(request, view, idx, mask, iy, ix, lon, lat, names, arrays, fmt)
    full = bool(mask.all())
    months = view.memo(("months", idx, mkey), lambda: months_of(view.init_s(idx) + view.leads[mask]))
    grid = view.grid
    px, py = grid.x0 + ix * grid.dx, grid.y0 + iy * grid.dy
    glon, glat = grid.to_lonlat(px, py)
    glon, glat = round(float(glon), 6), round(float(glat), 6)
    fill: list = [glon, glat, {"requested": [lon, lat], "lon": glon, "lat": glat, "iy": iy, "ix": ix, "x": px,
                               "y": py, "crs": grid.crs}]
    for n in names:
        v = arrays[n] if full else arrays[n][mask]
        c = arrays[f"{n}_annotation"] if full else arrays[f"{n}_annotation"][mask]
        rec = view.memo(("records", n, idx, mkey),
                        lambda: records(request.app.state.services.catalog(view.dataset), n, months))
        codes, recs = annotate(c, v, *rec)
        fill += [float32s(v), codes, recs]
    body = tmpl.render(fill)
    if not tmpl.checked:
        plain = _point_body(request, view, idx, mask, iy, ix, lon, lat, names, arrays, fmt)
        if plain != (body, tmpl.media):
            log.warning("point response template of %s differs from the plain document; not used",
                        view.collection_id)
            view.remember(tkey, False)
            return plain
        tmpl.checked = True
    return body, tmpl.media


def _point_body(request, view: RunView, idx, mask, iy, ix, lon, lat, names, arrays, fmt):
    services = request.app.state.services
    cat = services.catalog(view.dataset)
    all_times = view.valid_times(idx)
    full = bool(mask.all())
    times = all_times if full else [t for t, m in zip(all_times, mask) if m]
    mkey = mask.tobytes()
    months = view.memo(("months", idx, mkey), lambda: months_of(view.init_s(idx) + view.leads[mask]))
    px, py = view.grid.x0 + ix * view.grid.dx, view.grid.y0 + iy * view.grid.dy
    glon, glat = view.grid.to_lonlat(px, py)
    glon, glat = round(float(glon), 6), round(float(glat), 6)
    values, annots = {}, {}
    for n in names:
        v = arrays[n] if full else arrays[n][mask]
        c = arrays[f"{n}_annotation"] if full else arrays[f"{n}_annotation"][mask]
        lo, hi = view.memo(("records", n, idx, mkey), lambda: records(cat, n, months))
        codes, recs = annotate(c, v, lo, hi)
        values[n] = float32s(v)
        annots[n] = (codes, recs)
    point = {"requested": [lon, lat], "lon": glon, "lat": glat, "iy": iy, "ix": ix, "x": px, "y": py,
             "crs": view.grid.crs}
    doc, media = _point_document(view, cat, idx, mask, names, fmt, glon, glat, point, times, values, annots)
    return encode(doc), media


def _point_document(view: RunView, cat, idx, mask, names, fmt, glon, glat, point, times, values, annots):
    """The point document (compact JSON or CoverageJSON) and its media type; the template path passes
    hole markers where the plain path passes values, so both render the very same document."""
    prov = view.provenance(idx) or {}
    if fmt == "json":
        doc = {"collection": view.collection_id, "kind": "forecast", "init_time": iso(view.init_s(idx)),
               "valid_time": times, "lead_time": [int(x) for x in view.leads[mask]], "point": point,
               "parameters": {n: json_parameter(view, n, values[n], annots[n]) for n in names},
               "provenance": prov, "store": store_member(view)}
        return doc, JSON_MEDIA
    members = {
        "fcst:provenance": prov,
        "fcst:annotations": {n: {"axisNames": ["t"], "shape": [len(times)], "values": annots[n][0],
                                 "record": annots[n][1]} for n in names},
        "fcst:initTime": iso(view.init_s(idx)),
        "fcst:leadTime": [int(x) for x in view.leads[mask]],
        "fcst:point": point,
        "fcst:store": store_member(view),
    }
    doc = point_coverage(lon=glon, lat=glat, times=times, parameters=parameters(view, cat, names),
                         ranges=values, members=members)
    return doc, COVJSON_MEDIA


# -- area and cube --------------------------------------------------------------------------------------------

def window(request: Request, reader: ForecastReader, view: RunView, geom, param: str, parameter_name: str | None,
           interval, init_s: int | None, fmt: str) -> Response:
    """The cells whose centres lie in ``geom`` (lon/lat), on the native grid: cells of the bounding window
    outside it are null. Runs in a worker thread."""
    names = query_names(view, parameter_name)
    iy0, iy1, ix0, ix1, g = view.grid.window(geom, param)
    idx, mask = view.choose(init_s, interval)
    n_cells = (iy1 - iy0) * (ix1 - ix0)
    check_size(request.app.state.settings, n_cells, n_cells * int(mask.sum()) * len(names), param)
    etag = etag_for(view.snapshot, *url_parts(request))
    cache = cache_control(request, view.step_s, view.produced_at(int(view.written[-1])))
    if not_modified(request, etag):
        return not_modified_response(etag, cache)
    inside = view.grid.inside_mask(g, iy0, iy1, ix0, ix1)
    cat = request.app.state.services.catalog(view.dataset)
    tsec = view.init_s(idx) + view.leads[mask]
    times = [iso(t) for t in tsec]
    months = months_of(tsec)
    prov = view.provenance(idx) or {}
    data, ann = {}, {}
    for n in names:
        v = reader.read_window(view, n, idx, iy0, iy1, ix0, ix1)[mask].astype("float32")
        c = reader.read_window(view, f"{n}_annotation", idx, iy0, iy1, ix0, ix1)[mask]
        v[:, ~inside] = np.nan
        data[n], ann[n] = v, c
    if fmt == "netcdf":
        from forecast.plausibility import annotation_attrs

        nc = {}
        for n in names:
            attrs = {"units": view.units.get(n, ""), "ancillary_variables": f"{n}_annotation"}
            if n in view.exceedance:
                meta = view.exceedance[n]
                attrs.update({"long_name": forecast_parameters(cat, [n], view.units, view.exceedance)[n]
                              ["description"]["en"], "threshold": float(meta["threshold"]),
                              "threshold_units": meta.get("threshold_units") or "", "variable": meta["variable"]})
            nc[n] = (data[n], attrs)
            nc[f"{n}_annotation"] = (ann[n].astype("uint8"), annotation_attrs())
        body = to_netcdf(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times_s=tsec, data=nc,
                         attrs={"collection": view.collection_id, "init_time": iso(view.init_s(idx)),
                                "provenance": json.dumps(prov), "snapshot": view.snapshot})
        return respond(body, NETCDF_MEDIA, etag, cache,
                       {"Content-Disposition": f'attachment; filename="{view.collection_id}-{iso(view.init_s(idx))}.nc"'})
    values, annots = {}, {}
    for n in names:
        lo, hi = records(cat, n, months)
        codes, recs = annotate(ann[n], data[n], lo, hi)
        outside = np.broadcast_to(~inside, data[n].shape).ravel()
        codes = [None if o else c for c, o in zip(codes, outside)]
        values[n], annots[n] = floats(data[n]), (codes, recs)
    if fmt == "json":
        doc = {"collection": view.collection_id, "kind": "forecast", "init_time": iso(view.init_s(idx)),
               "valid_time": times, "lead_time": [int(x) for x in view.leads[mask]],
               "grid": grid_member(view.grid, iy0, iy1, ix0, ix1, len(times)),
               "parameters": {n: json_parameter(view, n, values[n], annots[n]) for n in names},
               "provenance": prov, "store": store_member(view)}
        return respond(encode(doc), JSON_MEDIA, etag, cache)
    shape = [len(times), iy1 - iy0, ix1 - ix0]
    members = {"fcst:provenance": prov,
               "fcst:annotations": {n: {"axisNames": ["t", "y", "x"], "shape": shape, "values": annots[n][0],
                                        "record": annots[n][1]} for n in names},
               "fcst:initTime": iso(view.init_s(idx)), "fcst:leadTime": [int(x) for x in view.leads[mask]],
               "fcst:store": store_member(view)}
    doc = grid_coverage(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times=times,
                        parameters=parameters(view, cat, names), ranges=values, members=members)
    return respond(encode(doc), COVJSON_MEDIA, etag, cache)
