"""The risk book: positions and P&L per symbol from fills, marks from bars.

Position quantity is signed (long > 0). Realized P&L is net of fees; unrealized is marked
at the last bar close (or the last fill price until a bar of the symbol arrives). The day
is the UTC day of the latest event's market time (bar end, fill time), so a replay gets
the same daily P&L as the live run. Closed round trips (flat -> position -> flat, or a
flip through zero) feed the win/loss statistics that Kelly sizing reads.

`state()` / `restore()` turn the book into data and back: the risk actor snapshots it
to shared memory after every fill, so a restarted actor continues where it was.
"""

import math
from collections.abc import Mapping

import msgspec

from actors.common.fills import fill_defect
from actors.common.positions import Position, PositionState
from actors.common.recent import RecentIds
from actors.messages import Bar, Fill

DAY_NS = 86_400_000_000_000
REMEMBERED_FILLS = 100_000
PERSISTED_FILL_IDS = 1_024
"""Fill ids kept in a snapshot: redelivery after a crash only repeats the newest ones."""


class BookState(msgspec.Struct, array_like=True):
    """Everything the book must not lose on a crash (see `RiskBook.state`)."""

    positions: list[PositionState]
    wins: int
    losses: int
    gross_win: float
    gross_loss: float
    consecutive_losses: int
    event_ns: int
    day: int
    day_start_equity: float
    peak_equity: float
    fill_ids: list[msgspec.Raw]
    """The newest fill ids (`RecentIds.saved`)."""


class InvalidFill(ValueError):
    """A fill the book cannot apply (no side, no quantity, a price that is not a number)."""


