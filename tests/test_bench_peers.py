"""The NautilusTrader peer of `bench e2e`: spans measured in a child, the right way round."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.peers import nautilus

ROOT = Path(__file__).resolve().parents[1]


def test_available_gives_a_reason_when_nautilus_does_not_import():
    code = (
        "import sys\n"
        "sys.modules['nautilus_trader'] = None\n"
        "from bench.peers.nautilus import available\n"
        "print(repr(available()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    reason = eval(done.stdout.strip())
    assert isinstance(reason, str)
    assert "nautilus_trader" in reason
    assert "grandmodel[peers]" in reason
    assert "\n" not in reason


def test_measure_spans_one_per_order_after_warm_up():
    pytest.importorskip("nautilus_trader")
    assert nautilus.available() is None
    result = nautilus.measure(ticks=5000, orders=100)
    assert result.name.startswith("NautilusTrader 1.221")
    assert result.ticks == 5000
    assert result.orders == 100
    assert result.spans_ns.dtype == np.int64
    assert len(result.spans_ns) == 95  # 5 warm-up orders discarded
    # Negative if the span were taken the wrong way round (exit before entry).
    assert (result.spans_ns > 0).all()
    assert (result.spans_ns < 1_000_000_000).all()
    assert 0 < result.elapsed_s < 120
    assert "submit_order" in result.description


def test_measure_rejects_more_orders_than_ticks():
    with pytest.raises(ValueError):
        nautilus.measure(ticks=10, orders=100)


def test_measure_raises_with_the_child_stderr_tail():
    pytest.importorskip("nautilus_trader")
    # numpy refuses a negative seed in the child: the parent must surface that traceback.
    with pytest.raises(RuntimeError, match=r"exited with status 1[\s\S]*non-negative"):
        nautilus.measure(ticks=100, orders=10, seed=-1)
