"""Bearer-token authentication and role guards.

Missing or unknown/revoked token -> 401 (with ``WWW-Authenticate: Bearer``); a valid token whose role
is too low -> 403. Lookups are cached for ``TOKEN_CACHE_S`` seconds per token hash, so a revoke takes
effect within that time on every replica. The OpenAPI security requirements of the guarded routes are
declared here too, beside the guards that enforce them.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from cachetools import TTLCache
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from forecast.db.users import User, hash_token, role_allows

TOKEN_CACHE_S = 2.0
_MISSING = object()


class TokenCache:
    """Token lookups (user or None) per token hash for ``TOKEN_CACHE_S`` seconds (``cachetools.TTLCache``
    behind a lock; at most ``max_tokens`` remembered)."""

    def __init__(self, max_tokens: int = 10_000, *, timer: Callable[[], float] = time.monotonic):
        self._d: TTLCache = TTLCache(maxsize=max_tokens, ttl=TOKEN_CACHE_S, timer=timer)
        self._lock = threading.Lock()

    def lookup(self, users_fn: Callable[[], Any], token: str) -> User | None:
        h = hash_token(token)
        with self._lock:
            hit = self._d.get(h, _MISSING)
        if hit is not _MISSING:
            return hit
        user = users_fn().authenticate(token)
        with self._lock:
            self._d[h] = user
        return user


def current_user(connection: ASGIConnection) -> User | None:
    """The user of the request's bearer token (None without one); 401 for a malformed or invalid token."""
    cached = connection.scope.get("_fcst_user", _MISSING)
    if cached is not _MISSING:
        return cached
    header = connection.headers.get("authorization")
    user = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(detail="the Authorization header must be 'Bearer <token>'")
        services = connection.app.state.services
        user = services.token_cache.lookup(lambda: services.users, token.strip())
        if user is None:
            raise NotAuthorizedException(detail="the bearer token is not valid (unknown or revoked)")
    connection.scope["_fcst_user"] = user
    return user


def require(role: str):
    """A guard: the request needs a token whose role includes ``role``."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        # async: a sync guard would cost a thread hop per request (Litestar runs it in a worker thread);
        # the token lookup is an indexed query cached for TOKEN_CACHE_S
        user = current_user(connection)
        if user is None:
            raise NotAuthorizedException(detail=f"this route needs a bearer token with role {role}")
        if not role_allows(user.role, role):
            raise PermissionDeniedException(
                detail=f"user {user.name!r} has role {user.role}; this route needs role {role} or above")

    guard.__name__ = f"require_{role}"
    return guard


_require_reader = require("reader")


async def read_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Data reads: open unless the settings require a ``reader`` token."""
    if connection.app.state.settings.api_read_requires_token:
        await _require_reader(connection, handler)


require_operator = require("operator")
require_admin = require("admin")

#: OpenAPI security of the routes behind ``require(...)``: a bearer token is needed.
BEARER = [{"bearerAuth": []}]
#: of the routes behind ``read_guard``: open ({}) unless the settings ask for a reader token.
OPTIONAL_BEARER = [{}, {"bearerAuth": []}]
