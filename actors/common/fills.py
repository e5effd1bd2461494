"""What makes a fill impossible to book: one rule for every actor that keeps a position."""

import math

from actors.messages import Direction, Fill


def fill_defect(fill: Fill) -> str | None:
    """Why `fill` cannot be booked (None when it can): no side, no quantity, a price that
    is not finite and positive, a fee that is not finite. Risk and execution both refuse
    such a fill, so their positions never disagree about it."""
    if fill.side == Direction.FLAT or fill.quantity <= 0:
        return f"side {Direction(fill.side).name}, quantity {fill.quantity}"
    if not (0.0 < fill.price < math.inf and math.isfinite(fill.fee)):
        return f"price {fill.price}, fee {fill.fee}"
    return None
