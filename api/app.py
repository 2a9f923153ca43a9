"""The Litestar application: ``create_app(settings)`` wires routes, auth, problem details, metrics and
logging; ``app`` is the module-level instance for ``litestar --app api.app:app run`` / uvicorn.

Creating the app touches no store or database: they are opened on first use, and ``/ready`` says
what is missing, so the server starts before the first ingest or forecast.
"""

from __future__ import annotations

import logging

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api.auth import TokenCache
from api.console import console_router
from api.metrics import Metrics, RequestMiddleware
from api.problems import exception_handlers
from api.routes import admin, data, ops, review
from api.services import Services
from forecast import __version__
from forecast.settings import Settings

log = logging.getLogger("api")


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    services = Services(settings)
    services.token_cache = TokenCache()
    metrics = Metrics(services)

    def _middleware(app):
        return RequestMiddleware(app, metrics)

    def _shutdown() -> None:
        services.close()

    openapi = OpenAPIConfig(
        title="Forecast service API",
        version=__version__,
        description="Nowcasts in the style of OGC API - EDR 1.1 (CoverageJSON, compact JSON, NetCDF), each value "
        "with its plausibility annotation and each response with its provenance record; observations with QC "
        "flags and as-of reads; the operator review queue; models; users. Errors are RFC 9457 problem details.",
        path="/schema",
        render_plugins=[SwaggerRenderPlugin()],
        components=Components(security_schemes={"bearerAuth": SecurityScheme(
            type="http", scheme="bearer", description="Token from `forecast users add NAME --role ROLE`.")}),
    )
    cors = CORSConfig(allow_origins=list(settings.api_cors_origins), allow_methods=["GET", "POST", "DELETE"],
                      allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                      expose_headers=["ETag", "X-Request-ID"]) if settings.api_cors_origins else None
    return Litestar(
        route_handlers=[*data.ROUTES, *review.ROUTES, *admin.ROUTES, *ops.ROUTES, console_router()],
        state=State({"settings": settings, "services": services, "metrics": metrics}),
        exception_handlers=exception_handlers(),
        middleware=[_middleware],
        openapi_config=openapi,
        cors_config=cors,
        request_max_body_size=settings.api_max_body_bytes,
        on_shutdown=[_shutdown],
        debug=False,
        logging_config=None,
    )


app = create_app()
