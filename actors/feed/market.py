"""A seeded synthetic market of correlated instruments: regime-switching GBM with jumps
and GARCH volatility.

Every `tick_interval_s` market seconds (a step) each instrument prints one tick, in the
order of `symbols`, instrument k of N at k/N of the way through the step (no two prints at
the same nanosecond, as on a real feed); dt in years = tick_interval_s /
(trading_days_per_year * session length). The market regime is shared; the shocks are
correlated across instruments by `correlation`; everything else is per instrument:

- Regime r_t in {BULL, BEAR, SIDEWAYS, VOLATILE} is one Markov chain for the whole
  market, redrawn every `regime_step_s` of trading time from row r_{t-1} of `transition`;
  every tick carries its label.
- Shocks: z_t = L e_t, e_t ~ N(0, I), L L' = `correlation` (validated symmetric, unit
  diagonal and positive semi-definite), so instrument i's shock z_t,i ~ N(0, 1) and
  corr(z_i, z_j) = correlation[i][j]: the common part is the market, the rest is the
  instrument's idiosyncratic noise.
- Volatility clustering, GARCH(1,1) per instrument on a unit-mean variance multiplier:
  h_{t+1} = omega + alpha * h_t * z_t^2 + beta * h_t, omega = 1 - alpha - beta,
  so the conditional annualized volatility is sigma_t = s * volatility[r_t] * sqrt(h_t),
  s the instrument's `volatility_scale`, and its long-run level is s * volatility[r_t].
- Log mid price: ln M_{t+1} = ln M_t + (mu - sigma_t^2 / 2) dt + sigma_t sqrt(dt) z_t + J_t,
  mu = drift_scale * drift[r_t] the annualized expected return of the instrument in the
  regime.
- Jumps, idiosyncratic: Poisson arrivals at `jumps_per_day` per session; at tick
  resolution a tick holds a jump with probability 1 - exp(-lambda * tick_interval_s /
  session length), and J ~ N(jump_mean, jump_std^2) in log price. They lower the
  realised correlation below `correlation` a little (none with `jumps_per_day` 0).
- Spread in ticks of the instrument's tick size (from the instrument registry):
  min_spread_ticks + Poisson(spread_vol_coef * max(0, sigma_t / (s v_ref) - 1))
  with v_ref = spread_vol_ref, so it widens with volatility. Bid = floor(M / tick - spread / 2
  + 1/2) ticks, ask = bid + spread: both on the tick grid, bid < ask, and the mid M lies
  within half a tick of their centre.
- Trade price: the ask (buyer-initiated) or the bid, with probability 1/2 each.
- Trade size: 1 + Poisson(max(0, base_size * c(phi) * sqrt(sigma_t / spread_vol_ref) - 1)),
  with the U-shaped intraday curve c(phi) = 1 + k ((2 phi - 1)^2 - 1/3), phi in [0, 1) the
  position in the session; c has mean 1 over the session, peaks at the open and close.
- Top-of-book sizes: 1 + Poisson(depth * c(phi) * min(1, spread_vol_ref / sigma_t)) per side.

The per-instrument fields (start price, jumps, spread, size, depth) set at the top level
apply to every instrument; `models.<symbol>` overrides them for one instrument and adds
its `volatility_scale` and `drift_scale`.

Market time: the instruments' trading session from the instrument registry (they must
share one: the market steps them together), from its first session day on or after
`first_day` on. Each session opens at the session's start in its time zone (so with its
DST: 09:30 New York is 14:30 UTC in January, 13:30 in July) and holds as many steps as its
wall-clock length (start to end) allows; the nights, weekends and other days without a
session have no ticks.

Reproducibility: each random stream (diffusion, jumps, jump sizes, regime, spread, side,
size, book) has its own generator spawned from `seed`, and every stream consumes a fixed
number of draws per tick (per jump, per regime step) in step order, so the ticks depend
only on the seed and the parameters, not on how they are split into batches. L is the
Cholesky factor of the correlation (with a 1e-12 ridge for a singular one), which is
unique, so the same seed gives the same market on every machine. That is what lets a restarted
feed actor fast-forward to exactly where its predecessor stopped.
"""

