"""RiskActor: the pre-trade gate between the tactical layer and execution.

Consumes TradeIntent (answered at once by a RiskVerdict, approved or denied, carrying the
intent's origin_ns so the order path can be traced), Fill (the book), Bar (marks) and
Control (HALT -> HALTED, RESUME -> ACTIVE, FLATTEN -> REDUCING and every position closed;
SHUTDOWN is the kernel's). A FLATTEN asked through the kill-switch file (the API's) is
seen within `FLATTEN_POLL_S`: one approved closing verdict per open position.
It publishes nothing else: the risk monitor (actors.risk_monitor), off the order path,
reports the same book and limits with the portfolio's VaR.

Crash-only restart: the kill switch and the trading state live in shared memory
(killswitch.py) and are found as they were. Everything else is the actor's durable
`State`, committed by the kernel with the input positions it reflects: the book
(positions, daily P&L, peak equity, trade statistics, the newest fill ids) and the
gate's memory (unfilled approvals, the throttle window, the newest intent ids). It
survives kill -9, a clean restart and a supervisor crash alike.
"""

import msgspec

from actors.common.instruments import ServesInstruments
from actors.messages import (
    Bar,
    Control,
    ControlCommand,
    Fill,
    OrderAck,
    OrderReject,
    RiskVerdict,
    TradeIntent,
    TradingState,
)
from actors.risk.book import BookState, InvalidFill, RiskBook
from actors.risk.gate import GATE, GateMemory, RiskGate
from actors.risk.killswitch import KillSwitch
from actors.risk.limits import RiskLimits
from kernel.actor import Actor, Port

_STATES = {ControlCommand.HALT: TradingState.HALTED, ControlCommand.RESUME: TradingState.ACTIVE}
FLATTEN_TIMER = "flatten"
FLATTEN_POLL_S = 0.1
"""How often the kill-switch file is read for a FLATTEN request (one word)."""


class RiskParams(RiskLimits, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The limits."""


class RiskState(msgspec.Struct, kw_only=True):
    """The durable state: the book and the gate's memory."""

    book: BookState | None = None
    gate: GateMemory = msgspec.field(default_factory=GateMemory)


class RiskActor(ServesInstruments, Actor):
    """Hosts the gate and the book. What an operator or the gate latched (kill switch,
    trading state) lives in the kill-switch file; the book and the gate's memory are the
    durable state: all of it survives a restart of the actor."""

    Params = RiskParams
    params: RiskParams
    State = RiskState
    state: RiskState

    async def on_start(self) -> None:
        params = self.params
        self._verdicts = self.output("verdicts")
        self.controls = KillSwitch.open(self.context.system)
        point_values = params.point_values()
        self.book = RiskBook(params.initial_equity, point_values)
        if self.state.book is not None:
            self.book.restore(self.state.book)
            self.log.warning(
                "book restored from the durable state: net position %d, equity %.2f",
                self.book.net_position,
                self.book.equity,
            )
        self.gate = RiskGate(params, self.book, self.controls, memory=self.state.gate)
        stray = [
            s for s, held in self.book.positions.items() if held.quantity and s not in point_values
        ]
        if stray:
            # A position the registry no longer lists cannot be valued or closed here.
            problem = f"positions in instruments not traded here: {', '.join(stray)}"
            self.log.error("trading HALTED: %s", problem)
            self.controls.set_trading_state(TradingState.HALTED, GATE, problem)
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
        self.set_timer(FLATTEN_TIMER, FLATTEN_POLL_S)

    def on_timer(self, name: str) -> None:
        if name == FLATTEN_TIMER:
            self._flatten()

    def _flatten(self) -> None:
        for verdict in self.gate.flatten():
            self.log.warning("FLATTEN: closing %d %s", verdict.quantity, verdict.symbol)
            self._verdicts.publish(verdict)

    def on_intent(self, intent: TradeIntent) -> None:
        self._verdicts.publish(self.gate.check(intent))

    def on_bar(self, bar: Bar) -> None:
        self.book.on_bar(bar)
        self.gate.on_bar(bar)

    def state_to_save(self) -> RiskState:
        return RiskState(book=self.book.state(), gate=self.gate.memory())

    async def on_stop(self) -> None:
        # A clean stop with nothing latched leaves nothing behind; an engaged switch or
        # a HALTED/REDUCING state stays for the next run to find.
        if self.controls.at_rest:
            self.controls.unlink()
        self.controls.close()

    def on_fill(self, fill: Fill) -> None:
        try:
            fresh = self.book.on_fill(fill)
        except InvalidFill as error:
            # A fill nobody can book is a venue fault: positions are no longer known for
            # sure, so trading stops (HALTED: only cancels) until an operator looks. Not an
            # exception: a redelivery would replay it into a crash loop.
            self.log.error("fill refused, trading HALTED: %s", error)
            self.controls.set_trading_state(TradingState.HALTED, GATE, f"invalid fill: {error}")
            return
        if fresh:
            self.gate.on_fill(fill.symbol, int(fill.side), fill.quantity)

    def on_control(self, control: Control) -> None:
        by = control.operator or "unknown operator"
        if control.command == ControlCommand.FLATTEN:
            self.controls.request_flatten(by, control.reason or "no reason")
            self._flatten()
            return
        state = _STATES.get(control.command)
        if state is None:
            return
        if self.controls.set_trading_state(state, by, control.reason):
            self.log.warning(
                "trading state %s by %s: %s", state.name, by, control.reason or "no reason"
            )

    inputs = {TradeIntent: on_intent, Bar: on_bar, Fill: on_fill, Control: on_control}
    ignores = (OrderAck, OrderReject)
    """The venue's stream also carries order acks and rejects: execution's business."""
    optional_inputs = (Control,)
    """Operator controls arrive when a control stream is wired (none in the default)."""
    outputs = {"verdicts": Port(RiskVerdict)}
