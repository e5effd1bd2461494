"""`grandmodel models fit`: initial policy versions fitted by imitation, reproducibly.

Until MAPPO-trained versions replace them (the training issue), the shipped versions are
fitted by supervised imitation on the seeded synthetic market, through the same code the
actors run (bars, feature engines, synergy detector, the strategic inputs, the baseline
rule): no second implementation of any feature.

- Strategic agents: each learns the synthetic market's regime at the bar's end from its
  inputs: BULL -> bullish, BEAR -> bearish, SIDEWAYS and VOLATILE -> neutral.
- Tactical FVG agent: the last bar's gap state: a bullish gap active (and no bearish one)
  -> long, the reverse -> short, else hold.
- Tactical momentum agent: |momentum_5| at or above the baseline's threshold -> trend,
  unless an active gap points the other way -> counter-trend; below it -> neutral.
- Tactical entry agent: execute on the bars where the baseline rule emits an intent,
  else wait.

One run of `sessions + holdout` sessions: the samples of the first `sessions` train,
those of the rest measure (the holdout accuracy); both
accuracies go into the metadata with the command line, the seed, the git commit and the
time, so `grandmodel models fit` with the same arguments writes the same weights.
"""

import argparse
import datetime
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import torch
from torch import nn

from actors.bars.builder import BarBuilder
from actors.common.ticks import make_ticks
from actors.features.actor import BARS_PER_YEAR_OF_DAY_SECONDS
from actors.features.engine import StrategicFeatures, TacticalFeatures
from actors.feed.market import MarketParams, SyntheticMarket
from actors.matrices import TacticalColumn
from actors.messages import Regime, Synergy
from actors.policies import registry, strategic
from actors.policies.forward import STRATEGIC_AGENT_NAMES, TACTICAL_AGENT_NAMES
from actors.policies.networks import (
    StrategicEnsemble,
    TacticalAgents,
    export_strategic,
    export_tactical,
)
from actors.synergy import BarSignals, SynergyDetector
from actors.tactical.baseline import BaselineRule, BaselineStrategy

TACTICAL_S, STRATEGIC_S = 300, 1800
_REGIME_CLASS = {Regime.BULL: 2, Regime.BEAR: 0, Regime.SIDEWAYS: 1, Regime.VOLATILE: 1}


@dataclass
class Samples:
    strategic: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {name: [] for name in STRATEGIC_AGENT_NAMES}
    )
    regime: list[int] = field(default_factory=list)
    matrices: list[np.ndarray] = field(default_factory=list)
    tactical: dict[str, list[int]] = field(
        default_factory=lambda: {name: [] for name in TACTICAL_AGENT_NAMES}
    )
    strategic_session: list[int] = field(default_factory=list)
    tactical_session: list[int] = field(default_factory=list)

    def split(self, first_holdout: int) -> tuple["Samples", "Samples"]:
        """(samples of the sessions before `first_holdout`, the rest)."""
        parts = (Samples(), Samples())
        for i, session in enumerate(self.strategic_session):
            part = parts[session >= first_holdout]
            for name, inputs in self.strategic.items():
                part.strategic[name].append(inputs[i])
            part.regime.append(self.regime[i])
            part.strategic_session.append(session)
        for i, session in enumerate(self.tactical_session):
            part = parts[session >= first_holdout]
            part.matrices.append(self.matrices[i])
            for name, labels in self.tactical.items():
                part.tactical[name].append(labels[i])
            part.tactical_session.append(session)
        return parts


def collect(seed: int, sessions: int) -> Samples:
    """Run `sessions` sessions of the synthetic market through bars and features; every
    sample with its session number."""
    params = MarketParams(seed=seed, symbols=("ES",))
    market = SyntheticMarket(params)
    steps = round(params.session_length_s / params.tick_interval_s)
    zone = ZoneInfo(params.session.timezone)
    builder = BarBuilder("ES", (TACTICAL_S, STRATEGIC_S))
    tactical = TacticalFeatures(BARS_PER_YEAR_OF_DAY_SECONDS / TACTICAL_S)
    strategic_features = StrategicFeatures(
        BARS_PER_YEAR_OF_DAY_SECONDS / STRATEGIC_S, params.registry["ES"].tick_size
    )
    detector = SynergyDetector("ES", 10, 0.5)
    baseline = BaselineStrategy(BaselineRule(timeframe_s=TACTICAL_S))
    out = Samples()
    strategic_bars = 0
    latest: Synergy | None = None
    for session in range(sessions):
        batch = market.next_batch(steps)
        for tick in make_ticks(**batch._asdict()):
            for bar in builder.on_tick(tick):
                ohlcv = (bar.open, bar.high, bar.low, bar.close, bar.volume)
                if bar.timeframe_s == TACTICAL_S:
                    tactical.update(*ohlcv)
                    intent = baseline.on_bar(bar)
                    if tactical.matrix.ready:
                        _tactical_sample(out, tactical.matrix.matrix(), bar.momentum_5, intent)
                        out.tactical_session.append(session)
                    continue
                signals = strategic_features.update(*ohlcv)
                strategic_bars += 1
                found = detector.on_bar(
                    BarSignals(
                        strategic_bars,
                        bar.end_ns,
                        bar.close,
                        signals.mlmi,
                        signals.nwrqk,
                        signals.fvg,
                    )
                )
                latest = found or latest
                if strategic_features.matrix.ready:
                    context = strategic.context(
                        strategic.active_synergy(latest, bar.end_ns),
                        strategic_features.volatility,
                        bar.end_ns,
                        zone,
                    )
                    inputs = strategic.agent_inputs(strategic_features.matrix.matrix(), context)
                    if all(np.isfinite(x).all() for x in inputs.values()):
                        for name, x in inputs.items():
                            out.strategic[name].append(x)
                        out.regime.append(_REGIME_CLASS[Regime(tick.regime)])
                        out.strategic_session.append(session)
    return out


