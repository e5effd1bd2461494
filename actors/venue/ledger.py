"""The venue's memory of what it answered each client order id: a repeat gets the original.

An exchange executes a client order id once. When the same id comes again (a sender that
restarted and re-sent its working orders, a reconciliation query), the venue answers with
the replies it gave the first time, byte for byte: the same ack, the same fill id, price,
quantity and fee. Executing it again would be a double fill at a real broker, hidden here
only because fill ids derive from the order id and everyone deduplicates fills by id.

The ledger holds the outcomes of the newest `capacity` ids in memory; the newest
`durable` of them are the venue actor's durable state (saved at every commit, so kept
small: a repeat comes from a restart, which only concerns the latest orders). Outcomes are
kept encoded: saving them is a copy of bytes, and only a repeat pays for decoding.
"""

from collections import OrderedDict
from collections.abc import Iterable
from itertools import islice

import msgspec

from actors.messages import Fill, OrderAck, OrderReject

VenueReply = OrderAck | OrderReject | Fill

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[VenueReply]).decode


class Outcome(msgspec.Struct, array_like=True, frozen=True):
    """The replies to one client order id, as the venue published them."""

    client_order_id: str
    replies: bytes
    """msgpack of the list of replies (OrderAck, OrderReject, Fill), in publish order."""


def is_final(replies: list[VenueReply]) -> bool:
    """Whether the replies end the order (a fill with nothing left, or a reject): an ack
    alone is the outcome of an order whose venue crashed before its fill went out."""
    last = replies[-1] if replies else None
    return isinstance(last, OrderReject) or (isinstance(last, Fill) and not last.leaves_quantity)


class OrderLedger:
    def __init__(self, capacity: int, saved: Iterable[Outcome] = ()) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._outcomes: OrderedDict[str, bytes] = OrderedDict()
        self.version = 0
        """Counts changes: a saver skips rebuilding what has not changed since."""
        for outcome in saved:
            self._store(outcome.client_order_id, outcome.replies)

    def __contains__(self, client_order_id: str) -> bool:
        return client_order_id in self._outcomes

    def __len__(self) -> int:
        return len(self._outcomes)

    def replies(self, client_order_id: str) -> list[VenueReply] | None:
        """What the venue answered `client_order_id` (None: never seen, or forgotten)."""
        encoded = self._outcomes.get(client_order_id)
        return None if encoded is None else _decode(encoded)

    def record(self, client_order_id: str, replies: list[VenueReply]) -> None:
        """Remember the replies to an id (replacing what was known of it)."""
        self._store(client_order_id, _encode(replies))

    def add_reply(self, reply: VenueReply) -> None:
        """Append one published reply to its order's outcome: how a restarted venue learns
        what its predecessor published after its last commit (the kernel re-sends those)."""
        known = self.replies(reply.client_order_id) or []
        self.record(reply.client_order_id, [*known, reply])

    def newest(self, count: int) -> list[Outcome]:
        """The `count` newest outcomes, oldest first: the durable part."""
        newest = [
            Outcome(order_id, replies)
            for order_id, replies in islice(reversed(self._outcomes.items()), count)
        ]
        newest.reverse()
        return newest

    def _store(self, client_order_id: str, encoded: bytes) -> None:
        self.version += 1
        outcomes = self._outcomes
        outcomes[client_order_id] = encoded
        outcomes.move_to_end(client_order_id)
        if len(outcomes) > self._capacity:
            outcomes.popitem(last=False)
