"""Several instruments through the per-symbol pipeline: each symbol's bars and decisions
are its own (a bad tick of one never moves another), and survive a restart per symbol."""

import math

import msgspec
import pytest

from actors.bars import BarsActor, BarsParams
from actors.bars.actor import BarsState
from actors.common.ticks import make_ticks
from actors.feed import MarketParams, SyntheticMarket
from actors.journal.query import connect, select_records
from actors.messages import AnyMessage, Tick
from actors.reconcile.audit import reconcile
from actors.tactical import TacticalActor, TacticalParams
from actors.tactical.actor import TacticalState
from kernel.codec import Codec
from kernel.messages import Message
from ringbuf import inspect_ring
from tests.helpers import actor_context, wait_until
from tests.pipeline import POINT_VALUES, journal_path, pipeline_config, start_pipeline

CODEC = Codec.from_union(AnyMessage)
ENVELOPE = set(Message.__struct_fields__)
TICKS = 40_000  # 20,000 a symbol: 4,000 five-second bars each


@pytest.fixture(scope="module")
def ticks() -> list[Tick]:
    """ES and NQ, correlated, one tick each per market second."""
    params = MarketParams(
        seed=17,
        correlation=[[1.0, 0.8], [0.8, 1.0]],
        models={"NQ": {"start_price": 14_500.0}},  # type: ignore[dict-item]
    )
    return list(make_ticks(**SyntheticMarket(params).next_batch(TICKS)._asdict()))


def _spoiled(ticks: list[Tick], symbol: str) -> list[Tick]:
    """`ticks` with bad ticks of `symbol` mixed in, each after one of its good ticks: a
    NaN and an infinite price, a negative size, a tick from the past, and a price spike
    (finite, so it does enter that symbol's bars)."""
    out: list[Tick] = []
    for i, tick in enumerate(ticks):
        out.append(tick)
        if tick.symbol == symbol and i % 97 == 0:
            bad = msgspec.structs.replace
            out += [
                bad(tick, price=math.nan),
                bad(tick, price=math.inf, bid=math.inf),
                bad(tick, size=-5),
                bad(tick, event_ns=tick.event_ns - 3_600_000_000_000),
            ]
            if i % (97 * 7) == 0:
                out.append(bad(tick, price=tick.price * 1.1))
    return out


def _domain(msg: msgspec.Struct) -> bytes:
    """A message without its envelope (seq, stamps, which depend on what else ran),
    encoded: NaN fields (an indicator warming up) compare equal."""
    fields = [getattr(msg, name) for name in msg.__struct_fields__ if name not in ENVELOPE]
    return msgspec.msgpack.encode(fields)


class Pipeline:
    """A BarsActor feeding a TacticalActor, on real rings, started from given states."""

    def __init__(self, capture, tag: str, bars: BarsState | None = None, tactical=None) -> None:
        self.bars_out = capture(f"bars-{tag}", CODEC)
        self.intents_out = capture(f"intents-{tag}", CODEC)
        self.bars = BarsActor(
            BarsParams(timeframes=(5,)), actor_context("bars", {"bars": self.bars_out.stream})
        )
        self.tactical = TacticalActor(
            TacticalParams(timeframe_s=5, threshold_pct=0.002, min_atr_fraction=0.0),
            actor_context("tactical", {"intents": self.intents_out.stream}),
        )
        if bars is not None:
            self.bars.state = bars
        if tactical is not None:
            self.tactical.state = tactical
        self._handed = 0

    async def start(self) -> "Pipeline":
        await self.bars.on_start()
        await self.tactical.on_start()
        return self

    def feed(self, ticks: list[Tick]) -> None:
        for tick in ticks:
            self.bars.on_message(tick)
        bars = self.bars_out.messages
        for bar in bars[self._handed :]:
            self.tactical.on_message(bar)
        self._handed = len(bars)

    def saved(self) -> tuple[BarsState, TacticalState]:
        """Both actors' states as the kernel commits and restores them."""
        return (
            msgspec.msgpack.decode(
                msgspec.msgpack.encode(self.bars.state_to_save()), type=BarsState
            ),
            msgspec.msgpack.decode(
                msgspec.msgpack.encode(self.tactical.state_to_save()), type=TacticalState
            ),
        )


async def _run(capture, ticks: list[Tick], tag: str) -> Pipeline:
    pipeline = await Pipeline(capture, tag).start()
    pipeline.feed(ticks)
    return pipeline


def _of(messages: list, symbol: str) -> list[bytes]:
    return [_domain(m) for m in messages if m.symbol == symbol]


async def test_bad_ticks_of_one_symbol_leave_the_others_bars_and_decisions_unchanged(
    capture, ticks
):
    clean = await _run(capture, ticks, "clean")
    spoiled = await _run(capture, _spoiled(ticks, "ES"), "spoiled")
    clean_bars, clean_intents = clean.bars_out.messages, clean.intents_out.messages
    bars, intents = spoiled.bars_out.messages, spoiled.intents_out.messages
    assert len(_of(clean_bars, "NQ")) > 3000 and len(_of(clean_intents, "NQ")) > 20
    assert _of(bars, "NQ") == _of(clean_bars, "NQ")
    assert _of(intents, "NQ") == _of(clean_intents, "NQ")
    # ES took the damage: its dropped ticks are counted, the spikes moved its bars only.
    es, nq = spoiled.bars.builders["ES"], spoiled.bars.builders["NQ"]
    per_kind = sum(1 for i, t in enumerate(ticks) if t.symbol == "ES" and i % 97 == 0)
    assert (es.bad_ticks, es.late_ticks) == (3 * per_kind, per_kind)
    assert (nq.bad_ticks, nq.late_ticks) == (0, 0)
    assert _of(bars, "ES") != _of(clean_bars, "ES")
    assert all(math.isfinite(bar.close) for bar in bars)


