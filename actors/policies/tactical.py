"""The tactical layer's decision from its three agents' probabilities (numpy only).

The agents: FVG over (short, hold, long); momentum over (counter-trend, neutral, trend);
entry over (wait, execute, aggressive). The documents add these unlike actions together;
here (spec fix) the direction comes from FVG and momentum, and the entry agent is the
timing gate:

- The momentum agent's vote gets its direction from the trend: the sign of the last bar's
  momentum feature (the matrix's `momentum_5` column, tanh(m / 5)). Trend-following votes
  that way, counter-trend the other way; with no trend (0) it votes for neither.
- With the synergy type's weights (w_fvg, w_momentum, w_entry): long = (w_fvg P_fvg[long] +
  w_momentum P_momentum[long]) / (w_fvg + w_momentum), short likewise; the direction is the
  larger (a tie holds).
- gate = P_entry[execute] + P_entry[aggressive] (not waiting).
- score = (w_fvg + w_momentum) max(long, short) + w_entry gate, in [0, 1].
- Against the synergy's direction, or against the strategic bias (when it is not FLAT),
  the score is multiplied by 0.7 (once, whichever disagrees).
- Execute when score >= 0.65; anything not finite holds.

Weights by synergy type: TYPE_1 .5/.3/.2, TYPE_2 .4/.4/.2, TYPE_3 .3/.5/.2, TYPE_4
.35/.35/.3, none .33/.33/.34.
"""

import math
from dataclasses import dataclass

import numpy as np

from actors.messages import Direction, SynergyType

EXECUTE_AT = 0.65
DISAGREEMENT_PENALTY = 0.7
WEIGHTS = {
    SynergyType.TYPE_1: (0.5, 0.3, 0.2),
    SynergyType.TYPE_2: (0.4, 0.4, 0.2),
    SynergyType.TYPE_3: (0.3, 0.5, 0.2),
    SynergyType.TYPE_4: (0.35, 0.35, 0.3),
    SynergyType.NONE: (0.33, 0.33, 0.34),
}
FVG, MOMENTUM, ENTRY = 0, 1, 2
SHORT, HOLD, LONG = 0, 1, 2
COUNTER, TREND = 0, 2
WAIT = 0


@dataclass(frozen=True)
class TacticalDecision:
    direction: Direction
    """LONG or SHORT to execute, FLAT to hold."""
    score: float
    long_vote: float
    short_vote: float
    gate: float
    penalised: bool
    reason: str


def decide(
    each: np.ndarray,
    momentum_feature: float,
    synergy_type: SynergyType = SynergyType.NONE,
    synergy_direction: Direction = Direction.FLAT,
    strategic_direction: Direction = Direction.FLAT,
) -> TacticalDecision:
    """The decision from the agents' probabilities `each` (3 agents, 3) (module docs).
    In Python floats: on the order path, numpy's per-call cost exceeds the arithmetic."""
    fvg, momentum, entry = each.tolist()
    if not all(map(math.isfinite, (*fvg, *momentum, *entry, momentum_feature))):
        return TacticalDecision(Direction.FLAT, 0.0, 0.0, 0.0, 0.0, False, "invalid_input")
    w_fvg, w_momentum, w_entry = WEIGHTS[synergy_type]
    trend = (momentum_feature > 0) - (momentum_feature < 0)
    momentum_long = momentum[TREND] if trend > 0 else momentum[COUNTER] if trend < 0 else 0.0
    momentum_short = momentum[COUNTER] if trend > 0 else momentum[TREND] if trend < 0 else 0.0
    directional = w_fvg + w_momentum
    long_vote = (w_fvg * fvg[LONG] + w_momentum * momentum_long) / directional
    short_vote = (w_fvg * fvg[SHORT] + w_momentum * momentum_short) / directional
    gate = 1.0 - entry[WAIT]
    if long_vote == short_vote:
        return TacticalDecision(Direction.FLAT, 0.0, long_vote, short_vote, gate, False, "tie")
    direction = Direction.LONG if long_vote > short_vote else Direction.SHORT
    score = directional * max(long_vote, short_vote) + w_entry * gate
    against = (synergy_direction == -direction) or (strategic_direction == -direction)
    if against:
        score *= DISAGREEMENT_PENALTY
    if score < EXECUTE_AT:
        reason = "below threshold after the disagreement penalty" if against else "below threshold"
        return TacticalDecision(Direction.FLAT, score, long_vote, short_vote, gate, against, reason)
    return TacticalDecision(direction, score, long_vote, short_vote, gate, against, "execute")
