"""The decision layers' networks: the numpy forward pass the hot path serves equals torch."""

import math
import subprocess
import sys
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import torch

from actors.features.engine import StrategicFeatures, TacticalFeatures
from actors.messages import Direction, Synergy, SynergyType
from actors.policies import strategic
from actors.policies import tactical as tactical_policy
from actors.policies.forward import (
    STRATEGIC_AGENT_NAMES,
    StrategicPolicy,
    TacticalActivations,
    TacticalPolicy,
    pooling_bins,
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
NEW_YORK = ZoneInfo("America/New_York")
MONDAY_10_NY = 1_767_625_200 * 10**9  # 2026-01-05 15:00 UTC = 10:00 in New York


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter moved off its initial value (LayerNorm gains, scales, temperatures
    included), so parity covers all of them; eval mode (dropout off)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


@pytest.fixture(scope="module")
def ensemble() -> StrategicEnsemble:
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
    """Each agent's inputs as the strategic layer builds them, with a random synergy."""
    synergy = _synergy(MONDAY_10_NY, rng.uniform(0.5, 1.0), Direction(int(rng.choice([-1, 1]))))
    context = strategic.context(synergy, 0.15, MONDAY_10_NY, NEW_YORK)
    return strategic.agent_inputs(matrix, context)


def _torch_strategic(ensemble: StrategicEnsemble, inputs: dict[str, np.ndarray]):
    with torch.no_grad():
        batch = {name: torch.from_numpy(x)[None] for name, x in inputs.items()}
        p, each = ensemble(batch)
    return p[0].numpy(), each[0].numpy()


def test_the_exported_strategic_ensemble_equals_torch(ensemble, real_matrices):
    served = StrategicPolicy(export_strategic(ensemble))
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
        expected_p, expected_each = _torch_strategic(ensemble, inputs)
        assert p.dtype == np.float32 and p.shape == (3,) and each.shape == (3, 3)
        assert abs(float(p.sum()) - 1.0) < 1e-6
        worst = max(
            worst, float(np.abs(p - expected_p).max()), float(np.abs(each - expected_each).max())
        )
    assert worst < TOLERANCE, worst
    weights = torch.softmax(ensemble.raw_weights, dim=0).detach().numpy()
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


def test_incremental_tactical_decisions_equal_torch_and_whole_ones(tactical, real_matrices):
    """An instrument's consecutive matrices (each the last moved up one bar) decided
    incrementally, with the next decision prepared after most of them (not after every
    fifth), and a matrix that is not such a move among them (computed whole): what torch
    gives, and bit for bit what a from-scratch pass gives."""
    served = TacticalPolicy(export_tactical(tactical))
    activations = TacticalActivations(served)
    cases = [matrix.astype(np.float32) for matrix in real_matrices[0][:150]]
    assert np.array_equal(cases[1][:-1], cases[0][1:])  # the engine's consecutive matrices
    cases.insert(80, np.random.default_rng(9).standard_normal((60, 7)).astype(np.float32))
    with torch.no_grad():
        expected = tactical(torch.from_numpy(np.stack(cases))).numpy()
    for i, (matrix, want) in enumerate(zip(cases, expected, strict=True)):
        got = served.probabilities(matrix, activations)
        if i % 5:
            served.prepare(activations)
            served.prepare(activations)  # idempotent
            served.keep_warm()  # reads only
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(got, served.probabilities(matrix))
    with pytest.raises(ValueError, match="another tactical policy"):
        TacticalPolicy(export_tactical(tactical)).probabilities(cases[0], activations)


@pytest.mark.parametrize("length", [56, 60, 17, 16, 100])
def test_the_pooling_bins_are_torchs_adaptive_average_pool(length):
    x = torch.randn(3, length)
    expected = torch.nn.AdaptiveAvgPool1d(16)(x[None])[0].numpy()
    starts, ends = pooling_bins(length, 16)
    got = np.stack([x[:, s:e].numpy().mean(axis=1) for s, e in zip(starts, ends, strict=True)], 1)
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


# --- the strategic decision around the networks ---------------------------------------


def _synergy(bar_end_ns: int, confidence: float, direction: Direction) -> Synergy:
    return Synergy(
        symbol="ES",
        synergy_type=SynergyType.TYPE_1,
        direction=direction,
        confidence=confidence,
        bar_end_ns=bar_end_ns,
        price=4000.0,
    )


def test_the_context_comes_from_the_bar_time_in_the_exchange_zone():
    values = strategic.context(
        _synergy(MONDAY_10_NY, 0.8, Direction.SHORT), 0.15, MONDAY_10_NY, NEW_YORK
    )
    angle = 2 * math.pi * 10 / 24
    expected = [0.8, -1.0, math.log(0.15), math.sin(angle), math.cos(angle), 0.0]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    saturday_noon_tokyo = 1_767_841_200 * 10**9  # 2026-01-08 03:00 UTC = 12:00 Tokyo, Thu
    thursday = strategic.context(None, 0.2, saturday_noon_tokyo, ZoneInfo("Asia/Tokyo"))
    assert thursday[3] == pytest.approx(0.0, abs=1e-6) and thursday[4] == -1.0
    assert thursday[5] == pytest.approx(3 / 6)
    low, high = strategic.VOLATILITY_RANGE
    for volatility, ln in ((0.0, math.log(low)), (math.inf, math.log(high))):
        assert strategic.context(None, volatility, MONDAY_10_NY, NEW_YORK)[2] == np.float32(ln)
    assert math.isnan(strategic.context(None, math.nan, MONDAY_10_NY, NEW_YORK)[2])


def test_a_synergy_is_context_for_ten_strategic_bars_from_its_own():
    fired = _synergy(MONDAY_10_NY, 0.9, Direction.LONG)
    half_hour = 1800 * 10**9
    assert strategic.active_synergy(fired, MONDAY_10_NY) is fired
    assert strategic.active_synergy(fired, MONDAY_10_NY + 9 * half_hour) is fired
    assert strategic.active_synergy(fired, MONDAY_10_NY + 10 * half_hour) is None
    assert strategic.active_synergy(fired, MONDAY_10_NY - half_hour) is None  # not yet fired
    assert strategic.active_synergy(None, MONDAY_10_NY) is None


def test_each_agent_reads_the_means_of_its_columns_then_the_context():
    matrix = np.arange(48 * 13, dtype=np.float32).reshape(48, 13)
    ctx = np.arange(6, dtype=np.float32) + 100
    inputs = strategic.agent_inputs(matrix, ctx)
    assert {name: x.shape for name, x in inputs.items()} == {
        "mlmi": (10,),
        "nwrqk": (10,),
        "regime": (9,),
    }
    column_mean = matrix.mean(axis=0)
    np.testing.assert_array_equal(inputs["regime"][:3], column_mean[[8, 11, 12]])
    np.testing.assert_array_equal(inputs["mlmi"][4:], ctx)


@pytest.mark.parametrize(
    ("each", "dominant", "source"),
    [
        ([[0.1, 0.2, 0.7], [0.1, 0.1, 0.8], [0.05, 0.25, 0.7]], "consensus", "stable_uncertainty"),
        ([[0.1, 0.25, 0.65], [0.96, 0.02, 0.02], [0.1, 0.25, 0.65]], "nwrqk", "agent_disagreement"),
        (
            [[0.1, 0.35, 0.55], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7]],
            "consensus",
            "low_individual_confidence",
        ),
    ],
)
def test_the_reasoning_names_the_dominant_signal_and_the_uncertainty_source(each, dominant, source):
    each = np.array(each, dtype=np.float32)
    p = np.array([0.4, 0.35, 0.25], dtype=np.float32) @ each
    result = strategic.outcome(p, each)
    assert (result.dominant_signal, result.uncertainty_source) == (dominant, source)
    assert [a.name for a in result.agents] == list(STRATEGIC_AGENT_NAMES)
    assert result.agents[0].confidence == pytest.approx(float(each[0].max()))
    assert result.direction == [Direction.SHORT, Direction.FLAT, Direction.LONG][int(p.argmax())]
    assert result.confidence == pytest.approx(float(p.max()))
    assert result.should_proceed == (result.confidence > 0.65)


