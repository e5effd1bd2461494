"""VaR backtesting (actors/risk_monitor/backtest.py) against published tables and scipy,
and the default VaR method (filtered historical simulation) on GARCH Student-t returns
simulated by the `arch` package.

The `arch` release on PyPI (8.0) has no VaR backtests yet (they are in its development
documentation only), so the statistics are checked against what is published: Kupiec's
non-rejection regions (Kupiec 1995; Jorion, Value at Risk, table 6-3), the Basel
Committee's traffic-light table (1996 supervisory framework for backtesting), and
scipy's chi-squared and binomial distributions."""

import math
from collections.abc import Callable

import numpy as np
import pytest
from arch.univariate import GARCH, StudentsT, ZeroMean
from scipy import stats

from actors.risk_monitor.backtest import (
    BASEL_WINDOW,
    BacktestReport,
    VarBacktest,
    Zone,
    binomial_cdf,
    chi2_survival,
    christoffersen_conditional_coverage,
    christoffersen_independence,
    kupiec_pof,
    traffic_light,
)
from actors.risk_monitor.var import ewma_variance_forecasts, filtered_historical, historical

# Kupiec's 95 % non-rejection regions as published (Kupiec 1995, table 1; Jorion, Value at
# Risk): (coverage, periods) -> (fewest, most) hits accepted; None: the table gives no
# lower bound (N < 7), where the likelihood ratio of zero hits, 5.13, is past 3.84.
KUPIEC_REGIONS = {
    (0.01, 255): (None, 6),
    (0.01, 510): (2, 10),
    (0.01, 1000): (5, 16),
    (0.025, 255): (3, 11),
    (0.025, 510): (7, 20),
    (0.025, 1000): (16, 35),
    (0.05, 255): (7, 20),
    (0.05, 510): (17, 35),
    (0.05, 1000): (38, 64),
}
# The Basel table for 250 periods at 99 %: hits -> (cumulative probability %, zone, plus).
BASEL_TABLE = {
    0: (8.11, Zone.GREEN, 0.0),
    1: (28.58, Zone.GREEN, 0.0),
    2: (54.32, Zone.GREEN, 0.0),
    3: (75.81, Zone.GREEN, 0.0),
    4: (89.22, Zone.GREEN, 0.0),
    5: (95.88, Zone.YELLOW, 0.40),
    6: (98.63, Zone.YELLOW, 0.50),
    7: (99.60, Zone.YELLOW, 0.65),
    8: (99.89, Zone.YELLOW, 0.75),
    9: (99.97, Zone.YELLOW, 0.85),
    10: (99.99, Zone.RED, 1.0),
    14: (100.00, Zone.RED, 1.0),
}


