"""Who talks to whom: streams, their rings, and which node consumes each ring."""

from dataclasses import dataclass

from config.schema import NodeConfig, SystemConfig


@dataclass(frozen=True)
class RingSpec:
    """One ring: a stream as seen by one consuming actor."""

    name: str
    stream: str
    consumer: str
    node: str
    capacity: int
    full_policy: str
    doorbell: bool


class Topology:
    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self.node_of = {actor: node.name for node in config.nodes for actor in node.actors}
        self.nodes = {node.name: node for node in config.nodes}
        self.actors = {actor.name: actor for actor in config.actors}
        streams = {stream.name: stream for stream in config.streams}
        self.producer_of = {
            stream: actor.name for actor in config.actors for stream in actor.outputs.values()
        }
        """Stream -> the actor whose port publishes on it (one producer per stream)."""
        self.rings: list[RingSpec] = []
        for actor in config.actors:
            node = self.nodes[self.node_of[actor.name]]
            for stream_name in actor.inputs:
                stream = streams[stream_name]
                self.rings.append(
                    RingSpec(
                        name=f"{config.name}.{stream_name}.{actor.name}",
                        stream=stream_name,
                        consumer=actor.name,
                        node=node.name,
                        capacity=stream.capacity,
                        full_policy=stream.full_policy,
                        doorbell=node.wait == "park",
                    )
                )

    def inputs_of(self, actor: str) -> list[RingSpec]:
        return [ring for ring in self.rings if ring.consumer == actor]

    def rings_of_stream(self, stream: str) -> list[RingSpec]:
        return [ring for ring in self.rings if ring.stream == stream]

    def parking_nodes(self) -> list[NodeConfig]:
        return [node for node in self.config.nodes if node.wait == "park"]

    def actor_rows(self) -> list[tuple[str, str]]:
        """(actor, node) for every actor, in node order: the health table's rows."""
        return [(actor, node.name) for node in self.config.nodes for actor in node.actors]
