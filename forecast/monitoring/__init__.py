"""Monitoring: continuous verification of the production forecasts beside persistence and extrapolation
(staged labels: preliminary, then final when an observation is revised), rolling skill on a short and a
long window with block-bootstrap intervals, a change detector, input drift against the model's training
period, skill by region and regime, and alert rules with hysteresis delivered by webhook and email.

Modules: ``config`` (rules and settings), ``verification`` (one init, the hindcast's code path),
``records`` (exact sums and windows of them), ``skill`` (windows, strata, staged labels), ``detector``
(CUSUM / Page-Hinkley), ``drift`` (features, reference statistics, PSI / Wasserstein), ``strata`` (regions,
regimes), ``alerts`` (rules, hysteresis, deduplication), ``delivery`` (webhook, SMTP), ``store`` (the
tables), ``monitor`` (one pass), ``hook`` (the worker's cycle hook), ``report`` (what the CLI, API and
console show), ``metrics`` (Prometheus).
"""

from forecast.monitoring.hook import MonitorHook, monitor_hook

__all__ = ["MonitorHook", "monitor_hook"]
