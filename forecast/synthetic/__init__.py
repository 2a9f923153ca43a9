"""Realistic synthetic observation feeds with planted faults (``forecast sample``)."""

from forecast.synthetic.generate import FAULTS, GENERATOR, generate_sample

__all__ = ["FAULTS", "GENERATOR", "generate_sample"]
