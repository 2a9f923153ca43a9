"""What every command shares: the consoles (stdout for results, stderr for progress and errors), the
``--json`` option, running a command body with errors mapped to one sentence and an exit code (0
success, 2 bad input, 1 internal failure), option parsers for times and durations, progress bars."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from typing import Any, Callable

import typer
from rich.console import Console

from forecast.errors import BadInputError, CatalogError, ForecastError, StoreBusyError
from forecast.settings import Settings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("forecast")

JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")


class Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def load_settings() -> Settings:
    return Settings()


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()


def run_command(as_json: bool, body: Callable[[], tuple[Any, int]]) -> None:
    """Run a command body returning (json document, exit code); map errors to one sentence + code."""
    try:
        doc, code = body()
    except CatalogError as e:
        fail(as_json, 2, e.problems[0] if len(e.problems) == 1 else str(e), problems=e.problems)
    except BadInputError as e:
        hint = f" (option --{e.param.replace('_', '-')})" if e.param else ""
        fail(as_json, 2, f"{e}{hint}")
    except StoreBusyError as e:  # a busy store: the user retries later
        fail(as_json, 2, str(e))
    except ForecastError as e:
        fail(as_json, 1, str(e))
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail(as_json, 1, "interrupted")
    except Exception as e:  # noqa: BLE001 - last line of defence: one sentence, not a traceback
        if os.environ.get("FORECAST_DEBUG"):
            raise
        log.debug("internal failure", exc_info=True)
        fail(as_json, 1, f"internal failure: {type(e).__name__}: {e} (set FORECAST_DEBUG=1 for the traceback)")
    else:
        if as_json:
            emit_json(doc)
        raise typer.Exit(code)


def fail(as_json: bool, code: int, message: str, **extra: Any) -> None:
    if as_json:
        emit_json({"error": message, "exit_code": code, **extra})
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def time_option(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    from forecast.timeutil import parse_time

    try:
        return parse_time(value)
    except ValueError as e:
        raise BadInputError(f"{what}: {e}") from None


def duration_option(value: str | None, what: str):
    """A duration such as 2min, 90s, 1h (pandas spelling) as a timedelta, or a one-sentence error."""
    if value is None:
        return None
    from forecast.timeutil import parse_duration

    try:
        return parse_duration(value)
    except ValueError as e:
        raise BadInputError(f"{what}: {e}") from None


def progress(description: str, enabled: bool):
    """A rich progress bar on stderr (never on stdout, which --json keeps clean)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if not enabled or not err.is_terminal:
        class _Null:
            def __enter__(self):
                return lambda done, total: None

            def __exit__(self, *a):
                return False

        return _Null()

    class _Bar:
        def __enter__(self):
            self.p = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              console=err, transient=True)
            self.p.__enter__()
            self.task = self.p.add_task(description, total=None)
            return lambda done, total: self.p.update(self.task, completed=done, total=total)

        def __exit__(self, *a):
            return self.p.__exit__(*a)

    return _Bar()
