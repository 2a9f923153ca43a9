"""The Litestar application: ``create_app(settings)`` wires routes, auth, problem details, metrics,
OpenAPI and CORS; ``app`` is the module-level instance for ``litestar --app api.app:app run`` / uvicorn.

Creating the app touches no store or database: they are opened on first use, and ``/ready`` says
what is missing, so the server starts before the first ingest or forecast.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State

from api import admin, monitoring, ops, review
from api.edr import collections, queries
from api.console import console_router
from api.metrics import Metrics, RequestMiddleware
from api.openapi import ClosedBodies, openapi_config
from api.problems import exception_handlers
from api.services import Services
from forecast import __version__
from forecast.settings import Settings

ROUTES = [*collections.ROUTES, *queries.ROUTES, *review.ROUTES, *admin.ROUTES, *ops.ROUTES, *monitoring.ROUTES]


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    services = Services(settings)
    metrics = Metrics(services)
    monitoring.register_metrics(metrics, settings)

    def _middleware(app):
        return RequestMiddleware(app, metrics)

    cors = CORSConfig(allow_origins=list(settings.api_cors_origins), allow_methods=["GET", "POST", "DELETE"],
                      allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                      expose_headers=["ETag", "X-Request-ID"]) if settings.api_cors_origins else None
    return Litestar(
        route_handlers=[*ROUTES, console_router()],
        state=State({"settings": settings, "services": services, "metrics": metrics}),
        exception_handlers=exception_handlers(),
        middleware=[_middleware],
        openapi_config=openapi_config(__version__),
        plugins=[ClosedBodies()],
        cors_config=cors,
        request_max_body_size=settings.api_max_body_bytes,
        on_shutdown=[services.close],
        debug=False,
        logging_config=None,
    )


app = create_app()
