"""Per-bar indicators in numba, updated incrementally as bars close.

`classic`: ATR, RSI, MACD, Bollinger bands, momentum, realized volatility, volume ratio,
volume-profile skew, and `ClassicIndicators`, which updates them all with one call per bar.
"""
