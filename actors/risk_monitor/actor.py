"""RiskMonitorActor: the portfolio's risk, measured off the order path, and its breakers.

It keeps its own replica of the gate's book (the same `RiskBook` fed the same fills and
bars) and of the gate's unfilled approvals and order rate (`PendingOrders` and
`OrderThrottle` fed the approved verdicts), so that what it reports is what the gate
sees, without a call into the order path's process. From the bars of `timeframe_s` it
builds one vector of log returns per bar end (`PeriodReturns`), an EWMA covariance
(lambda 0.94) and a `lookback` of periods, and from them, for the current exposures:
VaR and ES at 95 and 99 % by every method of var.py (the snapshot's var_95 ... es_99 are
`var_method`'s, filtered historical simulation by default), the volatility ratio to
normal, the largest correlation change (EWMA against the lookback's) and the documents'
correlation score. Each completed period also backtests the last VaR forecast made
before its bar (for the positions as they stood after the last fill) against the P&L of
those positions at the period's returns (backtest.py; a period spent flat tests nothing
and is not counted).

It publishes a RiskSnapshot (with each limit, its utilisation and the above) and a
PositionSnapshot per symbol at start, after every fill and every `snapshot_interval_s`,
and evaluates the circuit breakers (breakers.py) each time: a trip tightens the trading
state in the kill-switch file (never loosens it) and, for the loss breakers, engages the
kill switch; the journal records both from there.

Durable state: the book, the approvals, the order times, the return history, the EWMA
covariance, the backtest windows and the breakers' episodes, so a restarted monitor
continues with the same figures.
"""

import time
from typing import Any, Literal

import msgspec
import numpy as np

from actors.common.instruments import InstrumentParams, ServesInstruments
from actors.messages import (
    NAN,
    Bar,
    Fill,
    OrderAck,
    OrderReject,
    PositionSnapshot,
    RiskSnapshot,
    RiskVerdict,
    TradingState,
    VarBacktestSummary,
)
from actors.risk.actor import RiskActor
from actors.risk.book import BookState, InvalidFill, RiskBook
from actors.risk.gate import limit_utilisation
from actors.risk.killswitch import KillSwitch
from actors.risk.limits import REPORTED_LIMITS, RiskLimits
from actors.risk.pending import Approval, PendingOrders
from actors.risk.throttle import OrderThrottle
from actors.risk_monitor import var
from actors.risk_monitor.backtest import VarBacktest
from actors.risk_monitor.breakers import BreakerLimits, Breakers, Figures
from actors.risk_monitor.returns import PeriodReturns
from config.schema import SystemConfig
from config.types import AtLeastOne, Positive
from kernel.actor import Actor, Port

MONITOR = "risk-monitor"
"""Who the breakers' changes of the kill switch and trading state are recorded as by."""
SNAPSHOT_TIMER = "snapshot"
CONFIDENCES = (0.95, 0.99)
VarMethod = Literal["filtered_historical", "historical", "parametric", "monte_carlo"]
VAR_METHODS = ("parametric", "historical", "filtered_historical", "monte_carlo")


class RiskMonitorParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    gate: str = "risk"
    """The risk actor whose limits the monitor reports and whose book it mirrors."""
    limits: RiskLimits | None = None
    """The gate's limits, filled at load from its params (never written in params)."""
    snapshot_interval_s: Positive = 0.1
    timeframe_s: AtLeastOne = 300
    """The bars whose closes make the return periods (the tactical bars by default)."""
    lookback: AtLeastOne = 252
    """Return periods kept for the historical estimates and the normal volatility."""
    var_method: VarMethod = "filtered_historical"
    monte_carlo_paths: AtLeastOne = 10_000
    monte_carlo_student_df: float = 5.0
    """Degrees of freedom of the Monte Carlo draws (Student-t: fat tails); 0: normal."""
    seed: int = 0
    """Seed of the Monte Carlo draws (deterministic figures for the same history)."""
    backtest_window: AtLeastOne = 250
    max_drawdown_pct: Positive = 5.0
    max_consecutive_losses: AtLeastOne = 5
    volatility_ratio_limit: Positive = 3.0
    correlation_shock: Positive = 0.3
    var_limit: Positive = 2_500.0
    """One period's 99 % VaR (the default method's) at which trading turns REDUCING: 1 %
    of the default equity. One ES contract's is about $500 at a 5-minute volatility of
    0.1 % (4,150 x $50 x 0.1 % x 2.33), the position limits' largest book (five ES and
    five NQ, $2M gross, the notional cap) about $4,700: the limit stops exposure growing
    well before the caps, never before the first contract."""


