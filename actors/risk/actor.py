"""RiskActor: the pre-trade gate between the tactical layer and execution.

Consumes TradeIntent (answered at once by a RiskVerdict, approved or denied, carrying the
intent's origin_ns so the order path can be traced), Fill (the book), Bar (marks) and
Control (HALT -> HALTED, RESUME -> ACTIVE, FLATTEN -> REDUCING; SHUTDOWN is the kernel's).
Every `snapshot_interval_s`, and at once after a trading-state change, it publishes a
RiskSnapshot (with each limit and its utilisation) and a PositionSnapshot per symbol seen.

Crash-only restart: the kill switch and the trading state live in shared memory
(killswitch.py) and are found as they were; the book (positions, P&L, trade statistics,
the newest fill ids) is restored from its snapshot (kernel.state), saved after every
fill. Not persisted: the duplicate-intent memory (a re-sent order keeps its client
order id, which the venue refuses) and unfilled approvals (pending quantity).
"""

from typing import Annotated, Any

import msgspec

from actors.messages import (
    NAN,
    Bar,
    Control,
    ControlCommand,
    Fill,
    PositionSnapshot,
    RiskSnapshot,
    TradeIntent,
    TradingState,
)
from actors.risk.book import BookState, InvalidFill, RiskBook
from actors.risk.gate import RiskGate
from actors.risk.killswitch import KillSwitch
from actors.risk.limits import RiskLimits
from kernel.actor import Actor
from kernel.state import SnapshotStore

SNAPSHOT_TIMER = "snapshot"
REPORTED_LIMITS = (
    "max_position",
    "max_order_size",
    "max_notional",
    "daily_loss_limit",
    "max_orders_per_minute",
    "risk_per_trade_fraction",
    "price_band_fraction",
)
"""The limits a RiskSnapshot lists (the sizing and bookkeeping parameters are not limits)."""

_STATES = {
    ControlCommand.HALT: TradingState.HALTED,
    ControlCommand.RESUME: TradingState.ACTIVE,
    ControlCommand.FLATTEN: TradingState.REDUCING,
}


class RiskParams(RiskLimits, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The limits, plus where the actor publishes and how often it reports."""

    verdicts: str = "verdicts"
    """Output stream of the RiskVerdicts."""
    snapshots: str = "risk_snapshots"
    """Output stream of the RiskSnapshots and PositionSnapshots."""
    snapshot_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0


_BOOK_ENCODER = msgspec.msgpack.Encoder()
_BOOK_DECODER = msgspec.msgpack.Decoder(BookState)


class RiskActor(Actor):
    """Hosts the gate and the book. What an operator or the gate latched (kill switch,
    trading state) lives in the kill-switch file, and the book in a shared-memory
    snapshot taken after every fill: both survive a restart of the actor."""

    Params = RiskParams
    params: RiskParams

    async def on_start(self) -> None:
        params = self.params
        self._verdicts = self.output(params.verdicts)
        self._snapshots = self.output(params.snapshots)
        self.controls = KillSwitch.open(self.context.system)
        self.book = RiskBook(params.initial_equity, params.point_value)
        self._store = SnapshotStore(self.context.system, self.name)
        saved = self._store.load()
        if saved is not None:
            self.book.restore(_BOOK_DECODER.decode(saved))
            self.log.warning(
                "book restored from its snapshot: net position %d, equity %.2f",
                self.book.net_position,
                self.book.equity,
            )
        self.gate = RiskGate(params, self.book, self.controls)
        self._limits = {name: float(getattr(params, name)) for name in REPORTED_LIMITS}
        state = self.controls.state()
        if state.engaged or state.trading_state != TradingState.ACTIVE:
            self.log.warning(
                "starting with kill switch %s (%s, by %s), trading state %s (%s, by %s)",
                "ENGAGED" if state.engaged else "off",
                state.reason,
                state.engaged_by,
                state.trading_state.name,
                state.state_reason,
                state.state_by,
            )
        self.set_timer(SNAPSHOT_TIMER, params.snapshot_interval_s)

    def on_message(self, msg: Any) -> None:
        kind = type(msg)
        if kind is TradeIntent:
            self._verdicts.publish(self.gate.check(msg))
        elif kind is Bar:
            self.book.on_bar(msg)
        elif kind is Fill:
            self._on_fill(msg)
        elif kind is Control:
            self._on_control(msg)

    def on_timer(self, name: str) -> None:
        if name == SNAPSHOT_TIMER:
            self.publish_snapshots()

    async def on_stop(self) -> None:
        # A clean stop with nothing latched leaves nothing behind; an engaged switch or
        # a HALTED/REDUCING state stays for the next run to find.
        if self.controls.at_rest:
            self.controls.unlink()
        self.controls.close()
        self._store.close()

    def publish_snapshots(self) -> None:
        book = self.book
        point_value = book.point_value
        self._snapshots.publish(
            RiskSnapshot(
                trading_state=self.controls.trading_state,
                kill_switch=self.controls.engaged,
                equity=book.equity,
                daily_pnl=book.daily_pnl,
                drawdown_pct=book.drawdown_pct,
                gross_notional=book.gross_notional,
                net_position=book.net_position,
                # VaR and ES belong to the background monitor, not computed here.
                var_95=NAN,
                var_99=NAN,
                es_95=NAN,
                es_99=NAN,
                event_ns=book.event_ns,
                consecutive_losses=book.stats.consecutive_losses,
                limits=self._limits,
                utilisation=self.gate.utilisation(),
            )
        )
        for held in book.positions.values():
            self._snapshots.publish(
                PositionSnapshot(
                    symbol=held.symbol,
                    quantity=held.quantity,
                    avg_price=held.avg_price,
                    mark_price=held.mark,
                    realized_pnl=held.realized,
                    unrealized_pnl=held.unrealized(point_value),
                    event_ns=book.event_ns,
                )
            )

    def _on_fill(self, fill: Fill) -> None:
        try:
            fresh = self.book.on_fill(fill)
        except InvalidFill as error:
            # A venue bug must not crash-loop risk (redelivery would replay it): log it loud.
            self.log.error("fill ignored: %s", error)
            return
        if fresh:
            # Saved before the fill's record is committed: a crash in between replays a
            # fill the snapshot already holds, and its id makes the replay a no-op.
            self._store.save(_BOOK_ENCODER.encode(self.book.state()))
            self.gate.on_fill(fill.symbol, int(fill.side), fill.quantity)

    def _on_control(self, control: Control) -> None:
        state = _STATES.get(control.command)
        if state is None:
            return
        by = control.operator or "unknown operator"
        if self.controls.set_trading_state(state, by, control.reason):
            self.log.warning(
                "trading state %s by %s: %s", state.name, by, control.reason or "no reason"
            )
            self.publish_snapshots()
