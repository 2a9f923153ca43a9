"""Fixtures of the console tests: one world per session (``consoleworld.py``), private copies for tests that
write, the app under a test client, and for the browser tests the real app under uvicorn on a loopback port
driven by Debian's chromium through Playwright (never a browser download). Helpers are in ``consolekit.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from consolekit import LiveServer, make_client  # noqa: E402
from consoleworld import REPO, build_world, settings_for  # noqa: E402

# pytest imports every conftest.py as the module ``conftest``: the tests beside the root conftest do
# ``from conftest import ROOT, small_doc, ...`` and may get this one, so it re-exports the root's helpers.
_spec = importlib.util.spec_from_file_location("_root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
_rc = sys.modules.get("_root_conftest")
if _rc is None:
    _rc = importlib.util.module_from_spec(_spec)
    sys.modules["_root_conftest"] = _rc
    _spec.loader.exec_module(_rc)
ROOT, T0, catalog_doc, small_doc, write_catalog = _rc.ROOT, _rc.T0, _rc.catalog_doc, _rc.small_doc, _rc.write_catalog

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


@pytest.fixture
def client(world):
    with make_client(settings_for(world)) as c:
        yield c


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


