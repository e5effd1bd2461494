"""The aiohttp application: the read endpoints, the operator's controls, the OpenAPI
document, JSON errors.

Every answer is JSON except the Prometheus text of /metrics. A request the router
rejects (404, 405), a body that is too large (413) or invalid (400), a foreign Host (403)
and a handler that raises (500, logged) all get a JSON error body: a bad request or a bug
in a handler must never take the node down with it. The mutating endpoints need the
bearer token (auth.py); their bodies are decoded into the Structs of controls.py.
"""

import asyncio
import contextlib
import logging
import typing
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal, TypeVar

import msgspec
import orjson
from aiohttp import web

from actors.api import controls
from actors.api.auth import Authenticator
from actors.api.blotter import MAX_ROWS, committed_orders, journal_fills, order_json
from actors.api.health import HealthSource, Row, all_running
from actors.api.metrics import (
    CONTENT_TYPE,
    JournalCollector,
    committed_journal_counts,
    committed_order_counts,
    render,
)
from actors.api.openapi import (
    BacktestBody,
    Endpoint,
    FillsBody,
    HealthBody,
    LimitsBody,
    OrdersBody,
    PositionsBody,
    RiskBody,
    document,
)
from actors.api.state import RiskState
from actors.journal.query import JournalError
from actors.risk.killswitch import KillSwitch
from kernel.latency import read_histograms

