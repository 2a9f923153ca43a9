"""Alert delivery against real local servers: a webhook receiver on loopback, an SMTP server in-process
(aiosmtpd); a receiver that is down is retried with backoff and then recorded as undelivered; notifying
never waits for a receiver."""

from __future__ import annotations

from datetime import datetime, UTC
from types import SimpleNamespace

import pytest
from monitorkit import Mailbox, Receiver, closed_port, database

from forecast.catalog.monitoring import AlertRule
from forecast.monitoring.delivery import Notifier

T0 = datetime(2026, 7, 15, 12, tzinfo=UTC)


@pytest.fixture
def mdb(tmp_path):
    with database("sqlite", tmp_path) as d:
        db = d.monitor()
        yield db
        db.close()


def _alert(db):
    return db.fire(rule="skill_drop", kind="skill_change", dataset="radar_precip", variable="precipitation_rate",
                   subject="per-init skill vs persistence", severity="critical", since=T0, value=11.0,
                   message="the change detector found a drop", details={"s": 11.0})


def _settings(**kw):
    base = dict(alert_webhook=None, smtp_url=None, alert_email_to=[], alert_email_from="monitor@example.org",
                alert_delivery_attempts=3, alert_delivery_backoff_s=0.05, alert_delivery_timeout_s=2.0)
    return SimpleNamespace(**{**base, **kw})


def _record(db):
    return lambda aid, kind, d: db.add_event(aid, kind, actor="delivery", details=d)


def test_webhook_and_email_are_delivered_and_recorded(mdb):
    hook, mail = Receiver(), Mailbox()
    try:
        n = Notifier(_settings(alert_webhook=hook.url, smtp_url=mail.url, alert_email_to=["duty@example.org"]),
                     _record(mdb))
        a = _alert(mdb)
        n.notify(a, "fired", AlertRule(name="skill_drop", kind="skill_change"))
        assert n.drain(30)
        doc = hook.docs[0]
        assert doc["event"] == "fired" and doc["alert"]["id"] == a.id and doc["alert"]["rule"] == "skill_drop"
        assert doc["alert"]["state"] == "firing" and doc["version"] == 1
        rcpt, msg = mail.messages[0]
        assert rcpt == ["duty@example.org"] and "FIRED: skill_drop" in msg["Subject"]
        assert "the change detector found a drop" in msg.get_content() and msg["X-Forecast-Alert-Id"] == str(a.id)
        kinds = [(e["kind"], e["details"]["channel"]) for e in mdb.alert(a.id).events if e["actor"] == "delivery"]
        assert sorted(kinds) == [("delivered", "email"), ("delivered", "webhook")]
    finally:
        hook.close()
        mail.close()


def test_a_receiver_that_is_down_is_retried_then_recorded_undelivered_without_blocking(mdb):
    down = f"http://127.0.0.1:{closed_port()}/alerts"
    failing = Receiver(status=503)
    try:
        for url in (down, failing.url):
            n = Notifier(_settings(alert_webhook=url, alert_delivery_attempts=3, alert_delivery_backoff_s=0.2),
                         _record(mdb))
            a = _alert(mdb) or mdb.alerts()[0]
            def undelivered():
                return [e for e in mdb.alert(a.id).events if e["kind"] == "undelivered"]

            before = len(undelivered())
            n.notify(a, "fired")
            # the caller (the cycle) never waits: three attempts 0.2 s apart cannot have ended when notify returns
            assert len(undelivered()) == before
            assert n.drain(30)
            ev = undelivered()[-1]
            assert ev["details"]["attempts"] == 3 and ev["details"]["channel"] == "webhook" and ev["details"]["error"]
        assert failing.hits == 3
    finally:
        failing.close()


def test_no_channel_configured_sends_nothing_and_a_rule_can_restrict_channels(mdb):
    hook = Receiver()
    try:
        n = Notifier(_settings(), _record(mdb))
        n.notify(_alert(mdb), "fired")
        assert n.drain(5) and n.sent == []
        n = Notifier(_settings(alert_webhook=hook.url), _record(mdb))
        n.notify(mdb.alerts()[0], "resolved", AlertRule(name="x", kind="skill_change", channels=["email"]))
        assert n.drain(5) and hook.docs == []
    finally:
        hook.close()
