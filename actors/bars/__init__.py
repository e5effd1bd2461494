"""Bars: 5- and 30-minute OHLCV bars with ATR and momentum, built tick by tick."""

from actors.bars.actor import BarsActor, BarsParams
from actors.bars.builder import ATR_PERIOD, MOMENTUM_BARS, BarBuilder

__all__ = ["ATR_PERIOD", "MOMENTUM_BARS", "BarBuilder", "BarsActor", "BarsParams"]
