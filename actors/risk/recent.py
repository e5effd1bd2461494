"""Re-export of the shared `RecentIds` for `actors.risk.book`, whose import line is another
change's to move to `actors.common.recent`; delete this module once it has."""

from actors.common.recent import RecentIds

__all__ = ["RecentIds"]
