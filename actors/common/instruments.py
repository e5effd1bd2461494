"""Params of the actors that serve instruments: which symbols, and their registry entries.

An actor that trades or builds data per instrument subclasses `InstrumentParams` for its
`Params` and mixes in `ServesInstruments`, which parses them with
`parse_instrument_params`: the symbols its params name (`symbols`, and any other field
the class lists in `symbol_references`) must be in the config's instrument registry,
else the config load fails naming the field, e.g.
`actors[2].params.symbols[1]: unknown instrument 'RTY' (the registry has ES, NQ)`. The
parsed params carry the served instruments' terms in `registry`, so the actor never
reads the config itself. Params built in code (tests, tools) without a registry resolve
against `DEFAULT_INSTRUMENTS`.
"""

from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec

from config.instruments import DEFAULT_INSTRUMENTS, Instrument, Symbol
from config.schema import SystemConfig

_DEFAULT_REGISTRY = {instrument.symbol: instrument for instrument in DEFAULT_INSTRUMENTS}


class InstrumentParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The base of an instrument-serving actor's params."""

    symbols: tuple[Symbol, ...] = ()
    """The instruments this actor serves, in this order; empty: every registered one.
    Messages of any other symbol are skipped and counted."""
    registry: dict[str, Instrument] = {}
    """The served instruments' terms, in `symbols` order: filled at load from the config's
    `[[instruments]]` table (never written in params)."""

    def __post_init__(self) -> None:
        known = self.registry or _DEFAULT_REGISTRY
        for i, symbol in enumerate(self.symbols):
            if self.symbols.index(symbol) != i:
                raise ValueError(f"{symbol!r} is listed twice - at `$.symbols[{i}]`")
        for path, symbol in self.symbol_references():
            if symbol not in known:
                raise ValueError(
                    f"unknown instrument {symbol!r} (the registry has {', '.join(known)})"
                    f" - at `$.{path}`"
                )
        served = self.symbols or tuple(known)
        msgspec.structs.force_setattr(self, "symbols", served)
        msgspec.structs.force_setattr(
            self, "registry", {symbol: known[symbol] for symbol in served}
        )

    def symbol_references(self) -> Iterator[tuple[str, str]]:
        """(path in params, symbol) of every symbol the params name; a subclass with more
        fields that name symbols (per-symbol limits) adds them."""
        for i, symbol in enumerate(self.symbols):
            yield f"symbols[{i}]", symbol

    def point_values(self) -> dict[str, float]:
        """Money per point of one contract, per served symbol."""
        return {symbol: instrument.point_value for symbol, instrument in self.registry.items()}

    def instrument(self, symbol: str) -> Instrument | None:
        """The served instrument `symbol`, None when this actor does not serve it."""
        return self.registry.get(symbol)


class ServesInstruments:
    """Mix into an `Actor` whose `Params` is an `InstrumentParams`: its params are parsed
    against the config's registry."""

    Params: ClassVar[Any]

    @classmethod
    def parse_params(cls, raw: dict[str, Any], config: SystemConfig | None = None) -> Any:
        return parse_instrument_params(cls.Params, raw, config)


def parse_instrument_params(
    params_type: type[InstrumentParams], raw: dict[str, Any], config: SystemConfig | None
) -> Any:
    """Validate `raw` as `params_type`, its symbols resolved against the registry of
    `config` (the default registry when None)."""
    if "registry" in raw:
        raise ValueError(
            "instruments are defined in the config's top-level [[instruments]] table, "
            "not in params - at `$.registry`"
        )
    instruments = config.instruments if config is not None else DEFAULT_INSTRUMENTS
    if not instruments:
        raise ValueError("the config's [[instruments]] table is empty - at `$.symbols`")
    registry = {instrument.symbol: instrument for instrument in instruments}
    return msgspec.convert({**raw, "registry": registry}, params_type)
