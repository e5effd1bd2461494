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
STRATEGIC_INPUTS = {"mlmi": 10, "nwrqk": 10, "regime": 9}
"""Each strategic agent's input width: its features and the 6 context values."""
_STRATEGIC_WIDTHS = (256, 128, 64, 3)


def strategic_shapes() -> dict[str, tuple[int, ...]]:
    """Every array `StrategicPolicy` reads, with its shape (what a registry load checks)."""
    shapes: dict[str, tuple[int, ...]] = {"ensemble.weights": (3,)}
    for name, inputs in STRATEGIC_INPUTS.items():
        widths = (inputs, *_STRATEGIC_WIDTHS)
        for i in range(4):
            shapes[f"{name}.{i}.w"] = (widths[i + 1], widths[i])
            shapes[f"{name}.{i}.b"] = (widths[i + 1],)
        for i in range(3):
            shapes[f"{name}.{i}.ln_w"] = shapes[f"{name}.{i}.ln_b"] = (widths[i + 1],)
        shapes[f"{name}.temperature"] = ()
    return shapes


def tactical_shapes(
    features: int = 7, kernel: int = 3, bins: int = 16
) -> dict[str, tuple[int, ...]]:
    """Every array `TacticalPolicy` reads, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    layers = {
        "conv1": ((32, features, kernel), (32,)),
        "conv2": ((64, 32, kernel), (64,)),
        "fc1": ((256, 64 * bins), (256,)),
        "fc2": ((128, 256), (128,)),
        "head": ((3, 128), (3,)),
    }
    for name in TACTICAL_AGENT_NAMES:
        shapes[f"{name}.scale"] = (features,)
        for layer, (weight, bias) in layers.items():
            shapes[f"{name}.{layer}.w"], shapes[f"{name}.{layer}.b"] = weight, bias
        shapes[f"{name}.temperature"] = ()
    return shapes


@numba.njit(cache=True)
def _softmax(logits: np.ndarray, temperature: np.float32) -> np.ndarray:
    scaled = logits / temperature
    shifted = np.exp(scaled - scaled.max())
    return shifted / shifted.sum()


@numba.njit(cache=True)
def _bias_relu_norm(h: np.ndarray, bias: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> None:
    """h = LayerNorm(max(h + bias, 0)), in place."""
    n = h.shape[0]
    mean = np.float32(0)
    for i in range(n):
        value = h[i] + bias[i]
        value = np.float32(0) if value < 0 else value  # NaN stays NaN, as in torch
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
def _grouped_windows(h: np.ndarray, groups: int, kernel: int) -> np.ndarray:
    """im2col per group of `h` (length, groups x channels): (groups, length - kernel + 1,
    channels x kernel): row t of group g holds h[t + k, g x channels + c] at column
    c x kernel + k, the layout of a Conv1d weight (one group: a single convolution's im2col)."""
    length, total = h.shape
    channels = total // groups
    out = np.empty((groups, length - kernel + 1, channels * kernel), dtype=h.dtype)
    for g in range(groups):
        for t in range(length - kernel + 1):
            for c in range(channels):
                for k in range(kernel):
                    out[g, t, c * kernel + k] = h[t + k, g * channels + c]
    return out


@numba.njit(cache=True)
def _add_relu(h: np.ndarray, bias: np.ndarray) -> None:
    """h = max(h + bias, 0) in place; h (groups, rows, columns), bias (groups, 1, columns)
    or (groups, rows, 1)."""
    groups, rows, columns = h.shape
    for g in range(groups):
        for r in range(rows):
            for c in range(columns):
                value = (
                    h[g, r, c]
                    + bias[g, r if bias.shape[1] > 1 else 0, c if bias.shape[2] > 1 else 0]
                )
                h[g, r, c] = np.float32(0) if value < 0 else value  # NaN stays NaN


@numba.njit(cache=True)
def _softmax_rows(logits: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    out = np.empty_like(logits)
    for g in range(logits.shape[0]):
        out[g] = _softmax(logits[g].copy(), temperatures[g, 0])
    return out


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
    """The three tactical agents over one (rows, 7) matrix, computed together: every layer
    is one (batched) matrix product for the three agents.

    - The agents' per-feature scales are folded into their first convolution's weights
      (conv(x * s) = conv'(x), W'[o, c, k] = W[o, c, k] s[c]), so the three first
      convolutions share the input's windows and are one product.
    - The second convolutions, the pooling and the dense layers are stacked per agent and
      multiplied as batches (`np.matmul` over the leading axis)."""

    def __init__(self, arrays: Arrays, rows: int = 60) -> None:
        def array(key: str) -> np.ndarray:
            return np.asarray(arrays[key], dtype=np.float32)

        names = TACTICAL_AGENT_NAMES
        conv1 = [array(f"{n}.conv1.w") * array(f"{n}.scale")[None, :, None] for n in names]
        self.kernel = conv1[0].shape[2]
        self.conv1_w = np.ascontiguousarray(
            np.concatenate([w.reshape(w.shape[0], -1).T for w in conv1], axis=1)
        )  # (features x kernel, agents x channels)
        self.conv1_b = np.concatenate([array(f"{n}.conv1.b") for n in names])[None, None, :]
        self.channels = conv1[0].shape[0]
        conv2 = [array(f"{n}.conv2.w") for n in names]
        self.conv2_w = np.stack([w.reshape(w.shape[0], -1).T for w in conv2])
        self.conv2_b = np.stack([array(f"{n}.conv2.b") for n in names])[:, None, :]
        length = rows - 2 * (self.kernel - 1)
        self.bins = array(f"{names[0]}.fc1.w").shape[1] // conv2[0].shape[0]
        self.pool = pooling_matrix(length, self.bins)
        self.dense = [
            (
                np.stack([array(f"{n}.{layer}.w") for n in names]),
                np.stack([array(f"{n}.{layer}.b") for n in names])[:, :, None],
            )
            for layer in ("fc1", "fc2", "head")
        ]
        self.temperatures = np.array([arrays[f"{n}.temperature"] for n in names], dtype=np.float32)[
            :, None
        ]

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Each agent's probabilities, (3 agents, 3)."""
        x = np.ascontiguousarray(matrix, dtype=np.float32)  # (rows, 7)
        h = _grouped_windows(x, 1, self.kernel)[0] @ self.conv1_w  # (length, agents x ch.)
        _add_relu(h[None], self.conv1_b)
        h = _grouped_windows(h, len(TACTICAL_AGENT_NAMES), self.kernel) @ self.conv2_w
        _add_relu(h, self.conv2_b)
        pooled = self.pool @ h  # (agents, bins, channels)
        flat = pooled.transpose(0, 2, 1).reshape(len(TACTICAL_AGENT_NAMES), -1, 1)
        for weight, bias in self.dense[:2]:
            flat = weight @ flat
            _add_relu(flat, bias)
        weight, bias = self.dense[2]
        return _softmax_rows(((weight @ flat) + bias)[:, :, 0], self.temperatures)
