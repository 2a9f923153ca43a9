"""Delivering alerts: a webhook (HTTP POST of a JSON document) and email over SMTP, from a background
thread, so that the cycle never waits for a receiver.

Each fired or resolved alert is queued (`Notifier.notify` returns at once). The delivery thread tries each
channel up to ``attempts`` times, each attempt bounded by ``timeout_s``, waiting ``backoff_s * 2**i``
between attempts (1 s, 2 s, 4 s by default); the outcome is written into the alert's append-only history:
``delivered`` (channel, target, attempts) or ``undelivered`` (channel, target, attempts, the last error).
A receiver that is down costs the delivery thread some seconds, never the cycle.

Settings: ``FORECAST_ALERT_WEBHOOK`` (URL), ``FORECAST_SMTP_URL`` (``smtp://[user:password@]host[:port]``,
``?starttls=true`` to upgrade; ``smtps://`` for implicit TLS), ``FORECAST_ALERT_EMAIL_TO`` (JSON list),
``FORECAST_ALERT_EMAIL_FROM``, ``FORECAST_ALERT_DELIVERY_ATTEMPTS``, ``FORECAST_ALERT_DELIVERY_BACKOFF_S``,
``FORECAST_ALERT_DELIVERY_TIMEOUT_S``.

The webhook document::

    {"version": 1, "event": "fired" | "resolved", "service": "forecast", "sent_at": "...Z",
     "alert": {"id", "rule", "kind", "dataset", "variable", "subject", "severity", "state", "since",
               "resolved_at", "value", "message", "details", "acknowledged", ...}}
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlparse

from forecast.timeutil import iso, now

log = logging.getLogger(__name__)

__all__ = ["Notifier", "email_message", "send_email", "send_webhook", "webhook_document"]


def webhook_document(alert_doc: dict, event: str) -> dict:
    return {"version": 1, "event": event, "service": "forecast", "sent_at": iso(now()), "alert": alert_doc}


def send_webhook(url: str, doc: dict, *, timeout_s: float) -> str:
    """POST ``doc`` as JSON; returns the status line. Raises on a failure or a status >= 300."""
    body = json.dumps(doc).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "forecast-monitor/1"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        if resp.status >= 300:
            raise OSError(f"HTTP {resp.status}")
        return f"HTTP {resp.status}"


def email_message(alert_doc: dict, event: str, *, sender: str, to: list[str]) -> EmailMessage:
    a = alert_doc
    msg = EmailMessage()
    msg["Subject"] = (f"[forecast {a['severity']}] {event.upper()}: {a['rule']} on {a['dataset']}/{a['variable']} "
                      f"({a['subject']})")
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["X-Forecast-Alert-Id"] = str(a["id"])
    lines = [f"Alert {a['id']} {event}: {a['rule']} ({a['kind']}), severity {a['severity']}",
             f"Dataset {a['dataset']}, variable {a['variable']}, subject: {a['subject']}",
             f"State: {a['state']} since {a['since']}" + (f", resolved at {a['resolved_at']}" if a.get("resolved_at")
                                                          else ""),
             "", a["message"], "",
             "Acknowledge: forecast monitor ack " + str(a["id"]) + " --by NAME --comment TEXT",
             "", "Details:", json.dumps(a.get("details") or {}, indent=1, default=str)]
    msg.set_content("\n".join(lines))
    return msg


def send_email(smtp_url: str, msg: EmailMessage, *, timeout_s: float) -> str:
    """Send through the SMTP server of ``smtp_url``; returns the server's answer. Raises on failure."""
    u = urlparse(smtp_url)
    if u.scheme not in ("smtp", "smtps"):
        raise ValueError(f"FORECAST_SMTP_URL must start with smtp:// or smtps://, got {smtp_url!r}")
    host, port = u.hostname or "localhost", u.port or (465 if u.scheme == "smtps" else 25)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    cls = smtplib.SMTP_SSL if u.scheme == "smtps" else smtplib.SMTP
    with cls(host, port, timeout=timeout_s) as s:
        if u.scheme == "smtp" and q.get("starttls", "").lower() in ("1", "true", "yes"):
            s.starttls(context=ssl.create_default_context())
        if u.username:
            s.login(unquote(u.username), unquote(u.password or ""))
        refused = s.send_message(msg)
        if refused:
            raise OSError(f"recipients refused: {', '.join(refused)}")
    return f"{host}:{port}"


