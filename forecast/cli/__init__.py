"""The ``forecast`` command line: `app` (typer) and `main` (the console script); one module per command
group, shared output helpers in `forecast.cli.output`, the wiring in `forecast.cli.app`."""

from forecast.cli.app import app, main

__all__ = ["app", "main"]