def test_uncertainty_is_the_normalised_entropy():
    uniform = np.full(3, 1 / 3, dtype=np.float32)
    assert strategic.normalised_entropy(uniform) == pytest.approx(1.0, abs=1e-6)
    assert strategic.normalised_entropy(np.array([0.0, 0.0, 1.0])) == 0.0
    p = np.array([0.2, 0.3, 0.5])
    expected = -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.5 * math.log(0.5)) / math.log(3)
    assert strategic.normalised_entropy(p) == pytest.approx(expected)


def test_a_nan_or_infinite_input_falls_back_to_neutral():
    torch.manual_seed(9)
    served = StrategicPolicy(export_strategic(StrategicEnsemble().eval()))
    inputs = {name: np.zeros(n, dtype=np.float32) for name, (n, _) in STRATEGIC_AGENTS.items()}
    assert not strategic.outcome(*served.probabilities(inputs)).fallback
    for bad in (math.nan, math.inf):
        inputs["regime"][6] = bad  # ln(volatility) of a bar without one
        result = strategic.outcome(*served.probabilities(inputs))
        assert result.fallback and result.direction == Direction.FLAT
        assert (result.confidence, result.should_proceed) == (0.5, False)
        assert result.probabilities == (0.25, 0.5, 0.25)


# --- the tactical decision from the agents ---------------------------------------------

