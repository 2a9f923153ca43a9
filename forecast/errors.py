"""The forecast package's exception tree; only the CLI and the API turn these into exit codes / HTTP."""


class ForecastError(Exception):
    """Base of every error the forecast package raises on purpose."""


class BadInputError(ForecastError, ValueError):
    """The input given by the user is at fault (exit code 2 on the CLI, 4xx in the API).

    ``param`` names the argument at fault (e.g. ``"variable"``, ``"start"``), so that each surface can
    point at its own spelling of it (the CLI adds ``--variable``); the message itself is worded for any
    caller.
    """

    def __init__(self, *args, param: str | None = None):
        super().__init__(*args)
        self.param = param


class CatalogError(BadInputError):
    """A catalog file is invalid; ``problems`` lists every problem, each naming file and path."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = self.problems[0] if len(self.problems) == 1 else f"{len(self.problems)} catalog problems"
        super().__init__(head if len(self.problems) == 1 else head + ":\n  " + "\n  ".join(self.problems))


class UnknownDatasetError(BadInputError, KeyError):
    """A dataset id that no catalog defines."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class StoreError(ForecastError):
    """The observation store cannot do what was asked."""


class StoreBusyError(StoreError):
    """Another writer holds the store's lock for longer than we are willing to wait."""


class NotProbabilisticError(BadInputError):
    """Probabilities (or a product made from them) were asked of a model trained without a probabilistic head."""
