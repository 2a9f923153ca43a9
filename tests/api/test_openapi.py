"""The OpenAPI document says what the API does: schemathesis, with every check on (``--checks all``) and
every phase (examples, coverage, fuzzing, stateful), run in-process against the app with an admin token,
finds no mismatch. Settings (and the two documented allowances) in tests/api/schemathesis.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from apihelpers import auth, settings_for
from litestar.testing import TestClient

from api.app import create_app

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def contract_app(world, tmp_path_factory):
    """The app on a private copy of the database: the run creates users and decides items."""
    app = create_app(settings_for(world, tmp_path_factory.mktemp("contract")))
    with TestClient(app):  # runs startup
        yield app


def _run(app, headers: dict[str, str], *, max_examples: int, seed: int) -> tuple[list[str], dict[str, str], set]:
    """Run schemathesis as ``schemathesis run --checks all`` would, in-process; returns the failures (one line
    each, with a curl to reproduce), the status of each phase and the names of the checks that ran."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events, from_schema

    config = SchemathesisConfig.from_path(CONFIG)
    config.update(seed=seed, max_failures=None)
    project = config.projects.override
    project.checks.update(included_check_names=["all"])  # the CLI's --checks all
    project.generation.update(max_examples=max_examples, database="none")
    project.update(headers=headers, workers=1)
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    failures, phases, ran = [], {}, set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            # failures live in the scenarios' recorders (EngineFinished.failures only holds the engine's own)
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    ran.add(node.name)
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        f = node.failure_info.failure
                        failures.append(f"{event.phase.name} {f.operation}: {f.title}: {f.message}\n"
                                        f"{node.failure_info.code_sample}")
        elif isinstance(event, events.PhaseFinished):
            phases[event.phase.name.value] = event.status.value
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.append(f"error: {getattr(event, 'label', '')} {event.info.message if hasattr(event, 'info') else event}")
    return failures, phases, ran


def test_every_check_passes_against_the_document(contract_app, world):
    failures, phases, ran = _run(contract_app, auth(world, "admin"), max_examples=20, seed=20260715)
    assert not failures, "\n".join(dict.fromkeys(failures))
    assert {p: phases.get(p) for p in ("examples", "coverage", "fuzzing", "stateful")} == dict.fromkeys(
        ("examples", "coverage", "fuzzing", "stateful"), "success"), phases
    every = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
             "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
             "positive_data_acceptance", "missing_required_header", "unsupported_method",
             "allow_header_conformance", "use_after_free", "ensure_resource_availability", "ignored_auth",
             "object_level_authorization"}
    assert every <= ran, every - ran


def test_errors_are_documented_as_problem_details(client):
    doc = client.get("/schema/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "Token from `forecast users add NAME --role ROLE`."}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            errors = {s: r for s, r in op["responses"].items() if int(s) >= 400 and int(s) != 503}
            assert "500" in errors, (method, path)
            for status, r in errors.items():
                assert list(r["content"]) == ["application/problem+json"], (method, path, status)
            if op.get("parameters") or op.get("requestBody"):
                assert "400" in errors, (method, path)
            if op.get("security"):
                assert {"401", "403"} <= set(errors), (method, path)
    audit = {p["name"]: p["schema"] for p in doc["paths"]["/review/audit"]["get"]["parameters"]}
    assert audit["since_id"]["minimum"] == 0 and audit["limit"] == {
        "type": "integer", "maximum": 5000, "minimum": 1, "default": 500}
    decision = doc["components"]["schemas"]["DecisionIn"]
    assert decision["additionalProperties"] is False and decision["properties"]["expected_version"]["oneOf"][0] == {
        "type": "integer", "minimum": 0, "maximum": 2**53}
    ok = doc["paths"]["/collections/{collection_id}/area"]["get"]["responses"]["200"]["content"]
    assert list(ok) == ["application/prs.coverage+json", "application/json", "application/x-netcdf"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/CompactDoc"}
