"""Session cookies and CSRF tokens: signed, expiring, bound to the key under FORECAST_HOME."""

from __future__ import annotations

import stat

import pytest

from api.console.session import SessionSigner, SignInRequired


def test_cookie_round_trip_and_tampering(tmp_path):
    s = SessionSigner(tmp_path)
    value, payload = s.issue("otto", 123)
    assert s.check(value)["u"] == "otto"
    body, mac = value.split(".")
    forged = body.replace(body[5], "A" if body[5] != "A" else "B") + "." + mac
    with pytest.raises(SignInRequired, match="not valid|malformed"):
        s.check(forged)
    with pytest.raises(SignInRequired, match="not valid"):
        SessionSigner(tmp_path / "other").check(value)  # another key


def test_expired_session(tmp_path):
    now = [1_000_000.0]
    s = SessionSigner(tmp_path, clock=lambda: now[0])
    value, _ = s.issue("otto", 1, lifetime_s=60)
    assert s.check(value)
    now[0] += 61
    with pytest.raises(SignInRequired, match="expired"):
        s.check(value)


def test_key_file_is_private_and_shared(tmp_path):
    a, b = SessionSigner(tmp_path), SessionSigner(tmp_path)
    value, payload = a.issue("ada", 1)
    assert b.check(value)["sid"] == payload["sid"]  # a second replica on the same HOME accepts it
    assert stat.S_IMODE((tmp_path / "console.key").stat().st_mode) == 0o600


def test_csrf_tokens_are_per_session(tmp_path):
    s = SessionSigner(tmp_path)
    assert s.csrf_ok("sid1", s.csrf_for("sid1"))
    assert not s.csrf_ok("sid2", s.csrf_for("sid1"))
    assert not s.csrf_ok("sid1", None) and not s.csrf_ok("sid1", "")
