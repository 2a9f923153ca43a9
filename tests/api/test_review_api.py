"""The review queue over HTTP: list, detail with context, decisions under the token's user, four-eyes
pending, conflicts naming who and when, audit."""

from __future__ import annotations

import pytest
from apihelpers import auth, settings_for
from litestar.testing import TestClient

from api.app import create_app


@pytest.fixture
def rclient(world, tmp_path):
    """A client on a private copy of the review database (decisions change it)."""
    with TestClient(create_app(settings_for(world, tmp_path))) as c:
        yield c


def test_list_and_detail_with_context(client, world):
    r = client.get("/review/items", params={"dataset": "radar_precip"}, headers=auth(world, "reader"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) >= 1 and items[0]["state"] == "open" and "climatology" in items[0]["test_names"]
    assert items[0]["t_first"].endswith("Z")
    r = client.get("/review/items", params={"state": "closed"}, headers=auth(world, "reader"))
    assert r.status_code == 400 and "open, pending or decided" in r.json()["detail"]
    d = client.get(f"/review/items/{items[0]['id']}", headers=auth(world, "reader")).json()
    ctx = d["context"]
    nt, ny, nx = ctx["shape"]
    assert nt >= d["n_slots"] and len(ctx["values"]) == nt * ny * nx == len(ctx["qc"]) == len(ctx["in_item"])
    assert sum(ctx["in_item"]) > 0 and "SUSPECT" in ctx["qc"]
    assert len(d["cells"]) == min(d["n_cells"], 2000) and d["cells"][0][0].endswith("Z")
    r = client.get("/review/items/99999", headers=auth(world, "reader"))
    assert r.status_code == 404 and "review item 99999 does not exist" in r.json()["detail"]


def test_decisions_four_eyes_and_conflicts(rclient, world):
    items = rclient.get("/review/items", headers=auth(world, "reader")).json()["items"]
    item = items[0]
    assert item["exceeds_record"]
    iid = item["id"]
    detail = rclient.get(f"/review/items/{iid}", headers=auth(world, "reader")).json()
    # part of the item: one cell accepted, recorded under the token's user
    cell = detail["cells"][0]
    r = rclient.post(f"/review/items/{iid}/decision", json={"action": "accept", "comment": "gauge agrees",
                                                           "cells": [cell]}, headers=auth(world, "operator"))
    assert r.status_code == 201, r.text
    dec = r.json()
    assert dec["by"] == "otto" and dec["status"] == "final" and dec["item_state"] == "open" and dec["n_cells"] == 1
    # a stale version: 409 naming who changed it and when
    r = rclient.post(f"/review/items/{iid}/decision", json={"action": "accept", "comment": "x",
                                                           "expected_version": item["version"]},
                     headers=auth(world, "operator2"))
    assert r.status_code == 409 and "otto" in r.json()["detail"] and r.json()["decided_by"] == "otto"
    assert r.json()["decided_at"].endswith("Z")
    # a reject of a record-breaking value waits for a second operator: pending
    r = rclient.post(f"/review/items/{iid}/decision", json={"action": "reject", "comment": "clutter"},
                     headers=auth(world, "operator"))
    assert r.status_code == 201 and r.json()["status"] == "awaiting_second" and r.json()["item_state"] == "pending"
    assert "pending" in r.json()["writeback"]
    pend = rclient.get("/review/items", params={"state": "pending"}, headers=auth(world, "reader")).json()["items"]
    assert [i["id"] for i in pend] == [iid] and pend[0]["pending_by"] == "otto"
    r = rclient.post(f"/review/items/{iid}/decision", json={"action": "reject", "comment": "again"},
                     headers=auth(world, "operator"))
    assert r.status_code == 409 and "second, different operator" in r.json()["detail"]
    r = rclient.post(f"/review/items/{iid}/decision", json={"action": "reject", "comment": "agreed"},
                     headers=auth(world, "operator2"))
    assert r.status_code == 201 and r.json()["by"] == "olga" and r.json()["item_state"] == "decided"
    # decided: anyone deciding again hears who decided and when
    r = rclient.post(f"/review/items/{iid}/decision", json={"action": "accept", "comment": "late"},
                     headers=auth(world, "operator"))
    assert r.status_code == 409 and "already decided by olga" in r.json()["detail"]
    audit = rclient.get("/review/audit", params={"item_id": iid}, headers=auth(world, "operator")).json()
    actors = [(e["actor"], e["action"]) for e in audit["entries"]]
    assert ("otto", "decision") in actors and ("olga", "confirmation") in actors
    assert ("otto", "four_eyes_refused") in actors


@pytest.mark.parametrize("body, words", [
    ({"action": "accept", "comment": "x", "by": "mallory"}, ["by"]),  # the user comes from the token only
    ({"action": "approve", "comment": "x"}, ["action"]),
    ({"action": "accept", "comment": "   "}, ["comment"]),
    ({"action": "accept", "comment": "x", "cells": [["not-a-time", 1, 2]]}, ["cells[0] (time)"]),
    ({"action": "accept", "comment": "x", "cells": [["2020-01-01T00:00Z", 1, 2]]}, ["not part of review item"]),
    ({"action": "accept", "comment": "x", "cells": []}, ["at least one"]),
])
def test_bad_decisions_are_422(rclient, world, body, words):
    iid = rclient.get("/review/items", headers=auth(world, "reader")).json()["items"][0]["id"]
    r = rclient.post(f"/review/items/{iid}/decision", json=body, headers=auth(world, "operator"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    for w in words:
        assert w in r.json()["detail"]


def test_body_size_limit(rclient, world):
    r = rclient.post("/review/items/1/decision", content=b'{"action":"accept","comment":"' + b"x" * 70_000 + b'"}',
                     headers={**auth(world, "operator"), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert "65536 bytes" in r.json()["detail"]