class TradeStats:
    """Wins and losses of closed round trips, net of fees. A scratch (P&L <= 0) is a loss:
    after fees it cost money."""

    __slots__ = ("consecutive_losses", "gross_loss", "gross_win", "losses", "wins")

    def __init__(self) -> None:
        self.wins = 0
        self.losses = 0
        self.gross_win = 0.0
        self.gross_loss = 0.0
        """Sum of the losing trips' losses, as a positive amount."""
        self.consecutive_losses = 0

    def record(self, pnl: float) -> None:
        if pnl > 0.0:
            self.wins += 1
            self.gross_win += pnl
            self.consecutive_losses = 0
        else:
            self.losses += 1
            self.gross_loss -= pnl
            self.consecutive_losses += 1

    @property
    def trades(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    @property
    def payoff_ratio(self) -> float:
        """Average win / average loss; inf with no loss yet, 0 with no win."""
        if not self.wins:
            return 0.0
        if self.gross_loss <= 0.0:
            return math.inf
        return (self.gross_win / self.wins) / (self.gross_loss / self.losses)


class RiskBook:
    """Totals (equity, gross notional, net position) are recomputed when a bar or a fill
    changes them, so the gate on the order path reads plain attributes."""

    def __init__(self, initial_equity: float, point_values: Mapping[str, float]) -> None:
        self.initial_equity = initial_equity
        self.point_values = point_values
        """Money per point of one contract, per symbol the book may hold."""
        self.positions: dict[str, Position] = {}
        self.stats = TradeStats()
        self.event_ns = 0
        """Market time of the latest bar or fill applied."""
        self.realized_pnl = 0.0
        self.unrealized_pnl = 0.0
        self.equity = initial_equity
        self.gross_notional = 0.0
        """Sum over symbols of |contracts| x mark x point value."""
        self.net_notional = 0.0
        """Sum over symbols of signed contracts x mark x point value."""
        self.largest_notional = 0.0
        """The largest |contracts| x mark x point value of one symbol."""
        self.net_position = 0
        self._day = -1
        self._day_start_equity = initial_equity
        self._peak_equity = initial_equity
        self._fill_ids = RecentIds(REMEMBERED_FILLS, PERSISTED_FILL_IDS)

    def state(self) -> BookState:
        """The book as data, for a crash-safe snapshot after every fill."""
        stats = self.stats
        return BookState(
            positions=[held.state() for held in self.positions.values()],
            wins=stats.wins,
            losses=stats.losses,
            gross_win=stats.gross_win,
            gross_loss=stats.gross_loss,
            consecutive_losses=stats.consecutive_losses,
            event_ns=self.event_ns,
            day=self._day,
            day_start_equity=self._day_start_equity,
            peak_equity=self._peak_equity,
            fill_ids=self._fill_ids.saved(),
        )

    def restore(self, state: BookState) -> None:
        """Continue from a snapshot taken by a predecessor (crash-only restart)."""
        for saved in state.positions:
            self.positions[saved.symbol] = Position.from_state(saved)
        stats = self.stats
        stats.wins, stats.losses = state.wins, state.losses
        stats.gross_win, stats.gross_loss = state.gross_win, state.gross_loss
        stats.consecutive_losses = state.consecutive_losses
        self.event_ns, self._day = state.event_ns, state.day
        self._day_start_equity, self._peak_equity = state.day_start_equity, state.peak_equity
        self._fill_ids = RecentIds(REMEMBERED_FILLS, PERSISTED_FILL_IDS, state.fill_ids)
        self._revalue()

    def position(self, symbol: str) -> int:
        held = self.positions.get(symbol)
        return held.quantity if held is not None else 0

    def mark(self, symbol: str) -> float:
        """The last bar close (NaN if the symbol was never marked)."""
        held = self.positions.get(symbol)
        return held.mark if held is not None else math.nan

    def notional(self, symbol: str) -> float:
        """Signed contracts x mark x point value of `symbol` (0 when flat or unknown)."""
        held = self.positions.get(symbol)
        if held is None or not held.quantity or symbol not in self.point_values:
            return 0.0
        return held.quantity * held.mark * self.point_values[symbol]

    @property
    def concentration(self) -> float:
        """The largest position's share of the gross notional (0 when flat)."""
        return self.largest_notional / self.gross_notional if self.gross_notional else 0.0

    def on_bar(self, bar: Bar) -> None:
        """Mark `bar.symbol` at the close; a close that is not a positive number, or a
        symbol the book does not trade, is ignored (the last good mark stays)."""
        self._advance(bar.end_ns)
        if bar.close > 0.0 and math.isfinite(bar.close) and bar.symbol in self.point_values:
            self._position(bar.symbol).mark = bar.close
            self._revalue()

    def on_fill(self, fill: Fill) -> bool:
        """Apply a fill once: False if its fill_id was applied already (redelivery)."""
        defect = fill_defect(fill)
        if defect is None and fill.symbol not in self.point_values:
            defect = f"symbol {fill.symbol!r} is not a traded instrument"
        if defect is not None:
            raise InvalidFill(f"fill {fill.fill_id}: {defect}")
        if not self._fill_ids.add(fill.fill_id):
            return False
        self._advance(fill.event_ns)
        held = self._position(fill.symbol)
        if math.isnan(held.mark):
            held.mark = fill.price
        point_value = self.point_values[fill.symbol]
        trip = held.apply(int(fill.side), fill.quantity, fill.price, fill.fee, point_value)
        if trip is not None:
            self.stats.record(trip)
        self._revalue()
        return True

    @property
    def daily_pnl(self) -> float:
        """Equity change since the first event of the current UTC day."""
        return self.equity - self._day_start_equity

    @property
    def drawdown_pct(self) -> float:
        """Drawdown from the equity high-water mark, percent."""
        return max(0.0, (self._peak_equity - self.equity) / self._peak_equity * 100.0)

    def _position(self, symbol: str) -> Position:
        held = self.positions.get(symbol)
        if held is None:
            held = self.positions[symbol] = Position(symbol)
        return held

    def _revalue(self) -> None:
        point_values = self.point_values
        realized = unrealized = gross = net_notional = largest = 0.0
        net = 0
        for held in self.positions.values():
            realized += held.realized
            point_value = point_values.get(held.symbol)
            if held.quantity and point_value is not None:  # not traded: halts trading
                unrealized += held.unrealized(point_value)
                notional = held.quantity * held.mark * point_value
                net_notional += notional
                notional = abs(notional)
                gross += notional
                if notional > largest:
                    largest = notional
                net += held.quantity
        self.realized_pnl = realized
        self.unrealized_pnl = unrealized
        self.equity = self.initial_equity + realized + unrealized
        self.gross_notional = gross
        self.net_notional = net_notional
        self.largest_notional = largest
        self.net_position = net
        self._peak_equity = max(self._peak_equity, self.equity)

    def _advance(self, event_ns: int) -> None:
        """Move market time forward; the first event of a new UTC day starts its P&L from
        the equity as it stood before that event."""
        if event_ns <= self.event_ns:
            return
        self.event_ns = event_ns
        day = event_ns // DAY_NS
        if day > self._day:
            self._day = day
            self._day_start_equity = self.equity
