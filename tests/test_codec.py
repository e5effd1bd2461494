"""The codec registry: a tagged union of Structs through a real ring and back."""

import msgspec
import pytest

from kernel.codec import Codec, CodecError
from kernel.messages import Message as Envelope
from kernel.streams import OutputStream
from ringbuf import RingReader, RingWriter, create_ring, destroy_ring


class Tick(msgspec.Struct, tag=True, array_like=True, frozen=True):
    seq: int
    ts_ns: int
    price: float
    size: int


class Note(msgspec.Struct, tag=True, frozen=True):
    seq: int
    text: str
    tags: list[str] = []


class Other(msgspec.Struct, tag=True):
    seq: int


Message = Tick | Note


def test_union_round_trips_through_a_ring(ring_name):
    codec = Codec.from_union(Message)
    segment = create_ring(ring_name, 4096, schema=codec.schema)
    sent = [Tick(1, 10, 4150.25, 3), Note(2, "hello", ["a"]), Tick(3, 11, 4150.5, 1)]
    got = []
    with (
        RingWriter(ring_name, schema=codec.schema) as writer,
        RingReader(ring_name, schema=codec.schema) as reader,
    ):
        for msg in sent:
            writer.try_write(*codec.encode(msg))
        reader.poll(codec.handler(got.append))
    assert got == sent
    destroy_ring(segment)


def test_type_ids_follow_union_order():
    codec = Codec.from_union(Message)
    assert codec.type_id(Tick) == 1 and codec.type_id(Note) == 2
    assert codec.encode(Note(1, "x"))[0] == 2


def test_unknown_type_is_a_clear_error():
    codec = Codec.from_union(Message)
    with pytest.raises(CodecError, match="Other is not registered"):
        codec.encode(Other(1))
    with pytest.raises(CodecError, match="type id 9"):
        codec.decode(9, b"")
    with pytest.raises(CodecError, match="type id 9"):
        codec.handler(print)(9, memoryview(b""))


class Stamped(Envelope, tag=True):
    text: str


class Unregistered(Envelope, tag=True):
    pass


def test_publishing_an_unknown_type_is_the_same_clear_error_and_writes_nothing(ring_name):
    codec = Codec([Stamped])
    segment = create_ring(ring_name, 4096, schema=codec.schema)
    with (
        RingWriter(ring_name, schema=codec.schema) as writer,
        RingReader(ring_name, schema=codec.schema) as reader,
    ):
        stream = OutputStream("notes", [writer], codec)
        with pytest.raises(CodecError, match="Unregistered is not registered"):
            stream.publish(Unregistered())
        stream.publish(Stamped(text="after"))
        got = []
        reader.poll(codec.handler(got.append))
    assert [(msg.seq, msg.text) for msg in got] == [(1, "after")] and stream.seq == 1
    destroy_ring(segment)


def test_malformed_payload_names_the_type():
    codec = Codec.from_union(Message)
    with pytest.raises(CodecError, match="cannot decode a Tick"):
        codec.decode(1, b"\x93\x01")
    with pytest.raises(CodecError, match="cannot decode a Note"):
        codec.handler(print)(2, memoryview(b"\xc1"))


def test_schema_fingerprint_changes_with_the_union():
    assert Codec.from_union(Message).schema == Codec.from_union(Tick | Note).schema
    assert Codec.from_union(Message).schema != Codec.from_union(Note | Tick).schema
    assert Codec.from_union(Message).schema != Codec.from_union(Tick | Note | Other).schema


def test_bad_registries_are_refused():
    with pytest.raises(ValueError):
        Codec([])
    with pytest.raises(ValueError):
        Codec([Tick, Tick])
    with pytest.raises(TypeError):
        Codec([int])  # type: ignore[list-item]
