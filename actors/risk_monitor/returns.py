"""The portfolio's return periods: one vector of log returns per bar end, every symbol.

Bars of one timeframe close on the same boundary for every symbol but arrive one symbol
at a time. A period is complete when every symbol's bar of its end has come, or when a
bar of a later end arrives (a symbol without a bar that period did not trade: its price,
hence its return, did not move). A symbol's first bar only sets its reference price.
"""

import math
from collections import deque

import numpy as np


class PeriodReturns:
    def __init__(self, symbols: list[str], lookback: int) -> None:
        self.symbols = list(symbols)
        self._column = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._last_close = np.full(len(self.symbols), math.nan)
        self._open_end = 0
        self._completed_end = -1
        self._open = np.zeros(len(self.symbols))
        self._reported: set[str] = set()
        self._priced = False
        """Whether a symbol of the open period had a price before it (else it has no return)."""
        self.history: deque[np.ndarray] = deque(maxlen=lookback)
        """The completed periods' return vectors, oldest first, at most `lookback`."""

    def on_close(self, symbol: str, end_ns: int, close: float) -> list[np.ndarray]:
        """Take one bar's close; the periods it completed (none, one, or two when it both
        ends a period and, being the last symbol, completes its own), oldest first. The
        first period, which only sets the reference prices, completes none."""
        column = self._column.get(symbol)
        if column is None or not close > 0.0 or end_ns <= self._completed_end:
            return []  # another symbol's, unusable, or of a period already completed
        completed = []
        if self._reported and end_ns > self._open_end:
            completed += self._complete()
        if symbol in self._reported:
            return completed  # a second bar of the symbol for the open period
        self._open_end = end_ns
        previous = self._last_close[column]
        if not math.isnan(previous):
            self._open[column] = math.log(close / previous)
            self._priced = True
        self._last_close[column] = close
        self._reported.add(symbol)
        if len(self._reported) == len(self.symbols):
            completed += self._complete()
        return completed

    def _complete(self) -> list[np.ndarray]:
        returns = self._open.copy()
        priced = self._priced
        self._open[:] = 0.0
        self._reported.clear()
        self._priced = False
        self._completed_end = self._open_end
        if not priced:
            return []
        self.history.append(returns)
        return [returns]

    def matrix(self) -> np.ndarray:
        """The history as (periods, symbols)."""
        if not self.history:
            return np.zeros((0, len(self.symbols)))
        return np.stack(self.history)
