"""The data routes' hot path: a response of ready-encoded bytes sent as two raw ASGI events, and
documents pre-encoded as templates with holes, so that a point query encodes only what differs per cell.

Both exist because the bench (``bench/api.py``) measured them: Litestar's ``Response`` -> ``ASGIResponse``
conversion and a whole-document encode were each a sizeable share of a cached point query.
"""

from __future__ import annotations

import re

from litestar import Response

from api.edr.responses import encode


class RawASGIResponse:
    """The ASGI side of ``FastResponse``: status, encoded headers and body, sent as two events."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class FastResponse(Response):
    """A ``Response`` of ready-encoded bytes for the data routes.

    Litestar's ``Response`` -> ``ASGIResponse`` conversion re-normalises headers into a mutable header
    object per request (a measurable share of a cached point query); this one encodes its few headers
    once, in the order Litestar would (ETag, Cache-Control, Vary, extras, Content-Type, Content-Length;
    no body, Content-Type or Content-Length on a 304). Route-level headers or cookies, which these
    routes do not declare, fall back to the regular conversion.
    """

    __slots__ = ()

    def __init__(self, body: bytes, media_type: str | None, headers: dict[str, str], status_code: int = 200):
        # no Response.__init__: the attributes super().to_asgi_response reads are set here directly
        self.content = body
        self.media_type = media_type
        self.status_code = status_code
        self.headers = headers
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.response_type_encoders = None

    def to_asgi_response(self, request, *, headers=None, cookies=None, **kw):  # type: ignore[override]
        if headers or cookies or kw.get("background") is not None:
            return super().to_asgi_response(request, headers=headers, cookies=cookies, **kw)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        if self.status_code != 304:
            raw.append((b"content-type", self.media_type.encode("latin-1")))
            raw.append((b"content-length", str(len(self.content)).encode()))
        return RawASGIResponse(self.status_code, raw, self.content if self.status_code != 304 else b"")


def respond(body: bytes, media: str, etag: str, cache: str, extra: dict | None = None) -> Response:
    """A 200 data response with its caching headers (and ``extra`` ones, e.g. Content-Disposition)."""
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Accept, Authorization"}
    if extra:
        headers.update(extra)
    return FastResponse(body, media, headers)


def not_modified_response(etag: str, cache: str) -> Response:
    """A 304: no body, the ETag and Cache-Control repeated."""
    return FastResponse(b"", None, {"ETag": etag, "Cache-Control": cache}, status_code=304)


# A document with a few per-request holes is encoded once with a marker string in each hole and split
# there; a request encodes only the holes and joins the pieces. The bytes are those of encoding the whole
# document (msgspec keeps dict order); users compare a template's first rendering with the plain encoding
# and drop a template that differs.
_HOLE = "@@fcst-hole-{}@@"
_HOLE_RE = re.compile(rb'"@@fcst-hole-(\d+)@@"')


def holes(n: int) -> list[str]:
    """The marker strings to put in a document's ``n`` holes (hole ``k`` is ``holes(n)[k]``)."""
    return [_HOLE.format(k) for k in range(n)]


class Template:
    """A document encoded once around its holes; ``render(values)`` fills hole ``k`` with ``values[k]``.

    Raises:
        ValueError: a marker is missing or repeated in the document (e.g. a marker string inside a
            document's own text): use the plain encoding instead.
    """

    __slots__ = ("parts", "order", "media", "checked")

    def __init__(self, doc: dict, n_holes: int, media: str):
        self.checked = False
        pieces = _HOLE_RE.split(encode(doc))
        self.parts = pieces[0::2]
        self.order = [int(k) for k in pieces[1::2]]
        self.media = media
        if sorted(self.order) != list(range(n_holes)):
            raise ValueError("a hole marker is missing or repeated in the document")

    def render(self, values: list) -> bytes:
        enc = encode
        parts = self.parts
        out = [parts[0]]
        for i, k in enumerate(self.order, 1):
            out.append(enc(values[k]))
            out.append(parts[i])
        return b"".join(out)
