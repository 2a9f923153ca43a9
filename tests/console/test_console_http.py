"""The console over HTTP (Litestar's test client): the sign-in contract, cookies, CSRF, roles, every page, the
bad inputs of the issue, decisions, promotion through the gate, users."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import pytest
from consolekit import csrf_of, make_client, sign_in
from consoleworld import settings_for

P = "precipitation_rate"


def signed_in(settings, name, world, **kw):
    c = make_client(settings, **kw)
    c.__enter__()
    sign_in(c, world["tokens"][name])
    return c


# -- sign-in, cookies, CSRF -------------------------------------------------------------------------------

def test_login_is_a_form_with_a_token_field_and_pages_need_it(client):
    r = client.get("/console/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=%2Fconsole%2Freview")
    r = client.get("/console/login")
    assert r.status_code == 200
    assert re.search(r'<form method="post" action="/console/login"', r.text)
    assert re.search(r'<input id="token" name="token" type="password"', r.text)
    assert '<label for="token">' in r.text


def test_session_cookie_is_httponly_strict_and_secure_over_tls(world):
    with make_client(settings_for(world)) as c:
        r = sign_in(c, world["tokens"]["rita"])
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("console_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie
        assert world["tokens"]["rita"] not in cookie  # the token itself is never in the cookie
    with make_client(settings_for(world), base_url="https://testserver.local") as c:
        r = sign_in(c, world["tokens"]["rita"])
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("console_session="))
        assert "Secure" in cookie


def test_a_wrong_token_is_refused_with_a_sentence(client):
    r = client.get("/console/login")
    r = client.post("/console/login", data={"_csrf": csrf_of(r.text), "token": "fcst_nope"})
    assert r.status_code == 401 and "This token is not valid (unknown or revoked)." in r.text


def test_sign_in_without_the_login_csrf_is_refused(world, client):
    r = client.post("/console/login", data={"token": world["tokens"]["otto"]})
    assert r.status_code == 403 and "CSRF check failed" in r.text


def test_forged_post_is_refused_with_csrf_failure(world):
    c = signed_in(settings_for(world), "otto", world)
    try:
        item = world["top_item"]
        r = c.post(f"/console/review/{item}/decide", data={"action": "accept", "comment": "forged"})
        assert r.status_code == 403 and "CSRF check failed" in r.text
        r = c.post(f"/console/review/{item}/decide", data={"_csrf": "0" * 32, "action": "accept", "comment": "x"})
        assert r.status_code == 403 and "CSRF check failed" in r.text
        r = c.post("/console/logout", data={})
        assert r.status_code == 403
    finally:
        c.__exit__(None, None, None)


def test_sign_out_ends_the_session(world):
    c = signed_in(settings_for(world), "rita", world)
    try:
        page = c.get("/console/review")
        r = c.post("/console/logout", data={"_csrf": csrf_of(page.text)}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/login?reason=signed_out"
        assert c.get("/console/review", follow_redirects=False).status_code == 303
        assert "You are signed out." in c.get("/console/login?reason=signed_out").text
    finally:
        c.__exit__(None, None, None)


def test_expired_session_asks_to_sign_in_again(world):
    from api.console.session import COOKIE, SessionSigner, generation_of
    from forecast.db.users import UserStore

    settings = settings_for(world)
    with UserStore(settings.db_url) as users:
        gen = generation_of(users.get("otto"))
    old = SessionSigner(settings.home, clock=lambda: datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp())
    value, _ = old.issue("otto", gen)
    with make_client(settings) as c:
        c.cookies.set(COOKIE, value, path="/console")
        r = c.get("/console/review/1", follow_redirects=False)
        assert r.status_code == 303 and "reason=expired" in r.headers["location"]
        assert "next=%2Fconsole%2Freview%2F1" in r.headers["location"]
        assert "Your session has expired" in c.get(r.headers["location"]).text


def test_open_redirects_are_refused(world, client):
    r = client.get("/console/login")
    r = client.post("/console/login", data={"_csrf": csrf_of(r.text), "token": world["tokens"]["rita"],
                                           "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/console/review"


# -- pages and roles ----------------------------------------------------------------------------------------

PAGES = ["/console/review", "/console/review?state=all&age=24h", "/console/forecasts", "/console/quality",
         "/console/monitor", "/console/models", "/console/models/v1"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_a_reader(world, path):
    c = signed_in(settings_for(world), "rita", world)
    try:
        r = c.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert "Content-Security-Policy" in r.headers and r.headers["cache-control"] == "no-store"
        assert "<script>" not in r.text  # no inline script (CSP)
    finally:
        c.__exit__(None, None, None)


def test_item_page_for_a_reader_has_no_decide_form(world):
    c = signed_in(settings_for(world), "rita", world)
    try:
        r = c.get(f"/console/review/{world['top_item']}")
        assert r.status_code == 200
        assert 'id="decide"' not in r.text and "deciding needs role operator" in r.text
        r = c.post(f"/console/review/{world['top_item']}/decide",
                   data={"_csrf": csrf_of(r.text), "action": "accept", "comment": "not mine to decide"})
        assert r.status_code == 403 and "needs role operator" in r.text
    finally:
        c.__exit__(None, None, None)


def test_users_page_is_for_admins(world):
    c = signed_in(settings_for(world), "otto", world)
    try:
        assert c.get("/console/users").status_code == 403
        assert "Users" not in c.get("/console/review").text.split("</nav>")[0]
    finally:
        c.__exit__(None, None, None)


def test_console_routes_stay_out_of_the_openapi_document(client):
    doc = client.get("/schema/openapi.json").json()
    assert not [p for p in doc["paths"] if p.startswith("/console")]


def test_static_assets_are_vendored_cached_and_gzipped(client):
    r = client.get("/console/static/vendor/htmx/htmx.min.js", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert "immutable" in r.headers["cache-control"] and r.headers["etag"]
    assert client.get("/console/static/vendor/htmx/htmx.min.js",
                      headers={"if-none-match": r.headers["etag"]}).status_code == 304
    assert client.get("/console/static/../session.py").status_code == 404
    assert client.get("/console/static/vendor/uplot/LICENSE").status_code == 200


# -- bad inputs -------------------------------------------------------------------------------------------------

def test_an_item_that_does_not_exist(world):
    c = signed_in(settings_for(world), "rita", world)
    try:
        r = c.get("/console/review/987654")
        assert r.status_code == 404 and "review item 987654 does not exist" in r.text
        assert c.get("/console/review/notanumber").status_code == 404
    finally:
        c.__exit__(None, None, None)


def _decide(c, item, **form):
    page = c.get(f"/console/review/{item}")
    version = re.search(r'name="expected_version" value="(\d+)"', page.text).group(1)
    data = {"_csrf": csrf_of(page.text), "expected_version": version, "scope": "all", **form}
    return c.post(f"/console/review/{item}/decide", data=data, follow_redirects=False)


def test_a_huge_comment_is_refused_with_a_sentence(world, private):
    c = signed_in(private, "otto", world)
    try:
        r = _decide(c, world["top_item"], action="accept", comment="x" * 5000)
        assert r.status_code == 422 and "the comment is 5000 characters long" in r.text
        assert "x" * 100 in r.text  # the draft is kept for editing
        r = _decide(c, world["top_item"], action="accept", comment="y" * 200_000)
        assert r.status_code == 413 and "larger than this server accepts" in r.text
        r = _decide(c, world["top_item"], action="accept", comment="   ")
        assert r.status_code == 422 and "needs a comment" in r.text
    finally:
        c.__exit__(None, None, None)


def test_html_in_a_comment_is_escaped(world, private):
    c = signed_in(private, "otto", world)
    evil = '<script>alert("x")</script><b>bold</b>'
    try:
        r = _decide(c, world["items"][-1], action="reject", comment=evil)
        assert r.status_code == 303
        page = c.get(r.headers["location"])
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page.text
        assert "<b>bold</b>" not in page.text and '<script>alert("x")' not in page.text
    finally:
        c.__exit__(None, None, None)


def test_a_decision_on_an_item_decided_meanwhile(world, private):
    from forecast.review import ReviewQueue

    c = signed_in(private, "otto", world)
    item = world["items"][-1]
    try:
        page = c.get(f"/console/review/{item}")
        with ReviewQueue(private.db_url) as q:  # olga decides through the API / CLI meanwhile
            q.decide(item, "accept", by="olga", comment="gauge agrees")
        r = c.post(f"/console/review/{item}/decide", data={
            "_csrf": csrf_of(page.text), "expected_version": "1", "scope": "all", "action": "reject",
            "comment": "a fault"})
        assert r.status_code == 409
        assert "Conflict: your decision was not recorded" in r.text and "olga decided first, at 20" in r.text
        assert "a fault" in r.text  # the comment is kept
    finally:
        c.__exit__(None, None, None)


def test_selected_cells_must_belong_to_the_item(world, private):
    c = signed_in(private, "otto", world)
    try:
        r = _decide(c, world["top_item"], action="accept", comment="ok", scope="selected", cells="")
        assert r.status_code == 422 and "no cells are selected" in r.text
        r = _decide(c, world["top_item"], action="accept", comment="ok", scope="selected", cells="1,2")
        assert r.status_code == 422 and "is not 'time,iy,ix'" in html.unescape(r.text)
        r = _decide(c, world["top_item"], action="accept", comment="ok", scope="selected", cells="0,0,0")
        assert r.status_code == 422 and "not part of review item" in r.text
    finally:
        c.__exit__(None, None, None)


def test_a_store_with_no_forecasts_yet(bare_world):
    c = signed_in(settings_for(bare_world), "ada", bare_world)
    try:
        r = c.get("/console/forecasts")
        assert r.status_code == 200 and "No forecasts of radar_precip yet" in r.text
        r = c.get("/console/models")
        assert r.status_code == 200 and "No models registered yet" in r.text
        assert c.get("/console/forecasts/radar_precip/production/0/0").status_code == 404
        assert c.get("/console/models/v9").status_code == 404
    finally:
        c.__exit__(None, None, None)


def test_nothing_there_at_all(tmp_path, world):
    """No store, no forecast store, an empty database: every page still answers."""
    from forecast.db.users import UserStore
    from forecast.settings import Settings

    settings = Settings(home=tmp_path / "home", catalogs=world["catalogs"])
    with UserStore(settings.db_url) as users:
        _, token = users.add("ada", "admin", by="test")
    with make_client(settings) as c:
        sign_in(c, token)
        for path in PAGES[:-1] + ["/console/users"]:
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
        assert "no observations of this dataset have arrived yet" in c.get("/console/quality").text


# -- decisions, pages' content ---------------------------------------------------------------------------------

def test_four_eyes_over_http(world, private):
    item = world["top_item"]  # the record storm: a reject needs two operators
    otto = signed_in(private, "otto", world)
    olga = signed_in(private, "olga", world)
    try:
        r = _decide(otto, item, action="reject", comment="clutter")
        assert r.status_code == 303
        page = otto.get(r.headers["location"])
        assert "a second, different operator must confirm" in page.text and 'id="four-eyes"' in page.text
        r = _decide(otto, item, action="reject", comment="still clutter")
        assert r.status_code == 409 and "Four eyes: not recorded" in r.text
        r = _decide(olga, item, action="reject", comment="agree: clutter")
        assert r.status_code == 303
        assert "Decided (rejected)" in olga.get(f"/console/review/{item}").text
    finally:
        otto.__exit__(None, None, None)
        olga.__exit__(None, None, None)


def test_queue_filters_and_counts(world, client):
    sign_in(client, world["tokens"]["rita"])
    r = client.get("/console/review?state=all")
    n = len(world["items"])
    assert f"open {n}" in r.text and "pending 0" in r.text and "decided 0" in r.text
    assert all(f'href="/console/review/{i}"' in r.text for i in world["items"])
    r = client.get("/console/review?state=decided")
    assert "No review items match these filters." in r.text
    r = client.get("/console/review?dataset=radar_precip&state=open&age=1h", headers={"hx-request": "true"})
    assert r.text.lstrip().startswith('<section id="queue-table"')  # htmx gets the table alone
    assert client.get("/console/review?offset=-5").status_code == 200
    assert client.get("/console/review?offset=abc").status_code == 400


def test_item_page_shows_tests_thresholds_record_and_frames(world, client):
    sign_in(client, world["tokens"]["rita"])
    r = client.get(f"/console/review/{world['top_item']}")
    assert "climatology" in r.text and "record max (month of the peak) = 250.0" in r.text
    assert "suspect = 100.0" in r.text  # the spike test's threshold from the catalog
    data = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', r.text, re.S).group(1)
    import json

    doc = json.loads(data)
    assert doc["frames"] and doc["series"]["cells"][0]["peak"] and len(doc["series"]["cells"]) == 9
    assert any(c[5] for f in doc["flagged"] for c in f)  # the item's cells, for selection
    img = client.get(doc["frames"][doc["window"]["peak_frame"]]["url"])
    assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "immutable" in img.headers["cache-control"]
    assert client.get(f"/console/review/{world['top_item']}/frames/999").status_code == 404
    assert client.get(f"/console/review/{world['top_item']}/overview").status_code == 200


def test_next_item_walks_the_queue(world, client):
    sign_in(client, world["tokens"]["rita"])
    first, second = world["items"][:2]
    r = client.get(f"/console/review/{first}/next", follow_redirects=False)
    assert r.headers["location"] == f"/console/review/{second}"


def test_forecast_page_shows_frames_marks_fallback_and_provenance(world, client):
    sign_in(client, world["tokens"]["rita"])
    r = client.get("/console/forecasts")
    assert "Fallback:" in r.text and "the model missed its deadline" in r.text  # the latest init fell back
    assert "snapshot" in r.text and "input_quality" in r.text
    doc = re.search(r'id="page-data">(.*?)</script>', r.text, re.S).group(1)
    import json

    doc = json.loads(doc)
    assert len(doc["frames"]) == 12 and doc["frames"][5]["marks"]["extreme"] == 1
    assert doc["frames"][6]["marks"]["implausible"] == 1
    png = client.get(doc["frames"][0]["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    older = client.get(f"/console/forecasts?init={doc['init'] - 300}")
    assert "no fallback" in older.text
    s = client.get(f"/console/forecasts/radar_precip/series?run=production&init={doc['init']}&iy=10&ix=20")
    assert s.status_code == 200 and "implausible" in s.text and "extreme" in s.text
    assert client.get(f"/console/forecasts/radar_precip/series?init={doc['init']}&iy=999&ix=0").status_code == 404


def test_quality_page_counts_late_missing_and_revised(world, client):
    sign_in(client, world["tokens"]["rita"])
    r = client.get("/console/quality")
    m = world["manifest"]
    assert "No data in the last 24 hours" in r.text  # the sample lies in the past: the window ends at its data
    assert r.text.count('class="slot slot-late"') == len(m["batches"]["late"])
    assert r.text.count('class="slot slot-revised"') == len(m["batches"]["revised"])
    assert r.text.count('class="slot slot-missing"') == len(m["missing"])
    assert "catalog feed.expected_latency" in r.text


def test_quality_reads_the_feed_latency_of_the_catalog():
    from api.console.quality import expected_latency
    from forecast.catalog import parse_catalog
    from testkit import small_doc

    doc = small_doc("radar_precip")
    assert expected_latency(parse_catalog(doc, "x")) == (120, "catalog feed.expected_latency")  # the default
    doc["feed"] = {"expected_latency": "90s"}
    assert expected_latency(parse_catalog(doc, "x"))[0] == 90


def test_monitor_page_before_any_verification_says_so(world, client):
    sign_in(client, world["tokens"]["rita"])
    r = client.get("/console/monitor")
    assert "Monitoring data is not available yet" in r.text
    assert 'href="/console/monitor" aria-current="page"' in r.text


# -- models: promotion through the gate -------------------------------------------------------------------------

def _promote(c, version, **form):
    page = c.get(f"/console/models/{version}")
    return c.post(f"/console/models/{version}/promote", data={"_csrf": csrf_of(page.text), **form},
                  follow_redirects=False)


def test_promotion_is_an_approval_through_the_gate(world, private):
    from forecast.registry import ModelRegistry

    passing, failing = world["models"]["passing"], world["models"]["failing"]
    otto = signed_in(private, "otto", world)
    ada = signed_in(private, "ada", world)
    try:
        assert 'id="promote"' not in otto.get(f"/console/models/{passing}").text
        assert _promote(otto, passing, reason="I like it").status_code == 403
        page = ada.get(f"/console/models/{passing}")
        assert 'id="gate-passed"' in page.text and 'id="override"' not in page.text
        assert _promote(ada, passing, reason="").status_code == 422
        r = _promote(ada, passing, reason="beats persistence and S-PROG at +30 and +60 min")
        assert r.status_code == 303
        assert "Promoted to production" in ada.get(r.headers["location"]).text
        # the failing candidate: the gate's reasons, then an admin's override with a reason
        page = ada.get(f"/console/models/{failing}")
        assert 'id="gate-refused"' in page.text and "is worse than persistence" in page.text
        assert 'id="override"' in page.text
        r = _promote(ada, failing, reason="try it")
        assert r.status_code == 409 and "The gate refused the promotion" in r.text
        r = _promote(ada, failing, reason="storm season: the old model fails on convection", override="yes")
        assert r.status_code == 303
        with ModelRegistry(private.db_url, private.models_dir) as reg:
            p, f = reg.get(passing), reg.get(failing)
        assert p.stage == "retired" and f.stage == "production"
        promoted = [h for h in p.history if h.to_stage == "production"][0]
        assert promoted.by == "ada" and not promoted.override and promoted.report["gate"]["passed"]
        assert promoted.report["sha256"]  # the report behind it, as the CLI records it
        over = f.history[-1]
        assert over.override and over.reason.startswith("storm season") and over.by == "ada"
        assert "override" in ada.get(f"/console/models/{failing}").text
    finally:
        otto.__exit__(None, None, None)
        ada.__exit__(None, None, None)


# -- users ------------------------------------------------------------------------------------------------------

def test_admin_adds_and_revokes_users_and_a_revoked_session_ends(world, private):
    ada = signed_in(private, "ada", world)
    try:
        page = ada.get("/console/users")
        r = ada.post("/console/users", data={"_csrf": csrf_of(page.text), "name": "nina", "role": "operator"})
        assert r.status_code == 201
        token = re.search(r'<code class="token">([^<]+)</code>', r.text).group(1)
        assert token.startswith("fcst_")
        nina = signed_in(private, "ada", world)  # a client, signed in as nina below
        sign_in(nina, token)
        assert nina.get("/console/review").status_code == 200
        r = ada.post("/console/users/nina/revoke", data={"_csrf": csrf_of(page.text)}, follow_redirects=False)
        assert r.status_code == 303
        assert "The token of nina is revoked." in ada.get(r.headers["location"]).text
        import time

        time.sleep(2.1)  # the user lookup is cached for 2 s per replica
        r = nina.get("/console/review", follow_redirects=False)
        assert r.status_code == 303 and "reason=revoked" in r.headers["location"]
        r = ada.post("/console/users", data={"_csrf": csrf_of(page.text), "name": "", "role": "king"})
        assert r.status_code == 422 and "a user name must be 1 to 128 characters" in r.text
        nina.__exit__(None, None, None)
    finally:
        ada.__exit__(None, None, None)

