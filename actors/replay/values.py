"""Checks of each row on its own: prices, sizes, the quote and the bar's OHLC."""

import numpy as np

from actors.replay.rows import Rows
from actors.replay.schema import Layout
from actors.replay.stats import Reason


def check_values(rows: Rows, layout: Layout) -> None:
    """Reject rows whose values cannot be a real print or bar (see the schema)."""
    column = {name: rows.values[:, j] for j, name in enumerate(layout.values)}
    for name in layout.prices:
        v = column[name]
        rows.reject(~np.isfinite(v), Reason.NAN_PRICE, lambda i, v=v, n=name: f"`{n}` is {v[i]}")
    for name in layout.prices:
        v = column[name]
        rows.reject(v <= 0, Reason.NON_POSITIVE_PRICE, lambda i, v=v, n=name: f"`{n}` is {v[i]}")
    for name in layout.sizes:
        v = column[name]
        rows.reject(v < 0, Reason.NEGATIVE_SIZE, lambda i, v=v, n=name: f"`{n}` is {v[i]:g}")
    if "bid" in column:
        bid, ask = column["bid"], column["ask"]
        rows.reject(bid > ask, Reason.CROSSED_QUOTE, lambda i: f"bid {bid[i]} > ask {ask[i]}")
    if layout.kind == "bars":
        o, h, low, c = (column[name] for name in ("open", "high", "low", "close"))
        rows.reject(
            (h < np.maximum(o, c)) | (low > np.minimum(o, c)),
            Reason.OHLC_INCONSISTENT,
            lambda i: (
                f"open {o[i]} high {h[i]} low {low[i]} close {c[i]}: the high must be "
                "the highest and the low the lowest"
            ),
        )
