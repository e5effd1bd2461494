"""The decision layers' networks served without torch: forward passes, batch 1, float32.

The same computation as `actors.policies.networks` in eval mode (dropout off), from the
arrays its `export_*` functions write; tests/test_policies.py holds them equal to torch
within 1e-5 on random and on real-feature inputs. Hot processes import this module, never
torch. The strategic agents: numpy's matrix products (BLAS), everything between them
(bias, ReLU, LayerNorm, softmax) in one compiled numba pass each, since numpy's own
elementwise operations cost several microseconds each at these sizes (a LayerNorm of 256
values took 33 us). The tactical agents: one compiled pass for the whole network
(`TacticalPolicy`), incremental from one bar to the next.

- LayerNorm: (h - mean) / sqrt(var + 1e-5) * weight + bias, var the biased variance, as
  torch computes it.
- Conv1d: valid, stride 1.
- AdaptiveAvgPool1d(16) over length L: bin i averages positions floor(i L / 16) up to
  ceil((i + 1) L / 16), torch's rule.
- Flattening after the pool is channel-major (channel x 16 + bin), as `flatten(1)` of a
  (channels, bins) tensor.
"""

import math
import mmap
from collections.abc import Mapping, Sequence

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


def random_arrays(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of these shapes (float32, standard normal): a network to compile the passes
    with (an actor's warm-up) before any registry version is loaded."""
    rng = np.random.default_rng(seed)
    return {key: rng.standard_normal(shape).astype(np.float32) for key, shape in shapes.items()}


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


def pooling_bins(length: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Torch's AdaptiveAvgPool1d bins over `length` positions: bin i averages positions
    starts[i] up to (excluding) ends[i]."""
    starts = np.array([(i * length) // bins for i in range(bins)], dtype=np.int64)
    ends = np.array([math.ceil((i + 1) * length / bins) for i in range(bins)], dtype=np.int64)
    return starts, ends


class StrategicPolicy:
    """The three strategic agents and the ensemble weights."""

    def __init__(self, arrays: Arrays) -> None:
        self.agents = {name: MlpAgent(arrays, name) for name in STRATEGIC_AGENT_NAMES}
        self.weights = np.asarray(arrays["ensemble.weights"], dtype=np.float32)

    def probabilities(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(P, (3,); each agent's probabilities, (3 agents, 3))."""
        each = np.stack([agent.probabilities(inputs[n]) for n, agent in self.agents.items()])
        return self.weights @ each, each


HUGE_PAGE_BYTES = 2 << 20


def in_one_block(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Copies of `arrays` side by side in one block of memory backed by huge pages where
    the kernel gives them (transparent huge pages, `madvise` mode): a policy's 3.6 MB of
    weights in two page-table entries instead of 900, so that a decision after the caches
    went cold waits for its weights, not also for page walks."""
    offsets, end = [], 0
    for array in arrays:
        offsets.append(end)
        end = -(-(end + array.nbytes) // 64) * 64  # each array on its own cache lines
    size = -(-end // HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES
    block = mmap.mmap(-1, size + HUGE_PAGE_BYTES)
    start = -np.frombuffer(block, np.uint8, 1).ctypes.data % HUGE_PAGE_BYTES
    if hasattr(mmap, "MADV_HUGEPAGE"):
        block.madvise(mmap.MADV_HUGEPAGE, start, size)
    copies = []
    for array, offset in zip(arrays, offsets, strict=True):
        copy = np.frombuffer(block, array.dtype, array.size, start + offset).reshape(array.shape)
        copy[...] = array
        copies.append(copy)
    return copies


FILLED, PREPARED = 0, 1
"""`TacticalActivations.flags`: holds a decision's layers; holds the next bar's head start."""


class TacticalActivations:
    """One instrument's layers from its last tactical decision, for the next (see
    `TacticalPolicy`). Belongs to one policy (a swapped model starts afresh)."""

    def __init__(self, policy: "TacticalPolicy") -> None:
        rows, features = policy.rows, policy.w1.shape[1]
        agents, _, _, channels = policy.w2.shape
        self.policy = policy
        self.matrix = np.zeros((rows, features), np.float32)
        """The last matrix decided."""
        self.conv1 = np.zeros((rows - policy.kernel + 1, policy.w1.shape[2]), np.float32)
        length = self.conv1.shape[0] - policy.kernel + 1
        self.conv2 = np.zeros((agents, length, channels), np.float32)
        self.partial = np.zeros((agents, FC1_BLOCKS, policy.dense[0][0].shape[2]), np.float32)
        """The next decision's first dense layer, summed over what it already knows."""
        self.flags = np.zeros(2, np.bool_)


FC1_BLOCKS = 8
"""The first dense layer sums its 1,024 inputs in 8 blocks (see `_accumulate`)."""


class TacticalPolicy:
    """The three tactical agents over one (rows, 7) matrix, compiled (numba) loops over
    weights laid out so that the innermost loop runs over contiguous outputs.

    - The agents' per-feature scales are folded into their first convolution's weights
      (conv(x * s) = conv'(x), W'[o, c, k] = W[o, c, k] s[c]), so the three first
      convolutions are one over the shared input.
    - A zero input to a layer (after ReLU) skips its weight row: not read, not added.
    - Incremental, with an instrument's `TacticalActivations`. Each bar appends a row to
      the instrument's matrix, so the next matrix is this one moved up a row plus a row
      not yet known. `prepare` (off the order path, after a decision) computes what the
      next decision can know already: every convolution window but the last of each
      layer, every pooling bin but the last (the only one holding the last window), and
      the first dense layer over those bins' inputs, 15/16 of its weights. The next
      `probabilities`, if its matrix is that move, adds the last windows, the last bin
      and its share of the dense layer, then the rest of the network; any other matrix
      is computed whole. Both ways sum in the same order: the same bits either way.
    """

    def __init__(self, arrays: Arrays, rows: int = 60) -> None:
        def array(key: str) -> np.ndarray:
            return np.asarray(arrays[key], dtype=np.float32)

        def stacked(layer: str, transpose: tuple[int, ...]) -> np.ndarray:
            return np.ascontiguousarray(
                np.stack([array(f"{n}.{layer}.w").transpose(transpose) for n in names])
            )

        names = TACTICAL_AGENT_NAMES
        conv1 = [array(f"{n}.conv1.w") * array(f"{n}.scale")[None, :, None] for n in names]
        self.rows = rows
        self.kernel = conv1[0].shape[2]
        # (kernel, features, agents x channels) and (agents, kernel, channels in, out)
        self.w1 = np.ascontiguousarray(np.concatenate([w.transpose(2, 1, 0) for w in conv1], 2))
        self.b1 = np.concatenate([array(f"{n}.conv1.b") for n in names])
        self.w2 = stacked("conv2", (2, 1, 0))
        self.b2 = np.stack([array(f"{n}.conv2.b") for n in names])
        self.dense = tuple(
            (stacked(layer, (1, 0)), np.stack([array(f"{n}.{layer}.b") for n in names]))
            for layer in ("fc1", "fc2", "head")
        )  # (agents, inputs, outputs), (agents, outputs)
        (f1, fb1), (f2, fb2), (head, head_b) = self.dense
        # what a decision reads first, the first dense layer (read mostly by `prepare`) last
        self.w1, self.b1, self.w2, self.b2, f2, fb2, head, head_b, fb1, f1 = in_one_block(
            [self.w1, self.b1, self.w2, self.b2, f2, fb2, head, head_b, fb1, f1]
        )
        self.dense = ((f1, fb1), (f2, fb2), (head, head_b))
        length = rows - 2 * (self.kernel - 1)
        starts, ends = pooling_bins(length, self.dense[0][0].shape[1] // self.w2.shape[3])
        last = ends > length - 1  # the bins of the last window
        self.bins = (starts, ends, last)
        inputs = np.arange(self.dense[0][0].shape[1])
        self.last_inputs = np.flatnonzero(last[inputs % len(starts)])
        """The first dense layer's inputs from the last bins, ascending (`_accumulate_inputs`)."""
        self.temperatures = np.array([arrays[f"{n}.temperature"] for n in names], np.float32)
        self._scratch = TacticalActivations(self)

    def probabilities(
        self, matrix: np.ndarray, activations: TacticalActivations | None = None
    ) -> np.ndarray:
        """Each agent's probabilities, (3 agents, 3); with an instrument's `activations`
        (of this policy), incrementally."""
        state = self._own(activations)
        if activations is None:
            state.flags[:] = False
        out = np.empty((len(TACTICAL_AGENT_NAMES), 3), np.float32)
        (f1, fb1), (f2, fb2), (head, head_b) = self.dense
        _tactical_decide(
            # a writable copy: one compiled signature whatever the caller holds (a matrix
            # message's array is a read-only view of its bytes)
            np.array(matrix, dtype=np.float32, order="C"),
            state.matrix,
            state.conv1,
            state.conv2,
            state.partial,
            state.flags,
            self.w1,
            self.b1,
            self.w2,
            self.b2,
            *self.bins,
            self.last_inputs,
            f1,
            fb1,
            f2,
            fb2,
            head,
            head_b,
            self.temperatures,
            out,
        )
        return out

    def prepare(self, activations: TacticalActivations) -> None:
        """Compute the next decision's known part (class docstring); idempotent. Then read
        through the weights the decision itself will read, so that it finds them in the
        caches rather than behind the first dense layer's 3 MB the preparation read."""
        state = self._own(activations)
        _tactical_prepare(
            state.conv1, state.conv2, state.partial, state.flags, *self.bins, self.dense[0][0]
        )
        self.keep_warm()

    def keep_warm(self) -> None:
        """Read through the weights a prepared decision reads (`_touch`, about 14 us), so
        that it finds them in the caches: between two bars other work, and other tenants
        of the machine, evict them (kernel Actor.keep_warm)."""
        self._touched = _touch(self.w2, self.dense[1][0], self.dense[0][0], self.last_inputs)

    def _own(self, activations: TacticalActivations | None) -> TacticalActivations:
        state = self._scratch if activations is None else activations
        if state.policy is not self:
            raise ValueError("these activations belong to another tactical policy")
        return state


@numba.njit(cache=True)
def _dense_relu(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, sums: np.ndarray, out: np.ndarray
) -> None:
    """out = max(weight^T x + bias, 0) for one agent, weight (inputs, outputs), summed in
    blocks (`_accumulate`)."""
    sums[:] = 0
    _accumulate(x, weight, sums, 1, np.ones(1, np.bool_))
    _relu_of_sums(sums, bias, out)


@numba.njit(cache=True)
def _accumulate(
    x: np.ndarray, weight: np.ndarray, sums: np.ndarray, bins: int, included: np.ndarray
) -> None:
    """sums[block] += weight^T x over the inputs i of each consecutive block whose bin
    (i mod bins, the channel-major flattening) is `included`; zero inputs skipped. In
    float32, in blocks: a thousand terms in one running sum drift past 1e-5 of torch,
    blocks of 128 do not."""
    blocks, outputs = sums.shape[0], weight.shape[1]
    size = -(-x.shape[0] // blocks)
    for block in range(blocks):
        for i in range(block * size, min((block + 1) * size, x.shape[0])):
            value = x[i]
            if value != 0 and included[i % bins]:
                for j in range(outputs):
                    sums[block, j] += value * weight[i, j]


@numba.njit(cache=True)
def _accumulate_inputs(
    x: np.ndarray, weight: np.ndarray, sums: np.ndarray, inputs: np.ndarray
) -> None:
    """`_accumulate` over the listed inputs only (ascending), in the same blocks and order:
    the same sums, without a test of every input (the last bins are 64 of 1,024)."""
    size = -(-x.shape[0] // sums.shape[0])
    for i in inputs:
        value = x[i]
        if value != 0:
            block = i // size
            for j in range(weight.shape[1]):
                sums[block, j] += value * weight[i, j]


@numba.njit(cache=True)
def _relu_of_sums(sums: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    for j in range(out.shape[0]):
        total = bias[j]
        for block in range(sums.shape[0]):
            total += sums[block, j]
        out[j] = 0 if total < 0 else total  # NaN stays NaN, as in torch


@numba.njit(cache=True)
def _conv1_window(x: np.ndarray, t: int, w1: np.ndarray, b1: np.ndarray, h1: np.ndarray) -> None:
    kernel, features, width = w1.shape
    for o in range(width):
        h1[t, o] = b1[o]
    for k in range(kernel):
        for f in range(features):
            value = x[t + k, f]
            for o in range(width):
                h1[t, o] += value * w1[k, f, o]
    for o in range(width):
        if h1[t, o] < 0:
            h1[t, o] = 0


@numba.njit(cache=True)
def _conv2_window(h1: np.ndarray, t: int, w2: np.ndarray, b2: np.ndarray, h2: np.ndarray) -> None:
    agents, kernel, channels1, channels2 = w2.shape
    for a in range(agents):
        for o in range(channels2):
            h2[a, t, o] = b2[a, o]
        for k in range(kernel):
            for c in range(channels1):
                value = h1[t + k, a * channels1 + c]
                if value != 0:
                    for o in range(channels2):
                        h2[a, t, o] += value * w2[a, k, c, o]
        for o in range(channels2):
            if h2[a, t, o] < 0:
                h2[a, t, o] = 0


@numba.njit(cache=True)
def _pool(
    h2: np.ndarray, starts: np.ndarray, ends: np.ndarray, included: np.ndarray, flat: np.ndarray
) -> None:
    """flat[c x bins + b] = mean of h2[starts[b]:ends[b], c], for the `included` bins."""
    bins = starts.shape[0]
    for b in range(bins):
        if included[b]:
            for c in range(h2.shape[1]):
                total = np.float32(0)
                for t in range(starts[b], ends[b]):
                    total += h2[t, c]
                flat[c * bins + b] = total / np.float32(ends[b] - starts[b])


@numba.njit(cache=True)
def _shift(h1: np.ndarray, h2: np.ndarray) -> None:
    """Move every window up one position (the next matrix's first windows)."""
    h1[:-1] = h1[1:].copy()
    h2[:, :-1] = h2[:, 1:].copy()


@numba.njit(cache=True)
def _touch(w2: np.ndarray, f2: np.ndarray, f1: np.ndarray, last_inputs: np.ndarray) -> float:
    """Read one value per 64-byte line of the decision's weights: the second convolution,
    the second dense layer and the first dense layer's rows of the last bins (returned,
    so that the reads are not optimised away)."""
    total = 0.0
    for weights in (w2.ravel(), f2.ravel()):
        for i in range(0, weights.shape[0], 16):
            total += weights[i]
    for a in range(f1.shape[0]):
        for i in last_inputs:
            for j in range(0, f1.shape[2], 16):
                total += f1[a, i, j]
    return total


@numba.njit(cache=True)
def _tactical_prepare(
    h1: np.ndarray,
    h2: np.ndarray,
    partial: np.ndarray,
    flags: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    last: np.ndarray,
    f1: np.ndarray,
) -> None:
    if not flags[FILLED] or flags[PREPARED]:
        return
    _shift(h1, h2)
    early = ~last
    flat = np.empty(f1.shape[1], np.float32)
    for a in range(h2.shape[0]):
        _pool(h2[a], starts, ends, early, flat)
        partial[a] = 0
        _accumulate(flat, f1[a], partial[a], starts.shape[0], early)
    flags[PREPARED] = True


@numba.njit(cache=True)
def _tactical_decide(
    x: np.ndarray,
    previous: np.ndarray,
    h1: np.ndarray,
    h2: np.ndarray,
    partial: np.ndarray,
    flags: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    last: np.ndarray,
    last_inputs: np.ndarray,
    f1: np.ndarray,
    fb1: np.ndarray,
    f2: np.ndarray,
    fb2: np.ndarray,
    head: np.ndarray,
    head_b: np.ndarray,
    temperatures: np.ndarray,
    out: np.ndarray,
) -> None:
    rows, features = x.shape
    length1, length2 = h1.shape[0], h2.shape[1]
    shifted = flags[FILLED]
    for t in range(rows - 1):
        for f in range(features):
            if x[t, f] != previous[t + 1, f]:
                shifted = False
    prepared = shifted and flags[PREPARED]
    first1, first2 = 0, 0
    if shifted:  # every window but the new last one of each layer is known
        if not prepared:
            _shift(h1, h2)
        first1, first2 = length1 - 1, length2 - 1
    for t in range(first1, length1):
        _conv1_window(x, t, w1, b1, h1)
    for t in range(first2, length2):
        _conv2_window(h1, t, w2, b2, h2)
    bins = starts.shape[0]
    early = ~last
    flat = np.empty(f1.shape[1], np.float32)
    hidden1 = np.empty(f1.shape[2], np.float32)
    hidden2 = np.empty(f2.shape[2], np.float32)
    first_sums = np.empty((partial.shape[1], hidden1.shape[0]), np.float32)
    sums = np.empty((partial.shape[1], hidden2.shape[0]), np.float32)
    for a in range(h2.shape[0]):
        if prepared:
            first_sums[:] = partial[a]
        else:  # the early bins first, then the last: the order `prepare` sums in
            first_sums[:] = 0
            _pool(h2[a], starts, ends, early, flat)
            _accumulate(flat, f1[a], first_sums, bins, early)
        _pool(h2[a], starts, ends, last, flat)
        _accumulate_inputs(flat, f1[a], first_sums, last_inputs)
        _relu_of_sums(first_sums, fb1[a], hidden1)
        _dense_relu(hidden1, f2[a], fb2[a], sums, hidden2)
        best = -np.inf
        for j in range(3):
            logit = head_b[a, j]
            for i in range(hidden2.shape[0]):
                logit += hidden2[i] * head[a, i, j]
            out[a, j] = logit / temperatures[a]
            best = max(best, out[a, j])
        total = np.float32(0)
        for j in range(3):
            out[a, j] = np.exp(out[a, j] - best)
            total += out[a, j]
        for j in range(3):
            out[a, j] /= total
    previous[:, :] = x
    flags[FILLED] = True
    flags[PREPARED] = False
