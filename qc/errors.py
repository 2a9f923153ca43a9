"""The qc package's exception tree: a bad parameter or config is an exception, a bad observation a flag."""

from __future__ import annotations


class QCError(ValueError):
    """Base of every error the qc package raises on purpose (also a ``ValueError``)."""


class QCConfigError(QCError):
    """A QC configuration is invalid; ``problems`` lists every problem, each naming its path.

    Each problem reads ``<path>: <what was expected> (got <what came>)``, e.g.
    ``qc.variables.precipitation_rate[2].fail: must be greater than suspect (40.0) (got 10.0)``.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            msg = self.problems[0]
        else:
            msg = f"{len(self.problems)} QC config problems:\n  " + "\n  ".join(self.problems)
        super().__init__(msg)
