"""`grandmodel journal`: list or export what the journal recorded."""

import argparse
import sys
from pathlib import Path

import orjson

from actors.journal.actor import JournalActor, JournalParams
from actors.journal.query import (
    EVENT_COLUMNS,
    RECORD_COLUMNS,
    connect,
    export,
    parse_time,
    select_events,
    select_records,
)
from actors.journal.store import JournalError


def build_parser() -> argparse.ArgumentParser:
    journal = argparse.ArgumentParser(
        prog="grandmodel journal",
        description="List or export the journal: decisions, intents, verdicts, orders, "
        "acks, rejects, fills, cancels, controls (or, with --events, the kill-switch, "
        "trading-state, model-version and journal-fault events).",
    )
    journal.add_argument("--config", help="TOML file whose journal to read (default: shipped)")
    journal.add_argument("--path", help="the journal file itself (instead of --config)")
    journal.add_argument("--since", help="from this time (ISO 8601, UTC unless an offset)")
    journal.add_argument("--until", help="before this time (ISO 8601)")
    journal.add_argument("--order", help="one client order id: its order, acks, fills")
    journal.add_argument("--decision", help="one decision (intent) id and the orders it led to")
    journal.add_argument("--type", action="append", default=[], help="only this message type")
    journal.add_argument(
        "--events", action="store_true", help="kill-switch, trading-state and fault events"
    )
    journal.add_argument("--limit", type=int, help="at most this many rows")
    journal.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    journal.add_argument("--export", metavar="FILE", help="write FILE.csv or FILE.parquet")
    return journal


def journal_path(args: argparse.Namespace) -> Path:
    """--path, or the path of the config's journal actor (ConfigError when it has none)."""
    if args.path:
        return Path(args.path)
    from config.loader import ConfigError
    from kernel.wiring import load_system

    wiring = load_system(args.config)
    for actor in wiring.config.actors:
        if issubclass(wiring.classes[actor.name], JournalActor):
            params: JournalParams = wiring.classes[actor.name].parse_params(
                actor.params, wiring.config
            )
            return Path(params.path)
    raise ConfigError("actors: no journal actor in this config (pass --path)")


def main(argv: list[str] | None = None) -> int:
    from config.loader import ConfigError

    args = build_parser().parse_args(argv)
    try:
        path = journal_path(args)
    except ConfigError as error:
        print(f"grandmodel: invalid configuration: {error}", file=sys.stderr)
        return 2
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as error:
        print(f"grandmodel journal: {error}", file=sys.stderr)
        return 2
    try:
        db = connect(path)
    except JournalError as error:
        print(f"grandmodel journal: {error}", file=sys.stderr)
        return 1
    with db:
        if args.events:
            entries = select_events(db, since, until, args.type, args.limit)
            columns = EVENT_COLUMNS
        else:
            entries = select_records(
                db, since, until, args.order, args.decision, args.type, args.limit
            )
            columns = RECORD_COLUMNS
    db.close()
    if args.export:
        try:
            export(entries, columns, args.export)
        except ValueError as error:
            print(f"grandmodel journal: {error}", file=sys.stderr)
            return 2
        print(f"{len(entries)} rows written to {args.export}")
        return 0
    if args.json:
        for entry in entries:
            sys.stdout.write(orjson.dumps(entry).decode() + "\n")
        return 0
    if not entries:
        print(f"no matching {'events' if args.events else 'records'} in {path}")
        return 0
    if args.events:
        print(f"{'time':<28}{'kind':<16}detail")
        for entry in entries:
            print(f"{entry['time']:<28}{entry['kind']:<16}{orjson.dumps(entry['detail']).decode()}")
        return 0
    print(f"{'time':<28}{'type':<14}{'stream':<10}{'seq':>8}  {'symbol':<8}{'order':<30}decision")
    for entry in entries:
        print(
            f"{entry['time']:<28}{entry['type']:<14}{entry['stream']:<10}{entry['seq']:>8}  "
            f"{entry['symbol'] or '-':<8}{entry['order_id'] or '-':<30}"
            f"{entry['decision_id'] or '-'}"
        )
    return 0