import hashlib
import math
from collections import deque
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Literal, NamedTuple

import msgspec
import numba
import numpy as np

from actors.common.instruments import InstrumentParams
from actors.messages import Regime
from config.instruments import TradingSession
from config.types import AtLeastOne, Finite, NonNegative, Positive, Probability

PerRegime = tuple[Finite, Finite, Finite, Finite]
"""One value per regime, indexed by `Regime` (BULL, BEAR, SIDEWAYS, VOLATILE)."""
TransitionRow = tuple[Probability, Probability, Probability, Probability]
RegimeName = Literal["BULL", "BEAR", "SIDEWAYS", "VOLATILE"]

NS_PER_S = 1_000_000_000
_STREAMS = 8  # independent random streams, see the module docstring
BLOCK = 1024
"""Ticks generated per refill of the buffer that serves small requests."""
_LOW64 = (1 << 64) - 1
PSD_TOLERANCE = 1e-9
"""How negative the smallest eigenvalue of a correlation matrix may be (rounding)."""
RIDGE = 1e-12
"""Added to the diagonal before the Cholesky factorisation, so a singular (perfectly
correlated) matrix factors too."""


class InstrumentModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One instrument's model: unset fields take the market-level value (module docs)."""

    volatility_scale: Positive = 1.0
    """The instrument's volatility as a multiple of the regime's `volatility`."""
    drift_scale: Finite = 1.0
    """The instrument's drift as a multiple of the regime's `drift` (its beta to it)."""
    start_price: Positive | None = None
    jumps_per_day: NonNegative | None = None
    jump_mean: Finite | None = None
    jump_std: NonNegative | None = None
    base_size: Positive | None = None
    min_spread_ticks: AtLeastOne | None = None
    spread_vol_coef: NonNegative | None = None
    depth: Positive | None = None


PER_INSTRUMENT = (
    "start_price",
    "jumps_per_day",
    "jump_mean",
    "jump_std",
    "base_size",
    "min_spread_ticks",
    "spread_vol_coef",
    "depth",
)
"""The market-level fields an `InstrumentModel` may override."""


