"""The synergy detector: types from the firing order, window, cancellation, confidence."""

import pytest

from actors.messages import Direction, SynergyType
from actors.synergy import BarSignals, SynergyDetector


def feed(detector: SynergyDetector, signals: dict[int, tuple[int, int, int]], bars: int = 30):
    """Run `bars` bars; `signals[i]` = (mlmi, nwrqk, fvg) on bar i. Returns (bar, synergy)."""
    out = []
    for i in range(bars):
        mlmi, nwrqk, fvg = signals.get(i, (0, 0, 0))
        synergy = detector.on_bar(BarSignals(i, 1000 + i, 4150.0 + i, mlmi, nwrqk, fvg))
        if synergy is not None:
            out.append((i, synergy))
    return out


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        ({1: (1, 0, 0), 2: (0, 0, 1), 3: (0, 1, 0)}, SynergyType.TYPE_1),
        ({1: (1, 0, 0), 2: (0, 1, 0), 3: (0, 0, 1)}, SynergyType.TYPE_2),
        ({1: (0, 1, 0), 2: (0, 0, 1), 3: (1, 0, 0)}, SynergyType.TYPE_3),
        ({1: (0, 1, 0), 2: (1, 0, 0), 3: (0, 0, 1)}, SynergyType.TYPE_4),
    ],
)
def test_the_firing_order_gives_the_type(signals, expected):
    ((bar, synergy),) = feed(SynergyDetector("ES"), signals)
    assert bar == 3 and synergy.synergy_type == expected
    assert synergy.direction == Direction.LONG
    assert synergy.confidence == pytest.approx(1 - 2 / 11)
    assert synergy.bar_end_ns == 1003 and synergy.price == 4153.0


def test_short_synergies_and_signal_times():
    ((_, synergy),) = feed(SynergyDetector("ES"), {4: (-1, 0, 0), 5: (0, -1, -1)})
    assert synergy.direction == Direction.SHORT and synergy.synergy_type == SynergyType.TYPE_2
    assert (synergy.mlmi_signal_ns, synergy.nwrqk_signal_ns, synergy.fvg_signal_ns) == (
        1004,
        1005,
        1005,
    )


def test_sequences_starting_with_fvg_have_no_type():
    detector = SynergyDetector("ES")
    assert feed(detector, {1: (0, 0, 1), 2: (1, 0, 0), 3: (0, 1, 0)}) == []
    assert detector.untyped == 1


def test_signals_outside_the_window_do_not_count():
    assert feed(SynergyDetector("ES", window=5), {1: (1, 0, 0), 4: (0, 1, 0), 8: (0, 0, 1)}) == []


def test_an_opposite_signal_cancels_the_pending_one():
    signals = {1: (1, 0, 0), 2: (-1, 1, 0), 3: (0, 0, 1)}
    assert feed(SynergyDetector("ES"), signals) == []


def test_low_confidence_synergies_are_dropped_and_counted():
    detector = SynergyDetector("ES", window=10, min_confidence=0.5)
    assert feed(detector, {1: (1, 0, 0), 5: (0, 1, 0), 8: (0, 0, 1)}) == []  # span 7 -> 0.36
    assert detector.dropped_low_confidence == 1


def test_signals_are_consumed_by_a_synergy():
    signals = {1: (1, 0, 0), 2: (0, 1, 0), 3: (0, 0, 1), 4: (0, 0, 1)}
    assert len(feed(SynergyDetector("ES"), signals)) == 1
