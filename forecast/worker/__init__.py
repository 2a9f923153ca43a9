"""The worker: the service running itself. Files land in each dataset's inbox; every cycle ingests them,
runs QC, forecasts the inits that fell due within their deadline (the model in a killable process, the
fallback chain behind it), writes the forecasts and hands them to verification.

- `forecast.worker.cycle`: one cycle (`open_service`, `run_cycle`, `plan_inits`), `forecast cycle`;
- `forecast.worker.service`: `Worker`, the resident loop with the store's lease, `forecast worker`;
- `forecast.worker.replay`: a recorded sample fed into an inbox at N times real time, `forecast replay`;
- `forecast.worker.status`: what operators see (`forecast worker status`, the API's /ready and /metrics);
- `inbox`, `runner` (the killable model process), `state` (cycle log, lease), `db` (outage tolerance),
  `metrics` (the worker's Prometheus metrics).

Submodules are imported where used: the API imports `status` only, never the model's process.
"""
