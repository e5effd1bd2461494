"""The API: /health, /risk and /metrics over aiohttp on a loopback address."""

from actors.api.actor import ApiActor
from actors.api.params import ApiParams

__all__ = ["ApiActor", "ApiParams"]
