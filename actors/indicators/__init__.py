"""Per-bar indicators in numba, updated incrementally as bars close.

`classic`: ATR, RSI, MACD, Bollinger bands, momentum, realized volatility, volume ratio,
volume-profile skew, and `ClassicIndicators`, which updates them all with one call per bar.
"""

# numba types an ndarray argument with a check against numpy.ma.MaskedArray, and numpy
# imports numpy.ma lazily: without this the first bar close of a run would pay that
# import (~6 ms) on the order path instead of the actor's start.
import numpy.ma  # noqa: F401