def _tactical_sample(out: Samples, matrix: np.ndarray, momentum: float, intent: object) -> None:
    last = matrix[-1]
    bullish = last[TacticalColumn.FVG_BULLISH_ACTIVE] > 0.5
    bearish = last[TacticalColumn.FVG_BEARISH_ACTIVE] > 0.5
    gap = 2 if bullish and not bearish else 0 if bearish and not bullish else 1
    threshold = BaselineRule().threshold_pct
    if not np.isfinite(momentum) or abs(momentum) < threshold:
        trend = 1
    else:
        opposed = (gap == 0 and momentum > 0) or (gap == 2 and momentum < 0)
        trend = 0 if opposed else 2
    out.matrices.append(matrix.astype(np.float32))
    out.tactical["fvg"].append(gap)
    out.tactical["momentum"].append(trend)
    out.tactical["entry"].append(1 if intent is not None else 0)


def _train(
    model: nn.Module,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    count: int,
    epochs: int,
    seed: int,
    batch: int = 256,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, batch):
            index = order[start : start + batch]
            optimiser.zero_grad()
            loss = loss_of(index)
            loss.backward()
            optimiser.step()
    model.eval()


def fit_strategic(
    train: Samples, holdout: Samples, seed: int, epochs: int
) -> tuple[StrategicEnsemble, dict[str, float]]:
    torch.manual_seed(seed)
    model = StrategicEnsemble()
    inputs = {n: torch.from_numpy(np.stack(x)) for n, x in train.strategic.items()}
    target = torch.tensor(train.regime)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        _, each = model({n: x[index] for n, x in inputs.items()})
        log = torch.log(each.clamp_min(1e-7))
        losses = [nn.functional.nll_loss(log[:, a], target[index]) for a in range(3)]
        return torch.stack(losses).sum()

    _train(model, loss_of, len(target), epochs, seed)
    with torch.no_grad():
        held = {n: torch.from_numpy(np.stack(x)) for n, x in holdout.strategic.items()}
        p, _ = model(held)
        accuracy = float((p.argmax(dim=1) == torch.tensor(holdout.regime)).float().mean())
    return model, {"holdout_accuracy": round(accuracy, 4), "train_samples": len(target)}


def fit_tactical(
    train: Samples, holdout: Samples, seed: int, epochs: int
) -> tuple[TacticalAgents, dict[str, float]]:
    torch.manual_seed(seed)
    model = TacticalAgents()
    matrices = torch.from_numpy(np.stack(train.matrices))
    targets = torch.tensor([train.tactical[n] for n in TACTICAL_AGENT_NAMES]).T
    weights = [_class_weights(targets[:, a]) for a in range(3)]

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        log = torch.log(model(matrices[index]).clamp_min(1e-7))
        losses = [
            nn.functional.nll_loss(log[:, a], targets[index, a], weight=weights[a])
            for a in range(3)
        ]
        return torch.stack(losses).sum()

    _train(model, loss_of, len(matrices), epochs, seed)
    with torch.no_grad():
        predicted = model(torch.from_numpy(np.stack(holdout.matrices))).argmax(dim=2)
        expected = torch.tensor([holdout.tactical[n] for n in TACTICAL_AGENT_NAMES]).T
        accuracy = (predicted == expected).float().mean(dim=0).tolist()
    metrics = {
        f"{n}_holdout_accuracy": round(a, 4)
        for n, a in zip(TACTICAL_AGENT_NAMES, accuracy, strict=True)
    }
    return model, {**metrics, "train_samples": len(matrices)}


def _class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Inverse class frequencies: a rare 'execute' must not be learned away."""
    counts = torch.bincount(labels, minlength=3).float().clamp_min(1.0)
    return counts.sum() / (3.0 * counts)


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grandmodel models fit", description=__doc__)
    parser.add_argument("--root", type=Path, default=registry.SHIPPED_ROOT)
    parser.add_argument("--version", required=True, help="the version name to write")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sessions", type=int, default=120, help="training sessions")
    parser.add_argument("--holdout", type=int, default=20, help="held-out sessions after them")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--activate", action="store_true", help="make the new versions active")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same weights on any machine
    train, holdout = collect(args.seed, args.sessions + args.holdout).split(args.sessions)
    command = "grandmodel models fit " + " ".join(argv if argv is not None else sys.argv[1:])
    base = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "command": command,
        "training_data": {
            "market": "synthetic",
            "symbol": "ES",
            "seed": args.seed,
            "sessions": args.sessions,
            "holdout_sessions": args.holdout,
        },
        "method": "imitation (actors/policies/fit.py)",
    }
    fitted = {
        "strategic": fit_strategic(train, holdout, args.seed, args.epochs),
        "tactical": fit_tactical(train, holdout, args.seed, args.epochs),
    }
    for name, (model, metrics) in fitted.items():
        arrays = export_strategic(model) if name == "strategic" else export_tactical(model)
        config = {"architecture": name, "epochs": args.epochs}
        registry.save_version(
            args.root, name, args.version, arrays, config, {**base, "metrics": metrics}
        )
        if args.activate:
            registry.activate(args.root, name, args.version)
        print(f"{name} {args.version}: {metrics}")
    return 0
