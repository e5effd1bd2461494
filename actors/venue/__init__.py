"""The venue: a simulated exchange fed by the same market data as the strategies."""

from actors.venue.actor import VenueActor
from actors.venue.book import BookState, SymbolBook
from actors.venue.ledger import OrderLedger, Outcome, VenueReply
from actors.venue.venue import ExchangeParams, SimulatedVenue, VenueStats

__all__ = [
    "BookState",
    "ExchangeParams",
    "OrderLedger",
    "Outcome",
    "SimulatedVenue",
    "SymbolBook",
    "VenueActor",
    "VenueReply",
    "VenueStats",
]
