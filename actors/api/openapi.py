"""The OpenAPI 3.1 document of the API, generated from the msgspec types the handlers
decode request bodies into and encode answers from (msgspec's JSON Schema of each).

Snapshots travel as array-like messages; the API answers with their fields by name,
enums by name and NaN as null (actors.api.state.as_json). `json_form` derives that
shape's type from the message type itself, so the document follows the messages.
"""

import enum
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from actors.api.state import ENVELOPE, Portfolio
from actors.execution.orders import Order
from actors.messages import Fill, PositionSnapshot, RiskSnapshot, VarBacktestSummary


class ErrorBody(msgspec.Struct, frozen=True):
    error: str
    """Why the request was refused or failed."""


def _json_type(annotation: Any) -> Any:
    """The JSON form of a field's type: enums by name, floats nullable (NaN is null)."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return Literal[tuple(member.name for member in annotation)]  # type: ignore[misc]
    if annotation is float:
        return float | None
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return json_form(annotation, annotation.__name__)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = tuple(_json_type(member) for member in typing.get_args(annotation))
        return typing.Union[members]  # noqa: UP007 (built from a tuple)
    if origin is dict:
        key, value = typing.get_args(annotation)
        return dict[key, _json_type(value)]  # type: ignore[valid-type]
    if origin is list:
        (item,) = typing.get_args(annotation)
        return list[_json_type(item)]  # type: ignore[valid-type]
    return annotation


def json_form(
    message: type[msgspec.Struct],
    name: str,
    renames: dict[str, str] | None = None,
    extra: list[tuple[str, Any]] | None = None,
) -> type[msgspec.Struct]:
    """A Struct of `message`'s domain fields in their JSON form (`_json_type`), some
    renamed, plus `extra` fields: the schema of what `as_json` makes of it. One type per
    name, so that a message nested in two answers is one schema component."""
    if name in _JSON_FORMS:
        return _JSON_FORMS[name]
    renames = renames or {}
    hints = typing.get_type_hints(message)
    fields = [
        (renames.get(field, field), _json_type(hints[field]))
        for field in message.__struct_fields__
        if field not in ENVELOPE
    ]
    form = msgspec.defstruct(name, [*fields, *(extra or [])], kw_only=True)
    _JSON_FORMS[name] = form
    return form


_JSON_FORMS: dict[str, type[msgspec.Struct]] = {}


PositionBody = json_form(PositionSnapshot, "Position")
VarBacktestBody = _json_type(VarBacktestSummary)
RiskBody = json_form(
    RiskSnapshot,
    "Risk",
    renames={"event_ns": "as_of_ns"},
    extra=[("positions", list[PositionBody])],  # type: ignore[valid-type]
)


class PositionsBody(msgspec.Struct, frozen=True, kw_only=True):
    as_of_ns: int
    positions: list[PositionBody]  # type: ignore[valid-type]
    portfolio: Portfolio


class LimitsBody(msgspec.Struct, frozen=True, kw_only=True):
    limits: dict[str, float]
    """Each limit of the gate by name."""
    utilisation: dict[str, float | None]
    """Each limit's use as a fraction of it (1 = at the limit)."""


class BacktestBody(msgspec.Struct, frozen=True, kw_only=True):
    var_method: str
    backtests: list[VarBacktestBody]  # type: ignore[valid-type]


OrderBody = json_form(Order, "Order")
FillBody = json_form(Fill, "Fill")


class OrdersBody(msgspec.Struct, frozen=True, kw_only=True):
    working: list[OrderBody]  # type: ignore[valid-type]
    finished: list[OrderBody]  # type: ignore[valid-type]
    """Newest first, at most `limit` (100; up to 1,000)."""


class FillsBody(msgspec.Struct, frozen=True, kw_only=True):
    fills: list[FillBody]  # type: ignore[valid-type]
    """Oldest first from `since_ns`, at most `limit`."""


class HealthBody(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok", "degraded"]
    system: str
    actors: list[dict[str, Any]]
    """Each actor's health row (state, pid, restarts, heartbeat age, ring depth, ...)."""
    error: str | None = None
    """Why there is no health table, when there is none."""


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    answer: Any
    """The type of a 200 answer's body (None: not JSON, e.g. /metrics)."""
    body: type | None = None
    """The type the request body is decoded into (None: no body)."""
    mutating: bool = False
    """Needs the bearer token."""
    unavailable: str = ""
    """When it answers 503, if it can."""


def document(endpoints: list[Endpoint]) -> dict[str, Any]:
    types = {ErrorBody}
    for endpoint in endpoints:
        types |= {t for t in (endpoint.body, endpoint.answer) if isinstance(t, type)}
    schemas, components = msgspec.json.schema_components(
        sorted(types, key=lambda t: t.__name__), ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(sorted(types, key=lambda t: t.__name__), schemas, strict=True))
    error = {"application/json": {"schema": by_type[ErrorBody]}}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        ok: dict[str, Any] = {"description": "OK"}
        if endpoint.answer is not None:
            ok["content"] = {"application/json": {"schema": by_type[endpoint.answer]}}
        else:
            ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {"200": ok}
        operation: dict[str, Any] = {"summary": endpoint.summary, "responses": responses}
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[endpoint.body]}},
            }
            responses["400"] = {"description": "invalid body", "content": error}
            responses["413"] = {"description": "body too large", "content": error}
        if endpoint.mutating:
            operation["security"] = [{"bearer": []}]
            responses["401"] = {"description": "missing or wrong token", "content": error}
            responses["403"] = {
                "description": "no token configured, or a foreign Host",
                "content": error,
            }
        else:
            responses["403"] = {"description": "a foreign Host header", "content": error}
        if endpoint.unavailable:
            responses["503"] = {"description": endpoint.unavailable, "content": error}
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "GrandModel API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
