"""Fixtures of the console tests: one world per session (``world.py``), private copies for tests that write,
the app under a test client, and for the browser tests the real app under uvicorn on a loopback port driven
by Debian's chromium through Playwright (never a browser download)."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from world import REPO, build_world, settings_for  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO / ".artifacts" / "console"


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore::litestar.exceptions.base_exceptions.LitestarDeprecationWarning")


def pytest_terminal_summary(terminalreporter):
    if ARTIFACTS.is_dir() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"console screenshots: {ARTIFACTS}")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("consoleworld"))


@pytest.fixture(scope="session")
def bare_world(tmp_path_factory):
    """A store with observations and review items but no forecasts and no models yet."""
    return build_world(tmp_path_factory.mktemp("bareworld"), forecasts=False, models=False)


@pytest.fixture
def private(world, tmp_path):
    """Settings over a private copy of the world's home (store, forecasts, database, models)."""
    return settings_for(world, tmp_path)


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


@pytest.fixture
def client(world):
    with make_client(settings_for(world)) as c:
        yield c


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


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():  # the folder stays out of git without touching the repository's .gitignore
        ignore.write_text("*\n")
    return ARTIFACTS


@pytest.fixture
def live(world, tmp_path):
    """The app on a private copy of the world, served on a loopback port."""
    with LiveServer(settings_for(world, tmp_path)) as srv:
        yield srv


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

