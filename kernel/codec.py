"""Codec registry: a tagged union of msgspec Structs <-> ring records.

Each Struct type gets a record type id (its 1-based position in the union), so
the payload carries no tag and is decoded by a decoder built for exactly that
type. Encoder and decoders are built once and reused for every message.
The schema fingerprint lets two processes check they speak the same union.
"""

import hashlib
import typing
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ringbuf.layout import MAX_TYPE


class CodecError(Exception):
    """A message type the registry does not know, or a payload it cannot decode."""


class Codec:
    """Encode Structs to (type id, bytes) and decode them back."""

    def __init__(self, types: Sequence[type[msgspec.Struct]]) -> None:
        if not types:
            raise ValueError("a codec needs at least one message type")
        if len(types) > MAX_TYPE:
            raise ValueError(f"at most {MAX_TYPE} message types fit in a record type id")
        if len(set(types)) != len(types):
            raise ValueError("a message type appears twice in the codec")
        for cls in types:
            if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
                raise TypeError(f"{cls!r} is not a msgspec Struct type")
        self.types: tuple[type[msgspec.Struct], ...] = tuple(types)
        self.ids: dict[type, int] = {cls: i for i, cls in enumerate(self.types, start=1)}
        """Struct type -> record type id (for callers that encode with `encode_payload`)."""
        self._encoder = msgspec.msgpack.Encoder()
        self.encode_payload: Callable[[msgspec.Struct], bytes] = self._encoder.encode
        """The payload alone, no type check: for a hot path that looked the id up in `ids`."""
        self._decoders: list[msgspec.msgpack.Decoder[Any] | None] = [
            None,
            *(msgspec.msgpack.Decoder(cls) for cls in self.types),
        ]
        self.schema = _fingerprint(self.types)
        # For RingReader.poll_decode: index = record type id, value = bound decode.
        self.decode_table: tuple[Callable[[memoryview], Any] | None, ...] = (
            None,
            *(decoder.decode for decoder in self._decoders[1:]),  # type: ignore[union-attr]
        )

    @classmethod
    def from_union(cls, union: Any) -> "Codec":
        """Build from a `typing.Union` (or `A | B | ...`) of Struct types."""
        return cls(typing.get_args(union) or (union,))

    def type_id(self, cls: type[msgspec.Struct]) -> int:
        try:
            return self.ids[cls]
        except KeyError:
            raise CodecError(f"{cls.__name__} is not registered in this codec") from None

    def encode(self, msg: msgspec.Struct) -> tuple[int, bytes]:
        try:
            type_id = self.ids[type(msg)]
        except KeyError:
            raise CodecError(f"{type(msg).__name__} is not registered in this codec") from None
        return type_id, self._encoder.encode(msg)

    def decode(self, type_id: int, payload: bytes | memoryview) -> msgspec.Struct:
        decoder = self._decoders[type_id] if 0 < type_id < len(self._decoders) else None
        if decoder is None:
            raise CodecError(f"record type id {type_id} is not registered in this codec")
        try:
            return decoder.decode(payload)
        except msgspec.DecodeError as error:
            raise CodecError(
                f"cannot decode a {self.types[type_id - 1].__name__}: {error}"
            ) from error

    def handler(self, on_message: Callable[[Any], object]) -> Callable[[int, memoryview], None]:
        """A ring handler that decodes each record and passes the Struct on."""
        decoders = self._decoders
        decode = self.decode

        def handle(type_id: int, payload: memoryview) -> None:
            try:
                msg = decoders[type_id].decode(payload)  # type: ignore[union-attr]
            except (IndexError, AttributeError, msgspec.DecodeError):
                decode(type_id, payload)  # raises the CodecError that names the problem
                raise
            on_message(msg)

        return handle


def _fingerprint(types: Sequence[type[msgspec.Struct]]) -> int:
    """A u64 over each type's name and JSON schema, in order."""
    (_, components) = msgspec.json.schema_components(types)
    digest = hashlib.blake2b(digest_size=8)
    for cls in types:
        digest.update(cls.__qualname__.encode())
        digest.update(msgspec.json.encode(components.get(cls.__name__, {}), order="sorted"))
    return int.from_bytes(digest.digest(), "little")
