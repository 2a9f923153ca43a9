"""Hindcast verification: the metric accumulators (`Verifier`, `ProbabilisticVerifier`) and the report writer."""

from forecast.evaluation.metrics import (
    CONVENTIONS,
    Verifier,
    categorical_scores,
    fss_counts,
)
from forecast.evaluation.probabilistic import ProbabilisticVerifier
from forecast.evaluation.report import terminal_summary, verdict, write_report

__all__ = [
    "CONVENTIONS",
    "ProbabilisticVerifier",
    "Verifier",
    "categorical_scores",
    "fss_counts",
    "terminal_summary",
    "verdict",
    "write_report",
]
