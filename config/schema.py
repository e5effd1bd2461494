"""The whole system configuration as frozen msgspec Structs.

Unknown fields are errors everywhere, so a typo never silently falls back to a
default. `config.loader` turns a TOML file into a `SystemConfig` and checks what
types alone cannot (references between sections, cores that exist).
"""

from typing import Any, Literal

import msgspec

from config.instruments import DEFAULT_INSTRUMENTS, Instrument
from config.types import AtLeastOne, Count, Name, NonNegative, Positive

WaitName = Literal["spin", "backoff", "park"]
RestartType = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
FullPolicy = Literal["block", "drop"]


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Frozen, strict: the base of every config section."""


class StreamConfig(Base):
    """One named stream: a single producer actor, one ring per consuming actor."""

    name: Name
    capacity: AtLeastOne = 1 << 20
    full_policy: FullPolicy = "block"


class ActorConfig(Base):
    """An actor: its class, the streams it consumes, where its ports publish, its params.

    `outputs` maps each of the class's output ports to a stream: the wiring is stated
    here and only here (the class declares the ports and their message types).
    """

    name: Name
    cls: str
    inputs: list[Name] = []
    outputs: dict[str, Name] = {}
    params: dict[str, Any] = {}
    full_policy: FullPolicy | None = None
    """The policy of the rings this actor consumes when full, overriding each stream's:
    `drop` for an audit consumer (the journal) that must never stall trading."""


class NodeConfig(Base):
    """An OS process hosting actors, pinned to cores."""

    name: Name
    actors: list[str]
    cores: list[Count] = []
    wait: WaitName = "park"
    realtime: bool = False
    restart: RestartType = "permanent"
    batch: AtLeastOne = 4
    """Most messages taken from one input before the node turns to its next: small
    batches let what an actor publishes inside the node (a bar, an intent) be handled
    before the rest of a burst upstream (the order path of `bench e2e` halves its
    median from 256 to 4)."""
    trace_latency: bool = True
    """Record each input message's hop latency (receipt - publish) in a histogram."""
    commit_interval_s: NonNegative = 0.02
    """Time between two commits of the node's actor records and ring cursors while
    messages flow (0: after every drain pass). A commit waits for a quiet moment of the
    inputs and saves one actor per quiet moment, in rounds (a round saves the actors that
    had news when it began); inputs that never go quiet, or a node
    without inputs, are committed after 5 intervals at the latest, and a node holding a
    quarter of an input ring uncommitted at its next quiet moment."""
    heartbeat_timeout_s: Positive = 2.0
    shutdown_timeout_s: Positive = 3.0
    start_timeout_s: Positive = 20.0


class SupervisorConfig(Base):
    """A supervisor: its children (nodes or supervisors, in start order) and policy."""

    name: Name
    children: list[str]
    strategy: Strategy = "one_for_one"
    max_restarts: Count = 5
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


class DeliveryConfig(Base):
    """The delivery contract's knobs (README "Delivery contract")."""

    max_attempts: AtLeastOne = 3
    """Failed deliveries of one message (exception, hang, crash) before it is quarantined."""
    quarantine_file: str = "state/quarantine.jsonl"
    """Where quarantined messages are kept for inspection (`grandmodel quarantine`)."""
    outbox_bytes: AtLeastOne = 4 << 20
    """Per actor: room for what it publishes between two commits (kernel/outbox.py)."""


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
    delivery: DeliveryConfig = DeliveryConfig()
    instruments: list[Instrument] = msgspec.field(default_factory=lambda: [*DEFAULT_INSTRUMENTS])
    """The instrument registry (config/instruments.py): the contracts the actors' params
    may name. The kernel does not read it; it hands the whole config to each actor class's
    `parse_params`, which resolves the symbols its params name."""
    failure_hooks: list[str] = []
    """`module:function` paths, each called as `function(config, reason)` by the run's
    supervisor process when the tree fails (root supervisor gave up, zygote died), before
    the tree is stopped: the trading app latches its kill switch there."""
