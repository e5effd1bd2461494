"""VenueActor: the simulated exchange on the engine's streams."""

import time
from typing import Any

from actors.messages import CancelRequest, OrderRequest, Tick
from actors.venue.venue import ExchangeParams, SimulatedVenue
from kernel.actor import Actor


class VenueParams(ExchangeParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The exchange's parameters plus where its replies go."""

    stream: str = "venue"
    """Acks, rejects and fills, for execution (order states) and risk (positions)."""


class VenueActor(Actor):
    """Consumes Ticks (the book), OrderRequests and CancelRequests; publishes the
    `SimulatedVenue`'s replies on `Params.stream`. Other message types are ignored.

    Market time is the latest tick's `event_ns`: the replies carry it. Crash-only: a
    restarted venue starts with empty books and forgets the ids it saw (a real exchange
    would not; execution's deterministic ids make re-sent orders safe across *its*
    restarts, which is the case that matters).
    """

    Params = VenueParams
    params: VenueParams

    async def on_start(self) -> None:
        self._out = self.output(self.params.stream)
        self.venue = SimulatedVenue(self.params)
        self._clock_ns = 0
        latency = self.latency(["tick_to_order", "order_path"])
        self._tick_to_order = latency.series("tick_to_order").record
        self._order_path = latency.series("order_path").record

    def on_message(self, msg: Any) -> None:
        kind = type(msg)
        if kind is Tick:
            self.venue.on_tick(msg)
            self._clock_ns = max(self._clock_ns, msg.event_ns)
        elif kind is OrderRequest:
            self.on_order_received(msg, time.monotonic_ns())
            for reply in self.venue.on_order(msg, self._clock_ns):
                self._out.publish(reply)
        elif kind is CancelRequest:
            for reply in self.venue.on_cancel(msg, self._clock_ns):
                self._out.publish(reply)

    def on_order_received(self, order: OrderRequest, received_ns: int) -> None:
        """Record the two spans of design §7 at the order's arrival, before handling:
        tick_to_order (since the tick that closed the bar) and order_path (since the
        tactical layer published the intent)."""
        if order.origin_ns:
            self._tick_to_order(received_ns - order.origin_ns)
        if order.intent_ns:
            self._order_path(received_ns - order.intent_ns)
