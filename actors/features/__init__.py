"""Bars to model inputs: indicators, matrix rows and synergy signals per bar."""

from actors.features.actor import FeaturesActor, FeaturesParams
from actors.features.engine import Signals, StrategicFeatures, TacticalFeatures

__all__ = [
    "FeaturesActor",
    "FeaturesParams",
    "Signals",
    "StrategicFeatures",
    "TacticalFeatures",
]
