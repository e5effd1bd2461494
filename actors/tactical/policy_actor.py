"""TacticalPolicyActor: the tactical agents' decision on each 5-minute matrix -> TradeIntent.

On each TacticalMatrix of a served symbol it runs the exported tactical agents
(forward.TacticalPolicy, no torch, incremental: after each decision, in the node's next
quiet moment, it prepares what the symbol's next decision already knows) and decides
(actors/policies/tactical.py: direction from FVG and momentum, the entry agent as the
gate, the synergy type's weights, 0.65 to execute, x0.7 against the synergy or the
strategic bias). An execute in a direction other
than the last intent's publishes a TradeIntent (one intent per swing, as the baseline):
stop and target `stop_atr` / `target_atr` ATRs from the close, the id derived from the
bar so that a redelivered matrix gives the same id and risk drops the duplicate. A
matrix of history bars (the feed's warm-up) is decided and never traded on. Every
decision, hold included, goes out as a DecisionRecord (kind TACTICAL) on the optional
`decisions` port, after the intent.

Deterministic. A decision depends only on the matrix, the synergy active at its bar and
the strategic decision it follows: the one of the strategic bar the matrix names
(`strategic_bar_end_ns`). That decision comes on another ring, in any order relative to
the matrix: a matrix whose decision has not arrived waits for it (durable state, at most
`max_waiting` per symbol; beyond that the oldest is decided without the strategic bias,
counted as `unfollowed`). The strategic layer publishes a decision for every matrix
(its fallback included), so the wait ends within one strategic hop.

No usable model, or a non-finite input or output: hold, counted, health degraded
(serving.py); a new registry version is swapped in while running.
"""

import math
import time
from functools import partial

import msgspec
import numpy as np

from actors.matrices import TacticalColumn
from actors.messages import (
    DecisionKind,
    DecisionRecord,
    Direction,
    StrategicDecision,
    StrategicMatrix,
    Synergy,
    SynergyType,
    TacticalMatrix,
    TradeIntent,
)
from actors.policies.forward import (
    TacticalActivations,
    TacticalPolicy,
    random_arrays,
    tactical_shapes,
)
from actors.policies.serving import PolicyParams, ServesPolicy
from actors.policies.strategic import active_synergy
from actors.policies.tactical import TacticalDecision, decide
from config.types import AtLeastOne, Count, Positive
from kernel.actor import Actor, Port

KEPT_DECISIONS = 4
"""Strategic decisions kept per symbol: the one a waiting matrix names is among them."""
UNANSWERED = np.full((3, 3), np.nan, np.float32)
"""The agents' probabilities of a decision no model answered (read-only: shared)."""
UNANSWERED.flags.writeable = False


