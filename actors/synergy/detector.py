"""The synergy detector: MLMI, NWRQK and FVG signals firing in one direction, in order.

A synergy is the three signals firing in the same direction within `window` bars of
each other. Its type is the order in which they fired (design §6):

    TYPE_1  MLMI -> FVG -> NWRQK
    TYPE_2  MLMI -> NWRQK -> FVG
    TYPE_3  NWRQK -> FVG -> MLMI
    TYPE_4  NWRQK -> MLMI -> FVG

A sequence that starts with FVG has no type and emits nothing (the seeds define none).
Signals on the same bar are ordered MLMI, NWRQK, FVG. Rules:
- each indicator keeps only its latest signal per direction; a signal in the opposite
  direction cancels its pending one (the indicator changed its mind);
- a signal older than `window` bars before the current one no longer counts;
- when the third signal arrives the synergy fires on that bar and the three signals are
  consumed, so the next synergy needs three new ones;
- confidence = 1 - span / (window + 1), span = bars from the first to the last signal:
  a tight sequence is near 1; a synergy below `min_confidence` (0.5 by default, per
  the seeds) is dropped and counted.
"""

from dataclasses import dataclass, field

import msgspec

from actors.messages import Direction, Synergy, SynergyType

MLMI, NWRQK, FVG = 0, 1, 2
NAMES = ("MLMI", "NWRQK", "FVG")
TYPES: dict[tuple[int, int, int], SynergyType] = {
    (MLMI, FVG, NWRQK): SynergyType.TYPE_1,
    (MLMI, NWRQK, FVG): SynergyType.TYPE_2,
    (NWRQK, FVG, MLMI): SynergyType.TYPE_3,
    (NWRQK, MLMI, FVG): SynergyType.TYPE_4,
}


@dataclass(frozen=True)
class BarSignals:
    """One closed bar's signals: -1, 0 or +1 per indicator."""

    bar_index: int
    bar_end_ns: int
    close: float
    mlmi: int
    nwrqk: int
    fvg: int


class SynergyState(msgspec.Struct, array_like=True):
    """A `SynergyDetector` as data: its pending signals and counters."""

    pending: list[list[tuple[int, int] | None]]
    dropped_low_confidence: int
    untyped: int


@dataclass
class SynergyDetector:
    symbol: str
    window: int = 10
    min_confidence: float = 0.5
    dropped_low_confidence: int = 0
    untyped: int = 0
    # [direction index][indicator] -> (bar index, bar end ns) of the pending signal
    _pending: list[list[tuple[int, int] | None]] = field(
        default_factory=lambda: [[None, None, None], [None, None, None]]
    )

    def state(self) -> SynergyState:
        return SynergyState(
            [list(side) for side in self._pending], self.dropped_low_confidence, self.untyped
        )

    def restore(self, state: SynergyState) -> None:
        self._pending = [list(side) for side in state.pending]
        self.dropped_low_confidence, self.untyped = state.dropped_low_confidence, state.untyped

    def on_bar(self, bars: BarSignals) -> Synergy | None:
        for indicator, signal in enumerate((bars.mlmi, bars.nwrqk, bars.fvg)):
            if signal not in (-1, 1):
                continue
            side = 0 if signal > 0 else 1
            self._pending[side][indicator] = (bars.bar_index, bars.bar_end_ns)
            self._pending[1 - side][indicator] = None
        for side in (0, 1):
            pending = self._pending[side]
            for indicator, seen in enumerate(pending):
                if seen is not None and bars.bar_index - seen[0] > self.window:
                    pending[indicator] = None
            if any(seen is None for seen in pending):
                continue
            fired = [(seen[0], indicator) for indicator, seen in enumerate(pending)]  # type: ignore[index]
            times = [seen[1] for seen in pending]  # type: ignore[index]
            self._pending[side] = [None, None, None]
            order = tuple(indicator for _, indicator in sorted(fired))
            synergy_type = TYPES.get(order)  # type: ignore[arg-type]
            if synergy_type is None:
                self.untyped += 1
                continue
            span = max(index for index, _ in fired) - min(index for index, _ in fired)
            confidence = 1.0 - span / (self.window + 1)
            if confidence < self.min_confidence:
                self.dropped_low_confidence += 1
                continue
            return Synergy(
                symbol=self.symbol,
                synergy_type=synergy_type,
                direction=Direction.LONG if side == 0 else Direction.SHORT,
                confidence=confidence,
                bar_end_ns=bars.bar_end_ns,
                price=bars.close,
                mlmi_signal_ns=times[MLMI],
                nwrqk_signal_ns=times[NWRQK],
                fvg_signal_ns=times[FVG],
            )
        return None
