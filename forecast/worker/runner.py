"""Running the learned model in a process of its own, so that a model that misses its deadline is stopped
for real: the process is killed and the fallback answers. (A thread cannot be killed: a long-running
worker would pile up abandoned model threads.)

The process is started once and keeps the models it loaded (by checkpoint sha256), so a cycle pays
neither torch's import nor the checkpoint load; after a kill the next forecast starts a fresh one.
Asked for thresholds, a probabilistic model's probabilities follow its forecast as a second answer under
the same deadline: when they come too late the process is killed, and the forecast still stands.

Large answers do not go through the pipe: an array of ``FORECAST_MODEL_BULK_BYTES`` (default 8 MiB) or more
is written by the child to a file in shared memory (``/dev/shm``, else the temporary folder) and read and
removed by the parent; the pipe carries its name, shape and coordinates. At 1000 x 1000 the probabilities
of 10 thresholds at 12 leads are 480 MB: 2.2 s through the pipe (pickled, sent, unpickled), a fraction
of that through shared memory. Files a killed child left behind are removed at the kill and at the start.
"""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from contextlib import suppress
from itertools import count
from typing import Any

log = logging.getLogger(__name__)

_BULK_PREFIX = "forecast-model-"
_bulk_serial = count()


def _bulk_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _bulk_files(parent_pid: int | None = None) -> list[str]:
    """The answer files in shared memory of the worker ``parent_pid`` (of every worker: None)."""
    return glob.glob(os.path.join(_bulk_dir(), f"{_BULK_PREFIX}{'' if parent_pid is None else f'{parent_pid}-'}*"))


def _pack(answer: Any) -> Any:  # pragma: no cover - runs in the child (covered through ModelProcess)
    """The child's answer as it goes through the pipe: a DataArray of ``FORECAST_MODEL_BULK_BYTES`` or more as
    ("bulk", file, shape, dtype, dims, coords, attrs, name) with its values in a file in shared memory; the
    DataArray itself when smaller, or when the file cannot be written (a full /dev/shm)."""
    import numpy as np
    import xarray as xr

    if not isinstance(answer, xr.DataArray):
        return answer
    if answer.nbytes < int(os.environ.get("FORECAST_MODEL_BULK_BYTES", 8 << 20)):
        return answer
    values = np.ascontiguousarray(answer.values)
    path = os.path.join(_bulk_dir(), f"{_BULK_PREFIX}{os.getppid()}-{os.getpid()}-{next(_bulk_serial)}")
    try:
        values.tofile(path)
    except OSError:
        with suppress(OSError):
            os.unlink(path)
        return answer
    coords = {k: c.variable for k, c in answer.coords.items()}
    return ("bulk", path, values.shape, values.dtype.str, answer.dims, coords, dict(answer.attrs), answer.name)


def _unpack(answer: Any) -> Any:
    """The parent's side of `_pack`: the DataArray, its values read from the file, which is removed."""
    if not (isinstance(answer, tuple) and answer and answer[0] == "bulk"):
        return answer
    import numpy as np
    import xarray as xr

    _, path, shape, dtype, dims, coords, attrs, name = answer
    try:
        values = np.fromfile(path, dtype=np.dtype(dtype), count=int(np.prod(shape))).reshape(shape)
    finally:
        with suppress(OSError):
            os.unlink(path)
    return xr.DataArray(values, dims=dims, coords=coords, attrs=attrs, name=name)


