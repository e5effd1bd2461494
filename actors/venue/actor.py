"""VenueActor: the simulated exchange on the engine's streams."""

import time

import msgspec

from actors.common.instruments import ServesInstruments
from actors.common.positions import PositionState
from actors.messages import CancelRequest, Fill, OrderAck, OrderReject, OrderRequest, Tick
from actors.risk.killswitch import KillSwitch, reduces_exposure
from actors.venue.book import BookState
from actors.venue.ledger import Outcome, VenueReply
from actors.venue.venue import ExchangeParams, SimulatedVenue
from kernel.actor import Actor, ActorContext, Port


class VenueState(msgspec.Struct, kw_only=True):
    """The durable state: the newest orders' outcomes and the books."""

    outcomes: list[Outcome] = []
    books: dict[str, BookState] = {}
    positions: list[PositionState] = []
    """The account per symbol, from every fill executed (the venue's position report)."""
    clock_ns: int = 0
    """Market time: the latest tick's, which a restarted venue's first orders carry."""


class VenueActor(ServesInstruments, Actor):
    """Consumes Ticks (the book), OrderRequests and CancelRequests; publishes the
    `SimulatedVenue`'s replies (acks, rejects, fills) on its `reports` port.

    Market time is the latest tick's `event_ns`: the replies carry it. The newest
    outcomes (ledger.py) and the books are the durable state, so a restarted venue answers
    a re-sent order with what it answered before, never a second execution. What its
    predecessor published after the last commit comes back through `on_resent` and joins
    the ledger first: the replay of those orders gets exactly the replies already sent.
    """

    Params = ExchangeParams
    params: ExchangeParams
    State = VenueState
    state: VenueState

    def __init__(self, params: ExchangeParams, context: ActorContext) -> None:
        super().__init__(params, context)
        self._resent: list[VenueReply] = []

    def on_resent(self, msg: msgspec.Struct) -> None:
        if isinstance(msg, VenueReply):
            self._resent.append(msg)

    async def on_start(self) -> None:
        self._out = self.output("reports")
        self._switch = KillSwitch.open(self.context.system)
        state = self.state
        self.venue = SimulatedVenue(self.params, state.outcomes, state.books, state.positions)
        for reply in self._resent:
            self.venue.rejoin(reply)
        self._resent.clear()
        self._clock_ns = state.clock_ns
        per_symbol = [f"tick_to_order.{symbol}" for symbol in self.params.symbols]
        latency = self.latency(["tick_to_order", "order_path", "tick_to_submit", *per_symbol])
        self._tick_to_order = latency.series("tick_to_order").record
        self._order_path = latency.series("order_path").record
        self._tick_to_submit = latency.series("tick_to_submit").record
        self._tick_to_order_of = {
            symbol: latency.series(f"tick_to_order.{symbol}").record
            for symbol in self.params.symbols
        }

    async def on_stop(self) -> None:
        self._switch.close()

    def state_to_save(self) -> VenueState:
        venue = self.venue
        return VenueState(
            outcomes=venue.saved_outcomes(),
            books=venue.saved_books(),
            positions=venue.saved_positions(),
            clock_ns=self._clock_ns,
        )

    def on_tick(self, tick: Tick) -> None:
        self.venue.on_tick(tick)
        self._clock_ns = max(self._clock_ns, tick.event_ns)

    def on_order(self, order: OrderRequest) -> None:
        self.on_order_received(order, time.monotonic_ns())
        for reply in self.venue.on_order(order, self._clock_ns, self._refusal(order)):
            self._out.publish(reply)

    def _refusal(self, order: OrderRequest) -> str | None:
        """Why the kill switch stops `order` at this adapter (None: it passes): engaged,
        unless reducing orders pass and this one only reduces the account's position."""
        switch = self._switch
        if not switch.engaged:
            return None
        held = self.venue.account.get(order.symbol)
        position = held.quantity if held is not None else 0
        if switch.reducing_allowed and reduces_exposure(position, int(order.side), order.quantity):
            return None
        return f"kill switch engaged: {switch.reason}"

    def on_cancel(self, cancel: CancelRequest) -> None:
        for reply in self.venue.on_cancel(cancel, self._clock_ns):
            self._out.publish(reply)

    def on_order_received(self, order: OrderRequest, received_ns: int) -> None:
        """Record the two spans of design §7 at the order's arrival, before handling:
        tick_to_order (since the tick that closed the bar; also per symbol, as
        `tick_to_order.<symbol>`) and order_path (since the tactical layer published the
        intent); and tick_to_submit, from that tick to
        execution's publish of the order (its `ts_ns`): where an engine hands an order to
        the adapter that writes it to the wire, the end of the span peers report."""
        if order.origin_ns:
            tick_to_order = received_ns - order.origin_ns
            self._tick_to_order(tick_to_order)
            of_symbol = self._tick_to_order_of.get(order.symbol)
            if of_symbol is not None:
                of_symbol(tick_to_order)
            self._tick_to_submit(order.ts_ns - order.origin_ns)
        if order.intent_ns:
            self._order_path(received_ns - order.intent_ns)

    inputs = {Tick: on_tick, OrderRequest: on_order, CancelRequest: on_cancel}
    optional_inputs = (CancelRequest,)
    """Nothing cancels in the default pipeline (IOC orders); execution algorithms will."""
    outputs = {"reports": Port(OrderAck, OrderReject, Fill)}
