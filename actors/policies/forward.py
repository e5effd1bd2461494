"""The decision layers' networks served without torch: forward passes, batch 1, float32.

The same computation as `actors.policies.networks` in eval mode (dropout off), from the
arrays its `export_*` functions write; tests/test_policies.py holds them equal to torch
within 1e-5 on random and on real-feature inputs. Hot processes import this module, never
torch. Matrix products are numpy's (BLAS); everything between them (bias, ReLU, LayerNorm,
softmax) runs in one compiled numba pass each, since numpy's own elementwise operations
cost several microseconds each at these sizes (a LayerNorm of 256 values took 33 us).

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

import numba
import numpy as np

LAYER_NORM_EPS = np.float32(1e-5)
STRATEGIC_AGENT_NAMES = ("mlmi", "nwrqk", "regime")
TACTICAL_AGENT_NAMES = ("fvg", "momentum", "entry")
Arrays = Mapping[str, np.ndarray]


@numba.njit(cache=True)
def _softmax(logits: np.ndarray, temperature: np.float32) -> np.ndarray:
    scaled = logits / temperature
    shifted = np.exp(scaled - scaled.max())
    return shifted / shifted.sum()


@numba.njit(cache=True)
def _bias_relu(h: np.ndarray, bias: np.ndarray) -> None:
    """h = max(h + bias, 0), in place (h: any shape whose last axis is bias's)."""
    flat = h.reshape(-1)
    width = bias.shape[0]
    for i in range(flat.shape[0]):
        value = flat[i] + bias[i % width]
        flat[i] = value if value > 0 else np.float32(0)


@numba.njit(cache=True)
def _bias_relu_norm(h: np.ndarray, bias: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> None:
    """h = LayerNorm(max(h + bias, 0)), in place."""
    n = h.shape[0]
    mean = np.float32(0)
    for i in range(n):
        value = h[i] + bias[i]
        value = value if value > 0 else np.float32(0)
        h[i] = value
        mean += value
    mean /= np.float32(n)
    variance = np.float32(0)
    for i in range(n):
        d = h[i] - mean
        variance += d * d
    scale = np.float32(1) / np.sqrt(variance / np.float32(n) + LAYER_NORM_EPS)
    for i in range(n):
        h[i] = (h[i] - mean) * scale * gamma[i] + beta[i]


@numba.njit(cache=True)
def _windows(x: np.ndarray, kernel: int) -> np.ndarray:
    """im2col of `x` (channels, length): (length - kernel + 1, channels x kernel), row t
    holding x[c, t + k] at column c x kernel + k (the layout of a Conv1d weight)."""
    channels, length = x.shape
    out = np.empty((length - kernel + 1, channels * kernel), dtype=x.dtype)
    for t in range(length - kernel + 1):
        for c in range(channels):
            for k in range(kernel):
                out[t, c * kernel + k] = x[c, t + k]
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return _softmax(np.asarray(logits, dtype=np.float32), np.float32(temperature))


class MlpAgent:
    """A strategic agent: three Linear-ReLU-LayerNorm blocks, a Linear head, softmax with
    its temperature."""

    def __init__(self, arrays: Arrays, name: str) -> None:
        def array(key: str) -> np.ndarray:
            return np.ascontiguousarray(arrays[f"{name}.{key}"], dtype=np.float32)

        self.blocks = [
            (array(f"{i}.w"), array(f"{i}.b"), array(f"{i}.ln_w"), array(f"{i}.ln_b"))
            for i in range(3)
        ]
        self.head = (array("3.w"), array("3.b"))
        self.temperature = np.float32(arrays[f"{name}.temperature"])
        self.inputs = self.blocks[0][0].shape[1]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        for weight, bias, gamma, beta in self.blocks:
            h = weight @ h  # numpy's product (BLAS); the rest in one compiled pass
            _bias_relu_norm(h, bias, gamma, beta)
        weight, bias = self.head
        return _softmax(weight @ h + bias, self.temperature)


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
        weight, bias = layer
        out = _windows(np.ascontiguousarray(x), self.kernel) @ weight
        _bias_relu(out, bias)
        return out

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        x = (np.asarray(matrix, dtype=np.float32) * self.scale).T  # (7, rows)
        h = self._conv(self._conv(x, self.conv1).T, self.conv2)  # (length, 64)
        flat = (self.pool @ h).T.ravel()  # channel-major, as torch's flatten
        for weight, bias in (self.fc1, self.fc2):
            flat = weight @ flat
            _bias_relu(flat, bias)
        weight, bias = self.head
        return _softmax(weight @ flat + bias, self.temperature)


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
