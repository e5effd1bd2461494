"""ApiActor: the HTTP face of a running system (issue 4, design §6 "api").

It consumes the "risk_snapshots" stream to keep the latest risk picture, and reads the
health table and latency histograms straight from shared memory when asked: the API
never asks other actors anything, so a slow or dead actor cannot stall it.
"""

import contextlib
import os

from aiohttp import web

from actors.api.auth import Authenticator, allowed_hosts, load_token
from actors.api.health import HealthSource
from actors.api.params import ApiParams
from actors.api.server import Routes, build_app
from actors.api.state import RiskState
from actors.messages import PositionSnapshot, RiskSnapshot
from actors.risk.killswitch import KillSwitch
from kernel.actor import Actor

SHUTDOWN_TIMEOUT_S = 2.0
"""How long `on_stop` lets in-flight requests finish: a clean exit takes a few seconds."""


class ApiActor(Actor):
    """aiohttp on the node's own event loop, started in `on_start`, stopped in `on_stop`.

    Handlers run between message batches on the same loop; they only copy shared
    memory and encode, so the API belongs in a cold node, not next to the hot path.
    """

    Params = ApiParams
    params: ApiParams

    async def on_start(self) -> None:
        params = self.params
        self.risk = RiskState()
        self._health = HealthSource(self.context.system)
        self._switch = KillSwitch.open(self.context.system)
        auth = Authenticator(load_token(params.token_env, params.token_file), params.token_env)
        if not auth.enabled:
            self.log.warning(
                "no API token configured ($%s or token_file): the mutating endpoints "
                "(/risk/kill, /risk/reset, /control) are disabled",
                params.token_env,
            )
        self._routes = Routes(
            self.context.system,
            self._health,
            self.risk,
            params.execution,
            params.journal,
            self._switch,
            auth,
            params.journal_path,
        )
        # The Host check needs the bound port: it is set once the site listens.
        self._allowed: set[str] = set()
        app = build_app(self._routes, self.log, self._allowed)
        # No access log: a scraper polling every few seconds would flood the run's log.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.params.host, self.params.port)
        await site.start()
        self.port: int = self._runner.addresses[0][1]
        self._allowed.update(allowed_hosts(self.params.host, self.port))
        host = f"[{self.params.host}]" if ":" in self.params.host else self.params.host
        self.log.info("api listening on http://%s:%d", host, self.port)
        if self.params.port_file is not None:
            write_atomically(self.params.port_file, f"{self.port}\n")

    def on_risk_snapshot(self, snapshot: RiskSnapshot) -> None:
        self.risk.snapshot = snapshot
        self._routes.broadcast_risk()

    def on_position_snapshot(self, position: PositionSnapshot) -> None:
        self.risk.positions[position.symbol] = position

    async def on_stop(self) -> None:
        await self._runner.cleanup()
        self._health.close()
        self._switch.close()
        if self.params.port_file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.params.port_file)

    inputs = {RiskSnapshot: on_risk_snapshot, PositionSnapshot: on_position_snapshot}


def write_atomically(path: str, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees a partial port."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)
