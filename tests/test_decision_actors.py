"""The strategic and tactical policy actors on real rings: one decision per matrix, holds on
missing models and non-finite values (health says why), the tactical layer following the
strategic decision its matrix names whatever order the two rings deliver in, and a new
registry version swapped in while the actor runs."""

import asyncio
import itertools
from pathlib import Path

import msgspec
import numba
import numpy as np
import pytest
import torch

from actors.features import FeaturesActor, FeaturesParams
from actors.messages import (
    AnyMessage,
    Bar,
    DecisionKind,
    DecisionRecord,
    Direction,
    StrategicDecision,
    StrategicMatrix,
    Synergy,
    SynergyType,
    TacticalMatrix,
    TradeIntent,
)
from actors.policies import registry
from actors.policies.forward import PREPARED, strategic_shapes, tactical_shapes
from actors.policies.networks import (
    StrategicEnsemble,
    TacticalAgents,
    export_strategic,
    export_tactical,
)
from actors.strategic import StrategicActor, StrategicParams
from actors.tactical import TacticalPolicyActor, TacticalPolicyParams
from kernel.codec import Codec
from kernel.messages import Message
from tests.helpers import actor_context
from tests.test_features import bars

CODEC = Codec.from_union(AnyMessage)
MONDAY_0930_NY = 1_767_623_400 * 10**9  # 2026-01-05 14:30 UTC
FIVE_MINUTES = 300 * 10**9


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A registry with two versions of both models: v1 (active) the shipped one's arrays,
    v2 random weights."""
    root = tmp_path_factory.mktemp("registry")
    metadata = {"created": "2026-12-04T09:00:00Z", "command": "test", "metrics": {}}
    torch.manual_seed(2)
    random = {
        "strategic": (export_strategic(StrategicEnsemble().eval()), strategic_shapes()),
        "tactical": (export_tactical(TacticalAgents().eval()), tactical_shapes()),
    }
    for name, (arrays, shapes) in random.items():
        shipped = registry.load_version(registry.SHIPPED_ROOT, name, None, shapes)
        registry.save_version(root, name, "v1", shipped.arrays, {}, metadata)
        registry.save_version(root, name, "v2", arrays, {}, metadata)
        registry.activate(root, name, "v1")
    return root


@pytest.fixture(scope="module")
def features() -> list:
    """What the features actor publishes for 1,800 five-minute bars of ES with their
    half-hour bars (in timeframe order at each boundary, as the bars actor sends them)."""
    data = bars(1800, seed=21).tolist()
    published: list = []

    class Collect:
        publish = published.append

    context = actor_context("features", {"features": Collect()})  # type: ignore[dict-item]
    actor = FeaturesActor(FeaturesParams(symbols=("ES",)), context)
    asyncio.run(actor.on_start())
    for i, (open_, high, low, close, volume) in enumerate(data):
        end = MONDAY_0930_NY + (i + 1) * FIVE_MINUTES
        five = Bar(
            symbol="ES",
            timeframe_s=300,
            start_ns=end - FIVE_MINUTES,
            end_ns=end,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=int(volume),
            origin_ns=i + 1,
        )
        actor.on_message(five)
        if (i + 1) % 6 == 0:
            window = data[i - 5 : i + 1]
            actor.on_message(
                Bar(
                    symbol="ES",
                    timeframe_s=1800,
                    start_ns=end - 6 * FIVE_MINUTES,
                    end_ns=end,
                    open=window[0][0],
                    high=max(row[1] for row in window),
                    low=min(row[2] for row in window),
                    close=close,
                    volume=int(sum(row[4] for row in window)),
                    origin_ns=i + 1,
                )
            )
    # Random walks seldom line the three signals up: two synergies as the detector would
    # publish them, right before their bar's strategic matrix.
    matrices = [i for i, m in enumerate(published) if type(m) is StrategicMatrix]
    for at, synergy_type in (
        (matrices[150], SynergyType.TYPE_2),
        (matrices[60], SynergyType.TYPE_3),
    ):
        matrix = published[at]
        published.insert(
            at,
            Synergy(
                symbol="ES",
                synergy_type=synergy_type,
                direction=Direction.LONG,
                confidence=0.9,
                bar_end_ns=matrix.bar_end_ns,
                price=matrix.close,
            ),
        )
    return published


def _of(messages: list, kind: type) -> list:
    return [m for m in messages if type(m) is kind]


async def _strategic(capture, root: Path, problems: list | None = None):
    out = capture("strategic", CODEC)
    context = actor_context("strategic", {"decisions": out.stream}, problems=problems)
    actor = StrategicActor(StrategicParams(symbols=("ES",), models_root=str(root)), context)
    await actor.on_start()
    return actor, out


async def _tactical(capture, root: Path, problems=None, tasks=None, idle=None, **params):
    intents, records = capture("intents", CODEC), capture("decisions", CODEC)
    context = actor_context(
        "tactical",
        {"intents": intents.stream, "decisions": records.stream},
        problems=problems,
        tasks=tasks,
        idle=idle,
    )
    p = TacticalPolicyParams(symbols=("ES",), models_root=str(root), **params)
    actor = TacticalPolicyActor(p, context)
    await actor.on_start()
    return actor, intents, records


def _with_nan(matrix):
    values = matrix.array().copy()
    values[-1, 0] = np.nan
    broken = type(matrix).from_array(
        values, symbol=matrix.symbol, bar_end_ns=matrix.bar_end_ns, close=matrix.close, atr=1.0
    )
    broken.origin_ns = matrix.origin_ns
    return broken


def _domain(messages: list) -> list[bytes]:
    """The messages without their envelope (seq, stamps), encoded (NaN equals NaN)."""
    envelope = set(Message.__struct_fields__)
    return [
        msgspec.msgpack.encode([getattr(m, f) for f in m.__struct_fields__ if f not in envelope])
        for m in messages
    ]


# --- strategic ------------------------------------------------------------------------


async def test_the_strategic_layer_decides_once_per_matrix_with_its_reasoning(
    capture, models, features
):
    actor, out = await _strategic(capture, models)
    for message in features:
        actor.on_message(message)
    matrices = _of(features, StrategicMatrix)
    decisions = _of(out.messages, StrategicDecision)
    records = _of(out.messages, DecisionRecord)
    assert len(matrices) > 200
    assert [d.bar_end_ns for d in decisions] == [m.bar_end_ns for m in matrices]
    assert [r.event_ns for r in records] == [m.bar_end_ns for m in matrices]
    for decision, record in zip(decisions, records, strict=True):
        p = (decision.p_bearish, decision.p_neutral, decision.p_bullish)
        assert sum(p) == pytest.approx(1.0, abs=1e-6) and not decision.fallback
        assert (
            decision.direction
            == (Direction.SHORT, Direction.FLAT, Direction.LONG)[int(np.argmax(p))]
        )
        assert decision.confidence == pytest.approx(max(p))
        assert 0.0 <= decision.uncertainty <= 1.0
        assert decision.should_proceed == (decision.confidence > 0.65)
        assert decision.model_version.startswith("strategic/v1@")
        assert record.kind == DecisionKind.STRATEGIC and record.probabilities == pytest.approx(p)
        assert record.reason.startswith("dominant ")
        assert all(agent in record.reason for agent in ("mlmi", "nwrqk", "regime"))
    synergies = _of(features, Synergy)
    by_bar = {d.bar_end_ns: d for d in decisions}
    for synergy in synergies:
        if synergy.bar_end_ns in by_bar:  # the synergy is the context of its own bar
            assert by_bar[synergy.bar_end_ns].synergy_type == synergy.synergy_type
    last = synergies[-1].bar_end_ns
    stale = [d for d in decisions if d.bar_end_ns - last >= 5 * 3600 * 10**9]
    assert stale and all(d.synergy_type == 0 for d in stale)
    assert actor.state.decisions == len(matrices) and actor.state.fallbacks == 0


async def test_without_a_model_every_strategic_decision_is_the_fallback_and_health_says_why(
    capture, tmp_path, features
):
    problems: list = []
    actor, out = await _strategic(capture, tmp_path, problems)
    matrices = _of(features, StrategicMatrix)
    for matrix in matrices:
        actor.on_message(matrix)
    decisions = _of(out.messages, StrategicDecision)
    assert len(decisions) == len(matrices)
    assert all(d.fallback and not d.should_proceed and d.direction == 0 for d in decisions)
    assert all(d.model_version == "" for d in decisions)
    assert "no version is active" in problems[-1] and "holding" in problems[-1]
    assert _of(out.messages, DecisionRecord)[0].reason.startswith("fallback")
    assert actor.state.fallbacks == len(matrices)


async def test_a_non_finite_strategic_input_holds_until_a_finite_one(capture, models, features):
    problems: list = []
    actor, out = await _strategic(capture, models, problems)
    first, second = _of(features, StrategicMatrix)[:2]
    actor.on_message(_with_nan(first))
    assert "held on non-finite" in problems[-1] and "ES" in problems[-1]
    actor.on_message(second)
    assert problems[-1] is None
    held, decided = _of(out.messages, StrategicDecision)
    assert held.fallback and held.p_neutral == 0.5 and not decided.fallback
    assert actor.state.fallbacks == 1


# --- tactical -------------------------------------------------------------------------


def _interleaved(features: list, decisions: list, offset: float) -> list:
    """The features stream with each strategic decision placed `offset` positions after
    its strategic matrix (negative: before it, and before the tactical matrix of its bar)."""
    at = {m.bar_end_ns: i for i, m in enumerate(features) if type(m) is StrategicMatrix}
    keyed = [(float(i), m) for i, m in enumerate(features)]
    keyed += [(at[d.bar_end_ns] + offset, d) for d in decisions]
    return [m for _, m in sorted(keyed, key=lambda pair: pair[0])]


@pytest.fixture(scope="module")
def strategic_decisions(models, features) -> list:
    published: list = []

    class Collect:
        publish = published.append

    context = actor_context("strategic", {"decisions": Collect()})  # type: ignore[dict-item]
    actor = StrategicActor(StrategicParams(symbols=("ES",), models_root=str(models)), context)
    asyncio.run(actor.on_start())
    for message in features:
        actor.on_message(message)
    return _of(published, StrategicDecision)


async def test_the_tactical_layer_follows_the_decision_its_matrix_names_in_any_arrival_order(
    capture, models, features, strategic_decisions
):
    """The strategic decision of a bar arriving ahead of the tactical matrix of that bar,
    right after its strategic matrix, or five tactical bars late: the same intents and
    decision records, each following the previous half hour's decision."""
    outcomes = []
    for offset in (-2.5, 0.5, 5.5):
        actor, intents, records = await _tactical(capture, models)
        for message in _interleaved(features, strategic_decisions, offset):
            actor.on_message(message)
        assert actor.memories["ES"].unfollowed == 0 and not actor.memories["ES"].waiting
        outcomes.append((_domain(intents.messages), _domain(records.messages)))
        matrices = _of(features, TacticalMatrix)
        decided = _of(records.messages, DecisionRecord)
        assert [r.event_ns for r in decided] == [m.bar_end_ns for m in matrices]
        for matrix, record in zip(matrices, decided, strict=True):
            named = matrix.strategic_bar_end_ns
            assert record.parent_id == (f"ES-strategic-{named}" if named else "")
            assert named == 0 or matrix.bar_end_ns - named in (
                FIVE_MINUTES * k for k in range(1, 7)
            )
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert len(outcomes[0][0]) > 10, "the shipped tactical net should trade now and then"


