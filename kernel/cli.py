"""The `grandmodel` command line.

The kernel knows nothing of trading nor of benchmarks: `grandmodel bench` runs
whatever suites installed packages register under the entry-point group
`grandmodel.bench` (name = "module:function", the function taking the option
list and returning an exit status), and imports a suite only to run it.
"""

import argparse
import functools
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from config.schema import SystemConfig

BENCH_GROUP = "grandmodel.bench"
COMMANDS_GROUP = "grandmodel.commands"


def bench_suites() -> "dict[str, EntryPoint]":
    """The registered benchmark suites by name, in registration order, none imported."""
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=BENCH_GROUP)}


def plugin_commands() -> "dict[str, EntryPoint]":
    """Commands the application registers (`grandmodel journal`), none imported: COMMAND =
    "module:main(argv) -> int"."""
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=COMMANDS_GROUP)}


def _bench(args: argparse.Namespace) -> int:
    suites = bench_suites()
    if not suites:
        print(
            f"grandmodel: no benchmark suites registered under {BENCH_GROUP!r} "
            "(is the package installed? `pip install -e .`)",
            file=sys.stderr,
        )
        return 2
    options = []
    if args.quick:
        options.append("--quick")
    if args.no_enforce:
        options.append("--no-enforce")
    options += args.suite_options
    status = 0
    for name in args.suites or list(suites):
        # The worst exit status wins: one broken budget fails the whole run.
        status = max(status, int(suites[name].load()(options)))
    return status


def _load(args: argparse.Namespace) -> "SystemConfig":
    """The config with its wiring checked against the actor classes."""
    from kernel.wiring import load_system

    return load_system(args.config).config