class Notifier:
    """Queues alert notifications and delivers them from a daemon thread (see the module docstring).

    ``record(alert_id, kind, details)`` writes the outcome into the alert history (the monitor passes its
    database's `add_event`)."""

    def __init__(self, settings, record: Callable[[int, str, dict], None] | None = None, *,
                 attempts: int | None = None, backoff_s: float | None = None, timeout_s: float | None = None):
        self.webhook = getattr(settings, "alert_webhook", None)
        self.smtp_url = getattr(settings, "smtp_url", None)
        self.to = list(getattr(settings, "alert_email_to", None) or [])
        self.sender = getattr(settings, "alert_email_from", None) or f"forecast-monitor@{socket.gethostname()}"
        self.attempts = int(attempts if attempts is not None else getattr(settings, "alert_delivery_attempts", 4))
        self.backoff_s = float(backoff_s if backoff_s is not None else getattr(settings, "alert_delivery_backoff_s", 1.0))
        self.timeout_s = float(timeout_s if timeout_s is not None else getattr(settings, "alert_delivery_timeout_s", 5.0))
        self.record = record
        self._q: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self.sent: list[dict] = []  # outcomes, newest last (for status and tests)

    @property
    def channels(self) -> list[str]:
        out = []
        if self.webhook:
            out.append("webhook")
        if self.smtp_url and self.to:
            out.append("email")
        return out

    def notify(self, alert, event: str, rule=None) -> None:
        """Queue the notification of ``alert`` (a `forecast.monitoring.store.Alert`): returns at once."""
        wanted = [c for c in self.channels if rule is None or c in rule.channels]
        if not wanted:
            return
        doc = alert.to_json()
        doc.pop("events", None)
        with self._lock:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)
                self._thread.start()
        self._q.put((doc, event, wanted))

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until every queued notification was delivered or given up (tests, one-shot commands)."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        while True:
            doc, event, channels = self._q.get()
            try:
                for ch in channels:
                    self._deliver(ch, doc, event)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, channel: str, doc: dict, event: str) -> None:
        target = self.webhook if channel == "webhook" else ", ".join(self.to)
        error = None
        for i in range(self.attempts):
            try:
                if channel == "webhook":
                    answer = send_webhook(self.webhook, webhook_document(doc, event), timeout_s=self.timeout_s)
                else:
                    answer = send_email(self.smtp_url, email_message(doc, event, sender=self.sender, to=self.to),
                                        timeout_s=self.timeout_s)
                self._outcome(doc, "delivered", {"channel": channel, "event": event, "target": _safe(target),
                                                 "attempts": i + 1, "answer": answer})
                return
            except (OSError, urllib.error.URLError, smtplib.SMTPException, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
                log.warning("alert %s: %s delivery attempt %d/%d failed: %s", doc["id"], channel, i + 1,
                            self.attempts, error)
                if i + 1 < self.attempts:
                    time.sleep(self.backoff_s * 2 ** i)
        self._outcome(doc, "undelivered", {"channel": channel, "event": event, "target": _safe(target),
                                           "attempts": self.attempts, "error": error})
        log.error("alert %s could not be delivered by %s after %d attempts: %s", doc["id"], channel, self.attempts,
                  error)

    def _outcome(self, doc: dict, kind: str, details: dict[str, Any]) -> None:
        self.sent.append({"alert": doc["id"], "kind": kind, **details})
        if self.record is not None:
            try:
                self.record(doc["id"], kind, details)
            except Exception:
                log.exception("alert %s: the delivery outcome could not be recorded", doc["id"])


def _safe(target: str | None) -> str | None:
    """A target without its password."""
    if not target or "@" not in target or "://" not in target:
        return target
    u = urlparse(target)
    if u.password:
        return target.replace(f":{u.password}@", ":***@")
    return target