async def test_tactical_intents_one_per_swing_with_atr_stops(capture, models, features):
    actor, intents, records = await _tactical(capture, models, follow_strategic=False)
    for message in _of(features, TacticalMatrix):
        actor.on_message(message)
    made = _of(intents.messages, TradeIntent)
    assert len(made) > 10
    assert all(a.direction != b.direction for a, b in itertools.pairwise(made))
    matrices = {m.bar_end_ns: m for m in _of(features, TacticalMatrix)}
    for intent in made:
        matrix = matrices[intent.bar_end_ns]
        assert intent.intent_id == f"ES-tactical-{intent.bar_end_ns}"
        assert intent.price == matrix.close and intent.origin_ns == matrix.origin_ns
        assert intent.stop_price == pytest.approx(matrix.close - intent.direction * 2 * matrix.atr)
        assert intent.target_price == pytest.approx(
            matrix.close + intent.direction * 3 * matrix.atr
        )
        assert 0.65 <= intent.score <= 1.0 and intent.model_version.startswith("tactical/v1@")
    executed = [r for r in _of(records.messages, DecisionRecord) if r.action != 0]
    assert [r.decision_id for r in executed] == [i.intent_id for i in made]
    assert actor.memories["ES"].intents == len(made)


async def test_a_busy_node_is_asked_once_per_symbol_for_the_next_preparation(
    capture, models, features
):
    """Bars decided before the node had a quiet moment ask for one preparation, not one
    each (a node whose inputs never go quiet would queue them without end), and that one
    prepares the latest decision's successor."""
    idle: list = []
    actor, _, _ = await _tactical(capture, models, idle=idle, follow_strategic=False)
    matrices = _of(features, TacticalMatrix)
    for matrix in matrices[:5]:
        actor.on_message(matrix)
    assert len(idle) == 1
    idle.pop()()
    assert actor._activations["ES"].flags[PREPARED]
    actor.on_message(matrices[5])
    assert len(idle) == 1


