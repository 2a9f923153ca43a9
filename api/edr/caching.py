"""HTTP caching of the data responses: a strong ETag per (store snapshot, request URL), ``If-None-Match``
matching for 304 answers, and a ``Cache-Control`` max-age that ends when the next forecast or observation
slot is due (capped by ``api_cache_max_age``)."""

from __future__ import annotations

import hashlib
import time

from litestar import Request


def etag_for(*parts: str) -> str:
    """A strong ETag over ``parts`` (the snapshot and the request's path and query)."""
    return '"' + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest() + '"'


def not_modified(request: Request, etag: str) -> bool:
    """Whether the request's ``If-None-Match`` matches ``etag`` (``*``, a list, weak tags compared weakly)."""
    inm = request.headers.get("if-none-match")
    if not inm:
        return False
    if inm.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in inm.split(","))


def cache_control(request: Request, period_s: int, produced_s: int) -> str:
    """Public, revalidated, fresh until ``produced_s + period_s`` (15 s once overdue), capped by the settings."""
    cap = request.app.state.settings.api_cache_max_age
    remaining = produced_s + period_s - int(time.time())
    age = min(cap, remaining) if remaining > 0 else min(cap, 15)
    return f"public, max-age={max(0, age)}, must-revalidate"


def url_parts(request: Request) -> tuple[str, str]:
    """(path, query) of the request as ``request.url`` gives them, without building the URL object."""
    scope = request.scope
    return scope.get("root_path", "") + scope["path"], scope.get("query_string", b"").decode()
