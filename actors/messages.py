"""The trading messages: one tagged union of msgspec Structs (design §5).

Every message subclasses `kernel.messages.Message`, so it carries `seq` (per stream),
`ts_ns` (CLOCK_MONOTONIC at publish) and `origin_ns` (publish time of the tick that
caused it). Conventions used everywhere:

- prices are floats in instrument units (index points for ES), quantities are int
  contracts; money (P&L, notional, VaR) is a float in account currency;
- market time is `event_ns`-style int nanoseconds since the epoch, UTC;
- direction and order side are the single `Direction` enum (SHORT=-1, FLAT=0, LONG=1);
- class probabilities are (bearish, neutral, bullish), in that index order;
- a float that is not known yet is NaN (never 0, which is a valid value).

Wire format: `array_like=True` (fields as a msgpack array, no field names) with an int tag
per type equal to its 1-based position in `AnyMessage`, which is also the record type id
the kernel's `Codec.from_union(AnyMessage)` assigns. The tag makes a payload decodable
on its own (`msgspec.msgpack.decode(data, type=AnyMessage)`, e.g. by the journal).
Order is the wire contract: append new types at the end of `AnyMessage`, never reorder,
and append new fields at the end of a type with a default.
Messages are mutable (`frozen=False`) because the kernel stamps the envelope on publish,
and `gc=False` because they hold only scalars, strings, bytes and flat lists of numbers.
"""

import math
from enum import IntEnum
from typing import Annotated, Self

import msgspec
import numpy as np

from kernel.messages import Message

NAN = math.nan


class Direction(IntEnum):
    """Position direction, signal direction and order side (LONG buys, SHORT sells)."""

    SHORT = -1
    FLAT = 0
    LONG = 1


class Regime(IntEnum):
    """Market regime; the value indexes per-regime parameter arrays."""

    BULL = 0
    BEAR = 1
    SIDEWAYS = 2
    VOLATILE = 3


UNKNOWN_REGIME = -1
"""`Tick.regime` when the source does not label its regime (any real feed)."""


class SynergyType(IntEnum):
    """Order in which the MLMI, NWRQK and FVG signals fired (design §6); NONE = no synergy."""

    NONE = 0
    TYPE_1 = 1
    TYPE_2 = 2
    TYPE_3 = 3
    TYPE_4 = 4


class TradingState(IntEnum):
    """Risk trading state: ACTIVE trades, REDUCING only reduces exposure, HALTED nothing."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


class DenyReason(IntEnum):
    """Why the pre-trade risk gate denied (or cut) an intent; NONE when approved."""

    NONE = 0
    KILL_SWITCH = 1
    HALTED = 2
    REDUCING_ONLY = 3
    NAN_INPUT = 4
    POSITION_LIMIT = 5
    ORDER_SIZE_LIMIT = 6
    NOTIONAL_LIMIT = 7
    VAR_LIMIT = 8
    DAILY_LOSS_LIMIT = 9
    DRAWDOWN_LIMIT = 10
    ORDER_RATE_LIMIT = 11
    DUPLICATE_ID = 12
    PRICE_BAND = 13
    ZERO_SIZE = 14
    CIRCUIT_BREAKER = 15
    EMERGENCY = 16
    NET_NOTIONAL_LIMIT = 17
    UNKNOWN_SYMBOL = 18
    RESTRICTED_INSTRUMENT = 19


class RejectReason(IntEnum):
    """Why the venue (or the execution actor in front of it) rejected an order."""

    UNKNOWN_SYMBOL = 0
    INVALID_QUANTITY = 1
    INVALID_PRICE = 2
    DUPLICATE_ORDER_ID = 3
    UNKNOWN_ORDER = 4
    MARKET_CLOSED = 5
    NO_LIQUIDITY = 6
    PRICE_BAND = 7
    RATE_LIMIT = 8
    KILL_SWITCH = 9
    VENUE_ERROR = 10


class OrderType(IntEnum):
    MARKET = 0
    LIMIT = 1
    STOP = 2
    STOP_LIMIT = 3


class TimeInForce(IntEnum):
    DAY = 0
    IOC = 1
    FOK = 2
    GTC = 3


class ExecStrategy(IntEnum):
    """Child-order schedulers of the execution actor."""

    IMMEDIATE = 0
    TWAP = 1
    VWAP = 2
    ICEBERG = 3
    STEALTH = 4


class Liquidity(IntEnum):
    """Whether a fill added liquidity to the book (maker) or took it (taker)."""

    TAKER = 0
    MAKER = 1


class DecisionKind(IntEnum):
    """Which stage a `DecisionRecord` explains (the SYNERGY -> QUALIFIED -> EXECUTE chain)."""

    SYNERGY = 0
    STRATEGIC = 1
    TACTICAL = 2
    RISK = 3
    EXECUTION = 4
    CONTROL = 5


class ActorStatus(IntEnum):
    STARTING = 0
    RUNNING = 1
    DEGRADED = 2
    STOPPING = 3


class ControlCommand(IntEnum):
    """Operator / supervisor commands: HALT stops new risk, RESUME re-enables it,
    FLATTEN closes every position and cancels working orders, SHUTDOWN stops the engine."""

    HALT = 0
    RESUME = 1
    FLATTEN = 2
    SHUTDOWN = 3


class Tick(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=1):
    """One trade print with the top of book at that moment."""

    symbol: str
    price: float
    size: int
    bid: float
    ask: float
    event_ns: int
    """Market time of the print, ns since the epoch (UTC)."""
    regime: int = UNKNOWN_REGIME
    """The synthetic generator's `Regime` label, `UNKNOWN_REGIME` (-1) for real data."""
    bid_size: int = 0
    ask_size: int = 0
    history: bool = False
    """Published as history (the feed's `history_sessions`): it warms bars, indicators and
    matrices, and nothing trades on it."""


