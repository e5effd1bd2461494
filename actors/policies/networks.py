"""The decision layers' networks in torch: what training optimises and exports.

Imported only where torch belongs (training, export, the parity tests): the hot path
serves the same networks through `actors.policies.forward`, numpy only, from the arrays
`export` writes. Architectures (README "Decision layers"; the documents' ones with their
fixes):

- `StrategicAgent`: in -> 256 -> 128 -> 64 -> 3, each hidden block Linear, ReLU, Dropout
  (0.1; the regime agent 0.15), LayerNorm; softmax(logits / tau) with a learned
  temperature tau = exp(log_tau), 1 at start. Agents: MLMI (4 + 6 inputs), NWRQK (4 + 6),
  Regime (3 + 6).
- `StrategicEnsemble`: the three agents and ensemble weights softmax(raw), raw = ln of
  (0.40, 0.35, 0.25) at start; P = sum of w_i P_i.
- `TacticalAgent`: a learned per-feature scale (7 weights), Conv1d(7, 32, 3), ReLU,
  Conv1d(32, 64, 3), ReLU, AdaptiveAvgPool1d(16), Linear(1024, 256), ReLU,
  Linear(256, 128), ReLU, Linear(128, 3), softmax(logits / T) with a fixed temperature
  (FVG 1.0, momentum 1.2, entry 0.8).
- `Critic`: the centralized value function of training: state + the agents' 9
  probabilities -> 512 -> 256 -> 128 -> 1 (strategic state: the 13 column means;
  tactical: the 7 column means and the last row).

Every probability vector is (bearish, neutral, bullish) for the direction agents and
(wait, execute, aggressive) for the entry agent, in that index order.
"""

import itertools
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from actors.policies.forward import STRATEGIC_INPUTS

DROPOUT = {"mlmi": 0.10, "nwrqk": 0.10, "regime": 0.15}
STRATEGIC_AGENTS = {name: (STRATEGIC_INPUTS[name], DROPOUT[name]) for name in STRATEGIC_INPUTS}
"""Strategic agent -> (inputs: its features + 6 context values, dropout)."""
ENSEMBLE_WEIGHTS = (0.40, 0.35, 0.25)
TACTICAL_AGENTS = {"fvg": 1.0, "momentum": 1.2, "entry": 0.8}
"""Tactical agent -> softmax temperature."""
TACTICAL_ROWS, TACTICAL_FEATURES, POOLED = 60, 7, 16
HIDDEN = (256, 128, 64)


class StrategicAgent(nn.Module):
    def __init__(self, inputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = inputs
        for hidden in HIDDEN:
            layers += [
                nn.Linear(width, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.LayerNorm(hidden),
            ]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 3)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities, (batch, 3)."""
        logits = self.head(self.body(x))
        return torch.softmax(logits / self.log_temperature.exp(), dim=-1)


class StrategicEnsemble(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.agents = nn.ModuleDict(
            {
                name: StrategicAgent(inputs, dropout)
                for name, (inputs, dropout) in STRATEGIC_AGENTS.items()
            }
        )
        self.raw_weights = nn.Parameter(torch.log(torch.tensor(ENSEMBLE_WEIGHTS)))

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, (batch, 3); each agent's probabilities, (batch, 3 agents, 3))."""
        each = torch.stack([agent(inputs[name]) for name, agent in self.agents.items()], dim=1)
        weights = torch.softmax(self.raw_weights, dim=0)
        return (each * weights[None, :, None]).sum(dim=1), each


class TacticalAgent(nn.Module):
    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.feature_scale = nn.Parameter(torch.ones(TACTICAL_FEATURES))
        self.conv1 = nn.Conv1d(TACTICAL_FEATURES, 32, 3)
        self.conv2 = nn.Conv1d(32, 64, 3)
        self.pool = nn.AdaptiveAvgPool1d(POOLED)
        self.fc1 = nn.Linear(64 * POOLED, 256)
        self.fc2 = nn.Linear(256, 128)
        self.head = nn.Linear(128, 3)
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, matrix: torch.Tensor) -> torch.Tensor:
        """`matrix`: (batch, 60 rows, 7 features) -> probabilities, (batch, 3)."""
        x = (matrix * self.feature_scale).transpose(1, 2)
        x = self.pool(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
        x = torch.relu(self.fc2(torch.relu(self.fc1(x.flatten(1)))))
        return torch.softmax(self.head(x) / self.temperature, dim=-1)


class TacticalAgents(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.agents = nn.ModuleDict(
            {name: TacticalAgent(temperature) for name, temperature in TACTICAL_AGENTS.items()}
        )

    def forward(self, matrix: torch.Tensor) -> torch.Tensor:
        """Each agent's probabilities, (batch, 3 agents, 3)."""
        return torch.stack([agent(matrix) for agent in self.agents.values()], dim=1)


class Critic(nn.Module):
    def __init__(self, state: int) -> None:
        super().__init__()
        widths = (state + 9, 512, 256, 128)
        layers: list[nn.Module] = []
        for inputs, outputs in itertools.pairwise(widths):
            layers += [nn.Linear(inputs, outputs), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))

    def forward(self, state: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, probabilities.flatten(1)], dim=-1)).squeeze(-1)


