"""The whole system configuration as frozen msgspec Structs.

Unknown fields are errors everywhere, so a typo never silently falls back to a
default. `config.loader` turns a TOML file into a `SystemConfig` and checks what
types alone cannot (references between sections, cores that exist).
"""

from typing import Annotated, Any, Literal

import msgspec

WaitName = Literal["spin", "backoff", "park"]
RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
FullPolicy = Literal["block", "drop"]
Positive = Annotated[float, msgspec.Meta(gt=0)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Frozen, strict: the base of every config section."""


class StreamConfig(Base):
    """One named stream: a single producer actor, one ring per consuming actor."""

    name: Name
    capacity: AtLeastOne = 1 << 20
    full_policy: FullPolicy = "block"


class ActorConfig(Base):
    """An actor: its class, the streams it consumes, and its own parameters."""

    name: Name
    cls: str
    inputs: list[str] = []
    outputs: list[str] = []
    params: dict[str, Any] = {}


class NodeConfig(Base):
    """An OS process hosting actors, pinned to cores."""

    name: Name
    actors: list[str]
    cores: list[NonNegative] = []
    wait: WaitName = "park"
    realtime: bool = False
    restart: RestartType = "permanent"
    batch: AtLeastOne = 256
    trace_latency: bool = True
    """Record each input message's hop latency (receipt - publish) in a histogram."""
    heartbeat_timeout_s: Positive = 2.0
    shutdown_timeout_s: Positive = 3.0
    start_timeout_s: Positive = 20.0


class SupervisorConfig(Base):
    """A supervisor: its children (nodes or supervisors, in start order) and policy."""

    name: Name
    children: list[str]
    strategy: Strategy = "one_for_one"
    max_restarts: NonNegative = 5
    period_s: Positive = 10.0
    restart: RestartType = "permanent"


class LoggingConfig(Base):
    level: Literal["debug", "info", "warning", "error"] = "info"
    file: str = "logs/grandmodel.jsonl"


class ZygoteConfig(Base):
    """The warm process that forks nodes: what it imports before forking."""

    preload: list[str] = msgspec.field(
        default_factory=lambda: ["numpy", "msgspec", "uvloop", "orjson"]
    )


class SystemConfig(Base):
    messages: str
    name: Name = "grandmodel"
    heartbeat_interval_s: Positive = 0.05
    root: str = "root"
    streams: list[StreamConfig] = []
    actors: list[ActorConfig] = []
    nodes: list[NodeConfig] = []
    supervisors: list[SupervisorConfig] = []
    logging: LoggingConfig = LoggingConfig()
    zygote: ZygoteConfig = ZygoteConfig()