async def test_bars_and_strategies_continue_per_symbol_from_their_durable_state(capture, ticks):
    """Stop half way (mid-step, mid-bar), save each actor's state as the kernel does
    (encoded, decoded), start new actors on it: every symbol's bars and intents continue
    exactly as in an uninterrupted run."""
    whole = await _run(capture, ticks, "whole")
    half = len(ticks) // 2 + 1
    first = await _run(capture, ticks[:half], "first")
    bars_state, tactical_state = first.saved()
    assert set(bars_state.builders) == set(tactical_state.memories) == {"ES", "NQ"}
    second = await Pipeline(capture, "second", bars_state, tactical_state).start()
    second.feed(ticks[half:])
    for symbol in ("ES", "NQ"):
        for kind in ("bars_out", "intents_out"):
            continued = [
                *_of(getattr(first, kind).messages, symbol),
                *_of(getattr(second, kind).messages, symbol),
            ]
            assert continued == _of(getattr(whole, kind).messages, symbol), (symbol, kind)


async def test_symbols_an_actor_does_not_serve_are_skipped_and_counted(capture, ticks):
    out = capture("bars-es", CODEC)
    actor = BarsActor(
        BarsParams(symbols=("ES",), timeframes=(5,)), actor_context("bars", {"bars": out.stream})
    )
    await actor.on_start()
    for tick in ticks[:1000]:
        actor.on_message(tick)
    assert {bar.symbol for bar in out.messages} == {"ES"}
    assert actor.skipped_ticks == 500 and list(actor.builders) == ["ES"]


# --- a sharded topology, as real processes ---------------------------------------------


def _sharded(config: dict) -> dict:
    """The pipeline with its per-symbol stages in two shards of their own nodes: ES in
    shard_a, NQ in shard_b, each publishing its own bars and intents streams, which risk
    and the journal consume together (config/eight_core.toml on two cores)."""
    actors = {actor["name"]: actor for actor in config["actors"]}
    bars, tactical = actors.pop("bars"), actors.pop("tactical")
    streams = [s for s in config["streams"] if s["name"] not in ("bars", "intents")]
    for shard, symbol in (("a", "ES"), ("b", "NQ")):
        streams += [{"name": f"bars_{shard}", "capacity": 1 << 22}]
        streams += [{"name": f"intents_{shard}", "capacity": 1 << 22}]
        actors[f"bars_{shard}"] = {
            **bars,
            "name": f"bars_{shard}",
            "outputs": {"bars": f"bars_{shard}"},
            "params": {**bars["params"], "symbols": [symbol]},
        }
        actors[f"tactical_{shard}"] = {
            **tactical,
            "name": f"tactical_{shard}",
            "inputs": [f"bars_{shard}"],
            "outputs": {"intents": f"intents_{shard}"},
            "params": {**tactical["params"], "symbols": [symbol]},
        }
    actors["risk"]["inputs"] = ["intents_a", "intents_b", "venue", "bars_a", "bars_b"]
    actors["journal"]["inputs"] = ["intents_a", "intents_b", "verdicts", "orders", "venue"]
    config["streams"], config["actors"] = streams, list(actors.values())
    config["nodes"] = [node for node in config["nodes"] if node["name"] != "hot"] + [
        {"name": "shard_a", "actors": ["bars_a", "tactical_a"], "cores": [1], "wait": "park"},
        {"name": "shard_b", "actors": ["bars_b", "tactical_b"], "cores": [1], "wait": "park"},
        {"name": "hot", "actors": ["risk", "execution"], "cores": [1], "wait": "park"},
    ]
    config["supervisors"][0]["children"] = ["audit", "market", "shard_a", "shard_b", "hot"]
    return config


def test_a_sharded_topology_trades_every_symbol_and_reconciles(tmp_path, systems):
    ticks = 12_000
    config = _sharded(pipeline_config(tmp_path, ticks))
    system = start_pipeline(tmp_path, config)
    systems.append(system)
    rings = [
        f"{system.name}.{stream}.{actor['name']}"
        for actor in config["actors"]
        for stream in actor.get("inputs", [])
    ]

    def drained() -> bool:
        if system.rows()["feed"]["msgs_out"] < ticks:
            return False
        return all(
            (s := inspect_ring(name)).depth_bytes == 0 and s.published == s.consumed
            for name in rings
        )

    wait_until(drained, 120, "the sharded pipeline to drain")
    for shard in ("a", "b"):  # each shard reads every tick, keeps its own symbol's
        assert inspect_ring(f"{system.name}.ticks.bars_{shard}").consumed == ticks
    assert system.terminate()[0] == 0
    audit = reconcile(config["name"], journal_path(tmp_path), POINT_VALUES)
    assert audit.clean, (audit.lost, audit.duplicated, [str(m) for m in audit.mismatches])
    db = connect(journal_path(tmp_path))
    try:
        rows = select_records(db)
    finally:
        db.close()
    symbols: dict[str, set[str]] = {}
    for row in rows:
        symbols.setdefault(row["stream"], set()).add(row["payload"]["symbol"])
    assert symbols["intents_a"] == {"ES"} and symbols["intents_b"] == {"NQ"}
    assert symbols["venue"] == symbols["orders"] == {"ES", "NQ"}
    fills = [row["payload"] for row in rows if row["type"] == "Fill"]
    assert {fill["symbol"] for fill in fills} == {"ES", "NQ"}
