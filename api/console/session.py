"""Console sign-in: an API token exchanged for a signed session cookie, CSRF tokens for every form, role checks.

The session cookie is stateless (HMAC-SHA256 over a small JSON payload), so any API replica that shares
``FORECAST_HOME`` accepts it: ``{"u": user, "g": the user's token generation (its creation time: a revoke and
re-issue ends old sessions), "sid": random id, "iat", "exp"}``. It is ``HttpOnly``, ``SameSite=Strict``,
``Path=/console`` and ``Secure`` when the request came over TLS. On every request the user is looked up again
(cached for a few seconds), so a revoked token or a changed role takes effect at once.

CSRF: every form carries ``_csrf`` = HMAC(key, "csrf" + sid), checked on every POST before anything else
(``X-CSRF-Token`` for htmx requests). The sign-in form, which has no session yet, uses a double-submit
cookie (``console_login``) and the same HMAC over its value.

The signing key is 32 random bytes in ``HOME/console.key`` (created with mode 0600 on first use).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie

from forecast.db.users import ROLES, role_allows

log = logging.getLogger(__name__)

COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
COOKIE_PATH = "/console"
SESSION_S = 8 * 3600  # one shift: then sign in again
USER_CACHE_S = 2.0
#: who may promote a model to production: the forecaster role where the service has one, else admin
PROMOTER_ROLE = "forecaster" if "forecaster" in ROLES else "admin"


class SignInRequired(Exception):
    """No valid session: the console answers with the sign-in page (``reason`` says why)."""

    def __init__(self, reason: str = ""):
        self.reason = reason
        super().__init__(reason or "sign in to use the console")


class CSRFError(Exception):
    """A form post without the right CSRF token: 403."""


class RoleTooLow(Exception):
    """The signed-in user's role does not allow this: 403."""


@dataclass(frozen=True)
class ConsoleUser:
    name: str
    role: str
    sid: str
    expires: int
    csrf: str

    def can(self, role: str) -> bool:
        return role_allows(self.role, role)

    @property
    def can_decide(self) -> bool:
        return self.can("operator")

    @property
    def can_promote(self) -> bool:
        return self.can(PROMOTER_ROLE)

    @property
    def is_admin(self) -> bool:
        return self.can("admin")


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class SessionSigner:
    """Signs and checks session cookies and CSRF tokens with the key in ``HOME/console.key``."""

    def __init__(self, home: Path, *, clock=time.time):
        self.path = Path(home) / "console.key"
        self.clock = clock
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._load_key()
        return self._key

    def _load_key(self) -> bytes:
        try:
            key = self.path.read_bytes()
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_bytes(32)
            try:  # O_EXCL: when two replicas start at once, one key wins and both read it
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
            except FileExistsError:
                time.sleep(0.05)
                key = self.path.read_bytes()
        if len(key) < 32:
            raise RuntimeError(f"the console key {self.path} is shorter than 32 bytes; delete it to make a new one")
        return key

    def _mac(self, what: str, data: bytes) -> bytes:
        return hmac.new(self.key, what.encode() + b"\0" + data, hashlib.sha256).digest()

    # -- session -------------------------------------------------------------------------------------------
    def issue(self, user: str, generation: int, *, lifetime_s: int = SESSION_S) -> tuple[str, dict[str, Any]]:
        now = int(self.clock())
        payload = {"u": user, "g": generation, "sid": secrets.token_hex(16), "iat": now, "exp": now + lifetime_s}
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._mac('session', body))}", payload

    def check(self, cookie: str | None) -> dict[str, Any]:
        """The payload of a valid, unexpired cookie; raises SignInRequired naming the reason otherwise."""
        if not cookie:
            raise SignInRequired("")
        try:
            body_b64, mac_b64 = cookie.split(".", 1)
            body, mac = _unb64(body_b64), _unb64(mac_b64)
        except (ValueError, TypeError):
            raise SignInRequired("your session cookie is malformed; sign in again") from None
        if not hmac.compare_digest(mac, self._mac("session", body)):
            raise SignInRequired("your session is not valid here (signed with another key); sign in again")
        payload = json.loads(body)
        if int(payload.get("exp", 0)) <= self.clock():
            raise SignInRequired("your session has expired; sign in again")
        return payload

    # -- CSRF ----------------------------------------------------------------------------------------------
    def csrf_for(self, sid: str) -> str:
        return _b64(self._mac("csrf", sid.encode()))[:32]

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_for(sid), str(token))


def generation_of(user) -> int:
    """A user's token generation: its creation time (a revoke + re-add issues a new token and a new time)."""
    return int(user.created_at.timestamp())


class UserLookup:
    """Active users by name, cached for ``USER_CACHE_S`` (a revoke takes effect within that time)."""

    def __init__(self):
        self._d: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, users, name: str):
        now = time.monotonic()
        hit = self._d.get(name)
        if hit is not None and now - hit[0] < USER_CACHE_S:
            return hit[1]
        try:
            user = users.get(name)
        except KeyError:
            user = None
        with self._lock:
            if len(self._d) > 10_000:
                self._d.clear()
            self._d[name] = (now, user)
        return user

    def forget(self, name: str) -> None:
        self._d.pop(name, None)


def session_user(request: Request, signer: SessionSigner, lookup: UserLookup, users) -> ConsoleUser:
    """The signed-in user of the request (cached in the scope); raises SignInRequired."""
    cached = request.scope.get("_console_user")
    if cached is not None:
        return cached
    payload = signer.check(request.cookies.get(COOKIE))
    user = lookup.get(users, payload["u"])
    if user is None or not user.active or generation_of(user) != payload.get("g"):
        raise SignInRequired("your token was revoked or replaced; sign in with a valid token")
    cu = ConsoleUser(name=user.name, role=user.role, sid=payload["sid"], expires=int(payload["exp"]),
                     csrf=signer.csrf_for(payload["sid"]))
    request.scope["_console_user"] = cu
    return cu


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def session_cookie(request: Request, value: str, max_age: int) -> Cookie:
    return Cookie(key=COOKIE, value=value, path=COOKIE_PATH, httponly=True, samesite="strict",
                  secure=is_tls(request), max_age=max_age)


def clear_cookie(request: Request, key: str = COOKIE) -> Cookie:
    return Cookie(key=key, value="", path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_tls(request),
                  max_age=0, expires=0)


def login_cookie(request: Request, value: str) -> Cookie:
    return Cookie(key=LOGIN_COOKIE, value=value, path=COOKIE_PATH, httponly=True, samesite="strict",
                  secure=is_tls(request), max_age=3600)


async def checked_form(request: Request, user: ConsoleUser, signer: SessionSigner) -> dict[str, str]:
    """The posted form after the CSRF check (raises CSRFError); repeated keys keep their last value."""
    form = await request.form()
    token = form.get("_csrf") or request.headers.get("x-csrf-token")
    if not signer.csrf_ok(user.sid, token):
        raise CSRFError("CSRF check failed: the form did not carry this session's CSRF token "
                        "(reload the page and submit it again)")
    return {k: (v if isinstance(v, str) else str(v)) for k, v in form.items()}


def respond_with_cookies(resp: Response, *cookies: Cookie) -> Response:
    for c in cookies:
        resp.set_cookie(c)
    return resp