def export_strategic(ensemble: StrategicEnsemble) -> dict[str, np.ndarray]:
    """The arrays `forward.StrategicPolicy` serves, float32: per agent `<agent>.<i>.w/b`
    for its four Linear layers (i = 0..3), `<agent>.<i>.ln_w/ln_b` for its three
    LayerNorms, `<agent>.temperature`; and `ensemble.weights` (the softmax of raw)."""
    out: dict[str, np.ndarray] = {}
    for name, agent in ensemble.agents.items():
        linears = [m for m in agent.body if isinstance(m, nn.Linear)] + [agent.head]
        norms = [m for m in agent.body if isinstance(m, nn.LayerNorm)]
        for i, linear in enumerate(linears):
            out[f"{name}.{i}.w"] = _array(linear.weight)
            out[f"{name}.{i}.b"] = _array(linear.bias)
        for i, norm in enumerate(norms):
            out[f"{name}.{i}.ln_w"] = _array(norm.weight)
            out[f"{name}.{i}.ln_b"] = _array(norm.bias)
        out[f"{name}.temperature"] = _array(agent.log_temperature.exp())
    out["ensemble.weights"] = _array(torch.softmax(ensemble.raw_weights, dim=0))
    return out


def export_tactical(agents: TacticalAgents) -> dict[str, np.ndarray]:
    """The arrays `forward.TacticalPolicy` serves, float32: per agent `<agent>.scale`,
    `<agent>.conv1.w/b`, `<agent>.conv2.w/b`, `<agent>.fc1.w/b`, `<agent>.fc2.w/b`,
    `<agent>.head.w/b` and `<agent>.temperature`."""
    out: dict[str, np.ndarray] = {}
    for name, agent in agents.agents.items():
        out[f"{name}.scale"] = _array(agent.feature_scale)
        for layer in ("conv1", "conv2", "fc1", "fc2", "head"):
            module = getattr(agent, layer)
            out[f"{name}.{layer}.w"] = _array(module.weight)
            out[f"{name}.{layer}.b"] = _array(module.bias)
        out[f"{name}.temperature"] = _array(agent.temperature)
    return out


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.array(tensor.detach().cpu().numpy(), dtype=np.float32, order="C")  # 0-d kept


def import_strategic(arrays: Mapping[str, np.ndarray]) -> StrategicEnsemble:
    """The ensemble whose `export_strategic` is `arrays` (a registry version), in eval mode."""
    ensemble = StrategicEnsemble()
    with torch.no_grad():
        for name, agent in ensemble.agents.items():
            linears = [m for m in agent.body if isinstance(m, nn.Linear)] + [agent.head]
            norms = [m for m in agent.body if isinstance(m, nn.LayerNorm)]
            for i, linear in enumerate(linears):
                linear.weight.copy_(_tensor(arrays[f"{name}.{i}.w"]))
                linear.bias.copy_(_tensor(arrays[f"{name}.{i}.b"]))
            for i, norm in enumerate(norms):
                norm.weight.copy_(_tensor(arrays[f"{name}.{i}.ln_w"]))
                norm.bias.copy_(_tensor(arrays[f"{name}.{i}.ln_b"]))
            agent.log_temperature.copy_(_tensor(arrays[f"{name}.temperature"]).log())
        ensemble.raw_weights.copy_(_tensor(arrays["ensemble.weights"]).log())
    return ensemble.eval()


def import_tactical(arrays: Mapping[str, np.ndarray]) -> TacticalAgents:
    """The agents whose `export_tactical` is `arrays` (a registry version), in eval mode."""
    agents = TacticalAgents()
    with torch.no_grad():
        for name, agent in agents.agents.items():
            agent.feature_scale.copy_(_tensor(arrays[f"{name}.scale"]))
            for layer in ("conv1", "conv2", "fc1", "fc2", "head"):
                module = getattr(agent, layer)
                module.weight.copy_(_tensor(arrays[f"{name}.{layer}.w"]))
                module.bias.copy_(_tensor(arrays[f"{name}.{layer}.b"]))
            agent.temperature.copy_(_tensor(arrays[f"{name}.temperature"]))
    return agents.eval()


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float32))
