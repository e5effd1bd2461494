"""Matrix assemblers: rolling rows in time order, rolling z-scores, NaN sanitising."""

import numpy as np
import pytest

from actors.matrices import (
    STRATEGIC_COLUMNS,
    STRATEGIC_ROWS,
    STRATEGIC_ZSCORE,
    TACTICAL_COLUMNS,
    TACTICAL_ROWS,
    MatrixAssembler,
    StrategicColumn,
    TacticalColumn,
)


def test_rows_come_out_oldest_first_and_zero_padded_until_full():
    assembler = MatrixAssembler(4, ["a", "b"])
    for i in range(3):
        assembler.push(np.array([i, -i]))
    assert not assembler.ready
    np.testing.assert_array_equal(assembler.matrix(), [[0, 0], [0, 0], [1, -1], [2, -2]])
    for i in range(3, 10):
        assembler.push(np.array([i, -i]))
    assert assembler.ready
    np.testing.assert_array_equal(assembler.matrix()[:, 0], [6, 7, 8, 9])
    assert assembler.matrix().dtype == np.float32


def test_rolling_zscore_equals_a_numpy_reference():
    rng = np.random.default_rng(5)
    values = np.cumsum(rng.normal(size=(500, 2)), axis=0) * 10 + 100
    window = 30
    assembler = MatrixAssembler(48, ["x", "flag"], zscore=["x"], zscore_window=window)
    expected = []
    for t in range(len(values)):
        assembler.push(values[t])
        past = values[max(0, t - window + 1) : t + 1, 0]
        z = (values[t, 0] - past.mean()) / past.std() if len(past) >= 2 else 0.0
        expected.append(z)
    got = assembler.matrix()
    np.testing.assert_allclose(
        got[:, 0], np.array(expected[-48:], dtype=np.float32), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_array_equal(got[:, 1], values[-48:, 1].astype(np.float32))


def test_nan_and_inf_become_zero_and_are_counted():
    assembler = MatrixAssembler(3, ["a", "b"], zscore=["b"], zscore_window=5)
    assembler.push(np.array([1.0, 1.0]))
    assembler.push(np.array([np.nan, np.inf]))
    assembler.push(np.array([2.0, 3.0]))
    matrix = assembler.matrix()
    assert np.isfinite(matrix).all()
    assert matrix[1].tolist() == [0.0, 0.0]
    assert assembler.sanitised.tolist() == [1, 1]


def test_schemas_match_the_design():
    assert TACTICAL_COLUMNS == [
        "fvg_bullish_active",
        "fvg_bearish_active",
        "fvg_nearest_level",
        "fvg_age",
        "fvg_mitigation_signal",
        "momentum_5",
        "volume_ratio",
    ]
    assert STRATEGIC_COLUMNS == [
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
    assert (TACTICAL_ROWS, STRATEGIC_ROWS) == (60, 48)
    assert set(STRATEGIC_ZSCORE) <= set(STRATEGIC_COLUMNS)
    unscaled = set(STRATEGIC_COLUMNS) - set(STRATEGIC_ZSCORE)
    assert unscaled == {"mlmi_signal", "lvn_strength", "fvg_bullish", "fvg_bearish"}


def test_a_column_is_addressed_by_name():
    assert TACTICAL_COLUMNS[TacticalColumn.MOMENTUM_5] == "momentum_5"
    assert STRATEGIC_COLUMNS[StrategicColumn.MMD_SCORE] == "mmd_score"
    assert [int(c) for c in StrategicColumn] == list(range(len(STRATEGIC_COLUMNS)))
    assert [int(c) for c in TacticalColumn] == list(range(len(TACTICAL_COLUMNS)))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="expected 2 features"):
        MatrixAssembler(2, ["a", "b"]).push(np.array([1.0]))
    with pytest.raises(ValueError, match="not among the columns"):
        MatrixAssembler(2, ["a"], zscore=["b"])
