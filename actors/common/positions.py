"""One symbol's position from its fills: quantity, average price, realized P&L net of fees.

The same arithmetic serves every book that must agree: the risk book, execution's order
table and the venue's account. Reconciliation compares them (actors/reconcile), so
they must not differ by a rounding that one of them does differently.
"""

import math

import msgspec


class PositionState(msgspec.Struct, array_like=True):
    symbol: str
    quantity: int
    avg_price: float
    realized: float
    mark: float
    trip_pnl: float


class Position:
    """One symbol's position. `avg_price` is NaN when flat (not known, per the messages)."""

    __slots__ = ("avg_price", "mark", "quantity", "realized", "symbol", "trip_pnl")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.quantity = 0
        self.avg_price = math.nan
        self.realized = 0.0
        self.mark = math.nan
        self.trip_pnl = 0.0
        """Realized P&L (net of fees) of the round trip now open."""

    def unrealized(self, point_value: float) -> float:
        if not self.quantity:
            return 0.0
        return (self.mark - self.avg_price) * self.quantity * point_value

    def apply(
        self, side: int, quantity: int, price: float, fee: float, point_value: float
    ) -> float | None:
        """Apply one fill; returns the P&L of the round trip it closed, if it closed one."""
        held = self.quantity
        if not held or (held > 0) == (side > 0):
            opened = abs(held) + quantity
            base = self.avg_price * abs(held) if held else 0.0
            self.avg_price = (base + price * quantity) / opened
            self.quantity = held + side * quantity
            self.realized -= fee
            self.trip_pnl -= fee
            return None
        closed = min(quantity, abs(held))
        pnl = closed * (price - self.avg_price) * (1 if held > 0 else -1) * point_value
        closing_fee = fee * closed / quantity  # a flip's fee is shared by the two trips
        self.realized += pnl - fee
        self.trip_pnl += pnl - closing_fee
        self.quantity = held + side * quantity
        if closed < abs(held):
            return None
        trip = self.trip_pnl
        if self.quantity:
            self.avg_price = price
            self.trip_pnl = -(fee - closing_fee)
        else:
            self.avg_price = math.nan
            self.trip_pnl = 0.0
        return trip

    def state(self) -> PositionState:
        return PositionState(
            self.symbol, self.quantity, self.avg_price, self.realized, self.mark, self.trip_pnl
        )

    @classmethod
    def from_state(cls, saved: PositionState) -> "Position":
        held = cls(saved.symbol)
        held.quantity, held.avg_price, held.realized = (
            saved.quantity,
            saved.avg_price,
            saved.realized,
        )
        held.mark, held.trip_pnl = saved.mark, saved.trip_pnl
        return held


Positions = dict[str, Position]
"""Symbol -> position: an account."""


def book_fill(
    account: Positions,
    symbol: str,
    side: int,
    quantity: int,
    price: float,
    fee: float,
    point_value: float,
) -> None:
    """Apply one fill to the account's position in `symbol` (opened flat when new)."""
    held = account.get(symbol)
    if held is None:
        held = account[symbol] = Position(symbol)
    held.apply(side, quantity, price, fee, point_value)
