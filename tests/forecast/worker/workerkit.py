"""Helpers of the worker tests: a small radar dataset with a recorded feed (a sample with the faults an
operational feed has), settings under a temporary home, and a way to drop files into an inbox."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from forecast.catalog import parse_catalog
from forecast.settings import Settings
from testkit import small_doc, write_catalog

START = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)
P = "precipitation_rate"


def make_world(tmp: Path, *, hours: float = 2.0, faults=("missing", "late", "duplicate", "revised", "corrupt"),
               feed: dict | None = None, database_url: str | None = None, seed: int = 5):
    """(settings, catalog, sample folder, manifest) of a 32 x 48 radar dataset."""
    from forecast.synthetic import generate_sample

    doc = small_doc("radar_precip", ny=32, nx=48)
    doc["feed"] = {"expected_latency": "2min", "wait_for_late": "3min", "deadline": "60s", "expire_after": "5min",
                   "settle": "0s", **(feed or {})}
    path = write_catalog(tmp / "catalogs", doc)
    cat = parse_catalog(doc, str(path))
    st = Settings(home=tmp / "home", catalogs=tmp / "catalogs", database_url=database_url, workers=1)
    sample = tmp / "sample"
    manifest = generate_sample(cat, start=START, hours=hours, out=sample, faults=list(faults), seed=seed)
    return st, cat, sample, manifest


def drop(src: Path, inbox: Path, name: str | None = None) -> Path:
    """Put a file into an inbox as a careful feed does (a hidden temporary name, then a rename)."""
    inbox.mkdir(parents=True, exist_ok=True)
    dest = inbox / (name or src.name)
    tmp = inbox / f".{dest.name}.part"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


def slot_file(sample: Path, manifest: dict, t: datetime) -> Path:
    name = f"{manifest['dataset']}_{t:%Y%m%dT%H%M%S}Z.nc"
    return sample / name


class TcpProxy:
    """A real TCP forwarder on loopback (to a database server) that can be cut and restored, to play a
    network outage between the worker and its database."""

    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        import socket
        import threading

        self.host, self.target = host, target_port
        probe = socket.socket()
        probe.bind((host, 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._threading = threading
        self._socket = socket
        self._conns: list = []
        self._listener = None
        self._stop = threading.Event()

    def up(self) -> None:
        s = self._socket.socket()
        s.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.settimeout(0.2)
        self._listener = s
        self._stop.clear()
        self._threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            try:
                server = self._socket.create_connection((self.host, self.target))
            except OSError:
                client.close()
                continue
            self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for c in self._conns:
            try:
                c.shutdown(self._socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self._conns.clear()
