"""The worker: the service running itself. Files land in each dataset's inbox; every cycle ingests them,
runs QC, forecasts the inits that fell due within their deadline (the model in a killable process, the
fallback chain behind it), writes the forecasts and hands them to verification; `forecast worker` runs
cycles until stopped, holding the store's lease, `forecast cycle` runs one, `forecast replay` feeds a
recorded sample into an inbox at N times real time."""

from forecast.worker.cycle import Service, open_service, plan_inits, run_cycle
from forecast.worker.service import Worker, worker_status

__all__ = ["Service", "Worker", "open_service", "plan_inits", "run_cycle", "worker_status"]