class TacticalPolicyParams(PolicyParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str = "tactical"
    follow_strategic: bool = True
    """Wait for and follow the strategic decision each matrix names; False: decide
    without a strategic bias (a topology without the strategic layer)."""
    max_waiting: AtLeastOne = 12
    """Matrices of one symbol that may wait for their strategic decision (an hour of bars)."""
    stop_atr: Positive = 2.0
    target_atr: Positive = 3.0


class Waiting(msgspec.Struct, array_like=True):
    matrix: TacticalMatrix
    synergy: Synergy | None
    """The synergy active when the matrix came (later ones are not its context)."""


class PolicyMemory(msgspec.Struct, kw_only=True):
    """One symbol's durable state."""

    last_direction: Direction = Direction.FLAT
    """The direction of the last intent: one intent per swing."""
    synergy: Synergy | None = None
    strategic: list[StrategicDecision] = []
    """The latest strategic decisions, oldest first."""
    waiting: list[Waiting] = []
    decisions: Count = 0
    intents: Count = 0
    holds_no_model: Count = 0
    holds_invalid: Count = 0
    unfollowed: Count = 0


class TacticalPolicyState(msgspec.Struct, kw_only=True):
    memories: dict[str, PolicyMemory] = {}


class TacticalPolicyActor(ServesPolicy, Actor):
    """Messages of symbols it does not serve are skipped and counted (`skipped`)."""

    Params = TacticalPolicyParams
    params: TacticalPolicyParams
    State = TacticalPolicyState
    state: TacticalPolicyState

    @classmethod
    def warm_up(cls) -> None:
        """Compile the forward pass's kernels in the zygote."""
        policy = TacticalPolicy(random_arrays(tactical_shapes()))
        activations = TacticalActivations(policy)
        for row in range(2):  # a whole matrix, then one prepared from it
            policy.probabilities(np.full((60, 7), row, np.float32), activations)
            policy.prepare(activations)

    async def on_start(self) -> None:
        self.intents = self.output("intents")
        self.records = self.output("decisions")
        self.skipped = 0
        memories = self.state.memories
        self.memories = {s: memories.setdefault(s, PolicyMemory()) for s in self.params.symbols}
        self.decide_ns = self.latency(["decide"]).series("decide").record
        self._activations: dict[str, TacticalActivations] = {}
        """Per symbol: the last decision's layers, reused by the next (forward.py)."""
        self._preparing: set[str] = set()
        """Symbols whose next decision's preparation waits for a quiet moment."""
        self.serve(tactical_shapes(), TacticalPolicy)
        for memory in self.memories.values():
            self._release(memory)

    def on_synergy(self, synergy: Synergy) -> None:
        memory = self.memories.get(synergy.symbol)
        if memory is None:
            self.skipped += 1
            return
        memory.synergy = synergy

    def on_strategic(self, decision: StrategicDecision) -> None:
        memory = self.memories.get(decision.symbol)
        if memory is None:
            self.skipped += 1
            return
        kept = memory.strategic
        if kept and decision.bar_end_ns <= kept[-1].bar_end_ns:
            return  # a decision of a bar already followed by a newer one
        kept.append(decision)
        del kept[:-KEPT_DECISIONS]
        self._release(memory)

    def on_matrix(self, matrix: TacticalMatrix) -> None:
        memory = self.memories.get(matrix.symbol)
        if memory is None:
            self.skipped += 1
            return
        synergy = active_synergy(memory.synergy, matrix.bar_end_ns)
        needs = self._needs(matrix)
        if memory.waiting or not self._arrived(memory, needs):
            memory.waiting.append(Waiting(matrix, synergy))
            if len(memory.waiting) > self.params.max_waiting:
                oldest = memory.waiting.pop(0)
                memory.unfollowed += 1
                self.log.warning(
                    "%s: no strategic decision for bar end %d, deciding without it",
                    matrix.symbol,
                    oldest.matrix.strategic_bar_end_ns,
                )
                self._decide(memory, oldest.matrix, oldest.synergy, None)
            self._release(memory)
            return
        self._decide(memory, matrix, synergy, self._followed(memory, needs))

    def _needs(self, matrix: TacticalMatrix) -> int:
        """The bar end of the strategic decision the matrix follows (0: none)."""
        return matrix.strategic_bar_end_ns if self.params.follow_strategic else 0

    def _arrived(self, memory: PolicyMemory, needs: int) -> bool:
        """Whether the strategic decision of bar end `needs` is here, or will never come
        (a newer one came first: decisions come in bar order)."""
        return needs == 0 or bool(memory.strategic and memory.strategic[-1].bar_end_ns >= needs)

    def _followed(self, memory: PolicyMemory, needs: int) -> StrategicDecision | None:
        """The decision of bar end `needs` (else the newest before it, if kept)."""
        if needs == 0:
            return None
        older = [d for d in memory.strategic if d.bar_end_ns <= needs]
        return older[-1] if older else None

    def _release(self, memory: PolicyMemory) -> None:
        """Decide the waiting matrices whose strategic decision has arrived, in order."""
        while memory.waiting:
            needs = self._needs(memory.waiting[0].matrix)
            if not self._arrived(memory, needs):
                return
            waiting = memory.waiting.pop(0)
            self._decide(memory, waiting.matrix, waiting.synergy, self._followed(memory, needs))

    def _decide(
        self,
        memory: PolicyMemory,
        matrix: TacticalMatrix,
        synergy: Synergy | None,
        strategic: StrategicDecision | None,
    ) -> None:
        memory.decisions += 1
        policy = self.model.policy
        bias = Direction.FLAT
        if strategic is not None and strategic.should_proceed and not strategic.fallback:
            bias = strategic.direction
        synergy_type = synergy.synergy_type if synergy is not None else SynergyType.NONE
        synergy_direction = synergy.direction if synergy is not None else Direction.FLAT
        x = matrix.array()
        each = UNANSWERED
        if policy is None:
            memory.holds_no_model += 1
            decision = TacticalDecision(Direction.FLAT, 0.0, 0.0, 0.0, 0.0, False, "no model")
        else:
            started = time.perf_counter_ns()
            activations = self._activations_of(matrix.symbol, policy)
            if np.isfinite(x).all() and math.isfinite(matrix.atr) and matrix.atr > 0:
                each = policy.probabilities(x, activations)
            momentum = float(x[-1, TacticalColumn.MOMENTUM_5])
            decision = decide(each, momentum, synergy_type, synergy_direction, bias)
            self.decide_ns(time.perf_counter_ns() - started)
            # The next bar's head start, once this handler and what its intent sets off
            # (risk, execution: the same node) are done and the node has a quiet moment.
            if matrix.symbol not in self._preparing:  # a node busy for long asks once
                self._preparing.add(matrix.symbol)
                self.when_idle(partial(self._prepare, matrix.symbol))
            valid = decision.reason != "invalid_input"
            memory.holds_invalid += not valid
            self.decided(matrix.symbol, matrix.bar_end_ns, valid)
        direction, reason = decision.direction, decision.reason
        if direction != Direction.FLAT and matrix.history:
            direction, reason = Direction.FLAT, f"{reason} (history: not traded)"
        elif direction != Direction.FLAT and direction == memory.last_direction:
            direction, reason = Direction.FLAT, "execute in the direction already taken"
        decision_id = f"{matrix.symbol}-tactical-{matrix.bar_end_ns}"
        if direction != Direction.FLAT:
            memory.last_direction = direction
            memory.intents += 1
            self._publish_intent(decision_id, matrix, decision, synergy_type, bias)
        self.records.publish(
            DecisionRecord(
                decision_id=decision_id,
                kind=DecisionKind.TACTICAL,
                symbol=matrix.symbol,
                action=direction,
                confidence=decision.score,
                event_ns=matrix.bar_end_ns,
                model_version=self.model.label,
                synergy_type=synergy_type,
                price=matrix.close,
                probabilities=each.ravel().tolist(),
                parent_id=f"{matrix.symbol}-strategic-{strategic.bar_end_ns}" if strategic else "",
                reason=f"{reason}; long {decision.long_vote:.3f} short {decision.short_vote:.3f} "
                f"gate {decision.gate:.3f}; strategic bias {bias.name}",
            )
        )

    def keep_warm(self) -> None:
        """The served model's weights back into the caches while the node spins idle."""
        policy = self.model.policy
        if policy is not None:
            policy.keep_warm()

    def _prepare(self, symbol: str) -> None:
        """The next decision's head start, on the symbol's activations as they are now."""
        self._preparing.discard(symbol)
        activations = self._activations[symbol]
        activations.policy.prepare(activations)

    def _activations_of(self, symbol: str, policy: TacticalPolicy) -> TacticalActivations:
        """The symbol's activations of the policy served (a swapped model starts afresh)."""
        activations = self._activations.get(symbol)
        if activations is None or activations.policy is not policy:
            activations = self._activations[symbol] = TacticalActivations(policy)
        return activations

    def _publish_intent(
        self,
        intent_id: str,
        matrix: TacticalMatrix,
        decision: TacticalDecision,
        synergy_type: SynergyType,
        bias: Direction,
    ) -> None:
        p, direction, close, atr = self.params, decision.direction, matrix.close, matrix.atr
        intent = TradeIntent(
            intent_id=intent_id,
            symbol=matrix.symbol,
            direction=direction,
            score=min(1.0, decision.score),
            confidence=max(decision.long_vote, decision.short_vote),
            price=close,
            atr=atr,
            stop_price=close - direction * p.stop_atr * atr,
            target_price=close + direction * p.target_atr * atr,
            bar_end_ns=matrix.bar_end_ns,
            synergy_type=synergy_type,
            strategic_direction=bias,
            model_version=self.model.label,
        )
        intent.origin_ns = matrix.origin_ns
        self.intents.publish(intent)

    inputs = {TacticalMatrix: on_matrix, Synergy: on_synergy, StrategicDecision: on_strategic}
    ignores = (StrategicMatrix, DecisionRecord)
    """The features stream carries the strategic matrices, the strategic stream records."""
    optional_inputs = (StrategicDecision,)
    """Unwired with `follow_strategic = false`."""
    outputs = {
        "intents": Port(TradeIntent),
        "decisions": Port(DecisionRecord, optional=True),
    }
