"""`grandmodel control`: the kill switch and the trading state from the command line.

The same changes as the API's controls, for an operator at the machine (whoever may
write the system's shared memory): show the switch's record, HALT, RESUME, FLATTEN,
engage or reset the kill switch. Each change is recorded as `cli:<operator>` with its
reason, and the journal records it from the switch. It works whether or not the system
runs: a halt latched by a breaker outlives the run, and this is how a stopped system's
operator clears it.
"""

import argparse
import json
import sys
from pathlib import Path

import msgspec

from actors.messages import TradingState
from actors.risk.killswitch import KillSwitch
from config.loader import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grandmodel control",
        description="Show or change the kill switch and the trading state of a system.",
    )
    parser.add_argument("--config", type=Path, help="the system's config (default: embedded)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="the switch's record, as JSON")
    for name, text in (
        ("halt", "HALTED: only cancels pass"),
        ("resume", "ACTIVE again"),
        ("flatten", "REDUCING, and the risk actor closes every position"),
        ("kill", "engage the kill switch"),
        ("reset", "reset the kill switch"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--operator", required=True, help="who (recorded)")
        if name != "reset":
            command.add_argument("--reason", required=True, help="why (recorded)")
        if name == "kill":
            command.add_argument(
                "--reducing-allowed",
                action="store_true",
                help="let orders that only reduce a position through",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        system = load_config(args.config).name
    except ConfigError as error:
        print(f"grandmodel control: {error}", file=sys.stderr)
        return 2
    with KillSwitch.open(system) as switch:
        by = f"cli:{getattr(args, 'operator', '')}"
        if args.command == "halt":
            switch.set_trading_state(TradingState.HALTED, by, args.reason)
        elif args.command == "resume":
            switch.set_trading_state(TradingState.ACTIVE, by, args.reason)
        elif args.command == "flatten":
            switch.request_flatten(by, args.reason)
        elif args.command == "kill":
            switch.engage(args.reason, by, args.reducing_allowed)
        elif args.command == "reset":
            switch.reset(by)
        state = msgspec.to_builtins(switch.state())
    state["trading_state"] = TradingState(state["trading_state"]).name
    print(json.dumps(state, indent=2))
    return 0