class MarketParams(InstrumentParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Instruments, calendar and model parameters of the synthetic market (see module docs).

    `symbols` (every registered instrument by default) are the instruments it generates,
    in the order of `correlation`'s rows; their tick sizes come from the registry."""

    seed: int = 7
    correlation: list[list[Finite]] = []
    """The shocks' correlation matrix, one row per symbol in `symbols` order; empty: the
    instruments move independently."""
    models: dict[str, InstrumentModel] = {}
    """Per-symbol model overrides (module docs)."""
    start_price: Positive = 4150.0
    tick_interval_s: Positive = 1.0
    """Market seconds between two steps (each instrument prints once per step)."""
    first_day: str = "2026-01-05"
    """ISO 8601 date: the market opens with the first session on or after it."""
    trading_days_per_year: Positive = 252.0
    initial_regime: RegimeName = "SIDEWAYS"
    regime_step_s: Positive = 60.0
    """Trading time between two draws of the regime chain; `transition` is per step."""
    transition: tuple[TransitionRow, TransitionRow, TransitionRow, TransitionRow] = (
        (0.990, 0.002, 0.006, 0.002),
        (0.002, 0.988, 0.006, 0.004),
        (0.004, 0.004, 0.990, 0.002),
        (0.004, 0.006, 0.010, 0.980),
    )
    drift: PerRegime = (0.30, -0.40, 0.0, -0.05)
    """Annualized expected return per regime."""
    volatility: tuple[Positive, Positive, Positive, Positive] = (0.12, 0.20, 0.08, 0.40)
    """Annualized long-run volatility per regime."""
    garch_alpha: NonNegative = 0.02
    garch_beta: NonNegative = 0.975
    jumps_per_day: NonNegative = 1.0
    jump_mean: Finite = 0.0
    jump_std: NonNegative = 0.003
    """Standard deviation of a jump in log price (0.003 = 0.3%)."""
    base_size: Positive = 4.0
    """Mean trade size in contracts at curve level 1 and reference volatility."""
    volume_curve_k: Annotated[float, msgspec.Meta(ge=0, lt=3)] = 2.0
    """Depth of the U: c(phi) = 1 + k((2 phi - 1)^2 - 1/3); k < 3 keeps c > 0."""
    min_spread_ticks: AtLeastOne = 1
    spread_vol_ref: Positive = 0.15
    """Annualized volatility above which the spread starts widening."""
    spread_vol_coef: NonNegative = 1.0
    depth: Positive = 40.0
    """Mean top-of-book size per side at curve level 1 in calm markets."""

    def __post_init__(self) -> None:
        super().__post_init__()
        problem = _market_problem(self)
        if problem is not None:
            raise ValueError(problem)

    def symbol_references(self) -> Iterator[tuple[str, str]]:
        yield from super().symbol_references()
        for symbol in self.models:
            yield f"models.{symbol}", symbol

    @property
    def session(self) -> TradingSession:
        """The instruments' trading session (the registry's, the same for all)."""
        return self.registry[self.symbols[0]].session

    @property
    def session_length_s(self) -> float:
        return self.session.length_ns / NS_PER_S

    def model_value(self, symbol: str, field: str) -> float:
        """`field` of `symbol`'s model: its override, else the market-level value."""
        model = self.models.get(symbol)
        value = getattr(model, field) if model is not None else None
        return getattr(self, field) if value is None else value


class TickBatch(NamedTuple):
    """Consecutive ticks as parallel arrays (one element per tick)."""

    symbol: np.ndarray  # object, the tick's symbol (str)
    event_ns: np.ndarray  # int64, market time ns since the epoch (UTC)
    price: np.ndarray  # float64, on the tick grid
    size: np.ndarray  # int64 contracts
    bid: np.ndarray  # float64
    ask: np.ndarray  # float64
    bid_size: np.ndarray  # int64
    ask_size: np.ndarray  # int64
    regime: np.ndarray  # int8, Regime values


@numba.njit(cache=True, nogil=True)
def _simulate(
    z: np.ndarray,
    jump: np.ndarray,
    regime_u: np.ndarray,
    first_step: int,
    steps_per_regime: int,
    regime: int,
    log_mid: np.ndarray,
    h: np.ndarray,
    mu_dt: np.ndarray,
    var_dt: np.ndarray,
    sigma_annual: np.ndarray,
    drift_scale: np.ndarray,
    variance_scale: np.ndarray,
    transition_cum: np.ndarray,
    omega: float,
    alpha: float,
    beta: float,
    log_mid_out: np.ndarray,
    sigma_out: np.ndarray,
    regime_out: np.ndarray,
) -> int:
    """Advance the regime and each instrument's GARCH multiplier and log mid over the
    len(z) steps (z, jump: steps x instruments, z already correlated); return the regime.

    `log_mid` and `h` (one per instrument) are updated in place; step i has global index
    first_step + i and redraws the regime (consuming the next `regime_u`) when that index
    is a positive multiple of `steps_per_regime`. `sigma_out` is the regime's volatility
    times sqrt(h), before the instrument's scale (what the spread and sizes react to).
    """
    k = 0
    for i in range(z.shape[0]):
        g = first_step + i
        if g > 0 and g % steps_per_regime == 0:
            u = regime_u[k]
            k += 1
            row = transition_cum[regime]
            nxt = row.shape[0] - 1  # guards against rounding in the last cumulative value
            for j in range(row.shape[0]):
                if u < row[j]:
                    nxt = j
                    break
            regime = nxt
        regime_out[i] = regime
        for n in range(z.shape[1]):
            zi = z[i, n]
            hn = h[n]
            variance = var_dt[regime] * variance_scale[n] * hn
            log_mid[n] += (
                mu_dt[regime] * drift_scale[n]
                - 0.5 * variance
                + math.sqrt(variance) * zi
                + jump[i, n]
            )
            log_mid_out[i, n] = log_mid[n]
            sigma_out[i, n] = sigma_annual[regime] * math.sqrt(hn)
            h[n] = omega + alpha * hn * zi * zi + beta * hn
    return regime


def _market_problem(params: MarketParams) -> str | None:
    """What the field constraints cannot say: cross-field rules, as "reason - at `$.field`"."""
    for i, (regime, row) in enumerate(zip(Regime, params.transition, strict=True)):
        if not math.isclose(math.fsum(row), 1.0, abs_tol=1e-9):
            return f"row {regime.name} sums to {math.fsum(row)}, not 1 - at `$.transition[{i}]`"
    if params.garch_alpha + params.garch_beta >= 1.0:
        return "garch_alpha + garch_beta must be < 1 (stationary variance) - at `$.garch_beta`"
    try:
        date.fromisoformat(params.first_day)
    except ValueError:
        return f"{params.first_day!r} is not an ISO 8601 date - at `$.first_day`"
    sessions = {params.registry[symbol].session for symbol in params.symbols}
    if len(sessions) > 1:
        return (
            "the synthetic market steps its instruments together: their trading sessions "
            "in the registry must be the same - at `$.symbols`"
        )
    if not params.session.days:
        return "the instruments' session opens on no day - at `$.symbols`"
    if round(params.session_length_s / params.tick_interval_s) < 1:
        return "a session must hold at least one step - at `$.tick_interval_s`"
    return correlation_problem(params.correlation, len(params.symbols))


def correlation_problem(rows: list[list[float]], size: int) -> str | None:
    """Why `rows` is not a correlation matrix of `size` instruments (empty is the
    identity), as "reason - at `$.correlation...`", or None."""
    if not rows:
        return None
    matrix = np.asarray(rows, dtype=np.float64) if all(len(r) == size for r in rows) else None
    if len(rows) != size or matrix is None:
        return f"must be {size} x {size}, one row and column per symbol - at `$.correlation`"
    for i in range(size):
        if matrix[i, i] != 1.0:
            return f"the diagonal must be 1, not {matrix[i, i]} - at `$.correlation[{i}][{i}]`"
        for j in range(i):
            if matrix[i, j] != matrix[j, i]:
                return f"not symmetric: [{i}][{j}] != [{j}][{i}] - at `$.correlation[{i}][{j}]`"
            if not -1.0 <= matrix[i, j] <= 1.0:
                return f"{matrix[i, j]} is not in [-1, 1] - at `$.correlation[{i}][{j}]`"
    smallest = float(np.linalg.eigvalsh(matrix)[0])
    if smallest < -PSD_TOLERANCE:
        return (
            f"not positive semi-definite (smallest eigenvalue {smallest:.6g}): no market has "
            "these correlations - at `$.correlation`"
        )
    return None


def _validated(params: MarketParams) -> MarketParams:
    """Enforce the field constraints (msgspec checks them only on decode, not on a Struct
    built in code); raise ValueError naming the problem."""
    try:
        return msgspec.convert(msgspec.structs.asdict(params), type(params))
    except msgspec.ValidationError as error:
        raise ValueError(f"invalid market parameters: {error}") from error


class MarketCheckpoint(msgspec.Struct, array_like=True, frozen=True):
    """The generator as it was before it generated tick `generated` (the first tick of a
    step): restoring it and
    generating on gives the same ticks from there (`SyntheticMarket.restore`)."""

    params: str
    """A fingerprint of the parameters it belongs to (other parameters: another market)."""
    generated: int
    rngs: list[list[int]]
    """Each random stream's PCG64 state as 64-bit words (hi, lo state, hi, lo increment,
    has_uint32, uinteger): msgpack holds no 128-bit integer."""
    log_prices: list[float]
    """Each instrument's log mid, in `symbols` order."""
    variances: list[float]
    """Each instrument's GARCH multiplier h."""
    regime: int


def params_fingerprint(params: MarketParams) -> str:
    """The market's own fields only: a feed's pacing, batch or tick limit (a subclass's
    fields) make no other market, and a restart after changing them keeps its checkpoint."""
    fields = {name: getattr(params, name) for name in MarketParams.__struct_fields__}
    return hashlib.sha256(msgspec.json.encode(fields)).hexdigest()[:16]


def _rng_words(rng: np.random.Generator) -> list[int]:
    state = rng.bit_generator.state
    inner = state["state"]
    words = []
    for value in (inner["state"], inner["inc"]):
        words += [value >> 64, value & _LOW64]
    return [*words, state["has_uint32"], state["uinteger"]]


def _set_rng_words(rng: np.random.Generator, words: list[int]) -> None:
    state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger = words
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state_hi << 64 | state_lo, "inc": inc_hi << 64 | inc_lo},
        "has_uint32": has_uint32,
        "uinteger": uinteger,
    }