@pytest.mark.parametrize(("coverage", "periods"), sorted(KUPIEC_REGIONS))
def test_kupiec_accepts_exactly_the_published_non_rejection_region(coverage, periods):
    accepted = [h for h in range(periods // 5) if not kupiec_pof(h, periods, coverage).rejects()]
    fewest, most = KUPIEC_REGIONS[coverage, periods]
    assert accepted[-1] == most
    assert fewest is None or accepted[0] == fewest
    assert accepted == list(range(accepted[0], accepted[-1] + 1))


def test_kupiec_statistic_is_the_binomial_likelihood_ratio_with_a_chi2_p_value():
    hits, periods, coverage = 9, 250, 0.01
    got = kupiec_pof(hits, periods, coverage)
    want = 2 * (
        stats.binom.logpmf(hits, periods, hits / periods)
        - stats.binom.logpmf(hits, periods, coverage)
    )
    assert got.statistic == pytest.approx(want, rel=1e-12)
    assert got.p_value == pytest.approx(stats.chi2.sf(want, 1), rel=1e-12)
    assert kupiec_pof(0, 250, 0.01).statistic == pytest.approx(-2 * 250 * math.log(0.99))


@pytest.mark.parametrize("statistic", [0.0, 0.3, 3.84, 7.5, 25.0])
def test_chi2_survival_matches_scipy(statistic):
    for dof in (1, 2):
        assert chi2_survival(statistic, dof) == pytest.approx(stats.chi2.sf(statistic, dof))


@pytest.mark.parametrize("hits", sorted(BASEL_TABLE))
def test_the_traffic_light_follows_the_basel_table(hits):
    percent, zone, plus = BASEL_TABLE[hits]
    assert 100 * binomial_cdf(hits, 250, 0.01) == pytest.approx(percent, abs=0.006)
    assert binomial_cdf(hits, 250, 0.01) == pytest.approx(stats.binom.cdf(hits, 250, 0.01))
    assert traffic_light(hits, 250, 0.01) is zone
    backtest = VarBacktest(0.99)
    for period in range(BASEL_WINDOW):
        backtest.record(1.0, 2.0 if period < hits else 0.0)
    report = backtest.report()
    assert (report.hits, report.zone, report.plus_factor) == (hits, zone, plus)
    assert report.expected_hits == pytest.approx(2.5)


def _simulated_rejection_rate(hits_of: "np.ndarray") -> float:
    rejected = [christoffersen_independence(list(row)).rejects() for row in hits_of]
    return float(np.mean(rejected))


def test_christoffersen_independence_has_its_size_on_independent_hits_and_power_on_clusters():
    rng = np.random.default_rng(4)
    independent = rng.random((1_000, 1_000)) < 0.05
    # the asymptotic test is a little oversized at 1,000 periods (about 9 %)
    assert 0.03 <= _simulated_rejection_rate(independent) <= 0.11
    # Hits that come in pairs: the same hit rate, no longer independent.
    starts = rng.random((300, 500)) < 0.025
    clustered = np.repeat(starts, 2, axis=1)
    assert _simulated_rejection_rate(clustered) > 0.9


def test_conditional_coverage_adds_both_statistics_on_two_degrees_of_freedom():
    hits = [False] * 240 + [True, True, True] + [False] * 7
    unconditional = kupiec_pof(3, 250, 0.01)
    independence = christoffersen_independence(hits)
    got = christoffersen_conditional_coverage(hits, 0.01)
    assert got.statistic == pytest.approx(unconditional.statistic + independence.statistic)
    assert got.p_value == pytest.approx(stats.chi2.sf(got.statistic, 2))
    assert independence.rejects() and not unconditional.rejects()


def test_too_few_periods_test_nothing():
    assert math.isnan(kupiec_pof(0, 5, 0.01).p_value)
    assert not kupiec_pof(0, 5, 0.01).rejects()
    assert math.isnan(christoffersen_conditional_coverage([False] * 5, 0.01).statistic)


def test_a_nan_forecast_is_not_a_period():
    backtest = VarBacktest(0.99)
    assert not backtest.record(math.nan, 5.0)
    assert backtest.report().periods == 0


@pytest.fixture(scope="module")
def garch_t_returns() -> np.ndarray:
    """6,000 periods of a GARCH(1,1) with Student-t (5 dof) shocks, simulated by arch."""
    model = ZeroMean(
        None, volatility=GARCH(p=1, q=1), distribution=StudentsT(seed=np.random.default_rng(2024))
    )
    simulated = model.simulate([0.02, 0.08, 0.90, 5.0], 6_000, burn=500)
    return simulated["data"].to_numpy() / 100.0  # arch's percent to fractions


def _rolling_hits(
    returns: np.ndarray, var_of: Callable[[np.ndarray], float], window: int = 500
) -> BacktestReport:
    """Each period's 99 % VaR from the `window` periods before it, backtested over all."""
    backtest = VarBacktest(0.99, window=len(returns))
    for t in range(window, len(returns)):
        backtest.record(var_of(returns[t - window : t]), -returns[t])
    return backtest.report()


def test_the_default_var_passes_kupiec_at_99_on_garch_t_returns_where_others_fail(
    garch_t_returns,
):
    exposure = np.array([1.0])

    def filtered(history: np.ndarray) -> float:
        return filtered_historical(exposure, history[:, None], 0.99).var

    def normal_ewma(history: np.ndarray) -> float:  # parametric: EWMA sigma, normal quantile
        return stats.norm.ppf(0.99) * math.sqrt(ewma_variance_forecasts(history, 0.94)[-1])

    def wrong(history: np.ndarray) -> float:  # the 95 % quantile sold as the 99 % one
        return filtered_historical(exposure, history[:, None], 0.95).var

    def plain_historical(history: np.ndarray) -> float:
        return historical(exposure, history[:, None], 0.99).var

    default = _rolling_hits(garch_t_returns, filtered)
    assert not default.kupiec.rejects(), default
    assert not default.conditional_coverage.rejects(), default
    assert default.hits / default.periods == pytest.approx(0.01, abs=0.004)
    assert _rolling_hits(garch_t_returns, normal_ewma).kupiec.rejects()  # thin tails
    window = _rolling_hits(garch_t_returns, plain_historical)  # blind to the clusters
    assert window.kupiec.rejects() and window.independence.rejects()
    assert _rolling_hits(garch_t_returns, wrong).kupiec.rejects()
