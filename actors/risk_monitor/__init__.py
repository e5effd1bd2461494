"""The risk monitor: portfolio VaR and ES, their backtest, correlation and volatility
watch, and the circuit breakers, off the order path (the gate is actors.risk)."""
