"""The strategic layer's decision around its networks: the agents' inputs, and what the
ensemble's probabilities mean (numpy only, no torch).

Inputs. Each agent reads the time-mean over the 48 rows of its columns of the strategic
matrix (design §6: MLMI [0, 1, 9, 10], NWRQK [2, 3, 4, 5], Regime [8, 11, 12]) followed by
six context values:

    synergy confidence (0 without a synergy), synergy direction (-1, 0, 1),
    ln(volatility), volatility clamped to [1e-4, 10] (ln 0 and ln inf are not inputs),
    sin(2 pi h / 24), cos(2 pi h / 24), weekday / 6,

the synergy being the symbol's latest while it is active: fired at or before the bar and
less than five hours (ten strategic bars, the detector's window) before its end, so never
yesterday's; h the hour (with minutes as its fraction) and weekday (Monday 0) of the
bar's end in the exchange's time zone: from the bar timestamp, never the wall clock, so a
replay decides as the live run did.

Outcome. P = sum of w_i P_i (forward.StrategicPolicy); direction = argmax P over
(bearish, neutral, bullish) -> SHORT, FLAT, LONG; confidence = max P; uncertainty =
H(P) / ln 3 in [0, 1]; should_proceed = confidence > 0.65. The reasoning: each agent's
prediction and confidence; the dominant signal, "consensus" when every agent's argmax
agrees, else the most confident agent; the uncertainty source, "low_individual_confidence"
when an agent's confidence is below 0.6, else "agent_disagreement" when the agents'
confidences are more than 0.3 apart, else "stable_uncertainty". A NaN or infinite input or
output gives the fallback instead: neutral at 0.5, (0.25, 0.5, 0.25), never proceeding.
"""

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from actors.messages import Direction, Synergy
from actors.policies.forward import STRATEGIC_AGENT_NAMES

AGENT_COLUMNS = {"mlmi": (0, 1, 9, 10), "nwrqk": (2, 3, 4, 5), "regime": (8, 11, 12)}
SYNERGY_TTL_NS = 5 * 3600 * 10**9
"""A synergy is the context for ten strategic bars (the detector's window), and never
overnight."""
PROCEED_ABOVE = 0.65
LOW_CONFIDENCE = 0.6
DISAGREEMENT = 0.3
VOLATILITY_RANGE = (1e-4, 10.0)
FALLBACK = np.array([0.25, 0.5, 0.25], dtype=np.float32)
_DIRECTIONS = (Direction.SHORT, Direction.FLAT, Direction.LONG)
_LN3 = math.log(3.0)


def active_synergy(
    latest: Synergy | None, bar_end_ns: int, ttl_ns: int = SYNERGY_TTL_NS
) -> Synergy | None:
    """The symbol's latest synergy while it holds for the bar ending at `bar_end_ns`: fired
    at or before that bar and less than `ttl_ns` before it (module docstring)."""
    if latest is None or not 0 <= bar_end_ns - latest.bar_end_ns < ttl_ns:
        return None
    return latest


def context(
    synergy: Synergy | None, volatility: float, bar_end_ns: int, zone: ZoneInfo
) -> np.ndarray:
    """The six context values (module docstring) with the active `synergy` (None: none),
    float32; a NaN volatility stays NaN."""
    low, high = VOLATILITY_RANGE
    clamped = min(max(volatility, low), high) if not math.isnan(volatility) else math.nan
    local = datetime.fromtimestamp(bar_end_ns / 1e9, zone)
    angle = 2.0 * math.pi * (local.hour + local.minute / 60.0) / 24.0
    return np.array(
        [
            0.0 if synergy is None else synergy.confidence,
            0 if synergy is None else int(synergy.direction),
            math.log(clamped),
            math.sin(angle),
            math.cos(angle),
            local.weekday() / 6.0,
        ],
        dtype=np.float32,
    )


def agent_inputs(matrix: np.ndarray, context_values: np.ndarray) -> dict[str, np.ndarray]:
    """Each agent's input vector from the (48, 13) strategic matrix and the context."""
    means = np.asarray(matrix, dtype=np.float32).mean(axis=0)
    return {
        name: np.concatenate((means[list(columns)], context_values)).astype(np.float32)
        for name, columns in AGENT_COLUMNS.items()
    }


@dataclass(frozen=True)
class AgentView:
    name: str
    prediction: Direction
    confidence: float


@dataclass(frozen=True)
class StrategicOutcome:
    probabilities: tuple[float, float, float]
    direction: Direction
    confidence: float
    uncertainty: float
    should_proceed: bool
    agents: tuple[AgentView, ...]
    dominant_signal: str
    uncertainty_source: str
    fallback: bool = False


def outcome(p: np.ndarray, each: np.ndarray) -> StrategicOutcome:
    """What the ensemble's P and the agents' probabilities (3 agents, 3) say."""
    if not (np.isfinite(p).all() and np.isfinite(each).all()):
        return fallback_outcome()
    agents = tuple(
        AgentView(name, _DIRECTIONS[int(np.argmax(row))], float(row.max()))
        for name, row in zip(STRATEGIC_AGENT_NAMES, each, strict=True)
    )
    confidences = [agent.confidence for agent in agents]
    if len({agent.prediction for agent in agents}) == 1:
        dominant = "consensus"
    else:
        dominant = max(agents, key=lambda agent: agent.confidence).name
    if min(confidences) < LOW_CONFIDENCE:
        source = "low_individual_confidence"
    elif max(confidences) - min(confidences) > DISAGREEMENT:
        source = "agent_disagreement"
    else:
        source = "stable_uncertainty"
    confidence = float(p.max())
    return StrategicOutcome(
        probabilities=(float(p[0]), float(p[1]), float(p[2])),
        direction=_DIRECTIONS[int(np.argmax(p))],
        confidence=confidence,
        uncertainty=normalised_entropy(p),
        should_proceed=confidence > PROCEED_ABOVE,
        agents=agents,
        dominant_signal=dominant,
        uncertainty_source=source,
    )


def fallback_outcome() -> StrategicOutcome:
    return StrategicOutcome(
        probabilities=(0.25, 0.5, 0.25),
        direction=Direction.FLAT,
        confidence=0.5,
        uncertainty=normalised_entropy(FALLBACK),
        should_proceed=False,
        agents=(),
        dominant_signal="fallback",
        uncertainty_source="invalid_input",
        fallback=True,
    )


def normalised_entropy(p: np.ndarray) -> float:
    """H(p) / ln 3, with 0 ln 0 = 0."""
    return float(-sum(x * math.log(x) for x in p.tolist() if x > 0.0) / _LN3)
