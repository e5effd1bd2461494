"""A recorder for the pipeline tests: every message of its input streams, to a file."""

from pathlib import Path

import msgspec

from actors.messages import (
    Fill,
    OrderAck,
    OrderReject,
    OrderRequest,
    PositionSnapshot,
    RiskSnapshot,
)
from kernel.actor import Actor


class RecorderParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    path: str


class Recorder(Actor):
    """Appends one JSON line per message: {"type": name, "msg": fields}.

    Each line is written with a single write() on an O_APPEND file, so a recorder
    killed mid-run leaves whole lines; after a restart it may record a message handled
    but not yet committed twice, which the tests account for by deduplicating on seq.
    """

    Params = RecorderParams

    async def on_start(self) -> None:
        self.file = Path(self.params.path).open("ab", buffering=0)  # noqa: SIM115
        self.encode = msgspec.json.Encoder().encode

    def record(self, msg: msgspec.Struct) -> None:
        self.file.write(
            self.encode({"type": type(msg).__name__, "msg": msgspec.structs.asdict(msg)}) + b"\n"
        )

    inputs = dict.fromkeys(
        (OrderRequest, OrderAck, OrderReject, Fill, RiskSnapshot, PositionSnapshot), record
    )

    async def on_stop(self) -> None:
        self.file.close()
