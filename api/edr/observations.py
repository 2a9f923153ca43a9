"""Answers of observation queries: values over a slot range (the latest slots, ``datetime``, as known now
or ``as_of``) at a point or in a window, each value with its QC flag and the names of the tests that
raised it, and the revisions and arrival times behind them."""

from __future__ import annotations

import json

import numpy as np
from litestar import Request, Response

from api.edr.caching import cache_control, etag_for, not_modified, url_parts
from api.edr.collections import unknown_collection
from api.edr.fastpath import not_modified_response, respond
from api.edr.params import check_size, parse_names, parse_optional_instant
from api.edr.responses import (
    COVJSON_MEDIA,
    JSON_MEDIA,
    NETCDF_MEDIA,
    catalog_parameters,
    encode,
    float32s,
    floats,
    grid_coverage,
    grid_member,
    point_coverage,
    to_netcdf,
)
from api.flags import FLAG_NAMES, test_names
from api.problems import Problem
from forecast.timeutil import iso


def answer(request: Request, dataset: str, kind: str, where, parameter_name: str | None, interval,
           as_of: str | None, fmt: str) -> Response:
    """A position (``where`` = (lon, lat)) or area / cube (``where`` = (lon/lat geometry, its parameter))
    query of one dataset's observations. Runs in a worker thread."""
    s = request.app.state.services
    st = request.app.state.settings
    reader = s.observations
    if dataset not in reader.datasets():
        raise unknown_collection(request, f"{dataset}.observations")
    view = reader.view(dataset)
    names = parse_names(parameter_name, view.variables)
    as_of_s = parse_optional_instant(as_of, "as_of")
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
        check_size(st, n_cells, 0, param)
        max_slots = max(1, st.api_max_values // max(1, n_cells * len(names)))
        inside = view.grid.inside_mask(g, iy0, iy1, ix0, ix1)
    lo, hi = view.slot_range(interval, as_of_s, st.api_obs_default_slots, min(max_slots, 2016))
    etag = etag_for(view.snapshot, *url_parts(request))
    step = view.catalog.time.step_seconds or 3600
    cache = cache_control(request, step, int(view.catalog.time.label(view.n_slots - 1)))
    if not_modified(request, etag):
        return not_modified_response(etag, cache)
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
        body = to_netcdf(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times_s=times_s, data=nc,
                         attrs={"collection": view.collection_id, "provenance": json.dumps(prov)})
        return respond(body, NETCDF_MEDIA, etag, cache,
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
        values[n] = float32s(vals) if kind == "position" else floats(vals)
        qcs[n] = {"flags": flags, "tests": tnames}
    params = catalog_parameters(view.catalog, names)
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
            return respond(encode(doc), JSON_MEDIA, etag, cache)
        members = {"fcst:provenance": prov, "fcst:point": point,
                   "fcst:qc": {n: {"axisNames": ["t"], "shape": [len(times)], **qcs[n]} for n in names}}
        doc = point_coverage(lon=glon, lat=glat, times=times, parameters=params, ranges=values, members=members)
        return respond(encode(doc), COVJSON_MEDIA, etag, cache)
    shape = [len(times), iy1 - iy0, ix1 - ix0]
    if fmt == "json":
        doc = {"collection": view.collection_id, "kind": "observations", "valid_time": times,
               "grid": grid_member(view.grid, iy0, iy1, ix0, ix1, len(times)),
               "parameters": {n: {"unit": view.catalog.variables[n].units, "values": values[n],
                                  "qc": qcs[n]["flags"], "qc_tests": qcs[n]["tests"]} for n in names},
               "provenance": prov}
        return respond(encode(doc), JSON_MEDIA, etag, cache)
    members = {"fcst:provenance": prov,
               "fcst:qc": {n: {"axisNames": ["t", "y", "x"], "shape": shape, **qcs[n]} for n in names}}
    doc = grid_coverage(grid=view.grid, iy0=iy0, iy1=iy1, ix0=ix0, ix1=ix1, times=times, parameters=params,
                        ranges=values, members=members)
    return respond(encode(doc), COVJSON_MEDIA, etag, cache)