def _remove_bulk_files(alive_too: bool = False) -> None:
    """Remove the files of answers never read: this process's (``alive_too``), and those of workers that
    are gone."""
    for path in _bulk_files():
        try:
            pid = int(os.path.basename(path)[len(_BULK_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if (alive_too if pid == os.getpid() else not _pid_alive(pid)):
            with suppress(OSError):
                os.unlink(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    return True


__all__ = ["ModelProcess"]


def _serve(conn, loader=None, threads: int = 0) -> None:  # pragma: no cover - runs in the child (see ModelProcess)
    """The child: load models on request (``loader(path, version=, sha256=)``, by default
    `LearnedNowcaster.from_checkpoint`), forecast, answer; one request at a time, with ``threads`` torch
    threads (0: one per core - the worker waits while its model forecasts)."""
    # before torch is imported here (a spawned process): torch takes its thread count from these (MKL's last:
    # a parent that ran dask's nanny may carry MKL_NUM_THREADS=1); set again once a model is loaded (a stand-in
    # loader unpickled with the parent's settings may have imported torch already)
    n = int(threads) or (os.cpu_count() or 1)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    loaded: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        kind = msg[0]
        try:
            if kind == "stop":
                return
            if kind == "warm":
                from forecast.model import learned  # noqa: F401 - importing torch is what takes seconds

                conn.send(("ok", None))
                continue
            _, path, version, sha, inputs, mask, n_leads, step, thresholds = msg
            model = loaded.get(sha)
            if model is None:
                if loader is None:
                    from forecast.model.learned import LearnedNowcaster

                    loader = LearnedNowcaster.from_checkpoint
                model = loader(path, version=version, sha256=sha)
                torch = sys.modules.get("torch")
                if torch is not None and torch.get_num_threads() != n:
                    torch.set_num_threads(n)
                loaded.clear()  # one model at a time: the production model
                loaded[sha] = model
            if kind == "load":
                conn.send(("ok", None))
                continue
            from forecast.nowcast.probabilities import is_probabilistic

            more = thresholds is not None and is_probabilistic(model)
            # the third item says whether a second answer, the probabilities, follows
            conn.send(("ok", _pack(model.predict(inputs, n_leads=n_leads, step=step, mask=mask)), more))
            if more:
                try:
                    probs = model.predict_probabilities(inputs, n_leads=n_leads, step=step, thresholds=thresholds,
                                                        mask=mask)
                except Exception as e:  # noqa: BLE001 - the forecast stands; the probabilities fall back
                    conn.send(("prob_err", f"{type(e).__name__}: {e}"))
                    continue
                conn.send(("prob", _pack(probs)))
        except Exception as e:  # noqa: BLE001 - the parent turns it into a fallback reason
            conn.send(("err", f"{type(e).__name__}: {e}"))


class ModelProcess:
    """A killable model server; `run` has the signature of `Forecaster`'s model runner.

    The process is started and warmed (torch imported, the last model loaded) in the background, at the
    worker's start and again right after a kill, so that a deadline is spent forecasting, not importing:
    while it is (re)starting, a forecast whose deadline comes first falls back and says so, without
    killing the process that is getting ready.
    """

    def __init__(self, loader=None, *, threads: int = 0):
        #: how the child loads a checkpoint: None is `LearnedNowcaster.from_checkpoint`; another importable
        #: function of (path, version=, sha256=) (it is sent to a spawned process) for stand-ins
        self.loader = loader
        self.threads = threads  # the child's torch threads (0: one per core)
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._warming: threading.Thread | None = None
        self._last: tuple | None = None  # (path, version, sha) of the model to load on a restart
        self.kills = 0

    def _start(self) -> None:
        _remove_bulk_files()  # those of a worker that died with a file unread
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs Icechunk's threads
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.loader, self.threads), name="forecast-model",
                                 daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def _ask(self, msg: tuple, budget: float) -> tuple[str, Any] | None:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send(msg)
        if not self._conn.poll(max(0.0, budget)):
            return None
        try:
            return self._conn.recv()
        except EOFError:
            return ("err", "the model process died")

    def warm_async(self) -> None:
        """Start (if needed) and warm the process in the background; `ready` is set when it can forecast."""
        if self._warming is not None and self._warming.is_alive():
            return

        def go():
            with self._lock:
                answer = self._ask(("warm",), 300.0)
                ok = answer is not None and answer[0] == "ok"
                if ok and self._last is not None:
                    path, version, sha = self._last
                    self._ask(("load", path, version, sha, None, None, 0, None, None), 120.0)
            if ok:
                self._ready.set()
            else:
                log.error("the model process did not start: %s", answer)

        self._warming = threading.Thread(target=go, name="model-warm", daemon=True)
        self._warming.start()

    def warm(self, timeout: float = 300.0) -> bool:
        """Start and warm the process now; True once it can forecast."""
        self.warm_async()
        return self._ready.wait(timeout)

    def run(self, forecaster, inputs, mask, budget: float, *, thresholds=None):
        """The model's forecast within ``budget`` seconds as a `ModelAnswer`: its DataArray, or None and the
        reason after killing the process when it took too long, failing with the model's error, or while the
        process is still getting ready. With ``thresholds``, a probabilistic model's probabilities too, within
        the same budget (when they fail or come late, ``probability_error`` says why)."""
        from forecast.nowcast.probabilities import ModelAnswer

        rec = forecaster.record
        if budget <= 0:
            return ModelAnswer(None, f"model {rec.version} exceeded the deadline of {forecaster.deadline:g} s")
        path = forecaster.verified_checkpoint()  # raises when the file is gone or changed
        self._last = (str(path), rec.version, rec.checkpoint_sha256)
        t0 = time.perf_counter()
        if not self._ready.is_set():
            self.warm_async()
            if not self._ready.wait(budget):
                return ModelAnswer(None, f"model {rec.version} could not answer within the deadline of "
                                         f"{forecaster.deadline:g} s: its process is still starting (torch import, "
                                         "checkpoint load)")
        left = budget - (time.perf_counter() - t0)
        with self._lock:
            answer = self._ask(("predict", str(path), rec.version, rec.checkpoint_sha256, inputs, mask,
                                forecaster.n_leads, forecaster.step, thresholds), left)
            if answer is None:
                self._kill()
                self.warm_async()  # ready again for the next cycle
                return ModelAnswer(None, f"model {rec.version} exceeded the deadline of {forecaster.deadline:g} s "
                                         f"(stopped after {time.perf_counter() - t0:.1f} s)")
            status, payload = answer[0], answer[1]
            if status == "err":
                if "died" in payload:
                    self._kill()
                    self.warm_async()
                return ModelAnswer(None, f"model {rec.version} failed: {payload}")
            try:
                payload = _unpack(payload)
            except OSError as e:
                return ModelAnswer(None, f"model {rec.version}'s answer could not be read: {e}")
            if not (len(answer) > 2 and answer[2]):  # no probabilities asked, or the model has none
                return ModelAnswer(payload)
            second = self._receive(budget - (time.perf_counter() - t0))
            if second is None:  # the probabilities came too late: the forecast stands
                self._kill()
                self.warm_async()
                return ModelAnswer(payload, probability_error=f"model {rec.version}'s probabilities exceeded the "
                                                              f"deadline of {forecaster.deadline:g} s")
            kind, probs = second
            if kind != "prob":
                return ModelAnswer(payload, probability_error=f"model {rec.version}'s probabilities failed: {probs}")
            try:
                return ModelAnswer(payload, probabilities=_unpack(probs))
            except OSError as e:
                return ModelAnswer(payload, probability_error=f"model {rec.version}'s probabilities could not be "
                                                              f"read: {e}")

    def _receive(self, budget: float) -> tuple[str, Any] | None:
        """The next answer of the process within ``budget`` seconds (None: none came)."""
        if self._conn is None or not self._conn.poll(max(0.0, budget)):
            return None
        try:
            return self._conn.recv()
        except EOFError:
            return ("prob_err", "the model process died")

    def _kill(self) -> None:
        self.kills += 1
        self._ready.clear()
        proc, self._proc = self._proc, None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(5)
        _remove_bulk_files(alive_too=True)  # an answer it wrote and nobody will read

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                try:
                    self._conn.send(("stop",))
                    self._proc.join(2)
                except (OSError, BrokenPipeError):
                    pass
            if self._proc is not None and self._proc.is_alive():
                self._proc.kill()
                self._proc.join(2)
            self._proc = None
            self._ready.clear()
            _remove_bulk_files(alive_too=True)
