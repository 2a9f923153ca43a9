"""Fixtures of the API tests: one world per session (see apihelpers.build_world) and a test client."""

from __future__ import annotations

import pytest
from apihelpers import build_world, root_conftest, settings_for

# pytest imports every conftest.py as the module ``conftest``: the tests beside the root conftest do
# ``from conftest import ROOT, small_doc, ...``, so this one re-exports the root's helpers.
ROOT, T0, catalog_doc = root_conftest.ROOT, root_conftest.T0, root_conftest.catalog_doc
small_doc, write_catalog = root_conftest.small_doc, root_conftest.write_catalog


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("apiworld"))


@pytest.fixture(scope="session")
def client(world):
    from litestar.testing import TestClient

    from api.app import create_app

    with TestClient(create_app(settings_for(world))) as c:
        yield c


def pytest_configure(config):
    # Litestar 2.25 nudges towards its 3.0 parameter markers; the inferred style is still supported
    config.addinivalue_line("filterwarnings", "ignore::litestar.exceptions.base_exceptions.LitestarDeprecationWarning")
