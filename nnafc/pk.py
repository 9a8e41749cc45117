"""The prior-knowledge library ("PK 50"): named formulaic factors computed from OHLCV with `nnafc.ops`.

§3.3 of the paper pre-trains each network to mimic one prior-knowledge factor (Table 1: MA, EMA,
MACD, PVT, TOP10, DC, BOLL; also RSI, ROC, FORCE), treats parameter variants such as RSI(6,12) and
RSI(7,21) as different factors, checks the mimicry by MSE (Table 2) and by the agreement of the
indicators' buy/sell decisions (Table 3), and trades 50 of them as the "PK 50" baseline (Table 7).

Every `PKSpec` carries its formula, a `compute` on a dict of `(T, N)` torch tensors (`open, high,
low, close, volume`, optionally `factor`; prices adjusted, qlib convention raw = adjusted / factor)
and a `signal` implementing the indicator's classic buy/sell rule: +1 buy, -1 sell, 0 hold.

Conventions:

- **Comparable across stocks.** Price-level indicators are ratios to today's close (MA10 is
  MA_10(close) / close), volume ones ratios to the stock's own mean volume, flows are divided
  by volume: a factor value means the same for a 3-yuan and a 300-yuan stock.
- **Window-computable.** Values depend on a bounded trailing window (`PKSpec.window` days;
  EMA-based ones are recursions whose effective memory is about that span), so a network that
  sees the last m days (§3.2's `(n, 5, m)` input) can in principle mimic them. This is why PVT
  is the N-day increment of Table 1's running sum (see `PVT20`).
- **NaN policy** is that of `nnafc.ops`: a window with a missing day is NaN; EMAs skip missing days.
- **Signals** are events (a cross on day t), 0 on undefined days. Indicators without a classic
  timing rule (volatility, skewness, ...) use the factor-investing decile rule: buy the top
  cross-sectional decile of the factor's known-good direction, sell the bottom decile.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from nnafc import ops
from nnafc.data.panel import Panel
from nnafc.factor import Factor

Tensor = torch.Tensor
Fields = dict[str, Tensor]  # "open", "high", "low", "close", "volume" [, "factor"] -> (T, N)

INPUT_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class PKSpec:
    """One prior-knowledge factor: its formula, its values and its classic buy/sell rule."""

    name: str
    formula: str  # the definition, in the docstring style of the paper's Table 1
    compute: Callable[[Fields], Tensor] = field(repr=False)  # fields -> (T, N) values
    signal: Callable[[Fields], Tensor] = field(repr=False)  # fields -> (T, N) int8 in {-1, 0, +1}
    rule: str = ""  # the buy/sell rule `signal` implements, in words
    table1: bool = False  # one of the paper's Table 1 indicators (or a parameter variant of one)
    window: int = 1  # days of history (today included) the definition uses

    def __post_init__(self) -> None:
        object.__setattr__(self, "__doc__", f"{self.name}: {self.formula}\nSignal: {self.rule}")


# --------------------------------------------------------------------------- building blocks


def _close(f: Fields) -> Tensor:
    return f["close"]


def _ret(f: Fields) -> Tensor:
    """Daily simple return close_t / close_{t-1} - 1 (NaN the day after a gap)."""
    return ops.div(f["close"], ops.delay(f["close"], 1)) - 1


def _raw_close(f: Fields) -> Tensor:
    """Unadjusted close (adjusted / factor), what Table 1 calls Close as opposed to AdjClose."""
    return ops.div(f["close"], f["factor"]) if "factor" in f else f["close"]


def _events(buy: Tensor, sell: Tensor) -> Tensor:
    """int8 signal: +1 on buy days, -1 on sell days, 0 otherwise (buy wins a tie, which rules avoid)."""
    return torch.where(buy, 1, torch.where(sell, -1, 0)).to(torch.int8)


def _crosses_above(a: Tensor, b: Tensor | float) -> Tensor:
    """a_t > b_t after a_{t-1} <= b_{t-1}; False where anything is NaN."""
    b = torch.as_tensor(b, dtype=a.dtype, device=a.device).expand_as(a)
    return (a > b) & (ops.delay(a, 1) <= ops.delay(b, 1))


def _crosses_below(a: Tensor, b: Tensor | float) -> Tensor:
    b = torch.as_tensor(b, dtype=a.dtype, device=a.device).expand_as(a)
    return (a < b) & (ops.delay(a, 1) >= ops.delay(b, 1))


def _cross(fast: Callable[[Fields], Tensor], slow: Callable[[Fields], Tensor] | float) -> Callable:
    """Buy when `fast` crosses above `slow`, sell when it crosses below (MA/EMA/MACD-style rules)."""

    def signal(f: Fields) -> Tensor:
        a = fast(f)
        b = slow(f) if callable(slow) else slow
        return _events(_crosses_above(a, b), _crosses_below(a, b))

    return signal


def _zone(x: Callable[[Fields], Tensor], low: float, high: float) -> Callable:
    """Oscillator rule: buy when x climbs back above `low` (leaves oversold), sell when it falls back
    below `high` (leaves overbought)."""

    def signal(f: Fields) -> Tensor:
        v = x(f)
        return _events(_crosses_above(v, low), _crosses_below(v, high))

    return signal


def _decile(x: Callable[[Fields], Tensor], direction: int) -> Callable:
    """Cross-sectional rule: buy the top 10 % of direction * x that day, sell the bottom 10 %."""

    def signal(f: Fields) -> Tensor:
        r = ops.cs_rank(direction * x(f))  # (T, N) in (0, 1], NaN where undefined
        return _events(r > 0.9, r <= 0.1)

    return signal


_DECILE_RULE = "no classic timing rule: buy the top cross-sectional decile of {}, sell the bottom decile"


# --------------------------------------------------------------------------- the indicators


def _ma(n: int) -> Callable[[Fields], Tensor]:
    return lambda f: ops.ts_mean(f["close"], n)


def _ema(n: int) -> Callable[[Fields], Tensor]:
    return lambda f: ops.ema(f["close"], n)


def _macd_dif(fast: int, slow: int) -> Callable[[Fields], Tensor]:
    return lambda f: ops.ema(f["close"], fast) - ops.ema(f["close"], slow)


def _macd_dea(fast: int, slow: int, sig: int) -> Callable[[Fields], Tensor]:
    return lambda f: ops.ema(_macd_dif(fast, slow)(f), sig)


def _pvt(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        flow = f["volume"] * _ret(f)  # (T, N) one day's PVT increment
        return ops.div(ops.ts_sum(flow, n), ops.ts_sum(torch.where(torch.isnan(flow), flow, f["volume"]), n))

    return compute


def _top10(f: Fields) -> Tensor:
    ma10 = ops.ts_mean(_raw_close(f), 10)  # (T, N)
    top = torch.full_like(ma10[:, :1], float("nan"))  # (T, 1) each day's 90th percentile
    rows = max(1, (1 << 22) // max(1, ma10.shape[1]))  # torch.nanquantile caps its input size
    for a in range(0, ma10.shape[0], rows):
        top[a : a + rows] = torch.nanquantile(ma10[a : a + rows], 0.9, dim=1, keepdim=True)
    return ops.div(ma10, top) - 1


def _dc_bands(n: int) -> Callable[[Fields], tuple[Tensor, Tensor]]:
    # High x AdjClose / Close is the adjusted high; our prices are adjusted already.
    return lambda f: (ops.ts_mean(f["high"], n), ops.ts_mean(f["low"], n))


def _dc(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        h, low = _dc_bands(n)(f)
        return ops.div(f["close"], (h + low) / 2)

    return compute


def _dc_signal(n: int) -> Callable[[Fields], Tensor]:
    def signal(f: Fields) -> Tensor:
        h, low = _dc_bands(n)(f)
        return _events(_crosses_above(f["close"], h), _crosses_below(f["close"], low))

    return signal


def _boll_bands(n: int, k: float) -> Callable[[Fields], tuple[Tensor, Tensor, Tensor]]:
    def bands(f: Fields) -> tuple[Tensor, Tensor, Tensor]:
        mean, std = ops.ts_mean(f["close"], n), ops.ts_std(f["close"], n)
        return mean - k * std, mean, mean + k * std

    return bands


def _boll_signal(n: int, k: float) -> Callable[[Fields], Tensor]:
    def signal(f: Fields) -> Tensor:
        lb, _, ub = _boll_bands(n, k)(f)
        return _events(_crosses_below(f["close"], lb), _crosses_above(f["close"], ub))

    return signal


def _rsi(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        change = ops.delta(f["close"], 1)
        up = ops.ts_sum(change.clamp(min=0), n)  # clamp keeps NaN
        down = ops.ts_sum((-change).clamp(min=0), n)
        return 100 * ops.div(up, up + down)

    return compute


def _roc(n: int) -> Callable[[Fields], Tensor]:
    return lambda f: 100 * (ops.div(f["close"], ops.delay(f["close"], n)) - 1)


def _force(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        force = ops.delta(f["close"], 1) * f["volume"]  # (T, N) Elder's raw force index
        volume = torch.where(torch.isnan(force), force, f["volume"])  # the same days
        return ops.div(ops.ema(force, n), ops.ema(volume, n) * f["close"])

    return compute


def _high_low_position(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        hi, lo = ops.ts_max(f["high"], n), ops.ts_min(f["low"], n)
        return 100 * ops.div(f["close"] - lo, hi - lo)

    return compute


def _typical(f: Fields) -> Tensor:
    return (f["high"] + f["low"] + f["close"]) / 3


def _vwap(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        vwap = ops.div(ops.ts_sum(_typical(f) * f["volume"], n), ops.ts_sum(f["volume"], n))
        return ops.div(f["close"], vwap) - 1

    return compute


def _mfi(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        tp = _typical(f)
        flow = tp * f["volume"]
        move = ops.delta(tp, 1)
        zero = torch.zeros_like(flow)
        pos = torch.where(move > 0, flow, zero)
        neg = torch.where(move < 0, flow, zero)
        gap = torch.isnan(move) | torch.isnan(flow)
        nan = torch.full_like(flow, float("nan"))
        pos, neg = torch.where(gap, nan, pos), torch.where(gap, nan, neg)  # NaN on gaps
        pos, neg = ops.ts_sum(pos, n), ops.ts_sum(neg, n)
        return 100 * ops.div(pos, pos + neg)

    return compute


def _atr(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        prev = ops.delay(f["close"], 1)
        tr = torch.maximum(f["high"] - f["low"], (f["high"] - prev).abs())
        tr = torch.maximum(tr, (f["low"] - prev).abs())  # maximum propagates NaN
        return ops.div(ops.ts_mean(tr, n), f["close"])

    return compute


def _obv(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        flow = ops.sign(ops.delta(f["close"], 1)) * f["volume"]
        volume = torch.where(torch.isnan(flow), flow, f["volume"])
        return ops.div(ops.ts_sum(flow, n), ops.ts_sum(volume, n))

    return compute


def _psy(n: int) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        change = ops.delta(f["close"], 1)
        up = torch.where(torch.isnan(change), change, (change > 0).to(change.dtype))
        return 100 * ops.ts_mean(up, n)

    return compute


def _boll_pb(n: int, k: float) -> Callable[[Fields], Tensor]:
    def compute(f: Fields) -> Tensor:
        lb, _, ub = _boll_bands(n, k)(f)
        return ops.div(f["close"] - lb, ub - lb)

    return compute


# --------------------------------------------------------------------------- the library


def _specs() -> list[PKSpec]:
    s: list[PKSpec] = []

    def add(name, formula, compute, signal, rule, window, table1=False):
        s.append(PKSpec(name, formula, compute, signal, rule, table1, window))

    # Table 1: MA, EMA (ratios to close), MACD, PVT, TOP10, DC, BOLL ------------------------
    for n in (5, 10, 20, 60):
        add(f"MA{n}", f"MA_{n}(close) / close, MA_N(x)_t = (1/N) sum_{{k=0}}^{{N-1}} x_(t-k)",
            lambda f, n=n: ops.div(_ma(n)(f), f["close"]), _cross(_close, _ma(n)),
            f"buy when close crosses above MA_{n}, sell when it crosses below", n, True)
    for n in (5, 10, 20, 60):
        add(f"EMA{n}", f"EMA_{n}(close) / close, EMA_N(x)_t = 2/(N+1) x_t + (N-1)/(N+1) EMA_N(x)_(t-1)",
            lambda f, n=n: ops.div(_ema(n)(f), f["close"]), _cross(_close, _ema(n)),
            f"buy when close crosses above EMA_{n}, sell when it crosses below", n, True)
    for fast, slow, sig, name in ((12, 26, 9, "MACD"), (5, 35, 5, "MACD5_35")):
        add(name, f"DIF / close, DIF = EMA_{fast}(close) - EMA_{slow}(close)",
            lambda f, a=fast, b=slow: ops.div(_macd_dif(a, b)(f), f["close"]),
            _cross(_macd_dif(fast, slow), _macd_dea(fast, slow, sig)),
            f"buy when DIF crosses above DEA = EMA_{sig}(DIF) (golden cross), sell when it crosses below",
            slow, True)
    add("MACD_HIST", "(DIF - DEA) / close, DIF = EMA_12(close) - EMA_26(close), DEA = EMA_9(DIF)",
        lambda f: ops.div(_macd_dif(12, 26)(f) - _macd_dea(12, 26, 9)(f), f["close"]),
        _cross(_macd_dif(12, 26), _macd_dea(12, 26, 9)),
        "buy when the histogram turns positive (DIF crosses above DEA), sell when it turns negative",
        26 + 9 - 1, True)
    for n in (10, 20):
        add(f"PVT{n}",
            f"(PVT_t - PVT_(t-{n})) / sum_(k<{n}) volume_(t-k), "
            "PVT_t = PVT_(t-1) + volume_t (close_t - close_(t-1)) / close_(t-1)",
            _pvt(n), _cross(_pvt(n), 0.0),
            f"buy when the {n}-day price-volume trend turns positive, sell when it turns negative",
            n + 1, True)
    add("TOP10", "MA_10(Close) / MA_10(Close)_top10% - 1, Close unadjusted, top10% = the day's 90th "
        "percentile of MA_10 across the panel's stocks",
        _top10, _cross(_top10, 0.0),
        "buy when the stock's MA_10 enters the day's top 10 %, sell when it leaves", 10, True)
    for n in (10, 20):
        add(f"DC{n}", f"AdjClose / M, M = (H + L) / 2, H = MA_{n}(High x AdjClose / Close), "
            f"L = MA_{n}(Low x AdjClose / Close)",
            _dc(n), _dc_signal(n),
            f"buy when close breaks above H (the {n}-day mean high), sell when it breaks below L",
            n, True)
    for n in (10, 20):
        add(f"BOLL{n}", f"LB / close, LB = MA_{n}(close) - MStd_{n}(close) (1 std, as in Table 1; ddof=1)",
            lambda f, n=n: ops.div(_boll_bands(n, 1.0)(f)[0], f["close"]), _boll_signal(n, 1.0),
            "buy when close falls below the lower band MA - std, sell when it rises above MA + std",
            n, True)

    # RSI, ROC, FORCE (§3.3) ---------------------------------------------------------------
    for n in (6, 12, 24):
        add(f"RSI{n}", f"100 sum_{{k<{n}}} max(dC_(t-k), 0) / sum_{{k<{n}}} |dC_(t-k)|, dC = close - "
            "close_(t-1) (simple-average RSI)",
            _rsi(n), _zone(_rsi(n), 30, 70),
            "buy when RSI climbs back above 30, sell when it falls back below 70", n + 1)
    for a, b in ((6, 12), (7, 21)):
        add(f"RSI{a}_{b}", f"RSI{a} - RSI{b}", lambda f, a=a, b=b: _rsi(a)(f) - _rsi(b)(f),
            _cross(_rsi(a), _rsi(b)),
            f"buy when RSI{a} crosses above RSI{b}, sell when it crosses below", b + 1)
    for n in (6, 12, 20):
        add(f"ROC{n}", f"100 (close / close_(t-{n}) - 1)", _roc(n), _cross(_roc(n), 0.0),
            "buy when ROC crosses above 0, sell when it crosses below", n + 1)
    for n in (2, 13):
        add(f"FORCE{n}", f"EMA_{n}(dC x volume) / (EMA_{n}(volume) x close), dC = close - close_(t-1)",
            _force(n), _cross(_force(n), 0.0),
            f"buy when the {n}-day force index crosses above 0, sell when it crosses below", n + 1)

    # classic price-volume factors --------------------------------------------------------
    def dec(name, formula, compute, direction, what, window):
        add(name, formula, compute, _decile(compute, direction), _DECILE_RULE.format(what), window)

    dec("REV1", "-(close / close_(t-1) - 1)", lambda f: -_ret(f), 1, "REV1 (short-term reversal)", 2)
    dec("REV5", "-(close / close_(t-5) - 1)", lambda f: -_roc(5)(f) / 100, 1, "REV5 (weekly reversal)", 6)
    dec("MOM60", "close_(t-5) / close_(t-60) - 1 (skips the last week)",
        lambda f: ops.div(ops.delay(f["close"], 5), ops.delay(f["close"], 60)) - 1, 1, "MOM60", 61)
    dec("MOM120", "close_(t-20) / close_(t-120) - 1 (skips the last month)",
        lambda f: ops.div(ops.delay(f["close"], 20), ops.delay(f["close"], 120)) - 1, 1, "MOM120", 121)
    for n in (20, 60):
        dec(f"VOL{n}", f"std_{n}(daily return)", lambda f, n=n: ops.ts_std(_ret(f), n), -1,
            f"-VOL{n} (low-volatility anomaly)", n + 1)
    for n in (5, 20):
        dec(f"VRATIO{n}", f"volume / MA_{n}(volume) (turnover relative to its mean)",
            lambda f, n=n: ops.div(f["volume"], ops.ts_mean(f["volume"], n)), -1,
            f"-VRATIO{n} (abnormal turnover reverses)", n)
    dec("VMA5_60", "MA_5(volume) / MA_60(volume)",
        lambda f: ops.div(ops.ts_mean(f["volume"], 5), ops.ts_mean(f["volume"], 60)), -1, "-VMA5_60", 60)
    dec("VSTD20", "std_20(volume) / MA_20(volume)",
        lambda f: ops.div(ops.ts_std(f["volume"], 20), ops.ts_mean(f["volume"], 20)), -1, "-VSTD20", 20)
    dec("AMP", "(high - low) / close (amplitude)", lambda f: ops.div(f["high"] - f["low"], f["close"]), -1,
        "-AMP", 1)
    dec("AMP20", "MA_20((high - low) / close)",
        lambda f: ops.ts_mean(ops.div(f["high"] - f["low"], f["close"]), 20), -1, "-AMP20", 20)
    dec("CORR_CV10", "corr_10(close, volume)", lambda f: ops.ts_corr(f["close"], f["volume"], 10), -1,
        "-CORR_CV10 (price-volume divergence)", 10)
    dec("CORR_RV20", "corr_20(daily return, volume)", lambda f: ops.ts_corr(_ret(f), f["volume"], 20), -1,
        "-CORR_RV20", 21)
    for n in (20, 60):
        dec(f"SKEW{n}", f"skew_{n}(daily return) (sample skewness)", lambda f, n=n: ops.ts_skew(_ret(f), n),
            -1, f"-SKEW{n} (lottery-like stocks underperform)", n + 1)
    dec("ATR14", "MA_14(TR) / close, TR = max(high - low, |high - close_(t-1)|, |low - close_(t-1)|)",
        _atr(14), -1, "-ATR14", 15)
    dec("HIGH60", "close / max_60(close) (distance to the 60-day high)",
        lambda f: ops.div(f["close"], ops.ts_max(f["close"], 60)), 1, "HIGH60 (near-high momentum)", 60)
    dec("LOW60", "close / min_60(close) (distance above the 60-day low)",
        lambda f: ops.div(f["close"], ops.ts_min(f["close"], 60)), -1, "-LOW60", 60)
    dec("OC", "close / open - 1 (intraday return)",
        lambda f: ops.div(f["close"], f["open"]) - 1, -1, "-OC", 1)
    dec("GAP", "open / close_(t-1) - 1 (overnight return)",
        lambda f: ops.div(f["open"], ops.delay(f["close"], 1)) - 1, -1, "-GAP", 2)
    dec("UPPER_SHADOW", "(high - max(open, close)) / close",
        lambda f: ops.div(f["high"] - torch.maximum(f["open"], f["close"]), f["close"]), -1,
        "-UPPER_SHADOW (selling pressure)", 1)
    dec("LOWER_SHADOW", "(min(open, close) - low) / close",
        lambda f: ops.div(torch.minimum(f["open"], f["close"]) - f["low"], f["close"]), 1,
        "LOWER_SHADOW (buying support)", 1)
    dec("TSRANK_C10", "ts_rank_10(close) (today's close within its 10-day range, 0..1)",
        lambda f: ops.ts_rank(f["close"], 10), -1, "-TSRANK_C10", 10)
    dec("TSRANK_V10", "ts_rank_10(volume)", lambda f: ops.ts_rank(f["volume"], 10), -1, "-TSRANK_V10", 10)

    add("RSV9", "100 (close - min_9(low)) / (max_9(high) - min_9(low)) (KDJ's raw stochastic value)",
        _high_low_position(9), _zone(_high_low_position(9), 20, 80),
        "buy when RSV climbs back above 20, sell when it falls back below 80", 9)
    add("MFI14", "100 sum_14 positive money flow / sum_14 money flow, money flow = typical price x volume, "
        "positive when the typical price (H+L+C)/3 rose", _mfi(14), _zone(_mfi(14), 20, 80),
        "buy when MFI climbs back above 20, sell when it falls back below 80", 15)
    add("PSY12", "100 x share of up-closes in the last 12 days (psychological line)",
        _psy(12), _zone(_psy(12), 25, 75),
        "buy when PSY climbs back above 25, sell when it falls back below 75", 13)
    add("VWAP20", "close / VWAP_20 - 1, VWAP_20 = sum_20(typical price x volume) / sum_20(volume)",
        _vwap(20), _cross(_vwap(20), 0.0), "buy when close crosses above the 20-day VWAP, sell below", 20)
    add("OBV20", "sum_20(sign(dC) x volume) / sum_20(volume) (the 20-day increment of on-balance volume)",
        _obv(20), _cross(_obv(20), 0.0), "buy when the 20-day OBV trend turns positive, sell negative", 21)
    add("WMA10", "decay_linear_10(close) / close (linearly weighted MA, today weight 10)",
        lambda f: ops.div(ops.decay_linear(f["close"], 10), f["close"]),
        _cross(_close, lambda f: ops.decay_linear(f["close"], 10)),
        "buy when close crosses above WMA_10, sell when it crosses below", 10)
    add("BOLL_PB20", "(close - LB) / (UB - LB), LB/UB = MA_20(close) -/+ 2 MStd_20(close) (%b)",
        _boll_pb(20, 2.0), _zone(_boll_pb(20, 2.0), 0.0, 1.0),
        "buy when %b climbs back above 0 (re-enters over the lower band), sell when it falls back below 1",
        20)
    return s


LIBRARY: dict[str, PKSpec] = {spec.name: spec for spec in _specs()}

# The paper's Table 2/3 rows -> the variant used when one factor stands for the row.
PAPER_TABLE2: dict[str, str] = {
    "MA": "MA10", "EMA": "EMA10", "MACD": "MACD", "RSI": "RSI12",
    "Top10": "TOP10", "DC": "DC20", "BOLL": "BOLL20", "PVT": "PVT20",
}  # fmt: skip

# PK 50 (Table 7's baseline): the library minus ten variants that nearly repeat a kept factor
# (MACD5_35, PVT10, DC10, BOLL10, VRATIO5, SKEW60, AMP, TSRANK_V10, WMA10) or need more than
# 61 days of history (MOM120) — every Table 1 family, RSI/ROC/FORCE and the classic factors stay.
PK50_EXCLUDED: tuple[str, ...] = (
    "MACD5_35", "PVT10", "DC10", "BOLL10", "VRATIO5", "SKEW60", "AMP", "TSRANK_V10", "WMA10", "MOM120",
)  # fmt: skip
PK50: tuple[str, ...] = tuple(n for n in LIBRARY if n not in PK50_EXCLUDED)
assert len(PK50) == 50, len(PK50)


# --------------------------------------------------------------------------- API


def names(table1_only: bool = False) -> list[str]:
    """Every factor name in library order (Table 1 families first), or only Table 1 ones."""
    return [n for n, spec in LIBRARY.items() if spec.table1 or not table1_only]


def get(name: str) -> PKSpec:
    """The spec of `name`; ValueError naming the closest matches for an unknown name."""
    try:
        return LIBRARY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name).upper(), list(LIBRARY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(LIBRARY)}"
        raise ValueError(f"unknown prior-knowledge factor {name!r}{hint}") from None


def fields(panel: Panel, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> Fields:
    """The panel's OHLCV (+ factor) as `(T, N)` tensors; float64 by default so ratios keep their digits."""
    out = {k: torch.as_tensor(panel[k], device=device).to(dtype) for k in INPUT_FIELDS}
    if "factor" in panel.fields:
        out["factor"] = torch.as_tensor(panel["factor"], device=device).to(dtype)
    return out


