"""Synergy detection: the order in which MLMI, NWRQK and FVG signals fire."""

from actors.synergy.detector import TYPES, BarSignals, SynergyDetector

__all__ = ["TYPES", "BarSignals", "SynergyDetector"]