class SyntheticMarket:
    """Generates the ticks of the instruments in `symbols`, interleaved by step (pure, no
    asyncio). Tick k of the stream is instrument k mod N of step k // N."""

    def __init__(self, params: MarketParams) -> None:
        self.params = p = _validated(params)
        self.symbols = p.symbols
        count = len(p.symbols)
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(p.seed).spawn(_STREAMS)]
        self._streams = tuple(rngs)
        """Every random stream, in spawn order (what a checkpoint saves)."""
        (
            self._rng_z,
            self._rng_jump,
            self._rng_jump_size,
            self._rng_regime,
            self._rng_spread,
            self._rng_side,
            self._rng_size,
            self._rng_book,
        ) = rngs

        def per_instrument(field: str) -> np.ndarray:
            return np.array([p.model_value(symbol, field) for symbol in p.symbols], np.float64)

        models = [p.models.get(symbol) for symbol in p.symbols]
        scale = np.array([m.volatility_scale if m else 1.0 for m in models], np.float64)
        self._variance_scale = scale * scale
        self._drift_scale = np.array([m.drift_scale if m else 1.0 for m in models], np.float64)
        self._tick_size = np.array([p.registry[s].tick_size for s in p.symbols], np.float64)
        self._jump_mean = per_instrument("jump_mean")
        self._jump_std = per_instrument("jump_std")
        self._base_size = per_instrument("base_size")
        self._min_spread = per_instrument("min_spread_ticks").astype(np.int64)
        self._spread_coef = per_instrument("spread_vol_coef")
        self._depth = per_instrument("depth")
        self._jump_p = -np.expm1(
            -per_instrument("jumps_per_day") * p.tick_interval_s / p.session_length_s
        )
        correlation = np.asarray(p.correlation or np.eye(count), dtype=np.float64)
        self._cholesky = np.linalg.cholesky(correlation + RIDGE * np.eye(count))
        self._symbol_column = np.array(p.symbols, dtype=object)

        dt = p.tick_interval_s / (p.trading_days_per_year * p.session_length_s)
        sigma = np.asarray(p.volatility, dtype=np.float64)
        self._mu_dt = np.asarray(p.drift, dtype=np.float64) * dt
        self._var_dt = sigma * sigma * dt
        self._sigma = sigma
        self._transition_cum = np.cumsum(np.asarray(p.transition, dtype=np.float64), axis=1)
        self._omega = 1.0 - p.garch_alpha - p.garch_beta
        self._steps_per_regime = max(1, round(p.regime_step_s / p.tick_interval_s))
        self._steps_per_session = round(p.session_length_s / p.tick_interval_s)
        self.interval_ns = round(p.tick_interval_s * NS_PER_S)
        """Market time between two steps of a session."""
        self._stagger_ns = np.arange(count, dtype=np.int64) * (self.interval_ns // count)
        """When each instrument prints within a step."""
        session = p.session
        self._session = session
        self._day0 = np.datetime64(p.first_day, "D")
        self._weekmask = [int(day in session.days) for day in range(7)]
        self._opens: dict[int, int] = {}
        """Session number -> UTC ns of its open (computed once each)."""
        self._log_mid = np.log(per_instrument("start_price"))
        self._h = np.ones(count)
        self._regime = int(Regime[p.initial_regime])
        self._steps = 0
        """Steps generated so far."""
        self._fingerprint = params_fingerprint(p)
        self._checkpoints: deque[MarketCheckpoint] = deque([self._checkpoint()], maxlen=2)
        """Taken before each generation, the newest two: a feed taking at most a block at a
        time may have published less than it took, but not less than the block before."""
        self._buffer = self._generate(0)
        self._taken = 0
        self.index = 0
        """Global index of the next tick handed out (= ticks handed out so far)."""

    @property
    def _generated(self) -> int:
        return self._steps * len(self.symbols)

    def next_batch(self, n: int) -> TickBatch:
        """The next `n` ticks.

        Requests are served from a buffer generated `BLOCK` steps at a time (or as many as
        a larger request needs), so a paced feed asking for a tick or two per wake-up pays
        the numpy call overhead once per block; the ticks are the same whatever the
        request sizes (module docs).
        """
        parts: list[TickBatch] = []
        while n > 0:
            available = len(self._buffer.price) - self._taken
            if not available:
                steps = max(BLOCK, -(-n // len(self.symbols)))
                self._buffer = self._generate(steps)
                self._taken = 0
                available = len(self._buffer.price)
            take = min(n, available)
            start = self._taken
            parts.append(TickBatch(*(column[start : start + take] for column in self._buffer)))
            self._taken += take
            self.index += take
            n -= take
        if not parts:
            return TickBatch(*(column[:0] for column in self._buffer))
        if len(parts) == 1:
            return parts[0]
        return TickBatch(*(np.concatenate(columns) for columns in zip(*parts, strict=True)))

    def _checkpoint(self) -> MarketCheckpoint:
        return MarketCheckpoint(
            self._fingerprint,
            self._generated,
            [_rng_words(rng) for rng in self._streams],
            self._log_mid.tolist(),
            self._h.tolist(),
            self._regime,
        )

    def checkpoint_for(self, tick: int) -> MarketCheckpoint | None:
        """The newest checkpoint from which tick `tick` can be generated again (None: only
        from the start, `advance`)."""
        usable = [c for c in self._checkpoints if c.generated <= tick]
        return usable[-1] if usable else None

    def restore(self, checkpoint: MarketCheckpoint) -> bool:
        """Continue from a checkpoint of a market with the same parameters: the next tick
        handed out is tick `checkpoint.generated`. False (nothing changed) when it belongs
        to other parameters."""
        if checkpoint.params != self._fingerprint:
            return False
        for rng, words in zip(self._streams, checkpoint.rngs, strict=True):
            _set_rng_words(rng, words)
        self._log_mid[:] = checkpoint.log_prices
        self._h[:] = checkpoint.variances
        self._regime = checkpoint.regime
        self._steps = checkpoint.generated // len(self.symbols)
        self.index = checkpoint.generated
        self._checkpoints.clear()
        self._checkpoints.append(checkpoint)
        self._buffer = TickBatch(*(column[:0] for column in self._buffer))
        self._taken = 0
        return True

    def _generate(self, steps: int) -> TickBatch:
        """Run the model for the next `steps` steps; their ticks, step by step."""
        if steps:
            self._checkpoints.append(self._checkpoint())
        p = self.params
        count = len(self.symbols)
        first = self._steps
        z = self._rng_z.standard_normal((steps, count)) @ self._cholesky.T
        jump = np.zeros((steps, count))
        hit = self._rng_jump.random((steps, count)) < self._jump_p
        hits = int(np.count_nonzero(hit))
        if hits:
            mean = np.broadcast_to(self._jump_mean, hit.shape)[hit]
            std = np.broadcast_to(self._jump_std, hit.shape)[hit]
            jump[hit] = mean + std * self._rng_jump_size.standard_normal(hits)
        every = self._steps_per_regime
        draws = (first + steps - 1) // every - (max(first, 1) - 1) // every if steps else 0
        regime_u = self._rng_regime.random(draws)
        log_mid = np.empty((steps, count))
        sigma = np.empty((steps, count))
        regime = np.empty(steps, dtype=np.int8)
        self._regime = _simulate(
            z,
            jump,
            regime_u,
            first,
            every,
            self._regime,
            self._log_mid,
            self._h,
            self._mu_dt,
            self._var_dt,
            self._sigma,
            self._drift_scale,
            self._variance_scale,
            self._transition_cum,
            self._omega,
            p.garch_alpha,
            p.garch_beta,
            log_mid,
            sigma,
            regime,
        )
        self._steps = first + steps

        index = np.arange(first, first + steps, dtype=np.int64)
        session, offset = np.divmod(index, self._steps_per_session)
        event_ns = self._session_open_ns(session) + offset * self.interval_ns
        phase = offset / self._steps_per_session
        curve = (1.0 + p.volume_curve_k * ((2.0 * phase - 1.0) ** 2 - 1.0 / 3.0))[:, None]
        vol_ratio = sigma / p.spread_vol_ref
        n = steps * count
        spread = self._min_spread + self._rng_spread.poisson(
            self._spread_coef * np.maximum(vol_ratio - 1.0, 0.0)
        )
        tick = self._tick_size
        bid_ticks = np.floor(np.exp(log_mid) / tick - 0.5 * spread + 0.5)
        bid = (bid_ticks * tick).ravel()
        ask = ((bid_ticks + spread) * tick).ravel()
        price = np.where(self._rng_side.random(n) < 0.5, ask, bid)
        size = 1 + self._rng_size.poisson(
            np.maximum(self._base_size * curve * np.sqrt(vol_ratio) - 1.0, 0.0)
        )
        book_mean = self._depth * curve * np.minimum(1.0, 1.0 / vol_ratio)
        book = 1 + self._rng_book.poisson(np.repeat(book_mean.ravel(), 2)).reshape(n, 2)
        return TickBatch(
            np.tile(self._symbol_column, steps),
            (event_ns[:, None] + self._stagger_ns).ravel(),
            price,
            size.ravel(),
            bid,
            ask,
            book[:, 0],
            book[:, 1],
            np.repeat(regime, count),
        )

    def advance(self, n: int, chunk: int = 65_536) -> None:
        """Skip the next `n` ticks exactly as if they had been generated."""
        while n > 0:
            m = min(n, chunk)
            self.next_batch(m)
            n -= m

    def _session_open_ns(self, session: np.ndarray) -> np.ndarray:
        """Market time of the open of each session number (0 = the first session)."""
        if session.size == 0:
            return np.zeros(0, dtype=np.int64)
        lo = int(session[0])
        opens = np.array([self._open_ns(n) for n in range(lo, int(session[-1]) + 1)])
        return opens[session - lo]

    def _open_ns(self, number: int) -> int:
        opened = self._opens.get(number)
        if opened is None:
            day = np.busday_offset(self._day0, number, roll="forward", weekmask=self._weekmask)
            opened = self._session.window_ns(day.astype(object))[0]
            self._opens[number] = opened
        return opened
