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
                        full_policy=actor.full_policy or stream.full_policy,
                        doorbell=node.wait == "park",
                    )
                )

    def inputs_of(self, actor: str) -> list[RingSpec]:
        return [ring for ring in self.rings if ring.consumer == actor]

    def drain_order(self, node: str) -> list[RingSpec]:
        """The node's input rings in the order its drain loop polls them: each message's
        consequences inside the node first, depth first. After the ring of a stream, the
        rings of what its consumer publishes, in actor order, so an order goes from bar to
        venue in one pass instead of waiting behind every other actor's empty inputs.
        An actor's own rings keep the order its `inputs` declare (the venue sees the tick
        before an order that tick caused), and rings nothing in the node feeds come first
        in actor order."""
        own = [ring for actor in self.nodes[node].actors for ring in self.inputs_of(actor)]
        order: list[RingSpec] = []
        placed: set[str] = set()

        def place(ring: RingSpec) -> None:
            if ring.name in placed:
                return
            for earlier in self.inputs_of(ring.consumer):
                if earlier.name not in placed:
                    placed.add(earlier.name)
                    order.append(earlier)
                if earlier is ring:
                    break
            for stream in self.actors[ring.consumer].outputs.values():
                for consumer in own:
                    if consumer.stream == stream:
                        place(consumer)

        for ring in own:
            if self.node_of.get(self.producer_of.get(ring.stream, "")) != node:
                place(ring)
        for ring in own:  # fed only from inside the node, yet not reached (a cycle)
            place(ring)
        return order

    def rings_of_stream(self, stream: str) -> list[RingSpec]:
        return [ring for ring in self.rings if ring.stream == stream]

    def parking_nodes(self) -> list[NodeConfig]:
        return [node for node in self.config.nodes if node.wait == "park"]

    def actor_rows(self) -> list[tuple[str, str]]:
        """(actor, node) for every actor, in node order: the health table's rows."""
        return [(actor, node.name) for node in self.config.nodes for actor in node.actors]
