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
    database_url: str | None = Field(None, description="SQLAlchemy URL of the review queue database.")
    dask_scheduler: str | None = Field(
        None, description="Address of a dask.distributed scheduler (tcp://host:port); default: local processes."
    )
    workers: int | None = Field(None, ge=1, description="Local worker processes for ingestion (default: CPU count).")
    lock_timeout: float = Field(600.0, ge=0, description="Seconds to wait for another writer of the store.")

    @property
    def observation_store(self) -> str:
        return self.store or str(self.home / "observations.icechunk")

    @property
    def review_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'review.db').absolute()}"

    @property
    def quarantine_dir(self) -> Path:
        return self.quarantine or (self.home / "quarantine")
