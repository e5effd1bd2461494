"""The tactical (5-minute) decision layer."""

from actors.tactical.actor import TacticalActor, TacticalParams
from actors.tactical.baseline import BaselineRule, BaselineStrategy
from actors.tactical.policy_actor import TacticalPolicyActor, TacticalPolicyParams

__all__ = [
    "BaselineRule",
    "BaselineStrategy",
    "TacticalActor",
    "TacticalParams",
    "TacticalPolicyActor",
    "TacticalPolicyParams",
]
