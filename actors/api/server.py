"""The aiohttp application: routes for /health, /risk, /positions, /metrics, JSON errors.

Every answer is JSON except the Prometheus text of /metrics. A request the router
rejects (404, 405) and a handler that raises (500, logged) both get a JSON error body:
a bad request or a bug in a handler must never take the node down with it.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from actors.api.health import HealthSource, Row, all_running
from actors.api.metrics import (
    CONTENT_TYPE,
    JournalCollector,
    committed_journal_counts,
    committed_order_counts,
    render,
)
from actors.api.state import RiskState
from kernel.latency import read_histograms

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """orjson-encoded; NaN (a float not known yet, see actors.messages) becomes null."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


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
    ) -> None:
        self.system = system
        self.health = health
        self.risk = risk
        self.execution = execution
        self.journal = journal

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


def build_app(routes: Routes, log: logging.Logger) -> web.Application:
    app = web.Application(middlewares=[error_middleware(log)])
    app.router.add_get("/health", routes.get_health)
    app.router.add_get("/risk", routes.get_risk)
    app.router.add_get("/positions", routes.get_positions)
    app.router.add_get("/metrics", routes.get_metrics)
    return app