class Bar(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=2):
    """An OHLCV bar over [start_ns, end_ns) of market time, with its per-bar indicators."""

    symbol: str
    timeframe_s: int
    start_ns: int
    end_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    atr: float = NAN
    """ATR(14), Wilder smoothing; NaN until 14 bars were seen."""
    momentum_5: float = NAN
    """(C_t - C_{t-5}) / C_{t-5} * 100; NaN until 6 bars were seen."""
    ticks: int = 0
    history: bool = False
    """Closed by a history tick: nothing trades on it."""


MAX_MATRIX_BYTES = 16_384
"""The largest model-input matrix payload (a 60x7 or 48x13 float32 matrix is far below)."""


class MatrixMessage(Message, kw_only=True, gc=False):
    """Base of the model-input matrices: float32 C-order values as raw bytes plus the shape.

    Not itself in `AnyMessage`; its subclasses fix the default shape and the tag.
    """

    symbol: str
    bar_end_ns: int
    """End of the bar whose close produced the matrix (market time, ns)."""
    close: float
    atr: float
    rows: int
    cols: int
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_MATRIX_BYTES)]
    """rows x cols float32 values; bounded so that a ring's size can be checked at load."""

    @classmethod
    def from_array(
        cls,
        matrix: np.ndarray,
        *,
        symbol: str,
        bar_end_ns: int,
        close: float,
        atr: float,
        **fields: float,
    ) -> Self:
        """Build from a 2-D array (converted to C-order float32); `fields` are the
        subclass's own (a strategic matrix's `volatility`)."""
        if matrix.ndim != 2:
            raise ValueError(f"a matrix message needs a 2-D array, got shape {matrix.shape}")
        rows, cols = matrix.shape
        data = np.ascontiguousarray(matrix, dtype=np.float32).tobytes()
        return cls(
            symbol=symbol,
            bar_end_ns=bar_end_ns,
            close=close,
            atr=atr,
            rows=rows,
            cols=cols,
            data=data,
            **fields,
        )

    def array(self) -> np.ndarray:
        """A read-only (rows, cols) float32 view of `data` (no copy)."""
        return np.frombuffer(self.data, dtype=np.float32).reshape(self.rows, self.cols)


class TacticalMatrix(MatrixMessage, array_like=True, gc=False, frozen=False, kw_only=True, tag=3):
    """The tactical input: the last 60 five-minute bars x 7 features (design §6 columns)."""

    rows: int = 60
    cols: int = 7
    strategic_bar_end_ns: int = 0
    """End of the latest strategic bar whose matrix the features actor published for this
    symbol before this one (0: none yet): the strategic decision that a tactical decision
    on this matrix follows, whatever order two rings deliver them in."""
    history: bool = False
    """Of a history bar: decided, never traded on."""


