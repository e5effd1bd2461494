"""Execution: approved risk verdicts become venue orders, tracked by an order state machine."""

from actors.execution.actor import (
    ExecutionActor,
    ExecutionCounts,
    ExecutionParams,
    client_order_id,
)
from actors.execution.orders import TERMINAL, TRANSITIONS, Order, OrderEvent, OrderState, Outcome

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "ExecutionActor",
    "ExecutionCounts",
    "ExecutionParams",
    "Order",
    "OrderEvent",
    "OrderState",
    "Outcome",
    "client_order_id",
]