MAX_BODY_BYTES = 16 * 1024
"""A control's body is a few hundred bytes: anything much larger is refused (413)."""
Body = TypeVar("Body", bound=msgspec.Struct)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """orjson-encoded; NaN (a float not known yet, see actors.messages) becomes null."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def host_middleware(
    allowed: Collection[str],
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Refuse a request whose Host header is not this server's (DNS rebinding)."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Host", "") not in allowed:
            return json_response({"error": "Host header does not name this server"}, 403)
        return await handler(request)

    return check_host


def error_middleware(
    log: logging.Logger,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Turn router errors and handler exceptions into JSON error answers."""

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed as exc:
            return json_response(
                {"error": f"method {request.method} not allowed on {request.path}"},
                status=exc.status,
                headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
            )
        except web.HTTPNotFound as exc:
            return json_response({"error": f"no endpoint {request.path}"}, status=exc.status)
        except web.HTTPRequestEntityTooLarge as exc:
            return json_response(
                {"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status=exc.status
            )
        except web.HTTPException as exc:
            return json_response({"error": exc.reason}, status=exc.status)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return json_response({"error": "internal error"}, status=500)

    return json_errors


class Routes:
    """The handlers, over the API actor's view of the system."""

    def __init__(
        self,
        system: str,
        health: HealthSource,
        risk: RiskState,
        execution: str = "execution",
        journal: str = "journal",
        switch: KillSwitch | None = None,
        auth: Authenticator | None = None,
        journal_path: str | None = None,
    ) -> None:
        self.system = system
        self.health = health
        self.risk = risk
        self.execution = execution
        self.journal = journal
        self.switch = switch
        """The system's kill switch (None: the controls answer 503)."""
        self.auth = auth or Authenticator(None, "GRANDMODEL_API_TOKEN")
        self.journal_path = journal_path
        self.openapi: dict[str, Any] = {}
        self.pushers: set[LatestPusher] = set()

    async def _authorized_body(
        self, request: web.Request, kind: type[Body]
    ) -> tuple[Body | None, web.Response | None]:
        """The request's body as `kind`, or the refusal to answer with (auth first)."""
        refusal = self.auth.refusal(request)
        if refusal is not None:
            status, reason = refusal
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return None, json_response({"error": reason}, status, headers)
        if self.switch is None:
            return None, json_response({"error": "no kill switch attached"}, 503)
        raw = await request.read()
        try:
            return msgspec.json.decode(raw, type=kind), None
        except msgspec.ValidationError as error:
            return None, json_response({"error": f"invalid body: {_explained(error, kind)}"}, 400)
        except msgspec.DecodeError as error:
            return None, json_response({"error": f"body is not JSON: {error}"}, 400)

    async def _control(
        self,
        request: web.Request,
        kind: type[Body],
        apply: Callable[[KillSwitch, Any], controls.ControlAnswer],
    ) -> web.Response:
        body, refusal = await self._authorized_body(request, kind)
        if refusal is not None:
            return refusal
        assert self.switch is not None and body is not None
        return json_response(msgspec.to_builtins(apply(self.switch, body)))

    async def post_kill(self, request: web.Request) -> web.Response:
        return await self._control(request, controls.KillRequest, controls.engage)

    async def post_reset(self, request: web.Request) -> web.Response:
        return await self._control(request, controls.ResetRequest, controls.reset)

    async def post_control(self, request: web.Request) -> web.Response:
        return await self._control(request, controls.ControlRequest, controls.control)

    async def get_limits(self, request: web.Request) -> web.Response:
        body = self.risk.to_json()
        if body is None:
            return json_response({"error": "no risk snapshot yet"}, status=503)
        return json_response({"limits": body["limits"], "utilisation": body["utilisation"]})

    async def get_var_backtest(self, request: web.Request) -> web.Response:
        body = self.risk.to_json()
        if body is None:
            return json_response({"error": "no risk snapshot yet"}, status=503)
        return json_response({"var_method": body["var_method"], "backtests": body["var_backtests"]})

    async def get_openapi(self, request: web.Request) -> web.Response:
        return json_response(self.openapi)

    async def get_orders(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 100, 1, MAX_ROWS)
        committed = committed_orders(self.system, self.execution)
        if committed is None:
            return json_response({"error": "execution has committed no order table yet"}, 503)
        working, finished = committed
        return json_response(
            {
                "working": [order_json(order) for order in working],
                "finished": [order_json(order) for order in finished[:limit]],
            }
        )

    async def get_fills(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 100, 1, MAX_ROWS)
        since_ns = _int_query(request, "since_ns", 0, 0, 2**63 - 1)
        if self.journal_path is None:
            return json_response({"error": "no journal_path configured"}, 503)
        try:
            fills = journal_fills(self.journal_path, since_ns or None, limit)
        except JournalError as error:
            return json_response({"error": str(error)}, 503)
        return json_response({"fills": fills})

    async def ws_risk(self, request: web.Request) -> web.StreamResponse:
        """Each new risk snapshot (the latest one first), as the /risk body; a client too
        slow for every one gets the newest when it is ready (snapshots replace each other)."""
        socket = web.WebSocketResponse(heartbeat=30.0)
        await socket.prepare(request)
        pusher = LatestPusher(socket)
        self.pushers.add(pusher)
        body = self.risk.to_json()
        if body is not None:
            pusher.offer(orjson.dumps(body).decode())
        try:
            async for _ in socket:  # the client says nothing that matters; wait for close
                pass
        finally:
            self.pushers.discard(pusher)
            pusher.close()
        return socket

    def broadcast_risk(self) -> None:
        """A new snapshot: offer it to every /ws/risk client."""
        if not self.pushers:
            return
        body = self.risk.to_json()
        if body is not None:
            text = orjson.dumps(body).decode()
            for pusher in self.pushers:
                pusher.offer(text)

    def _rows(self) -> tuple[list[Row], str | None]:
        """The health rows, or none and why when the system's table does not exist."""
        try:
            return self.health.rows(), None
        except FileNotFoundError as exc:
            return [], str(exc)

    async def get_health(self, request: web.Request) -> web.Response:
        rows, missing = self._rows()
        ok = missing is None and all_running(rows)
        body: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "system": self.system,
            "actors": rows,
        }
        if missing is not None:
            body["error"] = missing
        return json_response(body, status=200 if ok else 503)

    async def get_risk(self, request: web.Request) -> web.Response:
        body = self.risk.to_json()
        if body is None:
            return json_response({"error": "no risk snapshot yet"}, status=503)
        return json_response(body)

    async def get_positions(self, request: web.Request) -> web.Response:
        body = self.risk.positions_json()
        if body is None:
            return json_response({"error": "no risk snapshot yet"}, status=503)
        return json_response(body)

    async def get_metrics(self, request: web.Request) -> web.Response:
        rows, _ = self._rows()
        counts = committed_order_counts(self.system, self.execution)
        journal = JournalCollector(
            committed_journal_counts(self.system, self.journal), rows, self.journal
        )
        text = render(rows, read_histograms(self.system), self.risk, counts, journal)
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})


