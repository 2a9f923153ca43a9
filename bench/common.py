"""Shared helpers for the benchmarks: medians of repeated timings, peak memory of a child process tree,
directory sizes and a plain-text table.

The benchmark machines are shared and noisy: report medians over repeats, and compare figures measured
in the same run only.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
MB = 1e6  # figures are in decimal megabytes (MB/s as disk and network tools print them)


# -- timing -----------------------------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else float("nan")


def spread(values: Sequence[float]) -> str:
    """'min..max' of repeated figures, to show the noise beside a median."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return ""
    return f"{min(vals):.3g}..{max(vals):.3g}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def repeat(fn: Callable[[], Any], n: int) -> tuple[list[float], list[Any]]:
    """Wall seconds of ``n`` calls of ``fn`` (and their results)."""
    secs, outs = [], []
    for _ in range(n):
        s, o = timed(fn)
        secs.append(s)
        outs.append(o)
    return secs, outs


# -- child processes with peak memory -------------------------------------------------------------------

@dataclass
class ChildRun:
    """One child process: exit status, wall seconds, output and the peak memory of its process tree."""

    argv: list[str]
    returncode: int
    wall_s: float
    stdout: str
    stderr: str
    peak_tree_rss: int = 0  # bytes: the largest sum of RSS over the child and all its descendants
    peak_proc_rss: int = 0  # bytes: the largest RSS of any single process of the tree
    max_procs: int = 0  # most processes seen at once in the tree
    samples: int = 0
    timed_out: bool = False
    cpu_s: float | None = None  # user + system CPU seconds of the child and the descendants it reaped


    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def json(self) -> dict[str, Any]:
        """The child's result: its whole stdout as JSON, or else the last line that parses as a JSON object."""
        try:
            doc = json.loads(self.stdout)
            if isinstance(doc, dict):
                return doc
        except ValueError:
            pass
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        raise ValueError(f"no JSON result in the child's output (rc {self.returncode}): "
                         f"{self.stderr.strip()[-800:] or self.stdout.strip()[-800:]}")

    def describe_failure(self) -> str:
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f} s"
        if self.returncode < 0:
            import signal

            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return f"killed by {name}"
        if self.returncode >= 128 and self.returncode - 128 in (6, 9, 11):
            return f"exit {self.returncode} (signal {self.returncode - 128})"
        tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-1:] or [""]
        return f"exit {self.returncode}: {tail[0][:200]}"


def _tree_rss(proc) -> tuple[int, int, int]:
    import psutil

    total = biggest = n = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        biggest = max(biggest, rss)
        n += 1
    return total, biggest, n


def run_child(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
              timeout: float | None = None, interval: float = 0.05) -> ChildRun:
    """Run ``argv`` to completion, sampling the RSS of its whole process tree (worker processes
    included) every ``interval`` seconds. RSS sums count pages shared between processes (libraries)
    once per process, so the figure is an upper bound of the memory the tree needs."""
    import resource

    import psutil

    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    popen = subprocess.Popen(list(argv), env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    ps = psutil.Process(popen.pid)
    peak = {"tree": 0, "proc": 0, "n": 0, "samples": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            tree, biggest, n = _tree_rss(ps)
            peak["tree"] = max(peak["tree"], tree)
            peak["proc"] = max(peak["proc"], biggest)
            peak["n"] = max(peak["n"], n)
            peak["samples"] += 1
            stop.wait(interval)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    timed_out = False
    try:
        out, err = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_tree(popen)
        out, err = popen.communicate()
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - t0
    # CPU time barely depends on what else the machine runs, unlike wall time: children are run one at a
    # time, so the growth of this process's reaped-children counters is this child's whole tree
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return ChildRun(argv=list(argv), returncode=popen.returncode, wall_s=wall, stdout=out, stderr=err,
                    peak_tree_rss=peak["tree"], peak_proc_rss=peak["proc"], max_procs=peak["n"],
                    samples=peak["samples"], timed_out=timed_out, cpu_s=cpu)


def _kill_tree(popen: subprocess.Popen) -> None:
    """End the child and its descendants: the child was started in its own session (process group)."""
    import signal

    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        popen.kill()


def python_child(code_or_args: Sequence[str]) -> list[str]:
    """argv running this interpreter (the project's venv when the benchmark runs from it)."""
    return [sys.executable, *code_or_args]


# -- files -----------------------------------------------------------------------------------------------

def dir_size(path: str | Path) -> int:
    """Bytes of all regular files under ``path`` (apparent sizes)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def files_size(paths: Sequence[str | Path]) -> int:
    return sum(os.path.getsize(p) for p in paths)


@contextmanager
def scratch_dir(prefix: str = "bench-", keep: bool = False, base: str | None = None) -> Iterator[Path]:
    """A temporary folder (under /tmp unless ``base``), removed afterwards unless ``keep``."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield d
    finally:
        if keep:
            print(f"(kept {d})", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


def free_bytes(path: str | Path) -> int:
    return shutil.disk_usage(path).free


# -- printing --------------------------------------------------------------------------------------------

@dataclass
class Table:
    """A plain-text table: ``t = Table(["what", "MB/s"]); t.add(["read", 151.2]); print(t)``."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str | None = None

    def add(self, row: Sequence[Any]) -> None:
        self.rows.append([fmt(v) for v in row])

    def __str__(self) -> str:
        cols = len(self.columns)
        rows = [r + [""] * (cols - len(r)) for r in self.rows]
        width = [max(len(str(x)) for x in [self.columns[i], *(r[i] for r in rows)]) for i in range(cols)]

        def line(cells: Sequence[str]) -> str:
            out = []
            for i, c in enumerate(cells):
                # first column left-aligned (labels), numbers right-aligned
                out.append(c.ljust(width[i]) if i == 0 else c.rjust(width[i]))
            return "  ".join(out).rstrip()

        parts = []
        if self.title:
            parts.append(self.title)
        parts.append(line(self.columns))
        parts.append("  ".join("-" * w for w in width))
        parts.extend(line(r) for r in rows)
        return "\n".join(parts)


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    return str(v)


def mib(b: float | None) -> float | None:
    return None if b is None else b / 2**20


__all__ = ["REPO", "MB", "median", "spread", "timed", "repeat", "ChildRun", "run_child", "python_child",
           "dir_size", "files_size", "scratch_dir", "free_bytes", "Table", "fmt", "mib"]
