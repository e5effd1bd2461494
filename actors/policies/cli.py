"""`grandmodel models`: list, verify and activate policy versions in the model registry."""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from actors.policies import registry
from actors.policies.forward import strategic_shapes, tactical_shapes
from actors.policies.registry import ModelError

SHAPES: dict[str, Callable[[], dict[str, tuple[int, ...]]]] = {
    "strategic": strategic_shapes,
    "tactical": tactical_shapes,
}
"""Model name -> the arrays (and shapes) its serving pass reads."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grandmodel models",
        description="The model registry: every version of every policy, which one is "
        "active, and whether its files match their manifest and the model's shapes.",
    )
    parser.add_argument(
        "--root", type=Path, default=registry.SHIPPED_ROOT, help="registry directory"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "fit", help="fit initial versions by imitation (`grandmodel models fit --help`)"
    )
    listing = commands.add_parser("list", help="every version, verified, the active marked")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    check = commands.add_parser("verify", help="check a version (default: the active one)")
    check.add_argument("name", choices=sorted(SHAPES))
    check.add_argument("version", nargs="?")
    activate = commands.add_parser("activate", help="verify a version and make it active")
    activate.add_argument("name", choices=sorted(SHAPES))
    activate.add_argument("version")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fit"]:  # imports torch: only this command may
        from actors.policies.fit import main as fit

        return fit(argv[1:])
    args = build_parser().parse_args(argv)
    root: Path = args.root
    if args.command == "list":
        return _list(root, args.json)
    try:
        if args.command == "verify":
            loaded = registry.load_version(root, args.name, args.version, SHAPES[args.name]())
            print(f"{args.name} {loaded.version}: ok (sha256 {loaded.digest[:16]})")
        else:
            registry.load_version(root, args.name, args.version, SHAPES[args.name]())
            digest = registry.activate(root, args.name, args.version)
            print(f"{args.name} {args.version}: active (sha256 {digest[:16]})")
    except ModelError as error:
        print(f"grandmodel models: {error}", file=sys.stderr)
        return 1
    return 0


def _list(root: Path, as_json: bool) -> int:
    rows = []
    for name in registry.names(root):
        active = registry.active_version(root, name)
        for version in registry.versions(root, name):
            try:
                loaded = registry.load_version(root, name, version, SHAPES[name]())
                status, created = "ok", loaded.metadata.get("created", "")
            except (ModelError, KeyError) as error:
                status, created = f"refused: {error}", ""
            rows.append(
                {
                    "name": name,
                    "version": version,
                    "active": version == active,
                    "created": created,
                    "status": status,
                }
            )
    if as_json:
        for row in rows:
            print(json.dumps(row))
    elif not rows:
        print(f"no models in {root}")
    else:
        print(f"{'name':<10} {'version':<24} {'active':<6} {'created':<26} status")
        for row in rows:
            mark = "*" if row["active"] else ""
            print(
                f"{row['name']:<10} {row['version']:<24} {mark:<6} {row['created']:<26} "
                f"{row['status']}"
            )
    return 0 if all(row["status"] == "ok" for row in rows) else 1
