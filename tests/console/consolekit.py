"""Helpers of the console tests (a module of its own: ``conftest`` is a shared module name across test folders)."""

from __future__ import annotations

import re
import socket
import threading
import time

def make_client(settings, **kw):
    from litestar.testing import TestClient

    from api.app import create_app

    return TestClient(create_app(settings), **kw)


CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "the page has no CSRF field"
    return m.group(1)


def sign_in(client, token: str, next_url: str = "/console/review"):
    r = client.get("/console/login")
    r = client.post("/console/login", data={"_csrf": csrf_of(r.text), "token": token, "next": next_url},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return r


# -- the browser -----------------------------------------------------------------------------------------

class LiveServer:
    """The real app (``create_app(settings)``) under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings):
        import uvicorn

        from api.app import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def new_page(browser, base: str, token: str | None = None):
    ctx = browser.new_context(base_url=base, viewport={"width": 1360, "height": 1000})
    page = ctx.new_page()
    if token is not None:
        browser_sign_in(page, token)
    return page


def browser_sign_in(page, token: str, next_url: str = "/console/review") -> None:
    page.goto(f"/console/login?next={next_url}")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(next_url) + r"$"))

