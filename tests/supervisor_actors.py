"""Actors that die or linger at awkward moments, for the supervisor's race tests."""

import asyncio
import os
import signal
from pathlib import Path

import msgspec

from kernel.actor import Actor


class ExitAtStart(Actor):
    """Fails in on_start, so its node exits (status 1) moments after it is forked."""

    async def on_start(self) -> None:
        raise RuntimeError("told to exit at start")


class TermsParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    report: str
    """A file that holds the number of SIGTERMs received so far."""


class SecondTermStops(Actor):
    """Ignores the first SIGTERM (a slow shutdown) and exits, status 0, on the second."""

    Params = TermsParams

    async def on_start(self) -> None:
        self.terms = 0
        # Replaces the node's own SIGTERM handler (same loop), which would stop it.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._term)

    def _term(self) -> None:
        self.terms += 1
        Path(self.params.report).write_text(str(self.terms))
        if self.terms >= 2:
            os._exit(0)


class IgnoresTerm(Actor):
    """Ignores SIGTERM: only the supervisor's SIGKILL after the shutdown timeout ends it."""

    async def on_start(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)


def broken_hook(config: object, reason: str) -> None:
    """A failure hook that raises (the supervisor must run the next ones anyway)."""
    raise RuntimeError(f"broken hook told: {reason}")
