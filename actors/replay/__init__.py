"""Replay of recorded ticks or OHLCV bars from CSV or Parquet (the schema: `schema.py`)."""

from actors.replay.actor import ReplayActor, ReplayParams
from actors.replay.reader import Chunk, ReplaySource, read_chunks
from actors.replay.schema import ReplayError
from actors.replay.session import TradingSession
from actors.replay.stats import Reason, ReplayStats

__all__ = [
    "Chunk",
    "Reason",
    "ReplayActor",
    "ReplayError",
    "ReplayParams",
    "ReplaySource",
    "ReplayStats",
    "TradingSession",
    "read_chunks",
]
