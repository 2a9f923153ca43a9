"""Schema-driven fuzzing of the API against its own OpenAPI document (bounded): no 5xx, and every
documented response conforms to its schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from apihelpers import auth, settings_for


@pytest.fixture(scope="module")
def fuzz_app(world, tmp_path_factory):
    app = create_app(settings_for(world, tmp_path_factory.mktemp("fuzz")))
    with TestClient(app):  # runs startup
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/schema/openapi.json", fuzz_app)


def test_api_conforms_to_its_schema(api_schema, world):
    """Every operation, a few generated requests each (positive and negative data), as an admin."""
    headers = auth(world, "admin")
    n = 0
    for result in api_schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  phases=[Phase.explicit, Phase.generate])
        def run(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        run()
        n += 1
    assert n >= 15  # every route was exercised
