"""Approved quantity not yet filled: it counts against the limits like a position.

Without it two intents approved before the first fill arrives could each use the whole
position room. Fills release the oldest pending quantity of their symbol and side;
what no fill releases expires after a time-to-live, because risk is not told of cancels,
rejects or the unfilled rest of an IOC order.
"""

from collections import deque
from collections.abc import Iterable

import msgspec


class Approval(msgspec.Struct, array_like=True):
    """One approval's unfilled rest (durable: part of the risk actor's state)."""

    expires_ns: int
    symbol: str
    side: int
    quantity: int
    """Still unfilled."""
    contract_notional: float
    """Price x point value at approval."""


class PendingOrders:
    def __init__(self, ttl_ns: int, approvals: Iterable[Approval] = ()) -> None:
        self._ttl_ns = ttl_ns
        self._approvals: deque[Approval] = deque()
        self._totals: dict[tuple[str, int], int] = {}
        self.notional = 0.0
        """Gross notional of every pending contract, both sides, at its approval price."""
        self.net_notional = 0.0
        """Signed notional (buys positive) of every pending contract at its approval price."""
        for approval in approvals:
            self._append(approval)

    def to_list(self) -> list[Approval]:
        """The approvals not yet released, oldest first (what the constructor takes back)."""
        return [approval for approval in self._approvals if approval.quantity]

    def quantity(self, symbol: str, side: int) -> int:
        """Pending contracts on `side` (+1 buy, -1 sell) of `symbol`."""
        return self._totals.get((symbol, side), 0)

    def add(
        self, now_ns: int, symbol: str, side: int, quantity: int, contract_notional: float
    ) -> None:
        self._append(Approval(now_ns + self._ttl_ns, symbol, side, quantity, contract_notional))

    def _append(self, approval: Approval) -> None:
        self._approvals.append(approval)
        key = (approval.symbol, approval.side)
        self._totals[key] = self._totals.get(key, 0) + approval.quantity
        notional = approval.quantity * approval.contract_notional
        self.notional += notional
        self.net_notional += approval.side * notional

    def expire(self, now_ns: int) -> None:
        approvals = self._approvals
        while approvals and approvals[0].expires_ns <= now_ns:
            self._release(approvals.popleft(), None)

    def fill(self, symbol: str, side: int, quantity: int) -> None:
        """Release `quantity` filled contracts, oldest approvals first; a fill of an order
        risk never approved (a manual trade) releases nothing."""
        for approval in self._approvals:
            if quantity == 0:
                break
            if approval.symbol == symbol and approval.side == side and approval.quantity:
                used = min(quantity, approval.quantity)
                self._release(approval, used)
                quantity -= used
        approvals = self._approvals
        while approvals and approvals[0].quantity == 0:
            approvals.popleft()

    def _release(self, approval: Approval, quantity: int | None) -> None:
        """Take `quantity` (None: all that is left) off an approval and the totals."""
        used = approval.quantity if quantity is None else quantity
        if not used:
            return
        approval.quantity -= used
        key = (approval.symbol, approval.side)
        left = self._totals[key] - used
        if left:
            self._totals[key] = left
        else:
            del self._totals[key]
        # Reset exactly when nothing is pending, so float drift cannot accumulate.
        notional = used * approval.contract_notional
        self.notional = self.notional - notional if self._totals else 0.0
        self.net_notional = self.net_notional - approval.side * notional if self._totals else 0.0
