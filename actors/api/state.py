"""The latest risk picture, kept from the "risk_snapshots" stream for /risk and /metrics.

Only the newest snapshot matters to a reader, so nothing is queued: each message
replaces its predecessor (the account snapshot, or the position of its symbol).
"""

from enum import Enum
from typing import Any

import msgspec

from actors.messages import PositionSnapshot, RiskSnapshot
from kernel.messages import Message

ENVELOPE = frozenset(Message.__struct_fields__)
"""Transport fields (seq, ts_ns, origin_ns): about the stream, not the risk state."""
# (actors.api.openapi derives the answers' schemas from the same rule: `json_form`)


def as_json(msg: msgspec.Struct) -> dict[str, Any]:
    """A message's domain fields as a dict, enums by name (the wire form is array-like,
    so `msgspec.to_builtins` would give a bare list)."""
    out: dict[str, Any] = {}
    for field in msg.__struct_fields__:
        if field in ENVELOPE:
            continue
        value = getattr(msg, field)
        out[field] = value.name if isinstance(value, Enum) else msgspec.to_builtins(value)
    return out


class Portfolio(msgspec.Struct, frozen=True, kw_only=True):
    """The /positions body's totals, from the account snapshot."""

    symbols: int
    """Symbols with a position."""
    net_position: int
    gross_notional: float | None
    net_notional: float | None
    concentration: float | None
    realized_pnl: float | None
    unrealized_pnl: float | None
    daily_pnl: float | None
    equity: float | None


class RiskState:
    """Latest RiskSnapshot and latest PositionSnapshot per symbol."""

    def __init__(self) -> None:
        self.snapshot: RiskSnapshot | None = None
        self.positions: dict[str, PositionSnapshot] = {}

    def positions_json(self) -> dict[str, Any] | None:
        """The /positions body: each symbol's position and P&L, and the portfolio's
        totals from the account snapshot; None before the first RiskSnapshot arrived."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        positions = self._positions_json()
        portfolio = Portfolio(
            symbols=sum(1 for p in positions if p["quantity"]),
            net_position=snapshot.net_position,
            gross_notional=snapshot.gross_notional,
            net_notional=snapshot.net_notional,
            concentration=snapshot.concentration,
            realized_pnl=snapshot.realized_pnl,
            unrealized_pnl=snapshot.unrealized_pnl,
            daily_pnl=snapshot.daily_pnl,
            equity=snapshot.equity,
        )
        return {
            "as_of_ns": snapshot.event_ns,
            "positions": positions,
            "portfolio": msgspec.to_builtins(portfolio),
        }

    def to_json(self) -> dict[str, Any] | None:
        """The /risk body, or None before the first RiskSnapshot arrived."""
        if self.snapshot is None:
            return None
        body = as_json(self.snapshot)
        body["as_of_ns"] = body.pop("event_ns")
        body["positions"] = self._positions_json()
        return body

    def _positions_json(self) -> list[dict[str, Any]]:
        return [as_json(self.positions[symbol]) for symbol in sorted(self.positions)]
