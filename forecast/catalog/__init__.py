"""Dataset catalogs (``catalogs/*.yaml``): the typed, strictly validated description of each dataset."""

from forecast.catalog.loading import (
    catalog_files,
    get_catalog,
    json_schema,
    load_catalog,
    load_catalogs,
    parse_catalog,
)
from forecast.catalog.models import (
    Catalog,
    Grid,
    TimeAxis,
    Variable,
    exceedance_name,
    threshold_label,
    units_registry,
)

__all__ = ["Catalog", "Grid", "TimeAxis", "Variable", "catalog_files", "exceedance_name", "threshold_label", "get_catalog", "json_schema", "load_catalog",
           "load_catalogs", "parse_catalog", "units_registry"]
