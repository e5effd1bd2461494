"""The `grandmodel` command line."""

import argparse
import sys

from bench import SUITES, run_suites


def _bench(args: argparse.Namespace) -> int:
    options = []
    if args.quick:
        options.append("--quick")
    if args.no_enforce:
        options.append("--no-enforce")
    return run_suites(args.suites, options)


def _segments(args: argparse.Namespace) -> int:
    from ringbuf import list_segments, remove_stale

    if args.clean:
        for name in remove_stale(args.prefix):
            print(f"removed stale segment {name}")
        return 0
    for status in list_segments(args.prefix):
        state = "stale" if status.stale else "live"
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

    bench = commands.add_parser("bench", help="run benchmark suites (all when none is named)")
    bench.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {sorted(SUITES)}")
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
    unknown = [name for name in getattr(args, "suites", []) if name not in SUITES]
    if unknown:
        parser.error(f"unknown bench suite(s) {unknown}; choose from {sorted(SUITES)}")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
