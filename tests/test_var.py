"""VaR and ES estimators (actors/risk_monitor/var.py) against known answers and against
independent implementations: scipy's normal distribution, pandas' exponential weighting."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from actors.risk_monitor.var import (
    MIN_OBSERVATIONS,
    EwmaCovariance,
    cholesky,
    empirical,
    filtered_historical,
    historical,
    monte_carlo,
    parametric,
)

CORRELATED = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.3], [0.5, 0.3, 1.0]])
SIGMAS = np.array([0.01, 0.015, 0.02])
COVARIANCE = CORRELATED * np.outer(SIGMAS, SIGMAS)
EXPOSURES = np.array([200_000.0, -150_000.0, 100_000.0])


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_parametric_var_of_a_normal_pnl_is_z_sigma_and_its_es_the_normal_tail_mean(confidence):
    sigma = 0.02 * 1_000_000  # a 2 % daily volatility on $1M
    got = parametric(np.array([1_000_000.0]), np.array([[0.02**2]]), confidence, 250)
    z = stats.norm.ppf(confidence)
    assert got.var == pytest.approx(z * sigma, rel=1e-9)
    if confidence == 0.95:
        assert got.var == pytest.approx(1.645 * sigma, rel=1e-3)  # the documents' figure
    tail_mean = stats.norm.expect(lambda x: x, loc=0, scale=sigma, lb=z * sigma) / (1 - confidence)
    assert got.es == pytest.approx(tail_mean, rel=1e-6)


def test_parametric_var_uses_the_portfolio_covariance_not_a_sum_of_positions():
    got = parametric(EXPOSURES, COVARIANCE, 0.99, 250)
    sigma = math.sqrt(EXPOSURES @ COVARIANCE @ EXPOSURES)
    assert got.var == pytest.approx(stats.norm.ppf(0.99) * sigma, rel=1e-9)
    undiversified = stats.norm.ppf(0.99) * np.sum(np.abs(EXPOSURES) * SIGMAS)
    assert got.var < undiversified


def test_historical_var_and_es_on_a_hand_made_sample():
    losses = np.arange(1.0, 101.0)  # one loss of each size from 1 to 100
    returns = (-losses / 1_000.0)[:, None]
    got = historical(np.array([1_000.0]), returns, 0.95)
    assert (got.var, got.es) == pytest.approx((95.0, 98.0))  # the worst 5 average 98
    got = historical(np.array([1_000.0]), returns, 0.99)
    assert (got.var, got.es) == pytest.approx((99.0, 100.0))


def test_too_few_observations_give_unknown_never_zero():
    few = np.full((MIN_OBSERVATIONS - 1, 1), -0.01)
    for estimate in (
        historical(np.array([1.0]), few, 0.99),
        filtered_historical(np.array([1.0]), few, 0.99),
        parametric(np.array([1.0]), np.eye(1), 0.99, MIN_OBSERVATIONS - 1),
        empirical(np.ones(3), 0.95),
    ):
        assert math.isnan(estimate.var) and math.isnan(estimate.es)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_monte_carlo_agrees_with_parametric_on_normal_returns(confidence):
    rng = np.random.default_rng(7)
    got = monte_carlo(EXPOSURES, COVARIANCE, confidence, 250, rng, paths=400_000)
    want = parametric(EXPOSURES, COVARIANCE, confidence, 250)
    assert got.var == pytest.approx(want.var, rel=0.02)
    assert got.es == pytest.approx(want.es, rel=0.02)


def test_student_t_draws_keep_the_covariance_and_fatten_the_far_tail():
    rng = np.random.default_rng(3)
    normal = monte_carlo(EXPOSURES, COVARIANCE, 0.999, 250, rng, paths=400_000)
    fat = monte_carlo(EXPOSURES, COVARIANCE, 0.999, 250, rng, paths=400_000, student_df=4.0)
    assert fat.var > 1.1 * normal.var and fat.es > 1.2 * normal.es
    # The same covariance: the P&L's standard deviation is the same either way.
    draws = rng.standard_normal((400_000, 3)) @ cholesky(COVARIANCE).T
    draws *= np.sqrt(2.0 / rng.chisquare(4.0, (400_000, 1)))
    want = math.sqrt(EXPOSURES @ COVARIANCE @ EXPOSURES)
    assert np.std(draws @ EXPOSURES) == pytest.approx(want, rel=0.02)


def test_es_is_never_below_var_whatever_the_method():
    rng = np.random.default_rng(11)
    returns = rng.standard_t(3, (500, 3)) * SIGMAS
    for confidence in (0.95, 0.99):
        for got in (
            historical(EXPOSURES, returns, confidence),
            filtered_historical(EXPOSURES, returns, confidence),
            parametric(EXPOSURES, np.cov(returns.T), confidence, 500),
            monte_carlo(EXPOSURES, np.cov(returns.T), confidence, 500, rng, student_df=4.0),
        ):
            assert got.es >= got.var > 0


def test_a_singular_covariance_still_has_draws():
    # ES and a second contract on it: perfectly correlated, a rank-1 covariance.
    covariance = np.full((2, 2), 0.01**2)
    factor = cholesky(covariance)
    assert np.allclose(factor @ factor.T, covariance, atol=1e-12)
    got = monte_carlo(np.array([1e5, 1e5]), covariance, 0.99, 250, np.random.default_rng(1))
    assert got.var == pytest.approx(stats.norm.ppf(0.99) * 2e5 * 0.01, rel=0.05)


def test_ewma_covariance_equals_pandas_exponentially_weighted_means_of_the_products():
    rng = np.random.default_rng(5)
    returns = rng.standard_normal((300, 3)) @ cholesky(COVARIANCE).T
    ewma = EwmaCovariance(3, decay=0.94)
    for row in returns:
        ewma.update(row)
    frame = pd.DataFrame(
        {(i, j): returns[:, i] * returns[:, j] for i in range(3) for j in range(3)}
    )
    weighted = frame.ewm(alpha=1 - 0.94, adjust=True).mean().iloc[-1]
    want = np.array([[weighted[i, j] for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(ewma.covariance, want, rtol=1e-10)
    assert ewma.observations == 300
    np.testing.assert_allclose(np.diag(ewma.correlation), 1.0)


def test_an_instrument_that_never_moved_correlates_with_nothing():
    ewma = EwmaCovariance(2)
    for r in np.random.default_rng(2).standard_normal(50):
        ewma.update(np.array([r * 0.01, 0.0]))
    np.testing.assert_array_equal(ewma.correlation, np.eye(2))