class MonitorState(msgspec.Struct, kw_only=True):
    book: BookState | None = None
    pending: list[Approval] = []
    order_times: bytes = b""
    returns: list[list[float]] = []
    covariance_sum: list[list[float]] = []
    covariance_periods: int = 0
    backtest_hits: dict[str, list[bool]] = {}
    """Per confidence ("0.99"), the hits of the window, oldest first."""
    breakers_holding: list[str] = []


class RiskMonitorActor(ServesInstruments, Actor):
    Params = RiskMonitorParams
    params: RiskMonitorParams
    State = MonitorState
    state: MonitorState

    @classmethod
    def parse_params(cls, raw: dict[str, Any], config: SystemConfig | None = None) -> Any:
        params = super().parse_params(raw, config)
        gate = [a for a in (config.actors if config else []) if a.name == params.gate]
        if config is not None and not gate:
            raise ValueError(f"no actor {params.gate!r} to take the limits from - at `$.gate`")
        limits = RiskActor.parse_params(gate[0].params if gate else {}, config)
        return msgspec.structs.replace(params, limits=limits)

    async def on_start(self) -> None:
        params = self.params
        limits = params.limits
        assert limits is not None  # parse_params filled it
        self.limits = limits
        self._snapshots = self.output("snapshots")
        self.controls = KillSwitch.open(self.context.system)
        symbols = list(params.symbols)
        registry = params.registry
        self.point_values = np.array([registry[s].point_value for s in symbols])
        self.margins = np.array([registry[s].initial_margin for s in symbols])
        self.book = RiskBook(limits.initial_equity, limits.point_values())
        saved = self.state
        if saved.book is not None:
            self.book.restore(saved.book)
        self.pending = PendingOrders(round(limits.pending_ttl_s * 1e9), saved.pending)
        self.throttle = OrderThrottle(limits.max_orders_per_minute, saved.order_times)
        self.returns = PeriodReturns(symbols, params.lookback)
        for row in saved.returns:
            self.returns.history.append(np.array(row))
        self.covariance = var.EwmaCovariance(len(symbols))
        if saved.covariance_periods:
            self.covariance.restore(np.array(saved.covariance_sum), saved.covariance_periods)
        self.backtests = {c: VarBacktest(c, params.backtest_window) for c in CONFIDENCES}
        for confidence, backtest in self.backtests.items():
            backtest.restore(saved.backtest_hits.get(str(confidence), []))
        self.breakers = Breakers(
            BreakerLimits(
                params.max_drawdown_pct,
                limits.daily_loss_limit,
                params.max_consecutive_losses,
                params.volatility_ratio_limit,
                params.correlation_shock,
                params.var_limit,
            ),
            saved.breakers_holding,
        )
        self._limits = {name: float(getattr(limits, name)) for name in REPORTED_LIMITS}
        self._rng = np.random.default_rng(params.seed)
        self._session = (-1, limits.initial_equity)
        """(UTC day, the day's equity high) for the session drawdown."""
        self._estimates: dict[str, var.RiskEstimate] = {}
        self._forecast: tuple[np.ndarray, dict[float, float]] | None = None
        """The latest exposures and their VaR per confidence (`_estimate`): what the open
        period is backtested against when its bar closes."""
        self._volatility = self._volatility_figures()
        self._estimate()
        self.publish_snapshots()
        self.set_timer(SNAPSHOT_TIMER, params.snapshot_interval_s)

    def state_to_save(self) -> MonitorState:
        return MonitorState(
            book=self.book.state(),
            pending=self.pending.to_list(),
            order_times=self.throttle.to_bytes(),
            returns=[row.tolist() for row in self.returns.history],
            covariance_sum=self.covariance.weighted_sum().tolist(),
            covariance_periods=self.covariance.observations,
            backtest_hits={str(c): b.hits() for c, b in self.backtests.items()},
            breakers_holding=sorted(self.breakers.holding),
        )

    def on_bar(self, bar: Bar) -> None:
        self.book.on_bar(bar)
        if bar.timeframe_s != self.params.timeframe_s:
            return
        for period in self.returns.on_close(bar.symbol, bar.end_ns, bar.close):
            self._end_period(period)

    def on_verdict(self, verdict: RiskVerdict) -> None:
        if not verdict.approved or verdict.symbol not in self.limits.registry:
            return
        now = time.monotonic_ns()
        point_value = self.limits.registry[verdict.symbol].point_value
        side = int(verdict.direction)
        self.pending.add(now, verdict.symbol, side, verdict.quantity, verdict.price * point_value)
        self.throttle.record(now)

    def on_fill(self, fill: Fill) -> None:
        try:
            fresh = self.book.on_fill(fill)
        except InvalidFill as error:
            # The gate halts trading on it (actors.risk.actor); the monitor only says so.
            self.log.error("fill not booked: %s", error)
            return
        if fresh:
            self.pending.fill(fill.symbol, int(fill.side), fill.quantity)
            self._estimate()
            self.publish_snapshots()

    def on_timer(self, name: str) -> None:
        if name == SNAPSHOT_TIMER:
            self.publish_snapshots()

    async def on_stop(self) -> None:
        self.controls.close()

    def exposures(self) -> np.ndarray:
        """Currency exposure per symbol: signed contracts x mark x point value."""
        book = self.book
        return np.array([book.notional(symbol) for symbol in self.returns.symbols])

    def _end_period(self, period_returns: np.ndarray) -> None:
        """Backtest the latest forecast against the period, then take the period into the
        covariance and forecast the next one."""
        if self._forecast is not None:
            exposures, forecasts = self._forecast
            if exposures.any():
                loss = -float(exposures @ period_returns)
                for confidence, backtest in self.backtests.items():
                    backtest.record(forecasts[confidence], loss)
        self.covariance.update(period_returns)
        self._volatility = self._volatility_figures()
        self._estimate()

    def _estimate(self) -> None:
        """Every method's VaR and ES of the current exposures, and the forecast the open
        period will be backtested against."""
        exposures = self.exposures()
        history = self.returns.matrix()
        estimates = {}
        for confidence in CONFIDENCES:
            level = round(confidence * 100)
            for method in VAR_METHODS:
                if exposures.any():
                    estimate = self._estimate_by(method, exposures, history, confidence)
                else:  # nothing held, nothing at risk, whatever the history
                    estimate = var.RiskEstimate(0.0, 0.0)
                estimates[f"{method}.var_{level}"] = estimate
        self._estimates = estimates
        default = self.params.var_method
        self._forecast = (
            exposures,
            {c: estimates[f"{default}.var_{round(c * 100)}"].var for c in CONFIDENCES},
        )

    def _estimate_by(
        self, method: str, exposures: np.ndarray, history: np.ndarray, confidence: float
    ) -> var.RiskEstimate:
        periods = self.covariance.observations
        if method == "parametric":
            return var.parametric(exposures, self.covariance.covariance, confidence, periods)
        if method == "historical":
            return var.historical(exposures, history, confidence)
        if method == "filtered_historical":
            return var.filtered_historical(exposures, history, confidence)
        return var.monte_carlo(
            exposures,
            self.covariance.covariance,
            confidence,
            periods,
            self._rng,
            self.params.monte_carlo_paths,
            self.params.monte_carlo_student_df or None,
        )

    def _volatility_figures(self) -> tuple[float, float, float]:
        """(volatility ratio, largest correlation change, correlation score): they move
        only when a period ends, so they are computed then, not for every snapshot."""
        history = self.returns.matrix()
        if history.shape[0] < var.MIN_OBSERVATIONS:
            return NAN, NAN, NAN
        normal = np.cov(history.T, bias=True).reshape(len(self.returns.symbols), -1)
        current = self.covariance.covariance
        normal_sigma = np.sqrt(np.diag(normal))
        moving = normal_sigma > 0.0
        ratio = np.sqrt(np.diag(current)[moving]) / normal_sigma[moving]
        fast, slow = var.correlation_of(current), var.correlation_of(normal)
        off = ~np.eye(len(fast), dtype=bool)
        change = float(np.abs(fast - slow)[off].max()) if off.any() else 0.0
        pairs = np.abs(fast[off])
        score = min(1.0, 0.6 * pairs.mean() + 0.4 * pairs.max()) if off.any() else 0.0
        return (float(ratio.max()) if moving.any() else NAN), change, float(score)

    def publish_snapshots(self) -> None:
        book, limits = self.book, self.limits
        now = time.monotonic_ns()
        self.pending.expire(now)
        day = book.event_ns // 86_400_000_000_000
        high = book.equity if day != self._session[0] else max(self._session[1], book.equity)
        self._session = (day, high)
        volatility_ratio, correlation_change, correlation_score = self._volatility
        held, new = self.breakers.evaluate(
            Figures(
                book.drawdown_pct,
                book.daily_pnl,
                book.stats.consecutive_losses,
                volatility_ratio,
                correlation_change,
                self._estimates[f"{self.params.var_method}.var_99"].var,
            )
        )
        for trip in new:
            self._trip(trip.state, trip.engage_kill_switch, f"{trip.breaker}: {trip.reason}")
        default = self.params.var_method
        estimate = self._estimates
        quantities = np.array([book.position(s) for s in self.returns.symbols])
        margin = float(np.abs(quantities) @ self.margins)
        margins_known = bool(self.margins[quantities != 0].all())
        self._snapshots.publish(
            RiskSnapshot(
                trading_state=self.controls.trading_state,
                kill_switch=self.controls.engaged,
                equity=book.equity,
                daily_pnl=book.daily_pnl,
                drawdown_pct=book.drawdown_pct,
                gross_notional=book.gross_notional,
                net_position=book.net_position,
                var_95=estimate[f"{default}.var_95"].var,
                var_99=estimate[f"{default}.var_99"].var,
                es_95=estimate[f"{default}.var_95"].es,
                es_99=estimate[f"{default}.var_99"].es,
                event_ns=book.event_ns,
                consecutive_losses=book.stats.consecutive_losses,
                correlation_score=correlation_score,
                limits=self._limits,
                utilisation=limit_utilisation(limits, book, self.pending, self.throttle.count(now)),
                net_notional=book.net_notional,
                concentration=book.concentration,
                realized_pnl=book.realized_pnl,
                unrealized_pnl=book.unrealized_pnl,
                var_method=default,
                var_by_method=_by_method(estimate),
                session_drawdown_pct=max(0.0, float(high - book.equity) / high * 100.0),
                margin_use=margin / book.equity if margins_known and book.equity > 0 else NAN,
                volatility_ratio=volatility_ratio,
                correlation_change=correlation_change,
                var_backtests=[_summary(b) for b in self.backtests.values()],
                breakers=[f"{trip.breaker}: {trip.reason}" for trip in held],
            )
        )
        for held_position in book.positions.values():
            point_value = book.point_values.get(held_position.symbol)
            if point_value is None:
                continue
            self._snapshots.publish(
                PositionSnapshot(
                    symbol=held_position.symbol,
                    quantity=held_position.quantity,
                    avg_price=held_position.avg_price,
                    mark_price=held_position.mark,
                    realized_pnl=held_position.realized,
                    unrealized_pnl=held_position.unrealized(point_value),
                    event_ns=book.event_ns,
                    notional=book.notional(held_position.symbol),
                )
            )

    def _trip(self, state: TradingState, engage: bool, reason: str) -> None:
        """Tighten the trading state (never loosen it) and engage the kill switch if asked."""
        self.log.warning("circuit breaker: %s -> %s", reason, state.name)
        if state > self.controls.trading_state:
            self.controls.set_trading_state(state, MONITOR, reason)
        if engage:
            self.controls.engage(reason, MONITOR)

    inputs = {Bar: on_bar, RiskVerdict: on_verdict, Fill: on_fill}
    ignores = (OrderAck, OrderReject)
    """The venue's stream also carries order acks and rejects: execution's business."""
    outputs = {"snapshots": Port(RiskSnapshot, PositionSnapshot)}


def _by_method(estimates: dict[str, var.RiskEstimate]) -> dict[str, float]:
    out = {}
    for key, estimate in estimates.items():
        method, level = key.rsplit(".var_", 1)
        out[f"{method}.var_{level}"] = estimate.var
        out[f"{method}.es_{level}"] = estimate.es
    return out


def _summary(backtest: VarBacktest) -> VarBacktestSummary:
    report = backtest.report()
    return VarBacktestSummary(
        confidence=report.confidence,
        periods=report.periods,
        hits=report.hits,
        expected_hits=report.expected_hits,
        kupiec_statistic=report.kupiec.statistic,
        kupiec_p_value=report.kupiec.p_value,
        independence_statistic=report.independence.statistic,
        independence_p_value=report.independence.p_value,
        conditional_coverage_statistic=report.conditional_coverage.statistic,
        conditional_coverage_p_value=report.conditional_coverage.p_value,
        zone=report.zone.value,
        plus_factor=report.plus_factor,
    )
