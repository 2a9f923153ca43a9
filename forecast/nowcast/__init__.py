"""Nowcasting: the baselines (one registry, ``get_method``) and the Forecaster with its fallback chain."""

from forecast.nowcast.baselines import available_methods, get_method

__all__ = ["available_methods", "get_method"]