def _as_fields(data: Panel | Fields) -> Fields:
    return fields(data) if isinstance(data, Panel) else data


def compute(name: str, panel: Panel | Fields) -> np.ndarray:
    """`(T, N)` float32 values of factor `name` on `panel` (NaN where undefined)."""
    spec = get(name)
    return spec.compute(_as_fields(panel)).to(torch.float32).cpu().numpy()


def compute_all(
    panel: Panel | Fields, names: list[str] | tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """`{name: (T, N) float32}` for `names` (default: the whole library), converting the panel once."""
    f = _as_fields(panel)
    return {n: compute(n, f) for n in (names if names is not None else list(LIBRARY))}


def signal(name: str, panel: Panel | Fields) -> np.ndarray:
    """`(T, N)` int8 buy (+1) / sell (-1) / hold (0) decisions of the indicator's classic rule."""
    spec = get(name)
    return spec.signal(_as_fields(panel)).to(torch.int8).cpu().numpy()


def factor(name: str) -> Factor:
    """The PK factor as a `Factor` (origin "pk"); picklable, so runners can ship it to workers."""
    spec = get(name)
    meta = {"formula": spec.formula, "rule": spec.rule, "table1": spec.table1, "window": spec.window}
    return Factor(name=spec.name, origin="pk", compute=partial(compute, spec.name), meta=meta)


def pk50() -> list[Factor]:
    """The 50 prior-knowledge factors of the PK 50 baseline (Table 7); see `PK50_EXCLUDED` for the choice."""
    return [factor(n) for n in PK50]
