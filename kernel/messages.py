"""The envelope every message carries, whatever the domain.

`seq` numbers the messages of one stream (assigned by the kernel on publish, and
continued across restarts of the producer); `ts_ns` is CLOCK_MONOTONIC at publish;
`origin_ns` is the publish time of the event that started the chain (a tick), for
tracing a path end to end. Subclasses add their fields; `gc=False` because
messages hold only scalars, strings and bytes, never reference cycles.
"""

import msgspec


class Message(msgspec.Struct, kw_only=True, gc=False):
    seq: int = 0
    ts_ns: int = 0
    origin_ns: int = 0
