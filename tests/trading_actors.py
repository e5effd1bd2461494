"""A recorder for the pipeline tests: every message of its input streams, to a file."""

from pathlib import Path
from typing import Any

import msgspec

from kernel.actor import Actor


class RecorderParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    path: str


class Recorder(Actor):
    """Appends one JSON line per message: {"type": name, "msg": fields}.

    Each line is written with a single write() on an O_APPEND file, so a recorder
    killed mid-run leaves whole lines; after a restart it may record a redelivered
    message twice, which the tests account for by deduplicating on seq per type.
    """

    Params = RecorderParams

    async def on_start(self) -> None:
        self.file = Path(self.params.path).open("ab", buffering=0)  # noqa: SIM115
        self.encode = msgspec.json.Encoder().encode

    def on_message(self, msg: Any) -> None:
        self.file.write(
            self.encode({"type": type(msg).__name__, "msg": msgspec.structs.asdict(msg)}) + b"\n"
        )

    async def on_stop(self) -> None:
        self.file.close()
