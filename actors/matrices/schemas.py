"""The column schemas of design §6.

Tactical (60 x 7, 5-minute bars): every feature is already bounded or scaled by ATR,
so none is z-scored. Strategic (48 x 13, 30-minute bars): the unbounded columns are
z-scored over a rolling window; flags, signals and strengths stay as they are.
"""

TACTICAL_ROWS = 60
TACTICAL_COLUMNS = [
    "fvg_bullish_active",
    "fvg_bearish_active",
    "fvg_nearest_level",  # (level - close) / ATR
    "fvg_age",  # bars / 60
    "fvg_mitigation_signal",
    "momentum_5",  # tanh(momentum_5 / 5)
    "volume_ratio",  # tanh(ln(1 + max(0, ratio - 1)))
]

STRATEGIC_ROWS = 48
STRATEGIC_COLUMNS = [
    "mlmi_value",
    "mlmi_signal",
    "nwrqk_value",
    "nwrqk_slope",
    "lvn_distance",
    "lvn_strength",
    "fvg_bullish",
    "fvg_bearish",
    "mmd_score",
    "momentum_20",
    "momentum_50",
    "volatility_30",
    "volume_profile_skew",
]
STRATEGIC_ZSCORE = [
    "mlmi_value",
    "nwrqk_value",
    "nwrqk_slope",
    "lvn_distance",
    "mmd_score",
    "momentum_20",
    "momentum_50",
    "volatility_30",
    "volume_profile_skew",
]
