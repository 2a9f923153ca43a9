"""EDR collections: the ids (``<dataset>.forecast``, ``<dataset>.forecast.<run>``, ``<dataset>.observations``),
each collection's metadata document (extent, parameters, queries, latest init and production model) and
the /collections routes."""

from __future__ import annotations

import anyio
from litestar import Request, get

from api.auth import OPTIONAL_BEARER, read_guard
from api.edr.params import AREA_FORMATS, POINT_FORMATS
from api.edr.responses import CRS84, JSON_MEDIA, catalog_parameters, forecast_parameters
from api.openapi import problem_specs
from api.problems import Problem
from api.readers.forecasts import RunView
from api.readers.observations import ObsView
from api.schemas import CollectionDoc, CollectionsDoc
from forecast.stores import PRODUCTION
from forecast.timeutil import iso


def split_id(cid: str) -> tuple[str, str, str | None]:
    """(kind, dataset, run) of a collection id; kind is forecast, observations or unknown."""
    parts = cid.split(".")
    if len(parts) == 2 and parts[1] == "observations":
        return "observations", parts[0], None
    if len(parts) == 2 and parts[1] == "forecast":
        return "forecast", parts[0], PRODUCTION
    if len(parts) == 3 and parts[1] == "forecast" and parts[2]:
        return "forecast", parts[0], parts[2]
    return "unknown", cid, None


def known_ids(request: Request) -> list[str]:
    s = request.app.state.services
    ids = [f"{d}.forecast" if r == PRODUCTION else f"{d}.forecast.{r}" for d, r in s.forecasts.runs()]
    ids += [f"{d}.observations" for d in s.observations.datasets()]
    return sorted(ids)


def unknown_collection(request: Request, cid: str) -> Problem:
    """The 404 of an unknown collection id, listing the known ones."""
    known = known_ids(request)
    return Problem(404, f"no collection {cid!r}; collections: {', '.join(known) or 'none yet'}")


def collection_docs(request: Request, only: str | None = None) -> list[CollectionDoc]:
    """The documents of every collection (or of the one with id ``only``)."""
    s = request.app.state.services
    base = str(request.base_url).rstrip("/")
    docs = []
    runs = s.forecasts.runs()
    for d, r in runs:
        cid = f"{d}.forecast" if r == PRODUCTION else f"{d}.forecast.{r}"
        if only is not None and cid != only:
            continue
        v = s.forecasts.view(d, r)
        docs.append(_forecast_collection(base, v, s))
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
    return {"bbox": [list(grid.lonlat_extent)], "crs": CRS84,
            "grid": {"crs": grid.crs, "shape": [grid.ny, grid.nx],
                     "x": {"start": grid.x0, "step": grid.dx, "size": grid.nx},
                     "y": {"start": grid.y0, "step": grid.dy, "size": grid.ny}}}


def _forecast_collection(base: str, v: RunView, s) -> CollectionDoc:
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
        parameter_names=forecast_parameters(cat, v.parameters, v.units, v.exceedance),
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
        parameter_names=catalog_parameters(cat, v.variables),
        data_queries=_queries(base, v.collection_id), output_formats=list(AREA_FORMATS),
        links=[{"href": f"{base}/collections/{v.collection_id}", "rel": "self", "type": JSON_MEDIA}],
        snapshot=v.snapshot,
    )


@get("/collections", guards=[read_guard], security=OPTIONAL_BEARER, tags=["collections"],
     summary="Forecast and observation collections",
     responses=problem_specs(401, 403, 500))
async def collections(request: Request) -> CollectionsDoc:
    """Every collection: spatial and temporal extent, parameters with units, CF standard names, physical
    ranges and climatological records; for forecasts the latest init and the production model."""
    docs = await anyio.to_thread.run_sync(collection_docs, request)
    base = str(request.base_url).rstrip("/")
    return CollectionsDoc(collections=docs, links=[{"href": f"{base}/collections", "rel": "self", "type": JSON_MEDIA}])


@get("/collections/{collection_id:str}", guards=[read_guard], security=OPTIONAL_BEARER, tags=["collections"],
     summary="One collection", responses=problem_specs(400, 401, 403, 404, 500))
async def collection(request: Request, collection_id: str) -> CollectionDoc:
    """One collection's metadata (see /collections)."""
    kind, _, _ = split_id(collection_id)
    docs = await anyio.to_thread.run_sync(lambda: collection_docs(request, collection_id)) if kind != "unknown" else []
    if not docs:
        raise unknown_collection(request, collection_id)
    return docs[0]


ROUTES = [collections, collection]
