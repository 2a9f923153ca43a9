"""RFC 9457 problem details: the one place where exceptions become HTTP error responses.

Every error answer is ``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` (one
clear sentence naming what was at fault) and ``instance`` (the request path); never a stack trace.

Why not ``litestar.plugins.problem_details``: it does not produce these bodies. Its HTTPException mapping
puts the exception's sentence in ``title`` and the status phrase in ``detail`` (``{"status": 401, "title":
"the bearer token is not valid ...", "detail": "Unauthorized"}``), sends no ``type`` or ``instance``, puts a
validation error's list under ``extra``, and adds no ``WWW-Authenticate``; its per-exception converters
receive the exception without the request, so ``instance``, the method and path of a 404 / 405 sentence
and the body limit of a 413 cannot be filled in. Producing these bodies through it would need a converter
for every exception here plus a custom handler: this module again, behind the plugin. (Error responses
are not on the benchmarked path, so speed did not decide this.)
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)

from forecast.errors import BadInputError
from forecast.review import FourEyesError, InvalidRequest, ItemNotFound, ReviewConflict
from forecast.timeutil import iso

log = logging.getLogger("api")

PROBLEM_MEDIA = "application/problem+json"
TYPE_BASE = "https://forecast.example.org/problems/"

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    422: "Unprocessable request",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raised by handlers and services: becomes a problem details response as it is."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None, headers: dict[str, str] | None = None,
                 **extra: Any):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                             409: "conflict", 413: "too-large", 422: "invalid", 503: "unavailable"}.get(status, "error")
        self.headers = headers or {}
        self.extra = extra


class ProblemDoc(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details document (members beyond the standard ones vary by problem)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem_response(request: Request | None, status: int, detail: str, *, kind: str, headers: dict[str, str] | None = None,
                     **extra: Any) -> Response:
    doc = {"type": TYPE_BASE + kind, "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    if request is not None:
        doc["instance"] = request.url.path
    doc.update(extra)
    return Response(content=msgspec.json.encode(doc), status_code=status, media_type=PROBLEM_MEDIA,
                    headers=headers or {})


_EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")


def _validation_sentence(exc: ValidationException) -> tuple[int, str]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    if not extra:
        return 400, _clean(exc.detail)
    e = extra[0] if isinstance(extra[0], dict) else {}
    key, source, msg = e.get("key"), e.get("source"), str(e.get("message", "is invalid"))
    m = _EXPECTED.search(msg)
    if m:
        msg = f"expected {m.group(1)}, got {m.group(2)}"
    if source == "body":
        where = f"request body field {key!r}" if key else "request body"
        return 422, f"{where}: {msg}"
    where = f"{source} parameter {key!r}" if key and source else (f"parameter {key!r}" if key else "request")
    if "missing required" in msg.lower():
        return 400, f"{where} is required"
    return 400, f"{where}: {msg}"


def _clean(detail: str) -> str:
    return detail.split("\n")[0][:300]


def handle_problem(request: Request, exc: Problem) -> Response:
    return problem_response(request, exc.status, exc.detail, kind=exc.kind, headers=exc.headers, **exc.extra)


def handle_http(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        status, detail = _validation_sentence(exc)
        return problem_response(request, status, detail, kind="bad-request" if status == 400 else "invalid")
    if isinstance(exc, NotFoundException):
        return problem_response(request, 404, f"no resource at {request.url.path}; the API's routes are listed at /schema",
                                kind="not-found")
    if isinstance(exc, MethodNotAllowedException):
        allowed = headers.get("allow") or headers.get("Allow") or ""
        return problem_response(request, 405, f"method {request.method} is not allowed on {request.url.path}"
                                + (f"; allowed: {allowed}" if allowed else ""), kind="method-not-allowed",
                                headers=headers)
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="forecast"')
        return problem_response(request, 401, _clean(exc.detail), kind="unauthorized", headers=headers)
    if isinstance(exc, PermissionDeniedException):
        return problem_response(request, 403, _clean(exc.detail), kind="forbidden")
    if status == 413:
        return problem_response(request, 413, "the request body is larger than this API accepts "
                                f"({request.app.state.settings.api_max_body_bytes} bytes)", kind="too-large")
    if status >= 500:
        log.error("HTTP %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
        return problem_response(request, status, "the server failed to answer this request; it has been logged",
                                kind="internal")
    return problem_response(request, status, _clean(exc.detail), kind="error", headers=headers)


def handle_bad_input(request: Request, exc: BadInputError) -> Response:
    status = 404 if isinstance(exc, KeyError) else 400
    return problem_response(request, status, str(exc), kind="not-found" if status == 404 else "bad-request")


def handle_review(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ItemNotFound):
        return problem_response(request, 404, str(exc), kind="not-found")
    if isinstance(exc, ReviewConflict):
        return problem_response(request, 409, str(exc), kind="review-conflict", decided_by=exc.by,
                                decided_at=iso(exc.at), state=exc.state,
                                version=exc.version)
    if isinstance(exc, FourEyesError):
        return problem_response(request, 409, str(exc), kind="four-eyes")
    if isinstance(exc, InvalidRequest):
        return problem_response(request, 422, str(exc), kind="invalid")
    return handle_internal(request, exc)


def handle_internal(request: Request, exc: Exception) -> Response:
    log.exception("internal failure on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "the server failed to answer this request; the failure has been logged",
                            kind="internal")


def exception_handlers() -> dict:
    from forecast.review import ReviewError

    return {
        Problem: handle_problem,
        HTTPException: handle_http,
        BadInputError: handle_bad_input,
        ReviewError: handle_review,
        Exception: handle_internal,
    }
