"""The operator console: server-rendered pages under ``/console`` (review queue and items, forecasts, data
quality, monitor, models, users), signed in with the API tokens, assets vendored under ``static/vendor``.

``console_router`` is the one thing the application mounts (``api/app.py``)."""

from api.console.routes import console_router

__all__ = ["console_router"]
