"""Check a configuration against its actor classes before anything starts.

`config.loader` checks what the config alone can say (names, references, the tree);
this module imports the actor classes and checks the contract they declare against
the wiring in the TOML (README "Ports and wiring"):

- every class is an `Actor`, its `params` validate, its types are in the message union;
- every wired output names a declared port, every required port is wired, and every
  wired stream has a consumer unless the port is optional (telemetry);
- every input stream carries at least one type its consumer handles, every type a
  stream carries is handled or explicitly ignored by each consumer, and every handled
  type has a producer (unless the actor declares that input optional);
- every ring's capacity is a power of two within the ring's limits and holds the
  largest message its stream carries.

Each failure is a ConfigError naming the field, e.g.
`actors[3].outputs.verdict: class RiskActor has no port 'verdict' (ports: verdicts, ...)`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from config.loader import ConfigError, field_path, import_object, load_config
from config.schema import ActorConfig, SystemConfig
from kernel.actor import Actor, Port
from kernel.codec import Codec
from ringbuf.layout import MAX_CAPACITY, MIN_CAPACITY, RECORD_HEADER

MAX_INPUTS = 32
"""Input streams one actor may consume (each has two words in its durable record)."""
UNBOUNDED_TEXT_BYTES = 256
"""Assumed size of a str/bytes field without a `max_length` when sizing rings."""
UNBOUNDED_ITEMS = 64
"""Assumed entry count of a list/dict field without a `max_length` when sizing rings."""


@dataclass(frozen=True)
class Wiring:
    """The checked configuration with its classes resolved."""

    config: SystemConfig
    codec: Codec
    classes: dict[str, type[Actor]]
    producer_port: dict[str, tuple[str, Port]]
    """Stream -> (producing actor, its port)."""


def load_system(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cpus: int | None = None,
) -> Wiring:
    """`load_config` plus `check_wiring`; every error is a ConfigError naming the file."""
    config = load_config(path, environ, cpus)
    try:
        return check_wiring(config)
    except ConfigError as error:
        source = Path(path) if path is not None else "the default config"
        raise ConfigError(f"{source}: {error}") from None


def check_wiring(config: SystemConfig) -> Wiring:
    codec = Codec.from_union(import_object(config.messages, "messages"))
    for i, hook in enumerate(config.failure_hooks):
        if not callable(import_object(hook, f"failure_hooks[{i}]")):
            raise ConfigError(f"failure_hooks[{i}]: {hook!r} is not callable")
    known = set(codec.types)
    classes = {
        actor.name: _actor_class(i, actor, known, config) for i, actor in enumerate(config.actors)
    }
    producer_port: dict[str, tuple[str, Port]] = {}
    consumers: dict[str, list[str]] = {}
    for actor in config.actors:
        for stream in actor.inputs:
            consumers.setdefault(stream, []).append(actor.name)

    for i, actor in enumerate(config.actors):
        cls = classes[actor.name]
        for port, stream in actor.outputs.items():
            declared = cls.outputs.get(port)
            if declared is None:
                ports = ", ".join(cls.outputs) or "none"
                raise ConfigError(
                    f"actors[{i}].outputs.{port}: class {cls.__name__} has no port {port!r} "
                    f"(ports: {ports})"
                )
            if not declared.optional and not consumers.get(stream):
                raise ConfigError(
                    f"actors[{i}].outputs.{port}: stream {stream!r} has no consumer "
                    "(wire it to an actor's inputs, or leave the port out if it is optional)"
                )
            producer_port[stream] = (actor.name, declared)
        for port in sorted(cls.required_ports(cls.parse_params(actor.params, config))):
            if port not in actor.outputs:
                raise ConfigError(
                    f"actors[{i}].outputs: port {port!r} of {cls.__name__} is not wired "
                    f'(add {port} = "<stream>")'
                )

    for i, stream in enumerate(config.streams):
        _check_capacity(i, stream.name, stream.capacity, producer_port[stream.name][1])

    for i, actor in enumerate(config.actors):
        cls = classes[actor.name]
        if len(actor.inputs) > MAX_INPUTS:
            raise ConfigError(f"actors[{i}].inputs: at most {MAX_INPUTS} input streams")
        handled = set(cls.inputs)
        accepted = handled | set(cls.ignores)
        delivered: set[type] = set()
        for j, stream in enumerate(actor.inputs):
            producer, port = producer_port[stream]
            carried = set(port.types)
            if not carried & handled:
                raise ConfigError(
                    f"actors[{i}].inputs[{j}]: stream {stream!r} carries {_names(carried)} "
                    f"(from {producer}) and {cls.__name__} handles none of them"
                )
            stray = carried - accepted
            if stray:
                raise ConfigError(
                    f"actors[{i}].inputs[{j}]: stream {stream!r} also carries {_names(stray)}, "
                    f"which {cls.__name__} neither handles nor lists in `ignores`"
                )
            delivered |= carried
        missing = handled - delivered - set(cls.optional_inputs)
        if missing:
            raise ConfigError(
                f"actors[{i}].inputs: {cls.__name__} handles {_names(missing)} but no input "
                f"stream carries it (streams: {', '.join(actor.inputs) or 'none'})"
            )
    return Wiring(config, codec, classes, producer_port)


def _actor_class(i: int, actor: ActorConfig, known: set[type], config: SystemConfig) -> type[Actor]:
    cls = import_object(actor.cls, f"actors[{i}].cls")
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ConfigError(f"actors[{i}].cls: {actor.cls!r} is not a kernel.actor.Actor")
    try:
        cls.parse_params(actor.params, config)
    except (msgspec.ValidationError, ValueError) as error:
        raise ConfigError(field_path(str(error), f"actors[{i}].params")) from None
    declared = [*cls.inputs, *cls.ignores, *cls.optional_inputs]
    for port in cls.outputs.values():
        declared += port.types
    unknown = [kind for kind in declared if kind not in known]
    if unknown:
        raise ConfigError(
            f"actors[{i}].cls: {cls.__name__} uses {_names(set(unknown))}, which the "
            "message union (`messages`) does not contain"
        )
    for kind, method in cls.handlers().items():
        if not callable(getattr(cls, method, None)):
            raise ConfigError(
                f"actors[{i}].cls: {cls.__name__} handles {kind.__name__} with {method!r}, "
                "which is not one of its methods"
            )
    return cls


def _check_capacity(i: int, stream: str, capacity: int, port: Port) -> None:
    field = f"streams[{i}].capacity"
    if capacity & (capacity - 1) or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise ConfigError(
            f"{field}: {capacity} is not a power of two between {MIN_CAPACITY} and "
            f"{MAX_CAPACITY} (2^31)"
        )
    room = capacity // 2 - RECORD_HEADER
    for kind in port.types:
        size = message_size_bound(kind)
        if size > room:
            raise ConfigError(
                f"{field}: {capacity} bytes hold records of at most {room} bytes, but a "
                f"{kind.__name__} on {stream!r} may take {size}; use at least "
                f"{_power_of_two_above(2 * (size + RECORD_HEADER))}"
            )


def message_size_bound(kind: type[msgspec.Struct]) -> int:
    """An upper bound of the msgpack size of a message of type `kind`.

    Exact for numbers, bools and enums; a str/bytes/list/dict field counts its
    `max_length` when it declares one, else UNBOUNDED_TEXT_BYTES / UNBOUNDED_ITEMS.
    """
    return _bound(msgspec.inspect.type_info(kind))


def _bound(info: Any) -> int:
    inspect = msgspec.inspect
    if isinstance(info, inspect.StructType):
        return 5 + sum(_bound(field.type) for field in info.fields) + 9  # header, tag
    if isinstance(info, inspect.UnionType):
        return max(_bound(member) for member in info.types)
    if isinstance(info, (inspect.StrType, inspect.BytesType, inspect.ByteArrayType)):
        return 5 + (info.max_length if info.max_length is not None else UNBOUNDED_TEXT_BYTES)
    if isinstance(info, inspect.TupleType):
        return 5 + sum(_bound(item) for item in info.item_types)
    if isinstance(
        info, (inspect.ListType, inspect.SetType, inspect.FrozenSetType, inspect.VarTupleType)
    ):
        count = info.max_length if info.max_length is not None else UNBOUNDED_ITEMS
        return 5 + count * _bound(info.item_type)
    if isinstance(info, inspect.DictType):
        count = info.max_length if info.max_length is not None else UNBOUNDED_ITEMS
        return 5 + count * (_bound(info.key_type) + _bound(info.value_type))
    return 9  # int, float, bool, enum, None: a marker byte and at most eight bytes


def _power_of_two_above(size: int) -> int:
    return max(MIN_CAPACITY, 1 << (size - 1).bit_length())


def _names(types: set[type]) -> str:
    return ", ".join(sorted(kind.__name__ for kind in types))
