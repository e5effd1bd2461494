"""A seeded synthetic futures market: regime-switching GBM with jumps and GARCH volatility.

Model, per tick of `tick_interval_s` market seconds (dt in years = tick_interval_s /
(trading_days_per_year * session_length_s)):

- Regime r_t in {BULL, BEAR, SIDEWAYS, VOLATILE} is a Markov chain redrawn every
  `regime_step_s` of trading time from row r_{t-1} of `transition`.
- Volatility clustering, GARCH(1,1) on a unit-mean variance multiplier h_t:
  h_{t+1} = omega + alpha * h_t * z_t^2 + beta * h_t, omega = 1 - alpha - beta,
  so the conditional annualized volatility is sigma_t = volatility[r_t] * sqrt(h_t)
  and its long-run level is volatility[r_t].
- Log mid price: ln M_{t+1} = ln M_t + (mu_r - sigma_t^2 / 2) dt + sigma_t sqrt(dt) z_t + J_t,
  z_t ~ N(0, 1), mu_r = drift[r_t] the annualized expected return of the regime.
- Jumps: Poisson arrivals at `jumps_per_day` per session; at tick resolution a tick holds
  a jump with probability 1 - exp(-lambda * tick_interval_s / session_length_s), and
  J ~ N(jump_mean, jump_std^2) in log price.
- Spread in ticks: min_spread_ticks + Poisson(spread_vol_coef * max(0, sigma_t / v_ref - 1))
  with v_ref = spread_vol_ref, so it widens with volatility. Bid = floor(M / tick - spread / 2
  + 1/2) ticks, ask = bid + spread: both on the tick grid, bid < ask, and the mid M lies
  within half a tick of their centre.
- Trade price: the ask (buyer-initiated) or the bid, with probability 1/2 each.
- Trade size: 1 + Poisson(max(0, base_size * c(phi) * sqrt(sigma_t / spread_vol_ref) - 1)),
  with the U-shaped intraday curve c(phi) = 1 + k ((2 phi - 1)^2 - 1/3), phi in [0, 1) the
  position in the session; c has mean 1 over the session, peaks at the open and close.
- Top-of-book sizes: 1 + Poisson(depth * c(phi) * min(1, spread_vol_ref / sigma_t)) per side.

Market time: sessions of `session_length_s` start at `session_start` and on each following
business day (Mon-Fri) at the same time of day; the nights and weekends between sessions
have no ticks. A session start on a weekend rolls forward to the Monday.

Reproducibility: each random stream (diffusion, jumps, jump sizes, regime, spread, side,
size, book) has its own generator spawned from `seed`, and every stream consumes a fixed
number of draws per tick (per jump, per regime step), so the ticks depend only on the seed
and the parameters, not on how they are split into batches. That is what lets a restarted
feed actor fast-forward to exactly where its predecessor stopped.
"""

import hashlib
import math
from collections import deque
from datetime import UTC, datetime
from typing import Annotated, Literal, NamedTuple

import msgspec
import numba
import numpy as np

from actors.messages import Regime
from config.types import AtLeastOne, Finite, NonNegative, Positive, Probability

PerRegime = tuple[Finite, Finite, Finite, Finite]
"""One value per regime, indexed by `Regime` (BULL, BEAR, SIDEWAYS, VOLATILE)."""
TransitionRow = tuple[Probability, Probability, Probability, Probability]
RegimeName = Literal["BULL", "BEAR", "SIDEWAYS", "VOLATILE"]

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
_STREAMS = 8  # independent random streams, see the module docstring
BLOCK = 1024
"""Ticks generated per refill of the buffer that serves small requests."""
_LOW64 = (1 << 64) - 1


class MarketParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Contract, calendar and model parameters of the synthetic market (see module docs)."""

    seed: int = 7
    symbol: str = "ES"
    tick_size: Positive = 0.25
    point_value: Positive = 50.0
    """Currency per point per contract (ES: $50); carried for the consumers' notional math."""
    start_price: Positive = 4150.0
    tick_interval_s: Positive = 1.0
    """Market seconds between ticks."""
    session_start: str = "2026-01-05T14:30:00+00:00"
    """ISO 8601 datetime with a timezone: market time of the first tick."""
    session_length_s: Positive = 23_400.0
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


