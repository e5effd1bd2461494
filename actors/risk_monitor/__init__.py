"""The risk monitor: portfolio VaR and ES, their backtest, correlation and volatility
watch, and the circuit breakers, off the order path (the gate is actors.risk)."""

from actors.risk_monitor.actor import MONITOR, RiskMonitorActor, RiskMonitorParams

__all__ = ["MONITOR", "RiskMonitorActor", "RiskMonitorParams"]
