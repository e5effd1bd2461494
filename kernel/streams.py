"""Output streams: stamp, encode once, write to every consumer's ring."""

import time
from collections.abc import Callable

import msgspec

from kernel.codec import Codec
from ringbuf import RingFull, RingWriter

BLOCKED_SLICE_S = 0.05
"""How long a write blocked by a full ring waits before checking in with its node."""


class NodeStopping(Exception):
    """Raised out of a publish blocked on a full ring when the node is told to stop."""


class OutputStream:
    """One stream as its producer sees it. `seq` continues across producer restarts.

    `on_blocked` is called every BLOCKED_SLICE_S while a write waits for a slow
    consumer (`block` policy): it keeps the node's heartbeat going and returns True
    when the node must stop, which aborts the publish with NodeStopping (the
    message was not delivered; at-least-once delivery redoes it after a restart).
    """

    def __init__(
        self,
        name: str,
        writers: list[RingWriter],
        codec: Codec,
        on_blocked: Callable[[], bool] = lambda: False,
    ) -> None:
        self.name = name
        self.writers = writers
        self._encode = codec.encode
        self._on_blocked = on_blocked
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
            while True:
                try:
                    write(type_id, payload, True, BLOCKED_SLICE_S)
                    break
                except RingFull:
                    if self._on_blocked():
                        raise NodeStopping(f"stopped while publishing on {self.name!r}") from None

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
