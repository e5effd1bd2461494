"""The market data feed: a seeded synthetic market and the actor that paces its ticks."""

from actors.feed.actor import FeedActor, FeedParams
from actors.feed.market import MarketParams, SyntheticMarket, TickBatch

__all__ = ["FeedActor", "FeedParams", "MarketParams", "SyntheticMarket", "TickBatch"]
