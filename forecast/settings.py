"""The one settings object (env prefix ``FORECAST_``), read once at the entry points and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings; every path defaults to a place under ``home``."""

    model_config = SettingsConfigDict(env_prefix="FORECAST_", extra="ignore")

    home: Path = Field(Path(".forecast"), description="Holds stores, database, registry and reports.")
    catalogs: Path = Field(Path("catalogs"), description="Folder of dataset catalogs (*.yaml).")
    store: str | None = Field(
        None,
        description="Observation store location: a local path, or s3://bucket/prefix. "
        "Default: HOME/observations.icechunk.",
    )
    quarantine: Path | None = Field(None, description="Where rejected input files go. Default: HOME/quarantine.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the service database (review queue, model registry, API users, "
        "monitoring). Default: sqlite:///HOME/review.db.")
    dask_scheduler: str | None = Field(
        None, description="Address of a dask.distributed scheduler (tcp://host:port); default: local processes."
    )
    workers: int | None = Field(None, ge=1, description="Local worker processes for ingestion (default: CPU count).")
    lock_timeout: float = Field(600.0, ge=0, description="Seconds to wait for another writer of the store.")
    forecast_store: str | None = Field(
        None, description="Forecast store location (Icechunk): a local path or s3://... Default: HOME/forecasts.icechunk."
    )
    models: Path | None = Field(None, description="Model registry folder (checkpoints). Default: HOME/models.")
    # -- promotion gate (forecast/gate.py) --
    gate_min_inits: int = Field(24, ge=1, description="Fewest hindcast init times a promotion report must cover.")
    gate_key_leads_minutes: list[int] = Field(
        default_factory=lambda: [30, 60],
        description="Leads (minutes) at which a candidate must beat its references (production, the baselines; "
        "a catalog's gate.key_leads_minutes overrides) (JSON list).",
    )
    gate_max_fallback_share: float = Field(
        0.1, ge=0, le=1, description="Largest share of hindcast inits at which the candidate may have fallen back."
    )
    # -- the worker (forecast/worker/) --
    worker_poll_s: float = Field(0.5, gt=0, description="Seconds between looks at the inbox when idle.")
    worker_lease_ttl_s: float = Field(
        15.0, gt=0, description="Seconds a worker's lease of the store lasts without a heartbeat; a standby takes "
        "over within this time after the holder dies.")
    worker_model_threads: int = Field(
        0, ge=0, description="torch threads of the worker's model process (0: one per core; the worker itself "
        "waits while its model forecasts).")
    worker_max_rss_growth_mib: float = Field(
        256.0, ge=0, description="The worker restarts itself (between cycles: the lease given back, the same "
        "command executed again in the same process id) when its resident memory has grown by more than this "
        "many MiB past the most it used in its first worker_memory_warm_cycles cycles that did work; 0: never. "
        "A bound on the slow growth of native memory (allocator fragmentation, libraries' caches) over weeks.")
    worker_memory_warm_cycles: int = Field(
        12, ge=1, description="Cycles that did work over which the worker's memory baseline is taken (the most "
        "it used: imports, caches, the cycle's largest fields) before worker_max_rss_growth_mib applies.")
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve the worker's Prometheus metrics on this port (default: off; the "
        "API's /metrics reports the cycle log either way).")
    # -- monitoring and alerts (forecast/monitoring/) --
    alert_webhook: str | None = Field(None, description="URL that receives alerts as an HTTP POST of JSON.")
    smtp_url: str | None = Field(None, description="SMTP server for alert emails: smtp://[user:password@]host[:port]"
                                 "[?starttls=true] or smtps://...")
    alert_email_to: list[str] = Field(default_factory=list, description="Recipients of alert emails (JSON list).")
    alert_email_from: str | None = Field(None, description="Sender of alert emails (default forecast-monitor@host).")
    alert_delivery_attempts: int = Field(4, ge=1, le=20, description="Tries per alert and channel.")
    alert_delivery_backoff_s: float = Field(1.0, ge=0, description="Wait before the 2nd try; doubles each try.")
    alert_delivery_timeout_s: float = Field(5.0, gt=0, description="Seconds one delivery try may take.")
    monitor_background: bool = Field(True, description="The worker verifies and monitors in a background thread "
                                     "(off the cycle's critical path); false: within the cycle.")
    # -- API settings (api/) --
    api_read_requires_token: bool = Field(
        False, description="Forecast, observation and model reads need a token with role reader (or above)."
    )
    api_max_cells: int = Field(40_000, gt=0, description="Most grid cells one area / cube query may cover.")
    api_max_values: int = Field(
        2_000_000, gt=0, description="Most values (cells x times x parameters) one area / cube response may hold."
    )
    api_max_body_bytes: int = Field(65_536, gt=0, description="Largest request body the API accepts, in bytes.")
    api_cache_max_age: int = Field(300, ge=0, description="Cap of the Cache-Control max-age of data responses (s).")
    api_head_check_s: float = Field(
        1.0, ge=0, description="How often (s) the API looks for a new snapshot of the forecast / observation stores."
    )
    api_obs_default_slots: int = Field(
        12, gt=0, description="Observation queries without `datetime` return this many latest slots."
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list; empty: CORS off)."
    )

    @property
    def observation_store(self) -> str:
        return self.store or str(self.home / "observations.icechunk")

    @property
    def db_url(self) -> str:
        """The service database's URL: ``database_url``, or the SQLite file under ``home``."""
        return self.database_url or f"sqlite:///{(self.home / 'review.db').absolute()}"

    @property
    def forecast_store_location(self) -> str:
        return self.forecast_store or str(self.home / "forecasts.icechunk")

    @property
    def models_dir(self) -> Path:
        return self.models or (self.home / "models")

    @property
    def quarantine_dir(self) -> Path:
        return self.quarantine or (self.home / "quarantine")