class TickBatch(NamedTuple):
    """Consecutive ticks as parallel arrays (one element per tick)."""

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
    first_index: int,
    ticks_per_step: int,
    regime: int,
    state: np.ndarray,
    mu_dt: np.ndarray,
    var_dt: np.ndarray,
    sigma_annual: np.ndarray,
    transition_cum: np.ndarray,
    omega: float,
    alpha: float,
    beta: float,
    log_mid_out: np.ndarray,
    sigma_out: np.ndarray,
    regime_out: np.ndarray,
) -> int:
    """Advance regime, GARCH multiplier and log mid over len(z) ticks; return the regime.

    `state` = [ln M, h] is updated in place; tick i has global index first_index + i and
    redraws the regime (consuming the next `regime_u`) when that index is a positive
    multiple of `ticks_per_step`.
    """
    log_mid = state[0]
    h = state[1]
    k = 0
    for i in range(z.shape[0]):
        g = first_index + i
        if g > 0 and g % ticks_per_step == 0:
            u = regime_u[k]
            k += 1
            row = transition_cum[regime]
            nxt = row.shape[0] - 1  # guards against rounding in the last cumulative value
            for j in range(row.shape[0]):
                if u < row[j]:
                    nxt = j
                    break
            regime = nxt
        zi = z[i]
        variance = var_dt[regime] * h
        log_mid += mu_dt[regime] - 0.5 * variance + math.sqrt(variance) * zi + jump[i]
        log_mid_out[i] = log_mid
        sigma_out[i] = sigma_annual[regime] * math.sqrt(h)
        regime_out[i] = regime
        h = omega + alpha * h * zi * zi + beta * h
    state[0] = log_mid
    state[1] = h
    return regime


def _validated(params: MarketParams) -> MarketParams:
    """Enforce the field constraints (msgspec checks them only on decode) and the
    cross-field rules; raise ValueError naming the problem."""
    try:
        params = msgspec.convert(msgspec.structs.asdict(params), type(params))
    except msgspec.ValidationError as error:
        raise ValueError(f"invalid market parameters: {error}") from error
    for regime, row in zip(Regime, params.transition, strict=True):
        if not math.isclose(math.fsum(row), 1.0, abs_tol=1e-9):
            raise ValueError(f"transition row {regime.name} sums to {math.fsum(row)}, not 1")
    if params.garch_alpha + params.garch_beta >= 1.0:
        raise ValueError("garch_alpha + garch_beta must be < 1 (stationary variance)")
    if datetime.fromisoformat(params.session_start).tzinfo is None:
        raise ValueError(f"session_start {params.session_start!r} needs a timezone")
    if round(params.session_length_s / params.tick_interval_s) < 1:
        raise ValueError("session_length_s must hold at least one tick")
    return params