async def test_history_matrices_are_decided_and_never_traded(capture, models, features):
    actor, intents, records = await _tactical(capture, models, follow_strategic=False)
    matrices = _of(features, TacticalMatrix)
    for matrix in matrices:
        actor.on_message(msgspec.structs.replace(matrix, history=True))
    assert intents.messages == [] and len(records.messages) == len(matrices)
    history = [r for r in records.messages if "history: not traded" in r.reason]
    assert len(history) > 10 and all(r.action == Direction.FLAT for r in history)
    assert actor.memories["ES"].last_direction == Direction.FLAT  # no swing taken


async def test_without_a_model_or_with_non_finite_inputs_the_tactical_layer_holds(
    capture, models, tmp_path, features
):
    matrices = _of(features, TacticalMatrix)
    problems: list = []
    actor, intents, records = await _tactical(capture, tmp_path, problems, follow_strategic=False)
    for matrix in matrices[:20]:
        actor.on_message(matrix)
    assert intents.messages == [] and actor.memories["ES"].holds_no_model == 20
    assert all(r.reason.startswith("no model") for r in records.messages)
    assert "no version is active" in problems[-1]

    problems.clear()
    actor, intents, records = await _tactical(capture, models, problems, follow_strategic=False)
    actor.on_message(_with_nan(matrices[0]))
    assert "held on non-finite" in problems[-1] and actor.memories["ES"].holds_invalid == 1
    assert records.messages[-1].reason.startswith("invalid_input") and not intents.messages
    actor.on_message(matrices[1])
    assert problems[-1] is None


