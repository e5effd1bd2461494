"""What a replay file reader provides, and which reader a file needs.

A source checks the file's header (or schema) when opened, then streams its rows as
`RawChunk`s of bounded size: memory follows the chunk, not the file.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from actors.replay.rows import RawChunk
from actors.replay.schema import Layout

Format = Literal["auto", "csv", "parquet"]


def resolve_format(path: str, format: Format) -> Literal["csv", "parquet"]:
    """The format named, or for "auto" the one the file name's extension says."""
    if format != "auto":
        return format
    name = Path(path).name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path!r}: name it .csv, .csv.gz or .parquet")


class Source(ABC):
    """An open replay file whose header (`layout`) was checked; a context manager."""

    layout: Layout

    @abstractmethod
    def chunks(self) -> Iterator[RawChunk]:
        """The file's rows in order, in chunks of `chunk_rows` rows (a CSV chunk also
        carries the malformed rows among them; the last chunk may be shorter)."""

    @abstractmethod
    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