class StrategicMatrix(MatrixMessage, array_like=True, gc=False, frozen=False, kw_only=True, tag=4):
    """The strategic input: the last 48 thirty-minute bars x 13 features (design §6 columns)."""

    rows: int = 48
    cols: int = 13
    volatility: float = NAN
    """Annualised realized volatility (30 bars) of the latest bar, raw: the matrix holds its
    z-score, the strategic context its logarithm."""


class Synergy(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=5):
    """MLMI, NWRQK and FVG signals fired in one direction within the window."""

    symbol: str
    synergy_type: SynergyType
    direction: Direction
    confidence: float
    bar_end_ns: int
    price: float
    mlmi_signal_ns: int = 0
    nwrqk_signal_ns: int = 0
    fvg_signal_ns: int = 0


class StrategicDecision(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=6):
    """The strategic ensemble's bias for the next 30 minutes."""

    symbol: str
    bar_end_ns: int
    direction: Direction
    p_bearish: float
    p_neutral: float
    p_bullish: float
    confidence: float
    """max(P) of the ensemble."""
    uncertainty: float
    """Normalised entropy H(P) / ln 3 in [0, 1]."""
    should_proceed: bool
    synergy_type: SynergyType = SynergyType.NONE
    model_version: str = ""
    fallback: bool = False
    """True when no usable model answered and the neutral fallback was emitted."""


class TradeIntent(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=7):
    """The tactical layer wants a position in `direction`; sizing is left to risk."""

    intent_id: str
    symbol: str
    direction: Direction
    score: float
    """Aggregated tactical score that cleared the threshold (after any penalty)."""
    confidence: float
    price: float
    """Reference price: the close of the bar that triggered the decision."""
    atr: float
    stop_price: float
    target_price: float
    bar_end_ns: int
    synergy_type: SynergyType = SynergyType.NONE
    strategic_direction: Direction = Direction.FLAT
    model_version: str = ""


class RiskVerdict(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=8):
    """The pre-trade gate's answer to a TradeIntent: approved with a size, or denied."""

    intent_id: str
    symbol: str
    approved: bool
    reason: DenyReason
    direction: Direction
    quantity: int
    price: float
    stop_price: float = NAN
    target_price: float = NAN
    kelly_fraction: float = NAN
    risk_amount: float = NAN
    """Money at risk if the stop is hit: quantity x stop distance x point value."""
    detail: str = ""
    intent_ns: int = 0
    """Publish time (ts_ns) of the TradeIntent this answers: the start of `order_path`."""


class OrderRequest(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=9):
    """An order to the venue; `client_order_id` is the idempotency key."""

    client_order_id: str
    symbol: str
    side: Direction
    quantity: int
    order_type: OrderType = OrderType.MARKET
    limit_price: float = NAN
    stop_price: float = NAN
    time_in_force: TimeInForce = TimeInForce.IOC
    strategy: ExecStrategy = ExecStrategy.IMMEDIATE
    intent_id: str = ""
    parent_id: str = ""
    """The parent order a child slice belongs to (TWAP/VWAP/ICEBERG), else empty."""
    reduce_only: bool = False
    intent_ns: int = 0
    """Publish time (ts_ns) of the TradeIntent behind this order: the start of `order_path`."""


