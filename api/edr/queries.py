"""EDR data queries on forecast collections (``<dataset>.forecast``, ``<dataset>.forecast.<run>``) and
observation collections (``<dataset>.observations``): position, area and cube. The handlers parse the
parameters and hand the query to ``api.edr.forecasts`` or ``api.edr.observations``."""

from __future__ import annotations

import anyio
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from api.auth import OPTIONAL_BEARER, read_guard
from api.edr import forecasts, observations
from api.edr.collections import split_id, unknown_collection
from api.edr.params import (
    AREA_FORMATS,
    POINT_FORMATS,
    AreaCoords,
    AreaFormat,
    AsOf,
    Bbox,
    Datetime,
    InitTime,
    ParamNames,
    PointCoords,
    PointFormat,
    parse_bbox,
    parse_datetime,
    parse_format,
    parse_optional_instant,
    parse_point,
    parse_polygon,
)
from api.edr.responses import COVJSON_MEDIA, JSON_MEDIA, NETCDF_MEDIA
from api.openapi import NOT_MODIFIED, media_types, problem_specs
from api.readers.forecasts import ForecastReader
from api.schemas import POSITION_EXAMPLE, CompactDoc, CoverageDoc

_POS_RESP = {200: ResponseSpec(data_container=CoverageDoc | CompactDoc, description="CoverageJSON (f=covjson, "
                               f"{COVJSON_MEDIA}) or compact JSON (f=json, {JSON_MEDIA}).", generate_examples=False,
                               media_type=COVJSON_MEDIA,
                               examples=[Example(summary="A forecast at one point (CoverageJSON)", value=POSITION_EXAMPLE)]),
             **NOT_MODIFIED, **problem_specs(400, 401, 403, 404, 500)}
_AREA_RESP = {200: ResponseSpec(data_container=CoverageDoc | CompactDoc, description=f"CoverageJSON (f=covjson, {COVJSON_MEDIA}), "
                                f"compact JSON (f=json, {JSON_MEDIA}) or NetCDF-4 (f=netcdf, {NETCDF_MEDIA}).",
                                generate_examples=False, media_type=COVJSON_MEDIA),
              **NOT_MODIFIED, **problem_specs(400, 401, 403, 404, 500)}
_POINT_MEDIA = media_types({COVJSON_MEDIA: CoverageDoc, JSON_MEDIA: CompactDoc})
_AREA_MEDIA = media_types({COVJSON_MEDIA: CoverageDoc, JSON_MEDIA: CompactDoc, NETCDF_MEDIA: bytes})


@get("/collections/{collection_id:str}/position", security=OPTIONAL_BEARER, tags=["queries"],
     summary="Values at the grid point nearest to a point", responses=_POS_RESP, operation_class=_POINT_MEDIA)
async def position(request: Request, collection_id: str, coords: PointCoords = None,
                   parameter_name: ParamNames = None, datetime_: Datetime = None, init_time: InitTime = None,
                   as_of: AsOf = None, f: PointFormat = None) -> Response[CoverageDoc]:
    """Forecasts: all lead times of the latest init (or ``init_time``; ``datetime`` filters valid times and
    picks the latest init covering them) at the nearest grid point, each value with its plausibility
    annotation, plus the provenance record. Observations: the latest slots (or ``datetime``), as known now
    or ``as_of``, each value with its QC flag and the tests that raised it."""
    # read_guard is called here rather than declared in guards=[...]: Litestar copies the whole route
    # handler object per guard call, a sizeable share of a cached point query. It runs first, as a guard would.
    await read_guard(request, None)
    kind, dataset, run = split_id(collection_id)
    fmt = parse_format(f, POINT_FORMATS, request.headers.get("accept", ""))
    lon, lat = parse_point(coords)
    interval = parse_datetime(datetime_)
    s = request.app.state.services
    if kind == "forecast":
        reader: ForecastReader = s.forecasts
        if (dataset, run) not in reader.runs():
            raise unknown_collection(request, collection_id)
        view = reader.view(dataset, run)
        return await forecasts.position(request, reader, view, lon, lat, parameter_name, interval,
                                        parse_optional_instant(init_time, "init_time"), fmt)
    if kind == "observations":
        return await anyio.to_thread.run_sync(
            lambda: observations.answer(request, dataset, "position", (lon, lat), parameter_name, interval, as_of,
                                        fmt))
    raise unknown_collection(request, collection_id)


async def _window_query(request: Request, kind: str, collection_id: str, coords, bbox, parameter_name, datetime_,
                        init_time, as_of, f) -> Response:
    ckind, dataset, run = split_id(collection_id)
    fmt = parse_format(f, AREA_FORMATS, request.headers.get("accept", ""))
    geom, param = (parse_polygon(coords, "coords"), "coords") if kind == "area" else (parse_bbox(bbox, "bbox"), "bbox")
    interval = parse_datetime(datetime_)
    s = request.app.state.services
    if ckind == "forecast":
        if (dataset, run) not in s.forecasts.runs():
            raise unknown_collection(request, collection_id)
        view = s.forecasts.view(dataset, run)
        return await anyio.to_thread.run_sync(
            lambda: forecasts.window(request, s.forecasts, view, geom, param, parameter_name, interval,
                                     parse_optional_instant(init_time, "init_time"), fmt))
    if ckind == "observations":
        return await anyio.to_thread.run_sync(
            lambda: observations.answer(request, dataset, kind, (geom, param), parameter_name, interval, as_of, fmt))
    raise unknown_collection(request, collection_id)


@get("/collections/{collection_id:str}/area", guards=[read_guard], security=OPTIONAL_BEARER, tags=["queries"],
     summary="Values inside a polygon", responses=_AREA_RESP, operation_class=_AREA_MEDIA)
async def area(request: Request, collection_id: str, coords: AreaCoords = None, parameter_name: ParamNames = None,
               datetime_: Datetime = None, init_time: InitTime = None, as_of: AsOf = None,
               f: AreaFormat = None) -> Response[CoverageDoc]:
    """The grid cells whose centres lie in ``coords`` (a lon/lat POLYGON), on the native grid (cells of the
    bounding window outside the polygon are null). Bounded by ``api_max_cells`` / ``api_max_values``."""
    return await _window_query(request, "area", collection_id, coords, None, parameter_name, datetime_, init_time,
                               as_of, f)


@get("/collections/{collection_id:str}/cube", guards=[read_guard], security=OPTIONAL_BEARER, tags=["queries"],
     summary="Values inside a lon/lat box", responses=_AREA_RESP, operation_class=_AREA_MEDIA)
async def cube(request: Request, collection_id: str, bbox: Bbox = None, parameter_name: ParamNames = None,
               datetime_: Datetime = None, init_time: InitTime = None, as_of: AsOf = None,
               f: AreaFormat = None) -> Response[CoverageDoc]:
    """The grid cells inside ``bbox`` (minlon,minlat,maxlon,maxlat), as for ``area``."""
    return await _window_query(request, "cube", collection_id, None, bbox, parameter_name, datetime_, init_time,
                               as_of, f)


ROUTES = [position, area, cube]
