"""Ingestion: NetCDF files -> the observation store, one atomic commit per batch."""

from forecast.ingest.batch import IngestReport, ingest

__all__ = ["IngestReport", "ingest"]
