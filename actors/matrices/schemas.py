"""The column schemas of design §6.

Tactical (60 x 7, 5-minute bars): every feature is already bounded or scaled by ATR,
so none is z-scored. Strategic (48 x 13, 30-minute bars): the unbounded columns are
z-scored over a rolling window; flags, signals and strengths stay as they are.

Each schema is an IntEnum whose member values are the column indices, so producers write
a row by column name (`row[TacticalColumn.MOMENTUM_5] = ...`) and a consumer reads one the
same way; the `*_COLUMNS` name lists (lower-case member names) are derived from them.
"""

from enum import IntEnum


class TacticalColumn(IntEnum):
    """Columns of the tactical matrix."""

    FVG_BULLISH_ACTIVE = 0
    FVG_BEARISH_ACTIVE = 1
    FVG_NEAREST_LEVEL = 2  # (level - close) / ATR
    FVG_AGE = 3  # bars / 60
    FVG_MITIGATION_SIGNAL = 4
    MOMENTUM_5 = 5  # tanh(momentum_5 / 5)
    VOLUME_RATIO = 6  # tanh(ln(1 + max(0, ratio - 1)))


class StrategicColumn(IntEnum):
    """Columns of the strategic matrix."""

    MLMI_VALUE = 0
    MLMI_SIGNAL = 1
    NWRQK_VALUE = 2
    NWRQK_SLOPE = 3
    LVN_DISTANCE = 4
    LVN_STRENGTH = 5
    FVG_BULLISH = 6
    FVG_BEARISH = 7
    MMD_SCORE = 8
    MOMENTUM_20 = 9
    MOMENTUM_50 = 10
    VOLATILITY_30 = 11
    VOLUME_PROFILE_SKEW = 12


TACTICAL_ROWS = 60
TACTICAL_COLUMNS = [column.name.lower() for column in TacticalColumn]

STRATEGIC_ROWS = 48
STRATEGIC_COLUMNS = [column.name.lower() for column in StrategicColumn]
STRATEGIC_ZSCORE = [
    column.name.lower()
    for column in (
        StrategicColumn.MLMI_VALUE,
        StrategicColumn.NWRQK_VALUE,
        StrategicColumn.NWRQK_SLOPE,
        StrategicColumn.LVN_DISTANCE,
        StrategicColumn.MMD_SCORE,
        StrategicColumn.MOMENTUM_20,
        StrategicColumn.MOMENTUM_50,
        StrategicColumn.VOLATILITY_30,
        StrategicColumn.VOLUME_PROFILE_SKEW,
    )
]