class LatestPusher:
    """Sends one socket the newest text offered, never a queue of stale ones."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self._socket = socket
        self._latest: str | None = None
        self._ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._send())

    def offer(self, text: str) -> None:
        self._latest = text
        self._ready.set()

    async def _send(self) -> None:
        while not self._socket.closed:
            await self._ready.wait()
            self._ready.clear()
            text, self._latest = self._latest, None
            if text is not None:
                with contextlib.suppress(ConnectionResetError):
                    await self._socket.send_str(text)

    def close(self) -> None:
        self._task.cancel()


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; a 400 naming it otherwise."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise web.HTTPBadRequest(reason=f"query {name}: an integer from {low} to {high}")
    return value


def _explained(error: msgspec.ValidationError, kind: type) -> str:
    """msgspec's message, with the accepted values when a field takes only a few."""
    text = str(error)
    field = text.rpartition("`$.")[2].rstrip("`")
    annotation = typing.get_type_hints(kind).get(field)
    if typing.get_origin(annotation) is Literal:
        return f"{text} (one of {', '.join(map(str, typing.get_args(annotation)))})"
    return text


NO_SNAPSHOT = "no risk snapshot yet (the monitor publishes one as it starts)"


def endpoints(routes: Routes) -> list[tuple[Endpoint, Handler]]:
    """Every route with what the OpenAPI document says of it."""
    return [
        (
            Endpoint(
                "GET",
                "/health",
                "every actor's health row",
                HealthBody,
                unavailable="an actor is not running",
            ),
            routes.get_health,
        ),
        (
            Endpoint(
                "GET",
                "/risk",
                "the risk snapshot with every position",
                RiskBody,
                unavailable=NO_SNAPSHOT,
            ),
            routes.get_risk,
        ),
        (
            Endpoint(
                "GET",
                "/risk/limits",
                "the gate's limits and their use",
                LimitsBody,
                unavailable=NO_SNAPSHOT,
            ),
            routes.get_limits,
        ),
        (
            Endpoint(
                "GET",
                "/risk/var/backtest",
                "the VaR backtests",
                BacktestBody,
                unavailable=NO_SNAPSHOT,
            ),
            routes.get_var_backtest,
        ),
        (
            Endpoint(
                "GET",
                "/positions",
                "each position and the portfolio's totals",
                PositionsBody,
                unavailable=NO_SNAPSHOT,
            ),
            routes.get_positions,
        ),
        (Endpoint("GET", "/metrics", "Prometheus text", None), routes.get_metrics),
        (
            Endpoint(
                "GET",
                "/orders",
                "working and recently finished orders",
                OrdersBody,
                unavailable="no order table committed yet",
            ),
            routes.get_orders,
        ),
        (
            Endpoint(
                "GET",
                "/fills",
                "fills from the journal",
                FillsBody,
                unavailable="no readable journal",
            ),
            routes.get_fills,
        ),
        (
            Endpoint(
                "POST",
                "/risk/kill",
                "engage the kill switch",
                controls.ControlAnswer,
                controls.KillRequest,
                mutating=True,
            ),
            routes.post_kill,
        ),
        (
            Endpoint(
                "POST",
                "/risk/reset",
                "reset the kill switch",
                controls.ControlAnswer,
                controls.ResetRequest,
                mutating=True,
            ),
            routes.post_reset,
        ),
        (
            Endpoint(
                "POST",
                "/control",
                "HALT or RESUME trading",
                controls.ControlAnswer,
                controls.ControlRequest,
                mutating=True,
            ),
            routes.post_control,
        ),
    ]


def build_app(
    routes: Routes, log: logging.Logger, allowed_hosts: Collection[str] | None = None
) -> web.Application:
    """The application; with `allowed_hosts`, a request with another Host is refused."""
    middlewares = [error_middleware(log)]
    if allowed_hosts is not None:
        middlewares.insert(0, host_middleware(allowed_hosts))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    table = endpoints(routes)
    for endpoint, handler in table:
        app.router.add_route(endpoint.method, endpoint.path, handler)
    routes.openapi = document([endpoint for endpoint, _ in table])
    app.router.add_get("/openapi.json", routes.get_openapi)
    app.router.add_get("/ws/risk", routes.ws_risk)
    return app