class MarketCheckpoint(msgspec.Struct, array_like=True, frozen=True):
    """The generator as it was before it generated tick `generated`: restoring it and
    generating on gives the same ticks from there (`SyntheticMarket.restore`)."""

    params: str
    """A fingerprint of the parameters it belongs to (other parameters: another market)."""
    generated: int
    rngs: list[list[int]]
    """Each random stream's PCG64 state as 64-bit words (hi, lo state, hi, lo increment,
    has_uint32, uinteger): msgpack holds no 128-bit integer."""
    log_price: float
    variance: float
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
    """Generates the ticks of one symbol in batches (pure, no asyncio)."""

    def __init__(self, params: MarketParams) -> None:
        self.params = p = _validated(params)
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
        dt = p.tick_interval_s / (p.trading_days_per_year * p.session_length_s)
        sigma = np.asarray(p.volatility, dtype=np.float64)
        self._mu_dt = np.asarray(p.drift, dtype=np.float64) * dt
        self._var_dt = sigma * sigma * dt
        self._sigma = sigma
        self._transition_cum = np.cumsum(np.asarray(p.transition, dtype=np.float64), axis=1)
        self._omega = 1.0 - p.garch_alpha - p.garch_beta
        self._jump_p = -math.expm1(-p.jumps_per_day * p.tick_interval_s / p.session_length_s)
        self._ticks_per_step = max(1, round(p.regime_step_s / p.tick_interval_s))
        self._ticks_per_session = round(p.session_length_s / p.tick_interval_s)
        self.interval_ns = round(p.tick_interval_s * NS_PER_S)
        """Market time between two ticks of a session."""
        start = datetime.fromisoformat(p.session_start)
        self._day0 = np.datetime64(start.date(), "D")
        since_epoch = start - datetime(1970, 1, 1, tzinfo=UTC)
        self._start_ns = (
            since_epoch.days * 86_400 + since_epoch.seconds
        ) * NS_PER_S + since_epoch.microseconds * 1000
        self._state = np.array([math.log(p.start_price), 1.0])
        self._regime = int(Regime[p.initial_regime])
        self._generated = 0
        self._fingerprint = params_fingerprint(p)
        self._checkpoints: deque[MarketCheckpoint] = deque([self._checkpoint()], maxlen=2)
        """Taken before each generation, the newest two: a feed taking at most a block at a
        time may have published less than it took, but not less than the block before."""
        self._buffer = self._generate(0)
        self._taken = 0
        self.index = 0
        """Global index of the next tick handed out (= ticks handed out so far)."""

    def next_batch(self, n: int) -> TickBatch:
        """The next `n` ticks.

        Small requests are served from a buffer generated `BLOCK` ticks at a time, so a
        paced feed asking for a tick or two per wake-up pays the numpy call overhead once
        per block; the ticks are the same whatever the request sizes (module docs).
        """
        if n <= 0:
            return TickBatch(*(column[:0] for column in self._buffer))
        parts: list[TickBatch] = []
        while n > 0:
            available = len(self._buffer.price) - self._taken
            if not available:
                if n >= BLOCK:
                    parts.append(self._generate(n))
                    self.index += n
                    break
                self._buffer = self._generate(BLOCK)
                self._taken = 0
                available = BLOCK
            take = min(n, available)
            start = self._taken
            parts.append(TickBatch(*(column[start : start + take] for column in self._buffer)))
            self._taken += take
            self.index += take
            n -= take
        if len(parts) == 1:
            return parts[0]
        return TickBatch(*(np.concatenate(columns) for columns in zip(*parts, strict=True)))

    def _checkpoint(self) -> MarketCheckpoint:
        return MarketCheckpoint(
            self._fingerprint,
            self._generated,
            [_rng_words(rng) for rng in self._streams],
            float(self._state[0]),
            float(self._state[1]),
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
        self._state[:] = (checkpoint.log_price, checkpoint.variance)
        self._regime = checkpoint.regime
        self._generated = self.index = checkpoint.generated
        self._checkpoints.clear()
        self._checkpoints.append(checkpoint)
        self._buffer = TickBatch(*(column[:0] for column in self._buffer))
        self._taken = 0
        return True

    def _generate(self, n: int) -> TickBatch:
        """Run the model for the next `n` ticks after the last generated one."""
        if n:
            self._checkpoints.append(self._checkpoint())
        p = self.params
        first = self._generated
        z = self._rng_z.standard_normal(n)
        jump = np.zeros(n)
        hit = self._rng_jump.random(n) < self._jump_p
        hits = int(np.count_nonzero(hit))
        if hits:
            jump[hit] = p.jump_mean + p.jump_std * self._rng_jump_size.standard_normal(hits)
        step = self._ticks_per_step
        steps = (first + n - 1) // step - (max(first, 1) - 1) // step if n else 0
        regime_u = self._rng_regime.random(steps)
        log_mid = np.empty(n)
        sigma = np.empty(n)
        regime = np.empty(n, dtype=np.int8)
        self._regime = _simulate(
            z,
            jump,
            regime_u,
            first,
            step,
            self._regime,
            self._state,
            self._mu_dt,
            self._var_dt,
            self._sigma,
            self._transition_cum,
            self._omega,
            p.garch_alpha,
            p.garch_beta,
            log_mid,
            sigma,
            regime,
        )
        self._generated = first + n

        index = np.arange(first, first + n, dtype=np.int64)
        session, offset = np.divmod(index, self._ticks_per_session)
        event_ns = self._session_open_ns(session) + offset * self.interval_ns
        phase = offset / self._ticks_per_session
        curve = 1.0 + p.volume_curve_k * ((2.0 * phase - 1.0) ** 2 - 1.0 / 3.0)
        vol_ratio = sigma / p.spread_vol_ref

        spread = p.min_spread_ticks + self._rng_spread.poisson(
            p.spread_vol_coef * np.maximum(vol_ratio - 1.0, 0.0)
        )
        bid_ticks = np.floor(np.exp(log_mid) / p.tick_size - 0.5 * spread + 0.5)
        bid = bid_ticks * p.tick_size
        ask = (bid_ticks + spread) * p.tick_size
        price = np.where(self._rng_side.random(n) < 0.5, ask, bid)
        size = 1 + self._rng_size.poisson(
            np.maximum(p.base_size * curve * np.sqrt(vol_ratio) - 1.0, 0.0)
        )
        book_mean = p.depth * curve * np.minimum(1.0, 1.0 / vol_ratio)
        book = 1 + self._rng_book.poisson(np.repeat(book_mean, 2)).reshape(n, 2)
        return TickBatch(event_ns, price, size, bid, ask, book[:, 0], book[:, 1], regime)

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
        numbers = np.arange(lo, int(session[-1]) + 1)
        days = np.busday_offset(self._day0, numbers, roll="forward") - self._day0
        opens = self._start_ns + days.astype(np.int64) * NS_PER_DAY
        return opens[session - lo]
