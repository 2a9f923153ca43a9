"""What the OpenAPI document (``/schema``) says beyond the handlers' signatures: its title and description,
the bearer scheme, the problem-details responses, the data routes' several media types, and closed
request bodies. Checked against the running API by schemathesis with all checks (tests/api/test_openapi.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.params import ParameterKwarg, QueryParameter
from litestar.plugins import OpenAPISchemaPlugin

from api.problems import PROBLEM_MEDIA, TITLES, TYPE_BASE, ProblemDoc

DESCRIPTION = (
    "Nowcasts in the style of OGC API - EDR 1.1 (CoverageJSON, compact JSON, NetCDF), each value with its "
    "plausibility annotation and each response with its provenance record; observations with QC flags and as-of "
    "reads; the operator review queue; models; users. Errors are RFC 9457 problem details "
    "(application/problem+json). Data reads are open unless the service sets FORECAST_API_READ_REQUIRES_TOKEN=true; "
    "the review queue, users and decisions need a bearer token of the role each route names.")


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Forecast service API",
        version=version,
        description=DESCRIPTION,
        path="/schema",
        render_plugins=[SwaggerRenderPlugin()],
        components=Components(security_schemes={"bearerAuth": SecurityScheme(
            type="http", scheme="bearer", description="Token from `forecast users add NAME --role ROLE`.")}),
    )


def query_param(name: str, description: str | None = None, *, required: bool = False,
                examples: tuple[str, ...] = (), **schema: Any) -> ParameterKwarg:
    """A string query parameter as the document should show it: a plain string (never null: a query string
    cannot carry one; Litestar would write ``oneOf: [string, null]`` for ``str | None``), ``required``
    where the handler refuses its absence, and JSON Schema keywords (``enum``, ``minLength``, ...) in
    ``schema``. The handler still receives None when it is absent, and says why in its own words."""
    return QueryParameter(name=name, description=description, required=required,
                          examples=[Example(value=e) for e in examples] or None,
                          schema_extra={"one_of": None, "type": OpenAPIType.STRING, **schema})


_PROBLEM_TEXT = {
    400: "Bad input: the detail names the parameter and the part at fault.",
    401: "Missing or invalid bearer token (with WWW-Authenticate: Bearer).",
    403: "The token's role is too low for this route.",
    404: "Nothing there: the detail says what exists.",
    409: "Someone decided first, or four-eyes (the detail names who and when).",
    413: "Request body too large.",
    422: "The request body is invalid.",
    500: "The server failed; the failure is logged, the detail says nothing more.",
    503: "Not ready.",
}
_PROBLEM_KIND = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 409: "conflict",
                 413: "too-large", 422: "invalid", 500: "internal", 503: "unavailable"}


def problem_specs(*codes: int) -> dict[int, ResponseSpec]:
    """The problem-details responses of a route (``application/problem+json``), one per status code."""
    return {c: ResponseSpec(data_container=ProblemDoc, description=_PROBLEM_TEXT.get(c, "Problem details"),
                            media_type=PROBLEM_MEDIA, generate_examples=False,
                            examples=[Example(summary=f"HTTP {c}", value={
                                "type": TYPE_BASE + _PROBLEM_KIND.get(c, "error"), "title": TITLES.get(c, "Error"),
                                "status": c, "detail": _EXAMPLE_DETAIL.get(c, "what was at fault, in one sentence"),
                                "instance": "/collections/radar_precip.forecast/position"})]) for c in codes}


_EXAMPLE_DETAIL = {400: "coords: the point (3.000, 40.000) lies outside the grid, which covers lon 5.867..9.850, "
                        "lat 50.326..52.748"}

NOT_MODIFIED = {304: ResponseSpec(data_container=None, description="Not modified (If-None-Match matched the ETag).",
                                  generate_examples=False)}


def media_types(types: dict[str, Any]) -> type[Operation]:
    """An ``Operation`` class (``operation_class=`` of a route) whose 200 lists every media type the route
    answers in, each with its own schema: a ``ResponseSpec`` names one media type, the data routes answer
    in several (``f``). ``types`` maps media type -> the msgspec struct of that body (``bytes``: binary);
    the route's 200 spec declares the union of the structs, whose ``oneOf`` references are handed out here."""

    @dataclass
    class MediaTypesOperation(Operation):
        def __post_init__(self) -> None:
            ok = self.responses.get("200") if self.responses else None
            if ok is None or not ok.content:
                return
            declared = next(iter(ok.content.values()))
            union = declared.schema
            arms = union.one_of if isinstance(union, Schema) and union.one_of else [union]
            # the references' paths are final only once the document is built (then Litestar rewrites these
            # very objects), so they are matched by the struct's name, which ends their key
            by_name = {a.ref.rsplit("/", 1)[-1].rsplit("_", 1)[-1]: a for a in arms if isinstance(a, Reference)}
            content = {}
            for k, (media, body) in enumerate(types.items()):
                if body is bytes:
                    schema: Schema | Reference = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                else:
                    schema = by_name.get(body.__name__, union)
                content[media] = OpenAPIMediaType(schema=schema, examples=declared.examples if k == 0 else None)
            ok.content = content

    return MediaTypesOperation


class ClosedBodies(OpenAPISchemaPlugin):
    """Documents a request body struct declared ``forbid_unknown_fields=True`` with
    ``additionalProperties: false``: the API rejects unknown fields (422), so the document must say so."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return (isinstance(value, type) and issubclass(value, msgspec.Struct)
                and bool(getattr(value.__struct_config__, "forbid_unknown_fields", False)))

    def to_openapi_schema(self, field_definition, schema_creator) -> Schema:
        builtin = next(p for p in schema_creator.plugins
                       if p is not self and schema_creator.plugin_supports_field(p, field_definition))
        schema = builtin.to_openapi_schema(field_definition=field_definition, schema_creator=schema_creator)
        schema.additional_properties = False
        return schema
