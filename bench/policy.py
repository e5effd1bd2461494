"""`grandmodel bench policy`: what one decision of each layer costs, exported versus torch.

The inputs are real features: a few sessions of the seeded synthetic market through the
bars, the feature engines and the synergy detector (the code the models are fitted on,
actors/policies/fit.py), cycled. The models are the registry's active versions (the
shipped ones by default). Each case times one whole decision as the actors make it:

- `tactical exported`: the three agents' exported forward pass (forward.TacticalPolicy,
  incremental from one bar's matrix to the next, prepared after the previous decision:
  what the tactical actor runs on the order path) and the decision rule (tactical.decide);
- `tactical prepare (after a decision)`: that preparation, off the order path;
- `tactical exported, cold caches`: the same after 32 MiB of other data went through
  the caches, as between two bars of a live run where other work runs on the core;
- `tactical exported, whole matrix`: every convolution window computed (a first
  decision, or a matrix that is not the previous one moved up a bar);
- `tactical torch eager`: the same networks in torch (eval, no_grad, one thread) and
  the same rule;
- `strategic exported` / `strategic torch eager`: the agents' inputs from the matrix and
  context, the ensemble, the outcome (strategic.outcome).

Budgets (the exported path, warm): tactical p99 <= 100 us, strategic p99 <= 1 ms. Prints
p50/p90/p99/p99.9/max per case, writes bench/results/policy.json, exits 1 when a budget
breaks (`--no-enforce`: report only).
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from actors.matrices import TacticalColumn
from actors.policies import registry, strategic, tactical
from actors.policies.fit import collect
from actors.policies.forward import (
    StrategicPolicy,
    TacticalActivations,
    TacticalPolicy,
    strategic_shapes,
    tactical_shapes,
)
from actors.policies.networks import import_strategic, import_tactical
from bench.report import SuiteReport

TACTICAL_BUDGET_US = 100.0
STRATEGIC_BUDGET_US = 1000.0
EVICT_BYTES = 32 << 20


def _timed(decide: Callable[[int], object], count: int, between: Callable[[], None]) -> np.ndarray:
    """Microseconds of `decide(i)` for i in range(count), `between` run untimed before each."""
    samples = np.empty(count)
    for i in range(count):
        between()
        started = time.perf_counter_ns()
        decide(i)
        samples[i] = (time.perf_counter_ns() - started) / 1e3
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grandmodel bench policy", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 decisions a case")
    parser.add_argument("--no-enforce", action="store_true", help="report, never fail")
    parser.add_argument("--decisions", type=int, help="decisions per case (default 5,000)")
    parser.add_argument("--root", type=Path, default=registry.SHIPPED_ROOT, help="registry")
    args = parser.parse_args(argv)
    count = args.decisions or (300 if args.quick else 5_000)
    torch.set_num_threads(1)  # the serving pass has one core, so has torch here

    samples = collect(seed=11, sessions=6)
    matrices = [np.ascontiguousarray(m) for m in samples.matrices]
    strategic_inputs = [
        {name: inputs[i] for name, inputs in samples.strategic.items()}
        for i in range(len(samples.regime))
    ]
    print(
        f"{len(matrices)} tactical matrices, {len(strategic_inputs)} strategic inputs "
        f"from 6 synthetic sessions; {count} decisions a case",
        flush=True,
    )
    tactical_model = registry.load_version(args.root, "tactical", None, tactical_shapes())
    strategic_model = registry.load_version(args.root, "strategic", None, strategic_shapes())
    exported_tactical = TacticalPolicy(tactical_model.arrays)
    eager_tactical = import_tactical(tactical_model.arrays)
    exported_strategic = StrategicPolicy(strategic_model.arrays)
    eager_strategic = import_strategic(strategic_model.arrays)

    activations = TacticalActivations(exported_tactical)

    def tactical_exported(i: int) -> object:
        x = matrices[i % len(matrices)]
        each = exported_tactical.probabilities(x, activations)
        return tactical.decide(each, float(x[-1, TacticalColumn.MOMENTUM_5]))

    def tactical_exported_whole(i: int) -> object:
        x = matrices[i % len(matrices)]
        each = exported_tactical.probabilities(x)
        return tactical.decide(each, float(x[-1, TacticalColumn.MOMENTUM_5]))

    def tactical_eager(i: int) -> object:
        x = matrices[i % len(matrices)]
        with torch.no_grad():
            each = eager_tactical(torch.from_numpy(x)[None])[0].numpy()
        return tactical.decide(each, float(x[-1, TacticalColumn.MOMENTUM_5]))

    def strategic_exported(i: int) -> object:
        p, each = exported_strategic.probabilities(strategic_inputs[i % len(strategic_inputs)])
        return strategic.outcome(p, each)

    def strategic_eager(i: int) -> object:
        inputs = strategic_inputs[i % len(strategic_inputs)]
        with torch.no_grad():
            p, each = eager_strategic({n: torch.from_numpy(x)[None] for n, x in inputs.items()})
        return strategic.outcome(p[0].numpy(), each[0].numpy())

    other = np.ones(EVICT_BYTES // 8)

    def prepare() -> None:
        exported_tactical.prepare(activations)

    def evict() -> None:
        prepare()
        other.sum()

    def nothing() -> None:
        pass

    def tactical_prepare(i: int) -> None:
        prepare()

    def decide_unprepared() -> None:
        tactical_exported(-1)

    report = SuiteReport("policy")
    cases = (
        ("tactical exported", tactical_exported, prepare),
        ("tactical exported, cold caches", tactical_exported, evict),
        ("tactical prepare (after a decision)", tactical_prepare, decide_unprepared),
        ("tactical exported, whole matrix", tactical_exported_whole, nothing),
        ("tactical torch eager", tactical_eager, nothing),
        ("strategic exported", strategic_exported, nothing),
        ("strategic torch eager", strategic_eager, nothing),
    )
    for name, decide, between in cases:
        _timed(decide, min(count, 200), between)  # compile, fill caches and allocators
        report.add_samples(name, _timed(decide, count, between))
    exported = report.case("tactical exported").p50
    eager = report.case("tactical torch eager").p50
    report.notes.append(
        f"models: {tactical_model.name} {tactical_model.version}, "
        f"{strategic_model.name} {strategic_model.version}; the exported tactical decision "
        f"is {eager / exported:.1f}x faster than torch eager at p50"
    )
    report.budget_at_most("tactical exported", "p99", TACTICAL_BUDGET_US)
    report.budget_at_most("strategic exported", "p99", STRATEGIC_BUDGET_US)
    return report.finish(enforce=not args.no_enforce)
