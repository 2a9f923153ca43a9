"""The console's routes under ``/console``: thin handlers (check the session, call one view or one action,
render one template). Errors become HTML pages here, never problem+json: the router has its own exception
handlers, and everything is left out of the OpenAPI document."""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import anyio
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.params import QueryParameter
from litestar.response import Redirect

from api.console import views
from api.console.data import ConsoleData
from api.console.pages import NAV
from api.console.session import (
    LOGIN_COOKIE,
    PROMOTER_ROLE,
    ConsoleUser,
    CSRFError,
    RoleTooLow,
    SessionSigner,
    SignInRequired,
    UserLookup,
    checked_form,
    clear_cookie,
    generation_of,
    login_cookie,
    session_cookie,
    session_user,
)
from api.console.web import StaticFiles, html, make_env, png
from forecast.errors import BadInputError
from forecast.review import FourEyesError, InvalidRequest, ItemNotFound, ReviewConflict, ReviewError
from forecast.timeutil import iso

log = logging.getLogger(__name__)

_STATE_LOCK = threading.Lock()
RunParam = Annotated[str | None, QueryParameter(name="run")]
StateParam = Annotated[str, QueryParameter(name="state")]
SIGN_IN_REASONS = {
    "expired": "Your session has expired: sign in again.",
    "revoked": "Your token was revoked or replaced: sign in with a valid token.",
    "signed_out": "You are signed out.",
    "invalid": "Your session is not valid here: sign in again.",
}


class Console:
    """What the console keeps per application: data access, the session signer, templates, static files."""

    def __init__(self, app_state):
        settings = app_state.settings
        self.settings = settings
        self.services = app_state.services
        self.data = ConsoleData(settings, self.services)
        self.signer = SessionSigner(settings.home)
        self.lookup = UserLookup()
        self.static = StaticFiles()
        self.env = make_env(self.static)


def console(request: Request) -> Console:
    state = request.app.state
    c = state.get("console")
    if c is None:
        with _STATE_LOCK:
            c = state.get("console")
            if c is None:
                c = Console(state)
                state["console"] = c
    return c


def user_of(request: Request) -> ConsoleUser:
    c = console(request)
    return session_user(request, c.signer, c.lookup, c.services.users)


def need(request: Request, role: str = "reader") -> ConsoleUser:
    u = user_of(request)
    if not u.can(role):
        raise RoleTooLow(f"your role ({u.role}) does not allow this: it needs role {role} or above")
    return u


async def need_post(request: Request, role: str) -> tuple[ConsoleUser, dict[str, str]]:
    """Session, then the CSRF check, then the role: a forged post is refused before anything is read."""
    u = user_of(request)
    form = await checked_form(request, u, console(request).signer)
    if not u.can(role):
        raise RoleTooLow(f"your role ({u.role}) does not allow this: it needs role {role} or above")
    return u, form


def render(request: Request, template: str, ctx: dict[str, Any], *, user: ConsoleUser | None, active: str = "",
           status: int = 200, headers: dict[str, str] | None = None) -> Response:
    c = console(request)
    nav = [p for p in NAV if user is not None and user.can(p.role)]
    body = c.env.get_template(template).render(user=user, nav=nav, active=active, path=request.url.path, **ctx)
    return html(request, body, status=status, headers=headers)


async def in_thread(fn, *args, **kw):
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kw))


def _see_other(url: str) -> Response:
    return Redirect(path=url, status_code=303)


