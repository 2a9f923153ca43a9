"""The console's HTTP plumbing: Jinja2 templates (autoescaped), HTML responses with the security headers,
gzip when the browser takes it, and the vendored static files served from memory with immutable caching."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import mimetypes
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response

from api.console import render
from forecast.timeutil import iso

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
GZIP_MIN = 1024
# No inline script or style anywhere: page data travels in <script type="application/json"> blocks.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


# -- static files ----------------------------------------------------------------------------------------

class StaticFiles:
    """Every file under ``static/`` (and the generated ``colours.css``), read once; each answered with a strong
    ETag and, when the browser takes it, a gzip body. URLs carry a content hash (``?v=``), so they are cached
    as immutable."""

    def __init__(self, root: Path = STATIC):
        self.files: dict[str, tuple[bytes, bytes | None, str, str]] = {}
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in (".js", ".css", ".svg", ".png", ".ico", ".txt", ".md") \
                    or p.is_file() and p.name.startswith("LICENSE"):
                self._add(p.relative_to(root).as_posix(), p.read_bytes())
        self._add("colours.css", render.colours_css().encode())

    def _add(self, name: str, body: bytes) -> None:
        media = mimetypes.guess_type(name)[0] or "text/plain"
        if media in ("application/javascript", "image/svg+xml"):  # Litestar adds the charset of text/* itself
            media += "; charset=utf-8"
        gz = gzip.compress(body, 9, mtime=0) if len(body) >= GZIP_MIN and not name.endswith(".png") else None
        self.files[name] = (body, gz, media, hashlib.sha256(body).hexdigest()[:16])

    def url(self, name: str) -> str:
        return f"/console/static/{name}?v={self.files[name][3]}"

    def response(self, request: Request, name: str) -> Response:
        hit = self.files.get(name)
        if hit is None:
            return Response(content=b"not found", status_code=404, media_type="text/plain")
        body, gz, media, tag = hit
        headers = {"ETag": f'"{tag}"', "Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == f'"{tag}"':
            return Response(content=b"", status_code=304, headers=headers)
        if gz is not None and "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = gz
        return Response(content=body, media_type=media, headers=headers)


# -- templates -------------------------------------------------------------------------------------------

def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and not math.isfinite(x):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _pct(x: Any) -> str:
    if x is None:
        return "–"
    return f"{100 * float(x):.2f} %" if x < 0.1 else f"{100 * float(x):.1f} %"


def _when(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, float, datetime)):
        return iso(x).replace("T", " ")
    return str(x)


def _ago(x: Any, now: datetime | None = None) -> str:
    if x is None:
        return "–"
    from forecast.timeutil import now as _now
    from forecast.timeutil import to_epoch

    t = to_epoch(x) if isinstance(x, datetime) else int(x)
    s = to_epoch(now or _now()) - t
    future = s < 0
    s = abs(s)
    if s < 90:
        text = f"{s} s"
    elif s < 5400:
        text = f"{s // 60} min"
    elif s < 2 * 86400:
        text = f"{s / 3600:.1f} h"
    else:
        text = f"{s / 86400:.1f} d"
    return f"in {text}" if future else f"{text} ago"


def _tojson_attr(x: Any) -> str:
    return json.dumps(x, separators=(",", ":"), allow_nan=False)


def make_env(static: StaticFiles) -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, pct=_pct, when=_when, ago=_ago, tojson_attr=_tojson_attr)
    env.globals.update(static=static.url, FLAG_STATES=render.FLAG_STATES, ANNOTATION_STATES=render.ANNOTATION_STATES,
                       SLOT_STATES=render.SLOT_STATES)
    return env


def html(request: Request, body: str, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An HTML page: no caching (pages carry the CSRF token and the user's data), security headers, gzip."""
    data = body.encode("utf-8")
    h = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Vary": "Accept-Encoding, Cookie"}
    if headers:
        h.update(headers)
    if len(data) >= GZIP_MIN and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, 5)
        h["Content-Encoding"] = "gzip"
    return Response(content=data, status_code=status, media_type="text/html", headers=h)


def png(body: bytes, *, immutable: bool) -> Response:
    cache = "private, max-age=86400, immutable" if immutable else "no-cache"
    return Response(content=body, media_type="image/png", headers={"Cache-Control": cache,
                                                                  "X-Content-Type-Options": "nosniff"})
