"""Response and request schemas (msgspec structs: Litestar documents them in OpenAPI; encoding them
is fast). Data documents are built as plain dicts on the hot path and described here for the docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec


class CoverageDoc(msgspec.Struct, kw_only=True):
    """A CoverageJSON Coverage with namespaced members: ``fcst:provenance`` (the provenance record),
    ``fcst:annotations`` (per parameter, one plausibility code per value: ok / extreme / implausible /
    degraded_inputs, with the climatological record for extremes) for forecasts, ``fcst:qc`` (per
    parameter, the QC flag and the names of the tests raised per value) for observations."""

    type: Literal["Coverage"]
    domain: dict[str, Any]
    parameters: dict[str, Any]
    ranges: dict[str, Any]
    provenance: dict[str, Any] | None = msgspec.field(default=None, name="fcst:provenance")
    annotations: dict[str, Any] | None = msgspec.field(default=None, name="fcst:annotations")
    qc: dict[str, Any] | None = msgspec.field(default=None, name="fcst:qc")


class CompactDoc(msgspec.Struct, kw_only=True):
    """Compact JSON (``f=json``): times, and per parameter its unit, values and annotations or flags."""

    collection: str
    kind: Literal["forecast", "observations"]
    valid_time: list[str]
    parameters: dict[str, Any]
    provenance: dict[str, Any]
    point: dict[str, Any] | None = None
    grid: dict[str, Any] | None = None
    init_time: str | None = None
    lead_time: list[int] | None = None


class CollectionDoc(msgspec.Struct, kw_only=True):
    id: str
    title: str
    kind: Literal["forecast", "observations"]
    dataset: str
    extent: dict[str, Any]
    parameter_names: dict[str, Any]
    data_queries: dict[str, Any]
    output_formats: list[str]
    links: list[dict[str, Any]]
    description: str | None = None
    run: str | None = None
    latest_init: str | None = None
    lead_times: list[int] | None = None
    production_model: dict[str, Any] | None = None
    snapshot: str | None = None


class CollectionsDoc(msgspec.Struct):
    collections: list[CollectionDoc]
    links: list[dict[str, Any]]


_INDEX = {"type": "integer", "minimum": 0, "maximum": 2**31}
_CELLS_SCHEMA = [
    {"type": "array", "minItems": 1, "description": "Cells as [slot time (ISO-8601), iy, ix], each a cell of the "
     "item; omit (or null) to decide every open cell of the item.",
     "items": {"type": "array", "prefixItems": [{"type": "string", "format": "date-time"}, _INDEX, _INDEX],
               "minItems": 3, "maxItems": 3, "items": False}},
    {"type": "null"}]
_VERSION_SCHEMA = [{"type": "integer", "minimum": 0, "maximum": 2**53}, {"type": "null"}]


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    """An operator's decision. The deciding user is the bearer token's user, never a body field.

    The schemas of ``cells`` and ``expected_version`` are written out for the document: Litestar drops the
    bounds of a tuple's members and of an optional integer.
    """

    action: Literal["accept", "reject"]
    comment: Annotated[str, msgspec.Meta(max_length=4000, extra_json_schema={"extra": {"min_length": 1,
                                                                                      "pattern": r"\S"}})]
    # (slot time ISO-8601 Z, iy, ix); omit: all open cells
    cells: Annotated[
        list[tuple[str, Annotated[int, msgspec.Meta(ge=0, le=2**31)], Annotated[int, msgspec.Meta(ge=0, le=2**31)]]]
        | None, msgspec.Meta(extra_json_schema={"extra": {"one_of": _CELLS_SCHEMA}})] = None
    # the item version the operator looked at (optimistic concurrency)
    expected_version: Annotated[Annotated[int, msgspec.Meta(ge=0, le=2**53)] | None, msgspec.Meta(
        extra_json_schema={"extra": {"one_of": _VERSION_SCHEMA, "maximum": None, "minimum": None}})] = None


class DecisionOut(msgspec.Struct):
    item: int
    decision: int
    action: str
    status: str
    outcome: str | None
    by: str
    at: str
    item_state: str
    item_version: int
    n_cells: int
    writeback: str


class UserIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new API user (admin). The name is stripped; the rule (``forecast.db.users.NAME_RULE``) is checked by the
    handler and the users store, and stated in the document by this field's schema."""

    name: Annotated[str, msgspec.Meta(extra_json_schema={"extra": {
        "min_length": 1, "max_length": 128, "pattern": r"^[^/]*[^\s/][^/]*$"}})]
    role: Literal["reader", "operator", "forecaster", "admin"]


class ItemsDoc(msgspec.Struct):
    items: list[dict[str, Any]]
    count: int


class AuditDoc(msgspec.Struct):
    entries: list[dict[str, Any]]
    next_since_id: int


class ModelsDoc(msgspec.Struct):
    models: list[dict[str, Any]]


class HealthDoc(msgspec.Struct):
    status: str
    uptime_s: float


class ReadyDoc(msgspec.Struct):
    ready: bool
    checks: dict[str, Any]


POSITION_EXAMPLE = {
    "type": "Coverage",
    "domain": {"type": "Domain", "domainType": "PointSeries",
               "axes": {"x": {"values": [8.1]}, "y": {"values": [51.2]},
                        "t": {"values": ["2026-07-15T14:05:00Z", "2026-07-15T14:10:00Z"]}},
               "referencing": [{"coordinates": ["x", "y"], "system": {
                   "type": "GeographicCRS", "id": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
                   {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}}]},
    "parameters": {"precipitation_rate": {"type": "Parameter", "observedProperty": {
        "id": "http://vocab.nerc.ac.uk/standard_name/lwe_precipitation_rate/",
        "label": {"en": "lwe_precipitation_rate"}}, "unit": {"symbol": "mm h-1"}}},
    "ranges": {"precipitation_rate": {"type": "NdArray", "dataType": "float", "axisNames": ["t"], "shape": [2],
                                      "values": [1.2, 262.0]}},
    "fcst:annotations": {"precipitation_rate": {"axisNames": ["t"], "shape": [2], "values": ["ok", "extreme"],
                                                "record": [None, 250.0]}},
    "fcst:provenance": {"init_time": "2026-07-15T14:00:00Z", "method": "model",
                        "model": {"version": "v1", "stage": "production"}, "fallback": None},
}
