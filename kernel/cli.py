"""The `grandmodel` command line.

The kernel knows nothing of trading nor of benchmarks: `grandmodel bench` runs
whatever suites installed packages register under the entry-point group
`grandmodel.bench` (name = "module:function", the function taking the option
list and returning an exit status), and imports a suite only to run it.
"""

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from config.schema import SystemConfig

BENCH_GROUP = "grandmodel.bench"


def bench_suites() -> "dict[str, EntryPoint]":
    """The registered benchmark suites by name, in registration order, none imported."""
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=BENCH_GROUP)}


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
    status = 0
    for name in args.suites or list(suites):
        # The worst exit status wins: one broken budget fails the whole run.
        status = max(status, int(suites[name].load()(options)))
    return status


def _load(args: argparse.Namespace) -> "SystemConfig":
    from config.loader import load_config

    return load_config(args.config)


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
        f"{'hb_age_s':>10}{'in':>11}{'out':>11}{'depth_B':>10}  last_error"
    )
    for row in rows:
        age = "-" if row["heartbeat_age_s"] is None else f"{row['heartbeat_age_s']:.3f}"
        cores = ",".join(map(str, row["cores"])) or "-"
        print(
            f"{row['actor']:<16}{row['node']:<12}{row['state']:<11}{row['pid']:>8} "
            f"{cores:<8}{row['restarts']:>9}{age:>10}{row['msgs_in']:>11}{row['msgs_out']:>11}"
            f"{row['ring_depth_bytes']:>10}  {row['last_error']}"
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


def _segments(args: argparse.Namespace) -> int:
    from ringbuf import list_segments, remove_stale

    if args.clean:
        for name in remove_stale(args.prefix):
            print(f"removed stale segment {name}")
        return 0
    for status in list_segments(args.prefix):
        state = "persistent" if status.persistent else "stale" if status.stale else "live"
        detail = f" ({status.problem})" if status.problem else ""
        print(
            f"{status.name:<48} {status.size:>12} B  {state}  creator={status.creator_pid}{detail}"
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

    bench = commands.add_parser("bench", help="run benchmark suites (all when none is named)")
    suites = sorted(bench_suites())
    bench.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {suites}")
    bench.add_argument("--quick", action="store_true", help="short smoke run")
    bench.add_argument("--no-enforce", action="store_true", help="report, never fail a budget")
    bench.set_defaults(handler=_bench)

    segments = commands.add_parser("segments", help="list (or --clean) ring segments in /dev/shm")
    segments.add_argument("--prefix", default="", help="only rings whose name starts with this")
    segments.add_argument("--clean", action="store_true", help="remove the stale ones")
    segments.set_defaults(handler=_segments)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        known = bench_suites()
        unknown = [name for name in args.suites if name not in known]
        if unknown:
            parser.error(f"unknown bench suite(s) {unknown}; choose from {sorted(known)}")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
