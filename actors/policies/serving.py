"""A registry model as a policy actor serves it: loaded at start, swapped while running.

`ServedModel` loads a version from the registry (the active one, or a pinned version),
builds the serving pass from its arrays and names it (`label`, "<name>/<version>@<first
12 hex of the manifest's sha256>", what decisions carry as `model_version`). When a
load is refused (no active version, a missing or corrupted file, arrays that do not fit)
`problem` says why, and the policy stays what it was: none at the start (the actor
holds), the version already served on a swap.

Hot swap. Unless pinned, the actor asks `pointer_changed()` on a timer (a read of the
small ACTIVE file); when the pointer moved, `swap()` verifies, loads and builds the new
version in a worker thread while the actor keeps deciding with the old one, then
replaces the policy between two messages in the actor's own loop. No message waits for
the load and none is decided by half of a model.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from actors.common.instruments import InstrumentParams, ServesInstruments
from actors.messages import DecisionKind, DecisionRecord, Direction
from actors.policies import registry
from config.types import Positive

Policy = TypeVar("Policy")


class ServedModel(Generic[Policy]):
    def __init__(
        self,
        root: Path,
        name: str,
        pinned: str | None,
        expected: Mapping[str, tuple[int, ...]],
        build: Callable[[Mapping[str, np.ndarray]], Policy],
    ) -> None:
        self.root = root
        self.name = name
        self.pinned = pinned
        self.expected = expected
        self.build = build
        self.policy: Policy | None = None
        self.label = ""
        self.problem: str | None = None
        self.swaps = 0
        self._pointer: str | None = None
        self._swapping = False

    def load(self) -> None:
        """Load synchronously (at the actor's start)."""
        self._pointer = self._read_pointer()
        self._install(*self._load(self.pinned or self._pointer))

    def pointer_changed(self) -> bool:
        """Whether the registry's ACTIVE pointer moved since the last load (never when
        pinned, nor while a swap is under way)."""
        if self.pinned is not None or self._swapping:
            return False
        return self._read_pointer() != self._pointer

    async def swap(self) -> tuple[str, str]:
        """Load the version ACTIVE names now and serve it: (label before, label after);
        the same label twice when the load was refused (`problem` says why)."""
        self._swapping = True
        try:
            before = self.label
            self._pointer = self._read_pointer()
            loaded = await asyncio.to_thread(self._load, self._pointer)
            self._install(*loaded)
            return before, self.label
        finally:
            self._swapping = False

    def _read_pointer(self) -> str | None:
        return registry.active_version(self.root, self.name)

    def _load(self, version: str | None) -> tuple[Policy | None, str, str | None]:
        """(policy, label, None), or (None, "", why it was refused)."""
        try:
            model = registry.load_version(self.root, self.name, version, self.expected)
        except registry.ModelError as error:
            return None, "", str(error)
        label = f"{model.name}/{model.version}@{model.digest[:12]}"
        return self.build(model.arrays), label, None

    def _install(self, policy: Policy | None, label: str, problem: str | None) -> None:
        self.problem = problem
        if policy is None:
            return
        if self.policy is not None:
            self.swaps += 1
        self.policy, self.label = policy, label


class PolicyParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a policy actor serves: a registry model (the base of its params)."""

    model: str
    """The model's name in the registry."""
    version: str | None = None
    """A pinned version; None serves the active one and follows `grandmodel models
    activate` while running."""
    models_root: str = ""
    """The registry directory; empty: the one shipped in the repository (models/registry)."""
    poll_interval_s: Positive = 0.5
    """How often the registry's ACTIVE pointer is read for a new version."""


MODEL_TIMER = "model"


class ServesPolicy(ServesInstruments):
    """Mix into a policy `Actor` (before `Actor`): serves `params.model`, swaps it when
    the registry's pointer moves, journals each swap as a CONTROL `DecisionRecord` on the
    `decisions` port, and keeps the actor's health row saying what stops it from deciding
    (no usable model; non-finite inputs or outputs on a symbol's latest decision)."""

    params: PolicyParams
    name: str
    log: logging.Logger
    model: ServedModel[Any]

    def serve(
        self,
        expected: Mapping[str, tuple[int, ...]],
        build: Callable[[Mapping[str, np.ndarray]], Any],
    ) -> None:
        """Load the model and start watching the registry (call from `on_start`)."""
        p = self.params
        root = Path(p.models_root) if p.models_root else registry.SHIPPED_ROOT
        self.model = ServedModel(root, p.model, p.version, expected, build)
        self.model.load()
        self._invalid: dict[str, int] = {}
        self._reported: str | None = None
        if self.model.policy is None:
            self.log.error("%s serves no model, it holds: %s", self.name, self.model.problem)
        else:
            self.log.info("%s serves %s", self.name, self.model.label)
        self.report_health()
        self.set_timer(MODEL_TIMER, p.poll_interval_s)  # type: ignore[attr-defined]

    def on_timer(self, name: str) -> None:
        if name == MODEL_TIMER and self.model.pointer_changed():
            self.spawn(self._swap())  # type: ignore[attr-defined]

    async def _swap(self) -> None:
        before, after = await self.model.swap()
        if after != before:
            self.log.warning("%s: model %s -> %s", self.name, before or "none", after)
            now_ns = time.time_ns()
            self.output("decisions").publish(  # type: ignore[attr-defined]
                DecisionRecord(
                    decision_id=f"{self.name}-model-{now_ns}",
                    kind=DecisionKind.CONTROL,
                    symbol="",
                    action=Direction.FLAT,
                    confidence=math.nan,
                    event_ns=now_ns,
                    model_version=after,
                    reason=f"model swap: {before or 'none'} -> {after}",
                )
            )
        else:
            self.log.error("%s keeps %s: %s", self.name, before or "no model", self.model.problem)
        self.report_health()

    def decided(self, symbol: str, bar_end_ns: int, valid: bool) -> None:
        """Note whether a symbol's latest decision had finite inputs and outputs."""
        if valid == (symbol not in self._invalid):
            return
        if valid:
            del self._invalid[symbol]
        else:
            self._invalid[symbol] = bar_end_ns
        self.report_health()

    def report_health(self) -> None:
        """The health row's problem: what stops this actor from deciding, if anything."""
        problems = []
        if self.model.problem is not None:
            serving = f"still serving {self.model.label}" if self.model.policy else "holding"
            problems.append(f"{self.model.problem} ({serving})")
        if self._invalid:
            listed = ", ".join(f"{s} (bar end {ns})" for s, ns in sorted(self._invalid.items()))
            problems.append(f"held on non-finite inputs or outputs: {listed}")
        problem = "; ".join(problems) or None
        if problem != self._reported:
            self._reported = problem
            self.report_problem(problem)  # type: ignore[attr-defined]
