"""The venue: a simulated exchange fed by the same market data as the strategies."""

from actors.common.recent import RecentIds
from actors.venue.actor import VenueActor
from actors.venue.book import SymbolBook
from actors.venue.venue import ExchangeParams, SimulatedVenue, SymbolSpec, VenueReply, VenueStats

__all__ = [
    "ExchangeParams",
    "RecentIds",
    "SimulatedVenue",
    "SymbolBook",
    "SymbolSpec",
    "VenueActor",
    "VenueReply",
    "VenueStats",
]
