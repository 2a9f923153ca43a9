"""Forecast models: the nowcasting baselines (`forecast.model.baselines`) and, later, the Lightning model.

Kept empty on purpose: torch-heavy modules of this package are imported lazily by their users, so that
``import forecast.model`` (and ``forecast.model.baselines``) never pulls in torch or pysteps.
"""
