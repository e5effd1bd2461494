"""`Tick` messages from columns of market data: the synthetic feed's batches and the
replayed files' chunks are turned into messages by this one function."""

from collections.abc import Iterable, Iterator
from itertools import repeat

import numpy as np

from actors.messages import UNKNOWN_REGIME, Tick


def make_ticks(
    symbol: str | np.ndarray,
    event_ns: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_size: np.ndarray,
    ask_size: np.ndarray,
    regime: np.ndarray | None = None,
) -> Iterator[Tick]:
    """One `Tick` per row of the equal-length columns, made as the iterator is consumed
    (a paced publisher makes each message when it is due, not a chunk of them ahead).

    `symbol` is one symbol for every row or an array of one per row; `regime` is the
    synthetic generator's label per row, None for real data (`UNKNOWN_REGIME`). Columns go
    through `tolist()` so the fields hold Python ints and floats, as the message types say.
    """
    symbols: Iterable[str] = repeat(symbol) if isinstance(symbol, str) else symbol.tolist()
    regimes: Iterable[int] = repeat(UNKNOWN_REGIME) if regime is None else regime.tolist()
    for sym, t, p, s, b, a, bs, as_, r in zip(
        symbols,
        event_ns.tolist(),
        price.tolist(),
        size.tolist(),
        bid.tolist(),
        ask.tolist(),
        bid_size.tolist(),
        ask_size.tolist(),
        regimes,
        strict=False,  # the repeat()s are endless; the columns have one length
    ):
        yield Tick(
            symbol=sym,
            price=p,
            size=s,
            bid=b,
            ask=a,
            event_ns=t,
            regime=r,
            bid_size=bs,
            ask_size=as_,
        )
