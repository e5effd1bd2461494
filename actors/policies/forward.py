"""The decision layers' networks served without torch: numpy forward passes, batch 1, float32.

The same computation as `actors.policies.networks` in eval mode (dropout off), from the
arrays its `export_*` functions write; tests/test_policies.py holds them equal to torch
within 1e-5 on random and on real-feature inputs. Hot processes import this module, never
torch.

- LayerNorm: (h - mean) / sqrt(var + 1e-5) * weight + bias, var the biased variance, as
  torch computes it.
- Conv1d (valid, stride 1) as one matrix product over the sliding windows (im2col).
- AdaptiveAvgPool1d(16) over length L: bin i averages positions floor(i L / 16) up to
  ceil((i + 1) L / 16), torch's rule, as one matrix product with a fixed pooling matrix.
- Flattening after the pool is channel-major (channel x 16 + bin), as `flatten(1)` of a
  (channels, bins) tensor.
"""

import math
from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LAYER_NORM_EPS = np.float32(1e-5)
STRATEGIC_AGENT_NAMES = ("mlmi", "nwrqk", "regime")
TACTICAL_AGENT_NAMES = ("fvg", "momentum", "entry")
Arrays = Mapping[str, np.ndarray]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


class MlpAgent:
    """A strategic agent: three Linear-ReLU-LayerNorm blocks, a Linear head, softmax with
    its temperature."""

    def __init__(self, arrays: Arrays, name: str) -> None:
        self.linears = [(arrays[f"{name}.{i}.w"], arrays[f"{name}.{i}.b"]) for i in range(4)]
        self.norms = [(arrays[f"{name}.{i}.ln_w"], arrays[f"{name}.{i}.ln_b"]) for i in range(3)]
        self.temperature = np.float32(arrays[f"{name}.temperature"])
        self.inputs = self.linears[0][0].shape[1]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        for (weight, bias), (gamma, beta) in zip(self.linears, self.norms, strict=False):
            h = np.maximum(weight @ h + bias, np.float32(0))
            centred = h - h.mean()
            h = centred / np.sqrt((centred * centred).mean() + LAYER_NORM_EPS) * gamma + beta
        weight, bias = self.linears[-1]
        return softmax((weight @ h + bias) / self.temperature)


def pooling_matrix(length: int, bins: int) -> np.ndarray:
    """(bins, length): row i averages torch's AdaptiveAvgPool1d bin i."""
    matrix = np.zeros((bins, length), dtype=np.float32)
    for i in range(bins):
        start, end = (i * length) // bins, math.ceil((i + 1) * length / bins)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class ConvAgent:
    """A tactical agent over the (rows, 7) matrix."""

    def __init__(self, arrays: Arrays, name: str, rows: int = 60) -> None:
        self.scale = arrays[f"{name}.scale"]
        conv1, conv2 = arrays[f"{name}.conv1.w"], arrays[f"{name}.conv2.w"]
        self.kernel = conv1.shape[2]
        self.conv1 = (conv1.reshape(conv1.shape[0], -1).T.copy(), arrays[f"{name}.conv1.b"])
        self.conv2 = (conv2.reshape(conv2.shape[0], -1).T.copy(), arrays[f"{name}.conv2.b"])
        length = rows - 2 * (self.kernel - 1)
        bins = arrays[f"{name}.fc1.w"].shape[1] // conv2.shape[0]
        self.pool = pooling_matrix(length, bins)
        self.fc1 = (arrays[f"{name}.fc1.w"], arrays[f"{name}.fc1.b"])
        self.fc2 = (arrays[f"{name}.fc2.w"], arrays[f"{name}.fc2.b"])
        self.head = (arrays[f"{name}.head.w"], arrays[f"{name}.head.b"])
        self.temperature = np.float32(arrays[f"{name}.temperature"])

    def _conv(self, x: np.ndarray, layer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """`x` (channels, length) -> relu(conv), (length - k + 1, out channels)."""
        windows = sliding_window_view(x, self.kernel, axis=1)  # (channels, out length, k)
        columns = windows.transpose(1, 0, 2).reshape(windows.shape[1], -1)
        weight, bias = layer
        return np.maximum(columns @ weight + bias, np.float32(0))

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        x = (np.asarray(matrix, dtype=np.float32) * self.scale).T  # (7, rows)
        h = self._conv(self._conv(x, self.conv1).T, self.conv2)  # (length, 64)
        flat = (self.pool @ h).T.ravel()  # channel-major, as torch's flatten
        for weight, bias in (self.fc1, self.fc2):
            flat = np.maximum(weight @ flat + bias, np.float32(0))
        weight, bias = self.head
        return softmax((weight @ flat + bias) / self.temperature)


class StrategicPolicy:
    """The three strategic agents and the ensemble weights."""

    def __init__(self, arrays: Arrays) -> None:
        self.agents = {name: MlpAgent(arrays, name) for name in STRATEGIC_AGENT_NAMES}
        self.weights = np.asarray(arrays["ensemble.weights"], dtype=np.float32)

    def probabilities(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(P, (3,); each agent's probabilities, (3 agents, 3))."""
        each = np.stack([agent.probabilities(inputs[n]) for n, agent in self.agents.items()])
        return self.weights @ each, each


class TacticalPolicy:
    """The three tactical agents over one matrix."""

    def __init__(self, arrays: Arrays) -> None:
        self.agents = {name: ConvAgent(arrays, name) for name in TACTICAL_AGENT_NAMES}

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Each agent's probabilities, (3 agents, 3)."""
        return np.stack([agent.probabilities(matrix) for agent in self.agents.values()])
