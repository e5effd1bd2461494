"""The `grandmodel` command."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("grandmodel: not yet", file=sys.stderr)
    return 2