class OrderAck(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=10):
    """The venue accepted the order and it is working."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Direction
    quantity: int
    event_ns: int


class OrderReject(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=11):
    client_order_id: str
    symbol: str
    reason: RejectReason
    event_ns: int
    detail: str = ""


class Fill(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=12):
    """An execution of (part of) an order; `leaves_quantity` 0 means the order is done."""

    fill_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Direction
    quantity: int
    price: float
    leaves_quantity: int
    fee: float
    event_ns: int
    liquidity: Liquidity = Liquidity.TAKER


class CancelRequest(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=13):
    client_order_id: str
    symbol: str
    reason: str = ""


class PositionSnapshot(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=14):
    """Position in one symbol; `quantity` is signed (positive long, negative short)."""

    symbol: str
    quantity: int
    avg_price: float
    mark_price: float
    realized_pnl: float
    unrealized_pnl: float
    event_ns: int
    open_orders: int = 0
    notional: float = NAN
    """Signed contracts x mark x point value, in account currency."""


class VarBacktestSummary(msgspec.Struct, gc=False, kw_only=True):
    """One confidence's VaR backtest over the last periods (actors/risk_monitor/backtest.py):
    statistics and p-values are NaN while too few periods were seen."""

    confidence: float
    periods: int
    hits: int
    expected_hits: float
    kupiec_statistic: float
    kupiec_p_value: float
    independence_statistic: float
    independence_p_value: float
    conditional_coverage_statistic: float
    conditional_coverage_p_value: float
    zone: str
    """Basel traffic light: green, yellow or red."""
    plus_factor: float


class RiskSnapshot(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=15):
    """Account-level risk state, as published by the risk monitor."""

    trading_state: TradingState
    kill_switch: bool
    equity: float
    daily_pnl: float
    drawdown_pct: float
    """Drawdown from the equity high-water mark, percent."""
    gross_notional: float
    net_position: int
    var_95: float
    var_99: float
    es_95: float
    es_99: float
    event_ns: int
    consecutive_losses: int = 0
    correlation_score: float = NAN
    limits: dict[str, float] = msgspec.field(default_factory=dict)
    """Each configured limit by name (e.g. max_position, daily_loss_limit)."""
    utilisation: dict[str, float] = msgspec.field(default_factory=dict)
    """Current use of each limit as a fraction of it (1.0 = at the limit)."""
    net_notional: float = NAN
    """Sum over symbols of signed contracts x mark x point value."""
    concentration: float = NAN
    """The largest position's share of the gross notional (0 when flat)."""
    realized_pnl: float = NAN
    """Portfolio realized P&L net of fees, since the book began."""
    unrealized_pnl: float = NAN
    """Portfolio P&L of the open positions at their marks."""
    var_method: str = ""
    """How var_95 ... es_99 were estimated (the monitor's `var_method`)."""
    var_by_method: dict[str, float] = msgspec.field(default_factory=dict)
    """Every method's figures, "<method>.<var|es>_<95|99>" -> currency."""
    session_drawdown_pct: float = NAN
    """Drawdown from the day's equity high, percent."""
    margin_use: float = NAN
    """Initial margin of the open positions as a fraction of equity (NaN: margins unknown)."""
    volatility_ratio: float = NAN
    """The highest ratio of an instrument's EWMA volatility to its volatility over the
    lookback (1 = normal)."""
    correlation_change: float = NAN
    """The largest change of a pairwise correlation, EWMA against the lookback's."""
    var_backtests: list[VarBacktestSummary] = msgspec.field(default_factory=list)
    breakers: list[str] = msgspec.field(default_factory=list)
    """The circuit breakers tripped in this condition episode, each with its reason."""


class DecisionRecord(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=16):
    """One decision for the audit trail and explanations (XAI)."""

    decision_id: str
    kind: DecisionKind
    symbol: str
    action: Direction
    confidence: float
    event_ns: int
    model_version: str = ""
    synergy_type: SynergyType = SynergyType.NONE
    price: float = NAN
    volatility: float = NAN
    spread: float = NAN
    volume_ratio: float = NAN
    probabilities: list[float] = msgspec.field(default_factory=list)
    """Class probabilities of the deciding model (bearish, neutral, bullish) when it has one."""
    attributions: list[float] = msgspec.field(default_factory=list)
    """Per-feature attribution scores, in the model's input order."""
    parent_id: str = ""
    """The decision this one follows from (synergy -> intent -> verdict -> order)."""
    reason: str = ""


class Heartbeat(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=17):
    actor: str
    pid: int
    status: ActorStatus
    messages_in: int
    messages_out: int
    detail: str = ""


class Control(Message, array_like=True, gc=False, frozen=False, kw_only=True, tag=18):
    command: ControlCommand
    reason: str = ""
    operator: str = ""


AnyMessage = (
    Tick
    | Bar
    | TacticalMatrix
    | StrategicMatrix
    | Synergy
    | StrategicDecision
    | TradeIntent
    | RiskVerdict
    | OrderRequest
    | OrderAck
    | OrderReject
    | Fill
    | CancelRequest
    | PositionSnapshot
    | RiskSnapshot
    | DecisionRecord
    | Heartbeat
    | Control
)
"""Every trading message; position (1-based) = tag = codec record type id. Append only."""