BULLISH_FVG, TRENDING, EXECUTE = [0.1, 0.2, 0.7], [0.1, 0.2, 0.7], [0.1, 0.6, 0.3]


def _agents(fvg=BULLISH_FVG, momentum=TRENDING, entry=EXECUTE) -> np.ndarray:
    return np.array([fvg, momentum, entry], dtype=np.float32)


def test_a_bullish_gap_in_an_up_trend_with_the_entry_agent_ready_goes_long():
    result = tactical_policy.decide(_agents(), momentum_feature=0.3)
    # long = (.33 x .7 + .33 x .7) / .66 = .7, short .1; gate = 1 - .1; score .66 x .7 + .34 x .9
    assert (result.long_vote, result.short_vote, result.gate) == pytest.approx((0.7, 0.1, 0.9))
    assert result.score == pytest.approx(0.66 * 0.7 + 0.34 * 0.9)
    assert result.direction == Direction.LONG and not result.penalised


def test_against_the_strategic_bias_or_the_synergy_the_score_pays_the_penalty():
    for bias in ({"strategic_direction": Direction.SHORT}, {"synergy_direction": Direction.SHORT}):
        result = tactical_policy.decide(_agents(), momentum_feature=0.3, **bias)
        assert result.score == pytest.approx(0.7 * (0.66 * 0.7 + 0.34 * 0.9))
        assert result.direction == Direction.FLAT and result.penalised
    agreeing = tactical_policy.decide(_agents(), 0.3, strategic_direction=Direction.LONG)
    assert agreeing.direction == Direction.LONG and not agreeing.penalised


def test_the_trend_gives_the_momentum_agent_its_direction_and_the_synergy_its_weights():
    # Down trend: "trend" now votes short. With equal weights the votes tie: hold.
    tie = tactical_policy.decide(_agents(), momentum_feature=-0.3)
    assert (tie.long_vote, tie.short_vote) == pytest.approx((0.4, 0.4))
    assert tie.direction == Direction.FLAT and tie.reason == "tie"
    # TYPE_1 weighs FVG .5, momentum .3, entry .2: long (.35 + .03) / .8, short (.05 + .21) / .8.
    typed = tactical_policy.decide(_agents(), -0.3, synergy_type=SynergyType.TYPE_1)
    assert (typed.long_vote, typed.short_vote) == pytest.approx((0.475, 0.325))
    assert typed.score == pytest.approx(0.8 * 0.475 + 0.2 * 0.9)
    assert typed.direction == Direction.FLAT  # .56 < .65
    # No trend: the momentum agent votes for neither side.
    flat = tactical_policy.decide(_agents(), momentum_feature=0.0)
    assert (flat.long_vote, flat.short_vote) == pytest.approx((0.35, 0.05))


def test_a_waiting_entry_agent_holds_and_nan_holds():
    waiting = tactical_policy.decide(_agents(entry=[0.9, 0.05, 0.05]), momentum_feature=0.3)
    assert waiting.gate == pytest.approx(0.1) and waiting.direction == Direction.FLAT
    nan = _agents()
    nan[1, 0] = np.nan
    assert tactical_policy.decide(nan, 0.3).reason == "invalid_input"
    assert tactical_policy.decide(_agents(), math.nan).direction == Direction.FLAT
