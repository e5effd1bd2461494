"""Bars to model inputs: indicators, matrix rows and synergy signals per bar."""

from actors.features.actor import FeaturesActor, FeaturesParams
from actors.features.engine import FeatureEngine, Signals

__all__ = ["FeatureEngine", "FeaturesActor", "FeaturesParams", "Signals"]
