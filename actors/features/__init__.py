"""Bars to model inputs: indicators, matrix rows and synergy signals per bar."""

from actors.features.engine import FeatureEngine, Signals

__all__ = ["FeatureEngine", "Signals"]
