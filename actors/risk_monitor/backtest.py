"""VaR backtesting: does the VaR of each period cover that period's loss as often as it
claims to, and are its misses independent of each other?

A violation (a hit) is a period whose loss exceeded the VaR forecast for it. Over the
last `window` periods (250, the Basel convention):

- Kupiec's proportion-of-failures test (unconditional coverage): the likelihood ratio of
  the observed hit rate against the claimed one, 1 - confidence; chi-squared, 1 dof.
- Christoffersen's independence test: whether a hit makes the next one likelier (a
  first-order Markov chain of hits against an independent one); chi-squared, 1 dof. The
  conditional coverage test adds both statistics; chi-squared, 2 dof.
- The Basel traffic light: the zone of the hit count by its cumulative binomial
  probability under a correct model, green below 95 %, red from 99.99 %, yellow between
  (for 250 periods at 99 %: green 0-4, yellow 5-9, red 10 or more), with the yellow
  zone's plus factor to the capital multiplier.

Likelihoods use the convention 0 ln 0 = 0, so that a window without hits (or only hits)
has a finite statistic. A test with too few periods to be meaningful says so with NaN.
"""

import itertools
import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

BASEL_WINDOW = 250
GREEN_BELOW = 0.95
RED_FROM = 0.9999
PLUS_FACTORS = {5: 0.40, 6: 0.50, 7: 0.65, 8: 0.75, 9: 0.85}
"""The Basel yellow zone's additions to the capital multiplier of 3 (250 periods at 99 %)."""
MIN_PERIODS = 20
"""Fewer periods than this: every statistic is NaN (no test says anything yet)."""


class Zone(StrEnum):
    NONE = "none"
    """Fewer than MIN_PERIODS periods: no zone yet."""
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float

    def rejects(self, size: float = 0.05) -> bool:
        """Whether the test rejects a correct VaR at `size` (False when unknown)."""
        return self.p_value < size


UNKNOWN_TEST = TestResult(math.nan, math.nan)


def _log_likelihood(successes: int, failures: int, probability: float) -> float:
    """successes ln p + failures ln (1 - p), with 0 ln 0 = 0."""
    total = 0.0
    if successes:
        total += successes * math.log(probability)
    if failures:
        total += failures * math.log(1.0 - probability)
    return total


def chi2_survival(statistic: float, dof: int) -> float:
    """P(X > statistic) for a chi-squared X with 1 or 2 degrees of freedom (closed forms)."""
    statistic = max(0.0, statistic)
    if dof == 1:
        return math.erfc(math.sqrt(statistic / 2.0))
    if dof == 2:
        return math.exp(-statistic / 2.0)
    raise ValueError(f"chi-squared survival for 1 or 2 degrees of freedom, not {dof}")


def kupiec_pof(hits: int, periods: int, coverage: float) -> TestResult:
    """Kupiec's test that the hit probability is `coverage` (0.01 for a 99 % VaR)."""
    if periods < MIN_PERIODS:
        return UNKNOWN_TEST
    misses = periods - hits
    statistic = 2.0 * (
        _log_likelihood(hits, misses, hits / periods) - _log_likelihood(hits, misses, coverage)
    )
    return TestResult(statistic, chi2_survival(statistic, 1))


def christoffersen_independence(hits: list[bool]) -> TestResult:
    """Christoffersen's test of independent hits against a first-order Markov chain."""
    if len(hits) < MIN_PERIODS:
        return UNKNOWN_TEST
    counts = {(a, b): 0 for a in (False, True) for b in (False, True)}
    for before, after in itertools.pairwise(hits):
        counts[before, after] += 1
    n00, n01 = counts[False, False], counts[False, True]
    n10, n11 = counts[True, False], counts[True, True]
    after_miss, after_hit = n00 + n01, n10 + n11
    pi = (n01 + n11) / (after_miss + after_hit)
    markov = _log_likelihood(n01, n00, n01 / after_miss if after_miss else 0.0)
    markov += _log_likelihood(n11, n10, n11 / after_hit if after_hit else 0.0)
    statistic = 2.0 * (markov - _log_likelihood(n01 + n11, n00 + n10, pi))
    return TestResult(statistic, chi2_survival(statistic, 1))


def christoffersen_conditional_coverage(hits: list[bool], coverage: float) -> TestResult:
    """Kupiec's and the independence statistics together (2 degrees of freedom)."""
    unconditional = kupiec_pof(sum(hits), len(hits), coverage)
    independence = christoffersen_independence(hits)
    if math.isnan(unconditional.statistic) or math.isnan(independence.statistic):
        return UNKNOWN_TEST
    statistic = unconditional.statistic + independence.statistic
    return TestResult(statistic, chi2_survival(statistic, 2))


def binomial_cdf(hits: int, periods: int, probability: float) -> float:
    """P(X <= hits) for X ~ Binomial(periods, probability)."""
    log_p, log_q = math.log(probability), math.log1p(-probability)
    total = 0.0
    for k in range(hits + 1):
        log_choose = math.lgamma(periods + 1) - math.lgamma(k + 1) - math.lgamma(periods - k + 1)
        total += math.exp(log_choose + k * log_p + (periods - k) * log_q)
    return min(1.0, total)


def traffic_light(hits: int, periods: int, coverage: float) -> Zone:
    cumulative = binomial_cdf(hits, periods, coverage)
    if cumulative >= RED_FROM:
        return Zone.RED
    return Zone.GREEN if cumulative < GREEN_BELOW else Zone.YELLOW


@dataclass(frozen=True)
class BacktestReport:
    """The last `periods` periods (at most the window) of one confidence's VaR."""

    confidence: float
    periods: int
    hits: int
    expected_hits: float
    kupiec: TestResult
    independence: TestResult
    conditional_coverage: TestResult
    zone: Zone
    plus_factor: float
    """The Basel addition to the capital multiplier (250 periods at 99 % only, else 0)."""


class VarBacktest:
    """A rolling window of (VaR forecast, realized loss) periods of one confidence."""

    def __init__(self, confidence: float, window: int = BASEL_WINDOW) -> None:
        self.confidence = confidence
        self._hits: deque[bool] = deque(maxlen=window)

    def hits(self) -> list[bool]:
        """The window, oldest first (the state to save: `restore` takes it back)."""
        return list(self._hits)

    def restore(self, hits: list[bool]) -> None:
        self._hits.clear()
        self._hits.extend(hits)

    def record(self, var: float, loss: float) -> bool:
        """One period: whether its loss exceeded the VaR forecast for it (a hit). A NaN
        forecast (too little history) is no forecast: the period is not counted."""
        if math.isnan(var) or math.isnan(loss):
            return False
        hit = loss > var
        self._hits.append(hit)
        return hit

    def report(self) -> BacktestReport:
        hits = list(self._hits)
        coverage = 1.0 - self.confidence
        count = sum(hits)
        enough = len(hits) >= MIN_PERIODS
        zone = traffic_light(count, len(hits), coverage) if enough else Zone.NONE
        basel = len(hits) == BASEL_WINDOW and math.isclose(coverage, 0.01)
        plus = 1.0 if zone is Zone.RED else PLUS_FACTORS.get(count, 0.0)
        return BacktestReport(
            confidence=self.confidence,
            periods=len(hits),
            hits=count,
            expected_hits=coverage * len(hits),
            kupiec=kupiec_pof(count, len(hits), coverage),
            independence=christoffersen_independence(hits),
            conditional_coverage=christoffersen_conditional_coverage(hits, coverage),
            zone=zone,
            plus_factor=plus if basel else 0.0,
        )
