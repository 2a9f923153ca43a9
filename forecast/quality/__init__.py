"""QC over the observation store: the ``qc`` checks run incrementally over new and revised slots, flags
written beside the values, suspects queued for review, review decisions written back as flags."""

from forecast.quality.decisions import ReviewDecision, apply_pending_decisions, write_decisions
from forecast.quality.run import QCReport, qc_config, run_qc

__all__ = ["QCReport", "ReviewDecision", "apply_pending_decisions", "qc_config", "run_qc", "write_decisions"]
