"""StrategicActor: the 30-minute bias of each instrument from the strategic ensemble.

On each StrategicMatrix (a closed strategic bar of a served symbol) it builds the three
agents' inputs (actors/policies/strategic.py: column means and the context of the bar's
time, volatility and the symbol's active synergy), runs the exported ensemble
(forward.StrategicPolicy, no torch) and publishes, on `decisions`:

- a StrategicDecision: direction, probabilities, confidence, uncertainty, should_proceed,
  the synergy type and the model version; the tactical layer follows it;
- a DecisionRecord (kind STRATEGIC) with the reasoning for the audit trail: each
  agent's prediction and confidence, the dominant signal, the uncertainty source.

Exactly one decision per matrix, whatever happens: without a usable model, or when an
input or output is not finite, it is the neutral fallback (never proceeding, counted,
health degraded), so the tactical layer waiting on it never waits in vain. Synergies
arrive on the same stream before their bar's matrix and are kept per symbol (durable
state) while active. A new registry version is swapped in while running (serving.py).
"""

import time
from zoneinfo import ZoneInfo

import msgspec
import numpy as np

from actors.messages import (
    DecisionKind,
    DecisionRecord,
    StrategicDecision,
    StrategicMatrix,
    Synergy,
    SynergyType,
    TacticalMatrix,
)
from actors.policies import strategic
from actors.policies.forward import (
    STRATEGIC_INPUTS,
    StrategicPolicy,
    random_arrays,
    strategic_shapes,
)
from actors.policies.serving import PolicyParams, ServesPolicy
from actors.policies.strategic import StrategicOutcome
from config.types import Count
from kernel.actor import Actor, Port


class StrategicParams(PolicyParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    model: str = "strategic"


class StrategicState(msgspec.Struct, kw_only=True):
    synergies: dict[str, Synergy] = {}
    """Each symbol's latest synergy."""
    decisions: Count = 0
    fallbacks: Count = 0
    """Decisions that were the neutral fallback: no model, or non-finite values."""


class StrategicActor(ServesPolicy, Actor):
    """Matrices and synergies of symbols it does not serve are skipped and counted."""

    Params = StrategicParams
    params: StrategicParams
    State = StrategicState
    state: StrategicState

    @classmethod
    def warm_up(cls) -> None:
        """Compile the forward pass's kernels in the zygote."""
        policy = StrategicPolicy(random_arrays(strategic_shapes()))
        policy.probabilities(
            {name: np.zeros(width, np.float32) for name, width in STRATEGIC_INPUTS.items()}
        )

    async def on_start(self) -> None:
        self.out = self.output("decisions")
        self.skipped = 0
        self.zones = {s: ZoneInfo(i.session.timezone) for s, i in self.params.registry.items()}
        self.decide_ns = self.latency(["decide"]).series("decide").record
        self.serve(strategic_shapes(), StrategicPolicy)

    def on_synergy(self, synergy: Synergy) -> None:
        if synergy.symbol not in self.zones:
            self.skipped += 1
            return
        self.state.synergies[synergy.symbol] = synergy

    def on_matrix(self, matrix: StrategicMatrix) -> None:
        symbol = matrix.symbol
        zone = self.zones.get(symbol)
        if zone is None:
            self.skipped += 1
            return
        synergy = strategic.active_synergy(self.state.synergies.get(symbol), matrix.bar_end_ns)
        outcome = self._decide(matrix, synergy, zone)
        state = self.state
        state.decisions += 1
        state.fallbacks += outcome.fallback
        version = self.model.label
        decision = StrategicDecision(
            symbol=symbol,
            bar_end_ns=matrix.bar_end_ns,
            direction=outcome.direction,
            p_bearish=outcome.probabilities[0],
            p_neutral=outcome.probabilities[1],
            p_bullish=outcome.probabilities[2],
            confidence=outcome.confidence,
            uncertainty=outcome.uncertainty,
            should_proceed=outcome.should_proceed,
            synergy_type=synergy.synergy_type if synergy is not None else SynergyType.NONE,
            model_version=version,
            fallback=outcome.fallback,
        )
        decision.origin_ns = matrix.origin_ns
        self.out.publish(decision)
        self.out.publish(
            DecisionRecord(
                decision_id=f"{symbol}-strategic-{matrix.bar_end_ns}",
                kind=DecisionKind.STRATEGIC,
                symbol=symbol,
                action=outcome.direction,
                confidence=outcome.confidence,
                event_ns=matrix.bar_end_ns,
                model_version=version,
                synergy_type=decision.synergy_type,
                price=matrix.close,
                volatility=matrix.volatility,
                probabilities=list(outcome.probabilities),
                reason=_reasoning(outcome, self.model.problem if version == "" else None),
            )
        )

    def _decide(
        self, matrix: StrategicMatrix, synergy: Synergy | None, zone: ZoneInfo
    ) -> StrategicOutcome:
        policy = self.model.policy
        if policy is None:
            return strategic.fallback_outcome()
        inputs = strategic.agent_inputs(
            matrix.array(), strategic.context(synergy, matrix.volatility, matrix.bar_end_ns, zone)
        )
        if all(np.isfinite(x).all() for x in inputs.values()):
            started = time.perf_counter_ns()
            p, each = policy.probabilities(inputs)
            self.decide_ns(time.perf_counter_ns() - started)
            outcome = strategic.outcome(p, each)  # the fallback if an output is not finite
        else:
            outcome = strategic.fallback_outcome()
        self.decided(matrix.symbol, matrix.bar_end_ns, not outcome.fallback)
        return outcome

    inputs = {StrategicMatrix: on_matrix, Synergy: on_synergy}
    ignores = (TacticalMatrix,)
    """The features stream carries the tactical layer's matrices too."""
    outputs = {"decisions": Port(StrategicDecision, DecisionRecord)}


def _reasoning(outcome: StrategicOutcome, refused: str | None) -> str:
    """The reasoning record as one line (the journal row keeps it)."""
    if outcome.fallback:
        why = f"no model: {refused}" if refused else "non-finite input or output"
        return f"fallback (neutral, never proceeding): {why}"
    agents = ", ".join(
        f"{agent.name} {agent.prediction.name} {agent.confidence:.3f}" for agent in outcome.agents
    )
    return (
        f"dominant {outcome.dominant_signal}; uncertainty {outcome.uncertainty:.3f} "
        f"({outcome.uncertainty_source}); agents: {agents}"
    )
