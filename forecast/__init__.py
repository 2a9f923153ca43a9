"""Forecast service: catalogs, the versioned observation store, ingestion and (later) models and hindcasts."""

__version__ = "0.1.0"