async def test_a_newly_activated_version_is_swapped_in_while_deciding(
    capture, models, tmp_path, features
):
    """Activated while the actor runs: the matrices that come during the load are decided
    by the old version, every later one by the new, none is lost, the swap is recorded; a
    version corrupted on disk after its activation is refused and the old one stays."""
    import shutil

    root = tmp_path / "registry"
    shutil.copytree(models, root)
    problems: list = []
    tasks: list = []
    actor, _, records = await _tactical(capture, root, problems, tasks, follow_strategic=False)
    matrices = _of(features, TacticalMatrix)
    actor.on_timer("model")
    assert tasks == [], "no swap while the pointer has not moved"
    for matrix in matrices[:100]:
        actor.on_message(matrix)
    registry.activate(root, "tactical", "v2")
    actor.on_timer("model")
    for matrix in matrices[100:110]:  # the swap is in flight
        actor.on_message(matrix)
    await tasks[-1]
    for matrix in matrices[110:200]:
        actor.on_message(matrix)
    decided = [r for r in _of(records.messages, DecisionRecord) if r.kind == DecisionKind.TACTICAL]
    assert [r.event_ns for r in decided] == [m.bar_end_ns for m in matrices[:200]]
    versions = [r.model_version.split("@")[0] for r in decided]
    switch = versions.index("tactical/v2")
    assert switch >= 110 and set(versions[:switch]) == {"tactical/v1"}
    assert set(versions[switch:]) == {"tactical/v2"}
    (swap,) = [r for r in _of(records.messages, DecisionRecord) if r.kind == DecisionKind.CONTROL]
    assert swap.reason.startswith("model swap: tactical/v1@") and "-> tactical/v2@" in swap.reason
    assert not any(problems)

    registry.activate(root, "tactical", "v1")
    weights = root / "tactical" / "v1" / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    actor.on_timer("model")
    await tasks[-1]
    assert "does not match its sha256" in problems[-1]
    assert "still serving tactical/v2" in problems[-1]
    actor.on_message(matrices[200])
    assert _of(records.messages, DecisionRecord)[-1].model_version.startswith("tactical/v2@")


async def test_the_warm_up_compiles_everything_the_policy_actors_run(capture, models, features):
    """A node that compiled on its first message would stall past its heartbeat timeout
    and be killed, again and again, on a machine without numba's cache (a fresh clone)."""
    from actors.policies import forward

    kernels = [
        getattr(forward, name)
        for name in dir(forward)
        if isinstance(getattr(forward, name), numba.core.registry.CPUDispatcher)
    ]
    TacticalPolicyActor.warm_up()
    StrategicActor.warm_up()
    compiled = {kernel: len(kernel.signatures) for kernel in kernels}
    tactical, _, _ = await _tactical(capture, models, follow_strategic=False)
    strategic, _ = await _strategic(capture, models)
    for message in features[:3000]:
        tactical.on_message(message)
        strategic.on_message(message)
    await asyncio.sleep(0)  # the deferred preparations run
    assert {kernel: len(kernel.signatures) for kernel in kernels} == compiled
