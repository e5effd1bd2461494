"""Output streams: stamp, encode once, write to every consumer's ring."""

import time

import msgspec

from kernel.codec import Codec
from ringbuf import RingWriter


class OutputStream:
    """One stream as its producer sees it. `seq` continues across producer restarts."""

    def __init__(self, name: str, writers: list[RingWriter], codec: Codec) -> None:
        self.name = name
        self.writers = writers
        self._encode = codec.encode
        self._writes = tuple(writer.write for writer in writers)
        # The rings count what was published, crash-consistently: resume after it.
        self.seq = max((writer.published for writer in writers), default=0)

    def publish(self, msg: msgspec.Struct) -> None:
        """Stamp seq and ts_ns (and origin_ns if unset), encode once, write to each ring.

        Rings with the `block` policy wait for their consumer; `drop` rings count
        the loss and move on.
        """
        self.seq += 1
        now = time.monotonic_ns()
        msg.seq = self.seq  # type: ignore[attr-defined]
        msg.ts_ns = now  # type: ignore[attr-defined]
        if not msg.origin_ns:  # type: ignore[attr-defined]
            msg.origin_ns = now  # type: ignore[attr-defined]
        type_id, payload = self._encode(msg)
        for write in self._writes:
            write(type_id, payload)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