def _invalid(error: Exception) -> int:
    print(f"grandmodel: invalid configuration: {error}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    import uvloop

    from config.loader import ConfigError
    from kernel.logs import setup_logging
    from kernel.system import AlreadyRunning, System

    try:
        config = _load(args)
    except ConfigError as error:
        print(f"grandmodel: invalid configuration: {error}", file=sys.stderr)
        return 2
    setup_logging("supervisor", config.logging.level, config.logging.file)
    try:
        return uvloop.run(System(config).run(args.duration))
    except AlreadyRunning as error:
        print(f"grandmodel: {error}", file=sys.stderr)
        return 1


def _status(args: argparse.Namespace) -> int:
    import orjson

    from config.loader import ConfigError
    from kernel.health import HealthTable

    if args.name is None:
        try:
            args.name = _load(args).name
        except ConfigError as error:
            print(f"grandmodel: invalid configuration: {error}", file=sys.stderr)
            return 2
    try:
        table = HealthTable.attach(args.name)
    except FileNotFoundError as error:
        print(f"grandmodel: {error}", file=sys.stderr)
        return 1
    rows = table.snapshot()
    table.close()
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(
        f"{'actor':<16}{'node':<12}{'state':<11}{'pid':>8} {'cores':<8}{'restarts':>9}"
        f"{'hb_age_s':>10}{'in':>11}{'out':>11}{'depth_B':>10}{'dups':>8}{'unhandled':>10}"
        f"{'quarantined':>12}{'gaps':>6}{'dropped':>9}  last_error"
    )
    for row in rows:
        age = "-" if row["heartbeat_age_s"] is None else f"{row['heartbeat_age_s']:.3f}"
        cores = ",".join(map(str, row["cores"])) or "-"
        print(
            f"{row['actor']:<16}{row['node']:<12}{row['state']:<11}{row['pid']:>8} "
            f"{cores:<8}{row['restarts']:>9}{age:>10}{row['msgs_in']:>11}{row['msgs_out']:>11}"
            f"{row['ring_depth_bytes']:>10}{row['duplicates']:>8}{row['unhandled']:>10}"
            f"{row['quarantined']:>12}{row['gaps']:>6}{row['dropped']:>9}"
            f"{'  PROBLEM: ' if row['problem'] else '  '}{row['last_error']}"
        )
    return 0


def _config(args: argparse.Namespace) -> int:
    import msgspec

    from config.loader import ConfigError

    try:
        config = _load(args)
    except ConfigError as error:
        print(f"grandmodel: invalid configuration: {error}", file=sys.stderr)
        return 2
    print(msgspec.json.format(msgspec.json.encode(config).decode(), indent=2))
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    import orjson

    from config.loader import ConfigError
    from kernel.durable import read_quarantine

    try:
        config = _load(args)
    except ConfigError as error:
        return _invalid(error)
    entries = read_quarantine(config.delivery.quarantine_file)
    if args.actor:
        entries = [entry for entry in entries if entry["actor"] == args.actor]
    if args.json:
        print(orjson.dumps(entries, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not entries:
        print(f"no quarantined messages in {config.delivery.quarantine_file}")
        return 0
    print(f"{'actor':<14}{'stream':<16}{'seq':>9}  {'type':<16}{'failures':>8}  reason")
    for entry in entries:
        print(
            f"{entry['actor']:<14}{entry['stream']:<16}{entry['seq']:>9}  {entry['type']:<16}"
            f"{entry['failures']:>8}  {entry['reason']}"
        )
    return 0


def _running(system: str) -> bool:
    """A run of `system` is up: its health table's owner (pid and start time) lives."""
    from kernel.health import HealthTable

    try:
        table = HealthTable.attach(system)
    except (FileNotFoundError, ValueError):
        return False
    try:
        return table.owner.alive
    finally:
        table.close()


def _state(args: argparse.Namespace) -> int:
    import orjson

    from config.loader import ConfigError
    from kernel.durable import read_record, reset_record

    try:
        config = _load(args)
    except ConfigError as error:
        return _invalid(error)
    actors = [actor.name for actor in config.actors]
    if args.actor and args.actor not in actors:
        print(f"grandmodel: no actor {args.actor!r} in {config.name!r}", file=sys.stderr)
        return 2
    chosen = [args.actor] if args.actor else actors
    if args.action == "show":
        shown = {}
        for name in chosen:
            record = read_record(config.name, name)
            shown[name] = (
                None
                if record is None
                else {
                    "inputs": record.inputs,
                    "outputs": record.outputs,
                    "state_bytes": len(record.state),
                    "quarantined": record.quarantined,
                    "failing": {key: [a.seq, a.failures] for key, a in record.attempts.items()},
                }
            )
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return 0
    if _running(config.name):
        print(
            f"grandmodel: {config.name!r} is running; stop it before resetting its state",
            file=sys.stderr,
        )
        return 1
    for name in chosen:
        # One actor: forget its state, keep its stream positions (its neighbours' records
        # still count on them). Every actor: forget everything, positions included.
        if reset_record(config.name, name, keep_positions=bool(args.actor)):
            print(f"reset the state of {name}")
    return 0


def _segments(args: argparse.Namespace) -> int:
    import datetime

    from ringbuf import Lifetime, list_segments, remove_stale

    if args.clean:
        for name in remove_stale(args.prefix):
            print(f"removed stale segment {name}")
        return 0
    print(
        f"{'segment':<44} {'bytes':>10}  {'kind':<10} {'lifetime':<9} {'status':<8}"
        f" {'owner':<22} {'created (UTC)':<19}  problem"
    )
    for status in list_segments(args.prefix):
        if status.unsafe:
            state = "unsafe"
        elif status.stale:
            state = "stale"
        elif status.lifetime is Lifetime.DURABLE:
            state = "durable"
        else:
            state = "live"
        kind = getattr(status.kind, "name", None) or "?"
        lifetime = status.lifetime.name if status.lifetime is not None else "?"
        owner = "-"
        if status.owner is not None:
            alive = "alive" if status.owner_alive else "dead"
            owner = f"{status.owner.pid}:{status.owner.start_ticks} {alive}"
        created = "-"
        if status.created_ns:
            created = datetime.datetime.fromtimestamp(
                status.created_ns / 1e9, datetime.UTC
            ).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{status.name:<44} {status.size:>10}  {kind:<10} {lifetime:<9} {state:<8}"
            f" {owner:<22} {created:<19}  {status.problem or ''}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grandmodel", description="GrandModel: a supervised low-latency trading engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start the supervised system and keep it running")
    run.add_argument("--config", help="TOML file (default: the shipped config/default.toml)")
    run.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    run.set_defaults(handler=_run)

    status = commands.add_parser("status", help="print the health table of a running system")
    status.add_argument("--config", help="the running system's TOML file (for its name)")
    status.add_argument("--name", help="the running system's name")
    status.add_argument("--json", action="store_true", help="JSON instead of a table")
    status.set_defaults(handler=_status)

    check = commands.add_parser("config", help="validate a config and print it resolved")
    check.add_argument("--config", help="TOML file (default: the shipped config/default.toml)")
    check.set_defaults(handler=_config)

    bench = commands.add_parser(
        "bench",
        help="run benchmark suites (all when none is named); a suite's own options "
        "(e.g. `bench e2e --load`; `python -m bench.e2e --help` lists them) pass through",
    )
    suites = sorted(bench_suites())
    bench.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {suites}")
    bench.add_argument("--quick", action="store_true", help="short smoke run")
    bench.add_argument("--no-enforce", action="store_true", help="report, never fail a budget")
    bench.set_defaults(handler=_bench)

    quarantine = commands.add_parser(
        "quarantine", help="list the messages taken out of delivery (poison, undecodable)"
    )
    quarantine.add_argument("--config", help="TOML file (default: the shipped one)")
    quarantine.add_argument("--actor", help="only this actor's")
    quarantine.add_argument("--json", action="store_true", help="JSON instead of a table")
    quarantine.set_defaults(handler=_quarantine)

    state = commands.add_parser("state", help="show or reset the actors' durable state")
    state.add_argument("action", choices=["show", "reset"])
    state.add_argument("--config", help="TOML file (default: the shipped one)")
    state.add_argument("--actor", help="only this actor (reset keeps its stream positions)")
    state.set_defaults(handler=_state)

    for name, point in plugin_commands().items():
        # Options pass through to the command's own parser (`grandmodel journal --help`).
        plugin = commands.add_parser(
            name, add_help=False, help=f"(from {point.module}) `grandmodel {name} --help`"
        )
        plugin.set_defaults(handler=point)

    segments = commands.add_parser("segments", help="list (or --clean) ring segments in /dev/shm")
    segments.add_argument("--prefix", default="", help="only rings whose name starts with this")
    segments.add_argument("--clean", action="store_true", help="remove the stale ones")
    segments.set_defaults(handler=_segments)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # A suite's own options (`bench e2e --load`) pass through to it; elsewhere they are errors.
    args, extra = parser.parse_known_args(argv)
    if not callable(args.handler):  # a plugin command's entry point: it parses its options
        command = functools.partial(args.handler.load(), extra)
    else:
        if args.command != "bench" and extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "bench":
            known = bench_suites()
            unknown = [name for name in args.suites if name not in known]
            if unknown:
                parser.error(f"unknown bench suite(s) {unknown}; choose from {sorted(known)}")
            if extra and len(args.suites) != 1:
                parser.error(f"suite options {extra} need exactly one suite named")
            args.suite_options = extra
        command = functools.partial(args.handler, args)
    try:
        return int(command())
    except BrokenPipeError:  # `grandmodel journal | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
