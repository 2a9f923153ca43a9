"""Running pysteps quietly from many threads at once: its prints go to the debug log of the thread that
made them (a thread-aware stdout proxy, installed once), and its dask calls stay synchronous."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)


class ThreadQuietStdout(io.TextIOBase):
    """Stands in for ``sys.stdout``: writes from a thread inside `quiet_pysteps` go to that thread's
    buffer, every other write to the real stream. Installed once; unlike ``redirect_stdout`` it is safe
    when several threads (a threaded hindcast) run pysteps at once and never leaves stdout swapped."""

    def __init__(self, real):
        self.real = real
        self.local = threading.local()

    def _target(self):
        buf = getattr(self.local, "buf", None)
        return buf if buf is not None else self.real

    def write(self, text):
        return self._target().write(text)

    def flush(self):
        self._target().flush()

    def __getattr__(self, name):  # encoding, isatty, fileno ... of the real stream
        return getattr(self.real, name)


_stdout_lock = threading.Lock()


def thread_quiet_stdout() -> ThreadQuietStdout:
    with _stdout_lock:
        if not isinstance(sys.stdout, ThreadQuietStdout):
            sys.stdout = ThreadQuietStdout(sys.stdout)
        return sys.stdout


@contextlib.contextmanager
def quiet_pysteps() -> Iterator[None]:
    """Run pysteps without its prints and with dask's synchronous scheduler.

    pysteps prints its configuration path on import and a banner per S-PROG run; the text goes to the
    debug log instead, for this thread only (other threads keep printing normally). S-PROG hands two
    small extrapolations to ``dask.compute``; synchronous keeps them off any distributed client that
    happens to be the default.
    """
    import dask

    with quiet_stdout(), dask.config.set(scheduler="synchronous"):
        yield


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """This thread's prints (pysteps' configuration path on import, its banners) to the debug log; other
    threads keep printing normally."""
    proxy = thread_quiet_stdout()
    buf = io.StringIO()
    outer = getattr(proxy.local, "buf", None)
    proxy.local.buf = buf
    try:
        yield
    finally:
        proxy.local.buf = outer
        text = buf.getvalue().strip()
        if text:
            logger.debug("pysteps said: %s", text)
