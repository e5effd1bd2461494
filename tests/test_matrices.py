"""Matrix assemblers: rolling rows in time order, rolling z-scores, NaN sanitising."""

import numpy as np
import pytest

from actors.matrices import (
    STRATEGIC_COLUMNS,
    STRATEGIC_ZSCORE,
    TACTICAL_COLUMNS,
    MatrixAssembler,
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
    assert len(TACTICAL_COLUMNS) == 7 and len(STRATEGIC_COLUMNS) == 13
    assert set(STRATEGIC_ZSCORE) <= set(STRATEGIC_COLUMNS)
    assert STRATEGIC_COLUMNS[8] == "mmd_score" and STRATEGIC_COLUMNS[12] == "volume_profile_skew"


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="expected 2 features"):
        MatrixAssembler(2, ["a", "b"]).push(np.array([1.0]))
    with pytest.raises(ValueError, match="not among the columns"):
        MatrixAssembler(2, ["a"], zscore=["b"])
