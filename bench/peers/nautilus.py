"""Peer: NautilusTrader 1.221.0's BacktestEngine on our `bench e2e` workload, `tick_to_order`.

Ours: `tick_to_order` runs from the moment the feed publishes the tick that triggered the
decision to the moment the order reaches the venue adapter (where a live adapter would write
to the wire): strategy, risk and execution all sit inside the span. This module measures the
same span in one NautilusTrader process, on the same workload: `ticks` quotes of one
instrument, a MARKET order of size 1 every `ticks // orders` quotes (alternating BUY/SELL,
`orders` orders in all), the first 5% of orders discarded as warm-up.

The engine (nautilus_trader 1.221.0, Cython; read from the .pyx files the wheel ships)
--------------------------------------------------------------------------------------
`BacktestEngine._run` handles one quote per loop iteration, synchronously, in one thread:

1. `data = self._data_iterator.next()` (single stream: an index into a pre-sorted list),
   then `_advance_time(data.ts_init)`: every component `TestClock` is set to the quote's
   time (no timers are registered here, so no time events fire);
2. `SimulatedExchange.process_quote_tick(tick)`: first `module.pre_process(tick)` for each
   `SimulationModule` of the venue, then `OrderMatchingEngine.process_quote_tick` (the
   venue's L1 book);
3. `DataEngine.process(tick)`: cache update, `MessageBus.publish` on the quote topic ->
   `Strategy.handle_quote_tick` -> our `on_quote_tick`, which on every `ticks // orders`-th
   quote builds a MARKET order (`order_factory.market`) and calls `Strategy.submit_order` ->
   cache, `OrderInitialized` -> `MessageBus.send("RiskEngine.execute")` -> `RiskEngine`
   pre-trade checks (instrument, quantity, price, notional, balance, submit-rate throttler)
   -> `MessageBus.send("ExecEngine.execute")` -> `ExecutionEngine._execute_command` (client
   routing) -> `_handle_submit_order` (order cached) -> `client.submit_order(command)`;
4. `SimulatedExchange.process(ts)`: queued commands reach the matching engine (the fill).

The span, at both ends
----------------------
- Start: the first statement of `_EntryProbe.pre_process`, a `SimulationModule` subclass
  passed to `add_venue(modules=[...])` (the documented extension point; `pre_process` is a
  cpdef method, so Cython dispatches to the Python override). It is the first code that
  receives the quote after the engine pulls it off its data stream: before the venue's
  matching engine and before the DataEngine. Not inside the span: the iterator's list index,
  the clock advance of step 1 and the `isinstance` dispatch (the engine offers no hook
  before them: `_data_iterator` is a private cdef attribute and `SimulatedExchange` is built
  by `add_venue`), i.e. the peer's span starts a little later than it could: conservative
  in Nautilus's favour.
- End: the first statement of `_ExitProbe.submit_order`, an `ExecutionClient` subclass
  registered with the ExecutionEngine (`exec_engine.register_client`) and named by the
  strategy (`submit_order(order, client_id=...)`), so that `ExecutionEngine` calls it
  exactly where it would call a venue's client, after the RiskEngine and the
  ExecutionEngine are done with the order. It then hands the command to the venue's own
  `BacktestExecClient.submit_order` (which emits `OrderSubmitted` and queues the command at
  the `SimulatedExchange`); that work, like our venue adapter's after its receipt stamp,
  is outside the span. A live Nautilus adapter's `submit_order` is likewise the first code
  of the venue's client, before it writes to the wire.
- Clock: `time.perf_counter_ns` (CLOCK_MONOTONIC) at both ends, in the same thread.

Why it corresponds to ours: both spans open when the quote is handed to the system that
trades (our feed's publish, Nautilus's first consumer of the quote in its engine loop) and
close when the order reaches the venue's adapter/client after strategy, risk and
execution; both exclude what the venue does with the order. The differences: ours crosses
processes over shared-memory rings, Nautilus calls everything in one thread; ours decides
on bars built from the ticks, this strategy counts quotes (the decision itself is trivial
on both sides). Nautilus is spared log I/O as we are (`LoggingConfig(bypass_logging=True)`,
`log_events=False`, `log_commands=False`), and, like our nodes, runs with `gc.freeze()`
after start-up. The venue is a cash account (AAPL.XNAS equity, USD 1,000,000) on L1 quotes
one tick (0.01) wide, from a seeded random walk 10 ms apart in simulated time; every
order is checked to have reached the client within its own `submit_order` call and to be
filled. `elapsed_s` is the wall time of `BacktestEngine.run()`.

`python -m bench.peers.nautilus --ticks N --orders M --seed S --json PATH` runs the peer
(the bench calls `measure`, which runs that command in a child process pinned to CPU 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "NautilusTrader 1.221.0 BacktestEngine"
VERSION_PREFIX = "1.221."
INSTALL_HINT = "pip install 'grandmodel[peers]'"
DESCRIPTION = (
    "From SimulatedExchange.process_quote_tick's first SimulationModule.pre_process of the "
    "triggering quote (before matching engine and DataEngine) to the ExecutionEngine's call "
    "of the execution client's submit_order (after Strategy, RiskEngine and ExecutionEngine)."
)
WARMUP_FRACTION = 20  # the first orders // 20 (5%) are warm-up
TICK_SPACING_NS = 10_000_000  # 10 ms of simulated time between quotes
PEER_CPU = 1

_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class PeerResult:
    name: str
    spans_ns: np.ndarray
    ticks: int
    orders: int
    elapsed_s: float
    description: str


def available() -> str | None:
    """None when nautilus_trader 1.221.x imports (checked in a child process), else why not."""
    try:
        spec = importlib.util.find_spec("nautilus_trader")
    except (ImportError, ValueError) as error:
        return f"nautilus_trader cannot be found ({error}): {INSTALL_HINT}"
    if spec is None:
        return f"nautilus_trader is not installed: {INSTALL_HINT}"
    try:
        version = importlib.metadata.version("nautilus_trader")
    except importlib.metadata.PackageNotFoundError:
        return f"nautilus_trader has no package metadata: {INSTALL_HINT}"
    if not version.startswith(VERSION_PREFIX):
        return f"nautilus_trader {version} is installed, the peer needs 1.221.x: {INSTALL_HINT}"
    probe = subprocess.run(
        [sys.executable, "-c", "import nautilus_trader.backtest.engine"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        tail = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"nautilus_trader {version} does not import ({tail}): {INSTALL_HINT}"
    return None


def measure(ticks: int, orders: int, seed: int = 11) -> PeerResult:
    """Run the peer in a child process (pinned to CPU 1 on 2+ cores) and return its spans."""
    if orders < 1 or ticks < orders:
        raise ValueError(f"need 1 <= orders <= ticks, got ticks={ticks} orders={orders}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="peer-nautilus-") as tmp:
        out = Path(tmp) / "nautilus.json"
        command = [
            sys.executable,
            "-m",
            "bench.peers.nautilus",
            "--ticks",
            str(ticks),
            "--orders",
            str(orders),
            "--seed",
            str(seed),
            "--json",
            str(out),
        ]
        with (
            open(Path(tmp) / "stdout", "w+b") as stdout,
            open(Path(tmp) / "stderr", "w+b") as stderr,
        ):
            child = subprocess.Popen(command, cwd=_ROOT, env=env, stdout=stdout, stderr=stderr)
            try:
                # Pinned before the interpreter gets to nautilus (threads inherit the mask).
                if (os.cpu_count() or 1) >= 2 and PEER_CPU in os.sched_getaffinity(0):
                    os.sched_setaffinity(child.pid, {PEER_CPU})
                rc = child.wait(timeout=300 + ticks / 200)
            except BaseException:
                child.kill()
                child.wait()
                raise
            stderr.seek(0)
            err = stderr.read().decode(errors="replace")
            stdout.seek(0)
            text = stdout.read().decode(errors="replace")
        if rc != 0 or not out.exists():
            tail = (err.strip() or text.strip() or "no output")[-3000:]
            raise RuntimeError(f"nautilus peer exited with status {rc}:\n{tail}")
        result = json.loads(out.read_text())
    return PeerResult(
        name=result["name"],
        spans_ns=np.asarray(result["spans_ns"], dtype=np.int64),
        ticks=int(result["ticks"]),
        orders=int(result["orders"]),
        elapsed_s=float(result["elapsed_s"]),
        description=result["description"],
    )


def _quotes(ticks: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask in cents: a seeded random walk of the bid (+-1 cent or flat), ask = bid + 1."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-1, 2, size=ticks, dtype=np.int64)
    bid = 10_000 + np.cumsum(steps)
    bid = np.maximum(bid, 100)  # stays a positive price whatever the walk
    return bid, bid + 1


def _run(ticks: int, orders: int, seed: int) -> dict:
    """Build the engine, run the workload, return the samples (nautilus imported only here)."""
    import gc

    import pandas as pd
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.backtest.modules import SimulationModule, SimulationModuleConfig
    from nautilus_trader.config import LoggingConfig, RiskEngineConfig, StrategyConfig
    from nautilus_trader.execution.client import ExecutionClient
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import ClientId, Venue
    from nautilus_trader.model.objects import Money, Quantity
    from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy

    now = time.perf_counter_ns
    every = ticks // orders

    class _EntryProbe(SimulationModule):
        """Stamps every quote as the venue's first consumer receives it (`pre_process`)."""

        def __init__(self) -> None:
            super().__init__(SimulationModuleConfig(log_events=False, log_commands=False))
            self.t_in = 0

        def pre_process(self, data: object) -> None:
            self.t_in = now()

        def process(self, ts_now: int) -> None:
            pass

        def log_diagnostics(self, logger: object) -> None:
            pass

        def reset(self) -> None:
            self.t_in = 0

    class _ExitProbe(ExecutionClient):
        """The execution client the ExecutionEngine hands the order to: stamps, then forwards
        to the venue's BacktestExecClient."""

        def __init__(self, inner: ExecutionClient, engine: BacktestEngine) -> None:
            super().__init__(
                client_id=ClientId("PEER-PROBE"),
                venue=None,
                oms_type=inner.oms_type,
                account_type=inner.account_type,
                base_currency=inner.base_currency,
                msgbus=engine.kernel.msgbus,
                cache=engine.kernel.cache,
                clock=engine.kernel.clock,
            )
            self.inner = inner
            self.t_out: list[int] = []
            self.received: list[object] = []

        def submit_order(self, command: object) -> None:
            self.t_out.append(now())
            self.received.append(command.order.client_order_id)
            self.inner.submit_order(command)

        def _start(self) -> None:
            self._set_connected(True)

        def _stop(self) -> None:
            self._set_connected(False)

    class _Peer(Strategy):
        def __init__(self, instrument_id: object, probe: _EntryProbe, exit_id: ClientId) -> None:
            super().__init__(StrategyConfig(log_events=False, log_commands=False))
            self.instrument_id = instrument_id
            self.probe = probe
            self.exit_id = exit_id
            self.exit: _ExitProbe | None = None
            self.qty = Quantity.from_int(1)
            self.seen = 0
            self.sent = 0
            self.t_in: list[int] = []

        def on_start(self) -> None:
            self.subscribe_quote_ticks(self.instrument_id)

        def on_quote_tick(self, tick: object) -> None:
            self.seen += 1
            if self.seen % every or self.sent >= orders:
                return
            side = OrderSide.SELL if self.sent & 1 else OrderSide.BUY
            order = self.order_factory.market(self.instrument_id, side, self.qty)
            self.t_in.append(self.probe.t_in)
            self.sent += 1
            self.submit_order(order, client_id=self.exit_id)
            # The span closed inside that call: the order reached the client synchronously.
            if len(self.exit.t_out) != self.sent:
                raise RuntimeError(f"order {self.sent} did not reach the execution client")

    engine = BacktestEngine(
        BacktestEngineConfig(
            logging=LoggingConfig(bypass_logging=True),
            risk_engine=RiskEngineConfig(bypass=False),
            run_analysis=False,
        )
    )
    instrument = TestInstrumentProvider.equity(symbol="AAPL", venue="XNAS")
    probe = _EntryProbe()
    engine.add_venue(
        venue=Venue("XNAS"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=USD,
        starting_balances=[Money(1_000_000, USD)],
        modules=[probe],
    )
    engine.add_instrument(instrument)

    bid, ask = _quotes(ticks, seed)
    index = pd.to_datetime(
        1_700_000_000_000_000_000 + np.arange(ticks, dtype=np.int64) * TICK_SPACING_NS,
        utc=True,
    )
    frame = pd.DataFrame(
        {
            "bid_price": bid / 100.0,
            "ask_price": ask / 100.0,
            "bid_size": np.full(ticks, 100.0),
            "ask_size": np.full(ticks, 100.0),
        },
        index=index,
    )
    engine.add_data(QuoteTickDataWrangler(instrument).process(frame))
    del frame

    exit_id = ClientId("PEER-PROBE")
    strategy = _Peer(instrument.id, probe, exit_id)
    engine.add_strategy(strategy)
    exit_probe = _ExitProbe(probe.exchange.exec_client, engine)
    engine.kernel.exec_engine.register_client(exit_probe)
    strategy.exit = exit_probe

    gc.collect()
    gc.freeze()
    started = time.monotonic()
    engine.run()
    elapsed = time.monotonic() - started

    t_in = np.asarray(strategy.t_in, dtype=np.int64)
    t_out = np.asarray(exit_probe.t_out, dtype=np.int64)
    filled = sum(1 for order in engine.cache.orders() if order.is_closed and order.filled_qty == 1)
    if strategy.sent != orders or len(t_out) != orders or len(t_in) != orders:
        raise RuntimeError(
            f"expected {orders} orders, strategy sent {strategy.sent}, client received {len(t_out)}"
        )
    if len(set(exit_probe.received)) != orders:
        raise RuntimeError("the execution client received duplicate orders")
    if filled != orders:
        raise RuntimeError(f"{orders} orders sent, {filled} filled")
    if np.any(t_in == 0):
        raise RuntimeError("an order was decided on a quote the entry probe never saw")
    warmup = orders // WARMUP_FRACTION
    spans = (t_out - t_in)[warmup:]
    engine.dispose()
    return {
        "name": NAME,
        "version": importlib.metadata.version("nautilus_trader"),
        "ticks": ticks,
        "orders": orders,
        "warmup": warmup,
        "filled": filled,
        "elapsed_s": elapsed,
        "cpus": sorted(os.sched_getaffinity(0)),
        "description": DESCRIPTION,
        "spans_ns": spans.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.nautilus", description=__doc__)
    parser.add_argument("--ticks", type=int, default=272_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, required=True, help="where to write the samples")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.ticks < args.orders:
        parser.error("need 1 <= orders <= ticks")
    result = _run(args.ticks, args.orders, args.seed)
    tmp = args.json.with_name(args.json.name + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(args.json)
    spans_us = np.asarray(result["spans_ns"], dtype=np.float64) / 1e3
    p50, p99, p999 = np.percentile(spans_us, [50, 99, 99.9])
    print(
        f"{NAME}: {len(spans_us)} orders after {result['warmup']} warm-up, "
        f"{result['ticks']} ticks in {result['elapsed_s']:.2f} s; tick_to_order "
        f"p50 {p50:.1f} us, p99 {p99:.1f} us, p99.9 {p999:.1f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