def _safe_next(url: str | None) -> str:
    if url and url.startswith("/console/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/console/review"


# -- sign-in -------------------------------------------------------------------------------------------------

@get("/")
async def home() -> Response:
    return _see_other("/console/review")


def _login_page(request: Request, *, error: str | None = None, status: int = 200, reason: str | None = None,
                next_url: str | None = None) -> Response:
    import secrets

    c = console(request)
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_hex(16)
    resp = render(request, "login.html", {"csrf": c.signer.csrf_for("login:" + nonce), "error": error,
                                          "message": SIGN_IN_REASONS.get(reason or ""), "next": _safe_next(next_url)},
                  user=None, active="login", status=status)
    resp.set_cookie(login_cookie(request, nonce))
    return resp


@get("/login")
async def login_form(request: Request, next: str | None = None, reason: str | None = None) -> Response:  # noqa: A002
    return _login_page(request, reason=reason, next_url=next)


@post("/login")
async def login(request: Request) -> Response:
    c = console(request)
    form = await request.form()
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not c.signer.csrf_ok("login:" + nonce, form.get("_csrf")):
        raise CSRFError("CSRF check failed: the sign-in form did not come from this console (or its cookie is "
                        "missing); reload the sign-in page and try again")
    token = str(form.get("token") or "").strip()
    next_url = _safe_next(str(form.get("next") or ""))
    if not token:
        return _login_page(request, error="Enter your API token.", status=400, next_url=next_url)
    services = c.services
    cache = getattr(services, "token_cache", None)
    if cache is not None:
        user = await in_thread(cache.lookup, lambda: services.users, token)
    else:
        user = await in_thread(services.users.authenticate, token)
    if user is None:
        log.info("console sign-in refused: unknown or revoked token")
        return _login_page(request, error="This token is not valid (unknown or revoked).", status=401,
                           next_url=next_url)
    value, payload = c.signer.issue(user.name, generation_of(user))
    log.info("console sign-in: %s (%s)", user.name, user.role)
    resp = _see_other(next_url)
    resp.set_cookie(session_cookie(request, value, payload["exp"] - payload["iat"]))
    resp.set_cookie(clear_cookie(request, LOGIN_COOKIE))
    return resp


@post("/logout")
async def logout(request: Request) -> Response:
    await need_post(request, "reader")
    resp = _see_other("/console/login?reason=signed_out")
    resp.set_cookie(clear_cookie(request))
    return resp


# -- review --------------------------------------------------------------------------------------------------

@get("/review")
async def review_queue(request: Request, dataset: str | None = None, item_state: StateParam = "todo",
                       age: str = "all", offset: int = 0) -> Response:
    u = need(request)
    state = item_state
    state = state if state in views.STATE_FILTERS else "todo"
    age = age if age in views.AGES or age == "all" else "all"
    ctx = await in_thread(views.queue_view, console(request).data, dataset=dataset or None, state=state, age=age,
                    offset=max(0, min(offset, 10**9)))
    template = "review_table.html" if request.headers.get("hx-request") == "true" else "review.html"
    return render(request, template, ctx, user=u, active="review")


async def _item_page(request: Request, item_id: int, u: ConsoleUser, *, status: int = 200,
                     error: dict | None = None, decided: int | None = None, draft: dict | None = None) -> Response:
    data = console(request).data
    item = await in_thread(data.queue.get, item_id)
    ctx = await in_thread(views.item_view, data, item, user=u, decided=decided)
    next_id = await in_thread(views.next_item_id, data, item_id)
    ctx.update(error=error, draft=draft or {}, csrf=u.csrf, next_id=next_id)
    data.prefetch(next_id)  # operators step to the next item: read its surroundings meanwhile
    return render(request, "item.html", ctx, user=u, active="review", status=status)


@get("/review/{item_id:int}")
async def review_item(request: Request, item_id: int, decided: int | None = None) -> Response:
    u = need(request)
    return await _item_page(request, item_id, u, decided=decided)


@get("/review/{item_id:int}/next")
async def review_next(request: Request, item_id: int) -> Response:
    need(request)
    nid = await in_thread(views.next_item_id, console(request).data, item_id)
    return _see_other(f"/console/review/{nid}" if nid is not None else "/console/review?state=todo")


@get("/review/{item_id:int}/frames/{k:int}")
async def review_frame(request: Request, item_id: int, k: int, s: str | None = None) -> Response:
    need(request)
    data = console(request).data
    item = await in_thread(data.queue.get, item_id)
    ctx = await in_thread(data.item_context, item)
    if ctx is None or not 0 <= k < len(ctx.times):
        raise HTTPException(status_code=404, detail=f"item {item_id} has no frame {k}")
    body = await in_thread(data.frame_png, item, ctx, k)
    return png(body, immutable=bool(s) and ctx.snapshot.startswith(s))


@get("/review/{item_id:int}/overview")
async def review_overview(request: Request, item_id: int) -> Response:
    need(request)
    data = console(request).data
    item = await in_thread(data.queue.get, item_id)
    body = await in_thread(data.overview_png, item)
    if body is None:
        raise HTTPException(status_code=404, detail=f"the observations around item {item_id} cannot be read")
    return png(body, immutable=False)


@post("/review/{item_id:int}/decide")
async def review_decide(request: Request, item_id: int) -> Response:
    u, form = await need_post(request, "operator")
    data = console(request).data
    action = form.get("action", "")
    comment = form.get("comment", "")
    draft = {"comment": comment[:views.COMMENT_MAX * 2], "scope": form.get("scope", "all"),
             "cells": form.get("cells", "")}
    item = await in_thread(data.queue.get, item_id)

    async def refuse(status: int, title: str, text: str) -> Response:
        return await _item_page(request, item_id, u, status=status, draft=draft,
                                error={"title": title, "text": text, "comment": comment[:views.COMMENT_MAX]})

    if action not in ("accept", "reject"):
        return await refuse(422, "Not recorded", f"the action must be accept or reject, got {action[:20]!r}")
    if not comment.strip():
        return await refuse(422, "Not recorded", "a decision needs a comment saying why")
    if len(comment) > views.COMMENT_MAX:
        return await refuse(422, "Not recorded", f"the comment is {len(comment)} characters long; at most "
                            f"{views.COMMENT_MAX} are kept (shorten it and decide again)")
    cells = None
    if form.get("scope") == "selected":
        try:
            cells = views.parse_cells(form.get("cells", ""), item)
        except ValueError as e:
            return await refuse(422, "Not recorded", str(e))
        if cells is None:
            return await refuse(422, "Not recorded", "no cells are selected: select cells on the map, or decide "
                                "the whole item")
    try:
        expected = int(form.get("expected_version", "")) if form.get("expected_version") else None
    except ValueError:
        expected = None
    try:
        dec = await in_thread(data.queue.decide, item_id, action, by=u.name, comment=comment, cells=cells,
                        expected_version=expected)
    except ReviewConflict as e:
        await in_thread(data.queue_changed)
        return await refuse(409, "Conflict: your decision was not recorded",
                            f"{e.by} decided first, at {iso(e.at)} (the item is now {e.state}, version {e.version}). "
                            "Look at their decision below before deciding again.")
    except FourEyesError as e:
        return await refuse(409, "Four eyes: not recorded", str(e))
    except InvalidRequest as e:
        return await refuse(422, "Not recorded", str(e))
    await in_thread(data.queue_changed)
    return _see_other(f"/console/review/{item_id}?decided={dec.id}")


# -- forecasts -----------------------------------------------------------------------------------------------

@get("/forecasts")
async def forecasts(request: Request, dataset: str | None = None, run_name: RunParam = None, init: int | None = None,
                    variable: str | None = None) -> Response:
    u = need(request)
    ctx = await in_thread(views.forecasts_view, console(request).data, dataset=dataset, run=run_name, init=init,
                    variable=variable)
    return render(request, "forecasts.html", ctx, user=u, active="forecasts")


@get("/forecasts/{dataset:str}/{run_name:str}/{init:int}/{k:int}")
async def forecast_frame(request: Request, dataset: str, run_name: str, init: int, k: int, v: str | None = None,
                         s: str | None = None) -> Response:
    need(request)
    data = console(request).data
    f = await in_thread(data.forecast_field, dataset, run_name, init, v)
    if f is None or not 0 <= k < len(f.leads_s):
        raise HTTPException(status_code=404, detail=f"no forecast frame {k} of {dataset}/{run_name} at {iso(init)}")
    body = await in_thread(data.forecast_png, f, k)
    return png(body, immutable=bool(s) and f.snapshot.startswith(s))


@get("/forecasts/{dataset:str}/series")
async def forecast_series(request: Request, dataset: str, init: int, iy: int, ix: int, run_name: RunParam = None,
                          variable: str | None = None) -> Response:
    u = need(request)
    run_name = run_name or "production"
    ctx = await in_thread(views.series_view, console(request).data, dataset=dataset, run=run_name, init=init,
                    variable=variable, iy=iy, ix=ix)
    return render(request, "series.html", ctx, user=u, status=404 if ctx.get("error") else 200)


# -- data quality, monitor -----------------------------------------------------------------------------------

@get("/quality")
async def quality(request: Request) -> Response:
    u = need(request)
    ctx = await in_thread(views.quality_view, console(request).data)
    return render(request, "quality.html", ctx, user=u, active="quality")


async def _monitor_page(request: Request, u: ConsoleUser, *, dataset: str | None = None, variable: str | None = None,
                        status: int = 200, error: dict | None = None, flash: str | None = None) -> Response:
    ctx = await in_thread(views.monitor_view, console(request).data, dataset=dataset, variable=variable, user=u)
    ctx.update(error=error, flash=flash)
    return render(request, "monitor.html", ctx, user=u, active="monitor", status=status)


@get("/monitor")
async def monitor(request: Request, dataset: str | None = None, variable: str | None = None,
                  acked: int | None = None) -> Response:
    u = need(request)
    flash = f"Alert {acked} is acknowledged; your name and comment are in its history." if acked else None
    return await _monitor_page(request, u, dataset=dataset or None, variable=variable or None, flash=flash)


@post("/monitor/alerts/{alert_id:int}/ack")
async def monitor_ack(request: Request, alert_id: int) -> Response:
    """Acknowledge a firing alert (operator): the same as `forecast monitor ack ID --by NAME --comment TEXT`."""
    from forecast.monitoring.store import AlertConflict, UnknownAlertError

    u, form = await need_post(request, "operator")
    comment = form.get("comment", "")
    if not comment.strip():
        return await _monitor_page(request, u, status=422, error={
            "title": "Not acknowledged", "text": "an acknowledgement needs a comment saying what is being done"})
    if len(comment) > views.COMMENT_MAX:
        return await _monitor_page(request, u, status=422, error={
            "title": "Not acknowledged", "text": f"the comment is {len(comment)} characters; at most {views.COMMENT_MAX}"})
    db = views._monitor_db(console(request).data)
    try:
        await in_thread(db.acknowledge, alert_id, by=u.name, comment=comment)
    except UnknownAlertError as e:
        return await _monitor_page(request, u, status=404, error={"title": "No such alert", "text": str(e)})
    except AlertConflict as e:
        return await _monitor_page(request, u, status=409, error={"title": "Already acknowledged", "text": str(e)})
    log.info("console: %s acknowledged alert %s", u.name, alert_id)
    return _see_other(f"/console/monitor?acked={alert_id}")


# -- models --------------------------------------------------------------------------------------------------

@get("/models")
async def models(request: Request) -> Response:
    u = need(request)
    ctx = await in_thread(views.models_view, console(request).data)
    return render(request, "models.html", ctx, user=u, active="models")


async def _model_page(request: Request, version: str, u: ConsoleUser, *, status: int = 200,
                      error: dict | None = None, flash: str | None = None, draft: dict | None = None) -> Response:
    ctx = await in_thread(views.model_view, console(request).data, version, user=u)
    ctx.update(error=error, flash=flash, csrf=u.csrf, draft=draft or {})
    return render(request, "model.html", ctx, user=u, active="models", status=status)


@get("/models/{version:str}")
async def model(request: Request, version: str, promoted: int | None = None) -> Response:
    u = need(request)
    flash = "Promoted to production; the change is in the stage history below." if promoted else None
    return await _model_page(request, version, u, flash=flash)


@post("/models/{version:str}/promote")
async def model_promote(request: Request, version: str) -> Response:
    from forecast.registry import PromotionRefused, promote

    u, form = await need_post(request, PROMOTER_ROLE)
    c = console(request)
    reason = form.get("reason", "").strip()
    override = form.get("override") == "yes"
    draft = {"reason": reason}
    if override and not u.is_admin:
        raise RoleTooLow(f"your role ({u.role}) does not allow overriding the gate: it needs role admin")
    if not reason:
        return await _model_page(request, version, u, status=422, draft=draft,
                                 error={"title": "Not promoted", "text": "a promotion needs a reason saying why"})
    if len(reason) > views.COMMENT_MAX:
        return await _model_page(request, version, u, status=422, draft=draft, error={
            "title": "Not promoted", "text": f"the reason is {len(reason)} characters; at most {views.COMMENT_MAX}"})
    try:
        await in_thread(promote, c.settings, c.data.registry, version, by=u.name, reason=reason, override=override)
    except PromotionRefused as e:
        return await _model_page(request, version, u, status=409, draft=draft, error={
            "title": "The gate refused the promotion", "text": str(e), "reasons": list(e.decision.reasons)})
    except BadInputError as e:
        if isinstance(e, KeyError):
            raise
        return await _model_page(request, version, u, status=422, draft=draft,
                                 error={"title": "Not promoted", "text": str(e)})
    log.info("console: %s promoted %s (override=%s)", u.name, version, override)
    return _see_other(f"/console/models/{quote(version)}?promoted=1")


@get("/models/{version:str}/report")
async def model_report(request: Request, version: str) -> Response:
    """The hindcast report's HTML (it lives beside report.json), served as a sandboxed document."""
    from forecast.registry import find_report

    need(request)
    c = console(request)
    await in_thread(c.data.registry.get, version)
    path = await in_thread(find_report, c.settings, version)
    page = path.parent / "report.html" if path is not None else None
    if page is None or not page.is_file():
        raise HTTPException(status_code=404, detail=f"model {version} has no hindcast report.html")
    body = await in_thread(page.read_bytes)
    return Response(content=body, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; style-src "
                             "'unsafe-inline'", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


# -- users (admin) -------------------------------------------------------------------------------------------

@get("/users")
async def users(request: Request, revoked: str | None = None) -> Response:
    u = need(request, "admin")
    ctx = await in_thread(views.users_view, console(request).data)
    ctx.update(csrf=u.csrf, created=None, error=None, flash=f"The token of {revoked} is revoked." if revoked else None)
    return render(request, "users.html", ctx, user=u, active="users")


@post("/users")
async def users_add(request: Request) -> Response:
    u, form = await need_post(request, "admin")
    c = console(request)
    name, role = form.get("name", "").strip(), form.get("role", "")
    created, error = None, None
    try:
        user, token = await in_thread(c.services.users.add, name, role, by=u.name)
        created = {"name": user.name, "role": user.role, "token": token}
    except BadInputError as e:
        error = str(e)
    ctx = await in_thread(views.users_view, c.data)
    ctx.update(csrf=u.csrf, created=created, error=error, flash=None)
    return render(request, "users.html", ctx, user=u, active="users", status=201 if created else 422)


@post("/users/{name:str}/revoke")
async def users_revoke(request: Request, name: str) -> Response:
    u, _ = await need_post(request, "admin")
    c = console(request)
    await in_thread(c.services.users.revoke, name, by=u.name)
    c.lookup.forget(name)
    return _see_other(f"/console/users?{urlencode({'revoked': name})}")


# -- static --------------------------------------------------------------------------------------------------

@get("/static/{name:path}")
async def static(request: Request, name: str) -> Response:
    return console(request).static.response(request, name.lstrip("/"))


# -- errors as pages -----------------------------------------------------------------------------------------

def _error_page(request: Request, status: int, title: str, text: str) -> Response:
    try:
        u = user_of(request)
    except Exception:  # noqa: BLE001 - an error page needs no session
        u = None
    return render(request, "error.html", {"status": status, "title": title, "text": text}, user=u, status=status)


def on_sign_in(request: Request, exc: SignInRequired) -> Response:
    reason = ("expired" if "expired" in exc.reason else "revoked" if "revoked" in exc.reason
              else "invalid" if exc.reason else None)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = request.headers.get("referer", "") or "/console/review"
        target = target[target.find("/console/"):] if "/console/" in target else "/console/review"
    q = {"next": target}
    if reason:
        q["reason"] = reason
    url = "/console/login?" + urlencode(q)
    if request.headers.get("hx-request") == "true":
        return Response(content=b"", status_code=401, headers={"HX-Redirect": url})
    resp = _see_other(url)
    if reason:
        resp.set_cookie(clear_cookie(request))
    return resp


def on_csrf(request: Request, exc: CSRFError) -> Response:
    log.warning("console: CSRF check failed on %s %s", request.method, request.url.path)
    return _error_page(request, 403, "Forbidden: CSRF check failed", str(exc))


def on_role(request: Request, exc: RoleTooLow) -> Response:
    return _error_page(request, 403, "Forbidden", str(exc))


def on_review(request: Request, exc: ReviewError) -> Response:
    if isinstance(exc, ItemNotFound):
        return _error_page(request, 404, "No such review item", str(exc))
    return _error_page(request, 422, "Not possible", str(exc))


def on_bad_input(request: Request, exc: BadInputError) -> Response:
    if isinstance(exc, KeyError):
        return _error_page(request, 404, "Not found", str(exc))
    return _error_page(request, 400, "Bad request", str(exc))


def on_http(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    titles = {404: "Not found", 405: "Method not allowed", 413: "Too large", 400: "Bad request"}
    text = str(exc.detail or "")
    if status == 413:
        text = ("the form is larger than this server accepts (FORECAST_API_MAX_BODY_BYTES); shorten the comment or "
                "select fewer cells")
    elif status == 400 and "validation" in text.lower():
        text = "a parameter of this page is not valid; " + "; ".join(
            f"{e.get('key')}: {e.get('message')}" for e in (exc.extra or []) if isinstance(e, dict))
    if status >= 500:
        log.error("console: HTTP %s on %s %s: %s", status, request.method, request.url.path, text)
        text = "the server failed to answer this request; the failure has been logged"
    return _error_page(request, status, titles.get(status, "Error"), text)


def on_internal(request: Request, exc: Exception) -> Response:
    log.exception("console: internal failure on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_page(request, 500, "Internal error", "the server failed to answer this request; the failure has "
                       "been logged")


HANDLERS = [home, login_form, login, logout, review_queue, review_item, review_next, review_frame, review_overview,
            review_decide, forecasts, forecast_frame, forecast_series, quality, monitor, monitor_ack, models, model,
            model_promote,
            model_report, users, users_add, users_revoke, static]

class ServerTiming:
    """ASGI middleware of the console's routes: ``Server-Timing: app;dur=<ms>`` on every answer (the time from
    the route's middleware to the first byte: what ``bench/console.py`` reports as server time)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        t0 = time.perf_counter()

        async def send_timed(message):
            if message["type"] == "http.response.start":
                dur = f"app;dur={1000 * (time.perf_counter() - t0):.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", dur)]}
            await send(message)

        await self.app(scope, receive, send_timed)


def console_router() -> Router:
    """The console's router (a new one per application: tests and benchmarks build several apps)."""
    return Router(
        path="/console", route_handlers=HANDLERS, include_in_schema=False, middleware=[ServerTiming],
        exception_handlers={SignInRequired: on_sign_in, CSRFError: on_csrf, RoleTooLow: on_role,
                            ReviewError: on_review, BadInputError: on_bad_input, HTTPException: on_http,
                            Exception: on_internal},
    )


