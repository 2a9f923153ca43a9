"""HTTP caching of data responses (api.edr.caching): strong ETags per snapshot and URL, 304 on a match,
Cache-Control until the next forecast is due."""

from __future__ import annotations

from apihelpers import lonlat_of

C = "/collections/radar_precip.forecast"


def point(world, iy=10, ix=20):
    lon, lat = lonlat_of(world["catalog"], iy, ix)
    return f"POINT({lon} {lat})"


def test_etag_and_cache_control(client, world):
    params = {"coords": point(world)}
    r = client.get(f"{C}/position", params=params)
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    cc = r.headers["cache-control"]
    assert cc.startswith("public, max-age=") and "must-revalidate" in cc
    r2 = client.get(f"{C}/position", params=params, headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b"" and r2.headers["etag"] == etag
    # another query, another tag; a stale tag gets the full answer
    r3 = client.get(f"{C}/position", params={**params, "f": "json"}, headers={"If-None-Match": etag})
    assert r3.status_code == 200 and r3.headers["etag"] != etag


class _Req:
    """The little of a request the caching functions read."""

    def __init__(self, inm: str | None = None, cap: int = 300):
        from types import SimpleNamespace

        self.headers = {"if-none-match": inm} if inm is not None else {}
        self.app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(api_cache_max_age=cap)))
        self.scope = {"path": "/x", "query_string": b"a=1", "root_path": ""}


def test_etags_and_if_none_match():
    from api.edr.caching import etag_for, not_modified, url_parts

    e = etag_for("snap", "/x", "a=1")
    assert e == etag_for("snap", "/x", "a=1") and e != etag_for("snap2", "/x", "a=1") and e.startswith('"')
    assert url_parts(_Req()) == ("/x", "a=1")
    assert not not_modified(_Req(), e) and not not_modified(_Req('"other"'), e)
    assert not_modified(_Req(e), e) and not_modified(_Req(f'"other", W/{e}'), e) and not_modified(_Req("*"), e)


def test_cache_control_until_the_next_product(monkeypatch):
    import api.edr.caching as caching

    monkeypatch.setattr(caching.time, "time", lambda: 1_000_000.0)
    assert caching.cache_control(_Req(cap=300), 300, 1_000_000 - 100) == "public, max-age=200, must-revalidate"
    assert caching.cache_control(_Req(cap=60), 300, 1_000_000 - 100) == "public, max-age=60, must-revalidate"
    # overdue: a short max-age, so that the next product is picked up soon
    assert caching.cache_control(_Req(cap=300), 300, 1_000_000 - 900) == "public, max-age=15, must-revalidate"
