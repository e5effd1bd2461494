"""The decision layers' networks: the numpy forward pass the hot path serves equals torch."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from actors.features.engine import StrategicFeatures, TacticalFeatures
from actors.matrices import StrategicColumn
from actors.policies.forward import (
    STRATEGIC_AGENT_NAMES,
    StrategicPolicy,
    TacticalPolicy,
    pooling_matrix,
)
from actors.policies.networks import (
    STRATEGIC_AGENTS,
    Critic,
    StrategicEnsemble,
    TacticalAgents,
    export_strategic,
    export_tactical,
)
from tests.systems import REPO

TOLERANCE = 1e-5
AGENT_COLUMNS = {
    "mlmi": [StrategicColumn.MLMI_VALUE, StrategicColumn.MLMI_SIGNAL, 9, 10],
    "nwrqk": [2, 3, 4, 5],
    "regime": [8, 11, 12],
}
"""The design's column slices (design §6), enough to build real-feature inputs here."""


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter moved off its initial value (LayerNorm gains, scales, temperatures
    included), so parity covers all of them; eval mode (dropout off)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


@pytest.fixture(scope="module")
def strategic() -> StrategicEnsemble:
    torch.manual_seed(1)
    return _perturbed(StrategicEnsemble(), 2)


@pytest.fixture(scope="module")
def tactical() -> TacticalAgents:
    torch.manual_seed(3)
    return _perturbed(TacticalAgents(), 4)


@pytest.fixture(scope="module")
def real_matrices() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Tactical (60x7) and strategic (48x13) matrices of a long random walk of bars,
    through the feature engines the actors run."""
    rng = np.random.default_rng(5)
    close = 4150.0 + np.cumsum(rng.normal(0.0, 2.0, 2000))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + rng.exponential(1.0, close.size)
    low = np.minimum(open_, close) - rng.exponential(1.0, close.size)
    volume = rng.integers(100, 5000, close.size).astype(float)
    tactical, strategic = TacticalFeatures(252 * 78), StrategicFeatures(252 * 13, 0.25)
    tactical_out, strategic_out = [], []
    for bar in zip(open_, high, low, close, volume, strict=True):
        tactical.update(*bar)
        strategic.update(*bar)
        if tactical.matrix.ready and len(tactical_out) < 200:
            tactical_out.append(tactical.matrix.matrix())
        if strategic.matrix.ready and len(strategic_out) < 200:
            strategic_out.append(strategic.matrix.matrix())
    return tactical_out, strategic_out


def _strategic_inputs(matrix: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each agent's column means over the 48 rows plus six context values."""
    context = np.array(
        [rng.uniform(0.5, 1.0), rng.choice([-1.0, 1.0]), np.log(0.15), 0.5, -0.8, 0.5],
        dtype=np.float32,
    )
    return {
        name: np.concatenate((matrix[:, columns].mean(axis=0), context)).astype(np.float32)
        for name, columns in AGENT_COLUMNS.items()
    }


def _torch_strategic(ensemble: StrategicEnsemble, inputs: dict[str, np.ndarray]):
    with torch.no_grad():
        batch = {name: torch.from_numpy(x)[None] for name, x in inputs.items()}
        p, each = ensemble(batch)
    return p[0].numpy(), each[0].numpy()


def test_the_exported_strategic_ensemble_equals_torch(strategic, real_matrices):
    served = StrategicPolicy(export_strategic(strategic))
    rng = np.random.default_rng(6)
    cases = [
        {
            name: rng.standard_normal(inputs).astype(np.float32)
            for name, (inputs, _) in STRATEGIC_AGENTS.items()
        }
        for _ in range(200)
    ]
    cases += [_strategic_inputs(matrix, rng) for matrix in real_matrices[1]]
    assert len(cases) == 400
    worst = 0.0
    for inputs in cases:
        p, each = served.probabilities(inputs)
        expected_p, expected_each = _torch_strategic(strategic, inputs)
        assert p.dtype == np.float32 and p.shape == (3,) and each.shape == (3, 3)
        assert abs(float(p.sum()) - 1.0) < 1e-6
        worst = max(
            worst, float(np.abs(p - expected_p).max()), float(np.abs(each - expected_each).max())
        )
    assert worst < TOLERANCE, worst
    weights = torch.softmax(strategic.raw_weights, dim=0).detach().numpy()
    np.testing.assert_allclose(served.weights, weights, rtol=0, atol=1e-7)


def test_the_exported_tactical_agents_equal_torch(tactical, real_matrices):
    served = TacticalPolicy(export_tactical(tactical))
    rng = np.random.default_rng(7)
    cases = [rng.standard_normal((60, 7)).astype(np.float32) for _ in range(100)]
    cases += [matrix.astype(np.float32) for matrix in real_matrices[0][:100]]
    with torch.no_grad():
        expected = tactical(torch.from_numpy(np.stack(cases))).numpy()
    worst = 0.0
    for matrix, want in zip(cases, expected, strict=True):
        got = served.probabilities(matrix)
        assert got.dtype == np.float32 and got.shape == (3, 3)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst < TOLERANCE, worst


@pytest.mark.parametrize("length", [56, 60, 17, 16, 100])
def test_the_pooling_matrix_is_torchs_adaptive_average_pool(length):
    x = torch.randn(1, 3, length)
    expected = torch.nn.AdaptiveAvgPool1d(16)(x)[0].numpy()
    got = (pooling_matrix(length, 16) @ x[0].numpy().T).T
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_the_initial_ensemble_weights_and_temperature():
    torch.manual_seed(0)
    arrays = export_strategic(StrategicEnsemble())
    np.testing.assert_allclose(arrays["ensemble.weights"], [0.40, 0.35, 0.25], atol=1e-7)
    assert all(arrays[f"{name}.temperature"] == 1.0 for name in STRATEGIC_AGENT_NAMES)
    assert arrays["regime.0.w"].shape == (256, 9) and arrays["mlmi.3.w"].shape == (3, 64)


def test_the_critics_take_the_state_and_every_agents_probabilities():
    critic = Critic(13)
    values = critic(torch.zeros(5, 13), torch.full((5, 3, 3), 1 / 3))
    assert values.shape == (5,)
    assert critic.net[0].in_features == 13 + 9 and critic.net[-1].out_features == 1


def test_serving_imports_no_torch():
    code = (
        "import sys, actors.policies.forward; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
