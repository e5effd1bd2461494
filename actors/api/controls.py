"""The operator's controls over HTTP: the kill switch and the trading state.

Each request body is a msgspec Struct: unknown fields, wrong types, empty or overlong
text, and anything that is not a JSON object are refused with a 400 naming the field,
before anything changes. The change itself goes to the system's kill-switch file (the
one every trading actor reads), recorded as `api:<operator>` with the reason; the journal
records it from there. Every answer carries the switch's state as it is after the change.
"""

from typing import Annotated, Literal

import msgspec

from actors.api.openapi import json_form
from actors.api.state import as_json
from actors.messages import TradingState
from actors.risk.killswitch import KillSwitch, KillSwitchState

KillSwitchBody = json_form(KillSwitchState, "KillSwitch")
"""The kill-switch file's record, enums by name."""

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Operator = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._@-]{1,64}$")]
"""Who asked: letters, digits and . _ @ - (an account name or an e-mail address)."""


class KillRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reason: Reason
    operator: Operator
    reducing_allowed: bool = False
    """Let orders that only reduce a position through while engaged."""


class ResetRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    operator: Operator


class ControlRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    command: Literal["HALT", "RESUME", "FLATTEN"]
    """HALT: only cancels pass; RESUME: trading ACTIVE again; FLATTEN: REDUCING, and the
    risk actor closes every position (within 100 ms)."""
    reason: Reason
    operator: Operator


class ControlAnswer(msgspec.Struct, frozen=True, kw_only=True):
    changed: bool
    """False when the switch or the state already was as asked."""
    kill_switch: KillSwitchBody  # type: ignore[valid-type]


def _answer(changed: bool, switch: KillSwitch) -> ControlAnswer:
    return ControlAnswer(changed=changed, kill_switch=KillSwitchBody(**as_json(switch.state())))


_COMMANDS = {"HALT": TradingState.HALTED, "RESUME": TradingState.ACTIVE}


def by(operator: str) -> str:
    return f"api:{operator}"


def engage(switch: KillSwitch, request: KillRequest) -> ControlAnswer:
    changed = switch.engage(request.reason, by(request.operator), request.reducing_allowed)
    return _answer(changed, switch)


def reset(switch: KillSwitch, request: ResetRequest) -> ControlAnswer:
    changed = switch.reset(by(request.operator))
    return _answer(changed, switch)


def control(switch: KillSwitch, request: ControlRequest) -> ControlAnswer:
    if request.command == "FLATTEN":
        switch.request_flatten(by(request.operator), request.reason)
        return _answer(True, switch)
    state = _COMMANDS[request.command]
    changed = switch.set_trading_state(state, by(request.operator), request.reason)
    return _answer(changed, switch)
