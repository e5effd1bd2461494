"""Risk: the pre-trade gate (limits, sizing, kill switch) and the book it measures against."""

from actors.risk.actor import RiskActor, RiskParams
from actors.risk.book import InvalidFill, Position, RiskBook, TradeStats
from actors.risk.gate import RiskGate
from actors.risk.killswitch import KillSwitch, KillSwitchError, KillSwitchState, killswitch_path
from actors.risk.limits import RiskLimits
from actors.risk.sizing import kelly_fraction, risk_contracts

__all__ = [
    "InvalidFill",
    "KillSwitch",
    "KillSwitchError",
    "KillSwitchState",
    "Position",
    "RiskActor",
    "RiskBook",
    "RiskGate",
    "RiskLimits",
    "RiskParams",
    "TradeStats",
    "kelly_fraction",
    "killswitch_path",
    "risk_contracts",
]
