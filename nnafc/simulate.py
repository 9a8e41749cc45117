"""A simulated stock market with known, planted price-volume signals.

Why: the book must execute anywhere (CI, a laptop without the A-share data), and a
construction method is best judged first where the truth is known. `simulate_market`
returns an ordinary `Panel` (flagged `simulated=True`) whose stylised facts resemble daily
A-share data, and whose `meta["truth"]` lists the signals planted in it.

The model, one stock i on trading day t (log returns, close to close):

    r[t, i] = mu + beta_i * m[t] + alpha[t, i] + sqrt(h[t, i]) * z[t, i]

Stylised facts, each a modelling choice:

- **Market factor.** `m[t] = sqrt(H[t]) * zm[t]` is one common return with betas
  `beta_i ~ N(1, 0.25)` clipped to [0.3, 1.8]: stocks co-move, as A-shares notably do.
- **Fat tails.** Innovations `z`, `zm` are Student-t with 5 degrees of freedom, scaled to unit
  variance (excess kurtosis 6 before volatility clustering adds more).
- **Volatility clustering.** Market and idiosyncratic variances follow GARCH(1,1):
  `h[t] = omega + a * e[t-1]**2 + b * h[t-1]` (a = 0.08, b = 0.90 for stocks; 0.10 / 0.88 for
  the market), so |r| is autocorrelated while r is not. Unconditional daily volatilities:
  market 1.4 %, idiosyncratic lognormal around 1.8 % (stock-specific).
- **Price limits.** A day's close, open, high and low stay within +-10 % of the last close
  (A-share main-board limits); the `factor` field is all ones, so raw = adjusted prices.
- **OHLC.** The overnight gap carries 30 % of the day's return plus its own noise; the high
  and low extend beyond max/min(open, close) by half-normal amounts scaled by the day's
  volatility. So low <= min(open, close) <= max(open, close) <= high, all > 0.
- **Volume.** Log volume = stock level (1e6..1e8 shares) + a common AR(1) (phi 0.9) + a stock
  AR(1) (phi 0.8) + 0.3 * |standardised return|: persistent, and correlated with |r|.
  Rounded to lots of 100 shares, always >= 100 on traded days.
- **Listings, delistings and suspensions.** 20 % of stocks list during the first 70 % of the
  period, 3 % delist in the second half, and a listed stock starts a suspension with
  probability 0.4 % a day lasting 1 + Geometric(0.2) days (mean 5). A stock without a row has
  NaN fields and `traded` False; its price is frozen while suspended (news during a
  suspension is not modelled, so there is no resumption gap).
- **Calendar.** Weekdays from `start` (no holidays). A burn-in of `BURN_IN` days before
  `start` warms up GARCH, volume and the signals, and counts as traded history for the
  universe: `in_universe = eligible(traded, min_history)` with that prior history.

Planted signals. Each signal is a cross-sectional, rank-standardised (mean 0, sd 1) function
of prices and volumes up to day t's close; it adds `strength * sigma_i * s` to each of the
next `HORIZON` (5) daily expected returns, so a signal keeps paying while it persists. The
three signals (see `TRUTH`): a linear 5-day reversal, a volume signal (abnormally high volume
predicts low returns) and a nonlinear one (returns are a U-shaped function of the distance of
the close from its 20-day mean). With the default strengths, their formulas computed on the
default market (seeds 0-2) have mean daily rank ICs with the 5-day forward return of about
0.09 (reversal), 0.06 (volume) and 0.08 (U-shape), within the range of good real
price-volume factors; a noise factor's is 0.000 +- 0.003. Measured stylised facts on the same
markets: median per-stock excess kurtosis of daily returns 1.6-1.9, lag-1 autocorrelation of
|r| 0.10 (of r: +-0.02), mean pairwise correlation 0.26-0.41, lag-1 autocorrelation of log
volume 0.72, correlation of log volume with |r| 0.31.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnafc.data.panel import DataError, Panel
from nnafc.data.universe import eligible

BURN_IN = 60  # days simulated before `start`: warm-up for GARCH, volume and signal windows
HORIZON = 5  # days over which a planted signal's drift is spread
LIMIT = 0.10  # daily price limit (fraction of the last close)

TRUTH = {
    "reversal_5d": {
        "formula": "-(close / delay(close, 5) - 1)",
        "sign": 1,
        "kind": "linear",
        "description": "losers of the last 5 days outperform over the next 5 (short-term reversal)",
    },
    "abnormal_volume": {
        "formula": "-log(volume / ts_mean(volume, 20))",
        "sign": 1,
        "kind": "volume",
        "description": "volume far above its 20-day mean predicts low returns (attention overpricing)",
    },
    "ma20_distance_u": {
        "formula": "abs(close / ts_mean(close, 20) - 1)",
        "sign": 1,
        "kind": "nonlinear",
        "description": "returns are U-shaped in the distance of the close from its 20-day mean: "
                       "stocks far from it, above or below, outperform",
    },
}
DEFAULT_STRENGTH = {"reversal_5d": 0.012, "abnormal_volume": 0.008, "ma20_distance_u": 0.010}


def simulate_market(n_stocks: int = 300, n_days: int = 750, seed: int = 0, start: str = "2015-01-05",
                    min_history: int = 60, strength: dict[str, float] | None = None,
                    listing_share: float = 0.2, delisting_share: float = 0.03,
                    suspension_rate: float = 0.004) -> Panel:
    """A simulated daily market as a `Panel` (see the module docstring for the model).

    `strength` overrides planted signals' strengths (name -> daily drift per unit of signal, in
    units of the stock's volatility; 0 switches a signal off; unknown names fail). The result
    is a pure function of the arguments.
    """
    if n_stocks < 2 or n_days < 2:
        raise DataError(f"need at least 2 stocks and 2 days, got n_stocks={n_stocks}, n_days={n_days}")
    strengths = dict(DEFAULT_STRENGTH)
    for name, value in (strength or {}).items():
        if name not in TRUTH:
            raise DataError(f"unknown planted signal {name!r}; signals are {sorted(TRUTH)}")
        strengths[name] = float(value)
    for name, value in (("listing_share", listing_share), ("delisting_share", delisting_share),
                        ("suspension_rate", suspension_rate)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"{name} must be in [0, 1), got {value}")

    rng = np.random.default_rng(seed)
    n, t_all = n_stocks, n_days + BURN_IN
    stock = _stock_parameters(rng, n, n_days, listing_share, delisting_share)
    shocks = _shocks(rng, t_all, n)
    fields, exists = _run(stock, shocks, strengths, suspension_rate, t_all, n)

    keep = slice(BURN_IN, None)
    prior = exists[:BURN_IN].sum(axis=0)  # (N,) traded days before `start`
    traded = exists[keep]
    dates = pd.bdate_range(pd.Timestamp(start), periods=n_days, name="datetime")
    out = {k: np.where(traded, v[keep], np.nan).astype(np.float32) for k, v in fields.items()}
    out["factor"] = np.where(traded, 1.0, np.nan).astype(np.float32)
    truth = {k: {**v, "strength": strengths[k]} for k, v in TRUTH.items()}
    return Panel(
        dates=dates,
        instruments=pd.Index([f"SIM{i:04d}" for i in range(n)], name="instrument"),
        fields=out,
        traded=traded,
        in_universe=eligible(traded, min_history, prior=prior),
        universe="all",
        simulated=True,
        meta={"source": "simulated", "seed": seed, "min_history": min_history, "truth": truth,
              "params": {"n_stocks": n_stocks, "n_days": n_days, "start": str(start),
                         "listing_share": listing_share, "delisting_share": delisting_share,
                         "suspension_rate": suspension_rate}},
    )


def planted_factors(panel: Panel) -> dict[str, np.ndarray]:
    """The planted signals' formulas (`TRUTH`) computed on `panel`: name -> `(T, N)` values.

    Computed on the panel as a researcher would (NaN inside suspensions), so they are close
    to, not identical with, the simulator's internal signals.
    """
    close = pd.DataFrame(panel["close"].astype(np.float64))
    volume = pd.DataFrame(panel["volume"].astype(np.float64))
    return {
        "reversal_5d": -(close / close.shift(5) - 1.0).to_numpy(),
        "abnormal_volume": -np.log(volume / volume.rolling(20).mean()).to_numpy(),
        "ma20_distance_u": (close / close.rolling(20).mean() - 1.0).abs().to_numpy(),
    }


# --- the model -------------------------------------------------------------------------------

def _stock_parameters(rng: np.random.Generator, n: int, n_days: int, listing_share: float,
                      delisting_share: float) -> dict[str, np.ndarray]:
    """Per-stock constants: beta, volatility, volume level, start price, listing/delisting day."""
    listed = np.zeros(n, dtype=np.int64)  # first day with a row (in burn-in time)
    late = rng.random(n) < listing_share
    listed[late] = BURN_IN + rng.integers(0, max(1, int(0.7 * n_days)), late.sum())
    gone = np.full(n, n_days + BURN_IN, dtype=np.int64)  # first day without a row for good
    leaving = rng.random(n) < delisting_share
    lo = BURN_IN + n_days // 2
    gone[leaving] = np.maximum(listed[leaving] + 40, rng.integers(lo, n_days + BURN_IN, leaving.sum()))
    return {
        "beta": np.clip(rng.normal(1.0, 0.25, n), 0.3, 1.8),
        "sigma": 0.018 * np.exp(rng.normal(0.0, 0.25, n)),  # unconditional idiosyncratic daily vol
        "log_volume": rng.uniform(np.log(1e6), np.log(1e8), n),
        "price": np.exp(rng.normal(np.log(10.0), 0.6, n)),
        "listed": listed,
        "gone": gone,
    }


def _student_t(rng: np.random.Generator, shape: tuple[int, ...], df: float = 5.0) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(df, shape) / np.sqrt(df / (df - 2.0))


def _shocks(rng: np.random.Generator, t_all: int, n: int) -> dict[str, np.ndarray]:
    """Every random draw of the day loop, made up front (the loop itself is deterministic)."""
    return {
        "z": _student_t(rng, (t_all, n)),  # (T, N) idiosyncratic innovations
        "zm": _student_t(rng, (t_all,)),  # (T,) market innovations
        "gap": rng.standard_normal((t_all, n)),  # overnight noise
        "up": np.abs(rng.standard_normal((t_all, n))),  # high beyond max(open, close)
        "down": np.abs(rng.standard_normal((t_all, n))),  # low beyond min(open, close)
        "vol_common": rng.standard_normal(t_all),
        "vol_stock": rng.standard_normal((t_all, n)),
        "suspend": rng.random((t_all, n)),
        "duration": 1 + rng.geometric(0.2, (t_all, n)),
    }


def _rank_standardise(x: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Cross-sectional ranks of `x` among `active` stocks, scaled to mean 0 and sd 1; 0 elsewhere."""
    out = np.zeros_like(x)
    k = int(active.sum())
    if k < 2:
        return out
    ranks = np.empty(k)
    ranks[np.argsort(x[active], kind="stable")] = np.arange(k)
    out[active] = (ranks / (k - 1) - 0.5) * np.sqrt(12.0 * (k - 1) / (k + 1))
    return out


def _run(stock: dict[str, np.ndarray], shocks: dict[str, np.ndarray], strengths: dict[str, float],
         suspension_rate: float, t_all: int, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The day loop (GARCH and the signals' feedback on prices are recursive), vectorised over stocks.

    Returns the full-history fields (rows valid where `exists`) and `exists` itself.
    """
    a, b, am, bm = 0.08, 0.90, 0.10, 0.88
    sigma, beta = stock["sigma"], stock["beta"]
    var_m = 0.014**2
    h, hm = sigma**2, var_m  # current conditional variances (start at their means)
    e_prev, em_prev = np.zeros(n), 0.0
    mu = 0.0003  # daily market drift

    names = list(TRUTH)
    k_sig = len(names)
    coef = np.array([strengths[k] for k in names])  # daily drift per unit signal, in units of sigma_i
    pending = np.zeros((HORIZON, k_sig, n))  # signals of the last HORIZON days (ring buffer)

    close = np.empty((t_all, n))
    fields = {k: np.full((t_all, n), np.nan) for k in ("open", "high", "low", "close", "volume")}
    exists = np.zeros((t_all, n), dtype=bool)
    last = stock["price"].copy()  # last close (frozen while suspended or not yet listed)
    vol_common, vol_stock = 0.0, np.zeros(n)
    log_vol_hist = np.zeros((t_all, n))
    suspended_left = np.zeros(n, dtype=np.int64)
    lo_lim, hi_lim = np.log(1.0 - LIMIT), np.log(1.0 + LIMIT)
    days_listed = np.zeros(n, dtype=np.int64)

    for t in range(t_all):
        # --- who trades today
        listed = (stock["listed"] <= t) & (t < stock["gone"])
        suspended_left = np.maximum(suspended_left - 1, 0)
        start = listed & (suspended_left == 0) & (shocks["suspend"][t] < suspension_rate) \
            & (t > stock["listed"])
        suspended_left[start] = shocks["duration"][t, start]
        trade = listed & (suspended_left == 0)
        days_listed += listed

        # --- returns: GARCH variances, market, planted drift
        h = sigma**2 * (1 - a - b) + a * e_prev**2 + b * h
        hm = var_m * (1 - am - bm) + am * em_prev**2 + bm * hm
        em = np.sqrt(hm) * shocks["zm"][t]
        e = np.sqrt(h) * shocks["z"][t]
        alpha = sigma * (coef[:, None] * pending.sum(axis=0)).sum(axis=0)  # (N,)
        r = np.clip(mu + beta * em + alpha + e, lo_lim, hi_lim)
        e_prev, em_prev = e, em

        # --- prices: gap, close, high, low within the limits of the last close
        day_sd = np.sqrt(h + beta**2 * hm)
        g = np.clip(0.3 * r + 0.3 * day_sd * shocks["gap"][t], lo_lim, hi_lim)
        o, c = last * np.exp(g), last * np.exp(r)
        hi = np.minimum(np.maximum(o, c) * np.exp(0.5 * day_sd * shocks["up"][t]), last * (1 + LIMIT))
        lo = np.maximum(np.minimum(o, c) * np.exp(-0.5 * day_sd * shocks["down"][t]), last * (1 - LIMIT))
        hi, lo = np.maximum(hi, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c))

        # --- volume: persistent, correlated with |standardised return|
        vol_common = 0.9 * vol_common + 0.1 * shocks["vol_common"][t]
        vol_stock = 0.8 * vol_stock + 0.3 * shocks["vol_stock"][t]
        log_v = stock["log_volume"] + vol_common + vol_stock + 0.3 * np.abs(r / day_sd)
        v = np.maximum(100.0, np.round(np.exp(log_v) / 100.0) * 100.0)

        last = np.where(trade, c, last)
        close[t] = last
        log_vol_hist[t] = np.where(trade, np.log(v), log_vol_hist[t - 1] if t else np.log(v))
        for key, val in (("open", o), ("high", hi), ("low", lo), ("close", c), ("volume", v)):
            fields[key][t] = np.where(trade, val, np.nan)
        exists[t] = trade

        # --- today's signals, known at the close, drive the next HORIZON days
        pending = np.roll(pending, 1, axis=0)
        pending[0] = 0.0
        if t >= 19:
            active = trade & (days_listed >= 20)
            ma20 = close[t - 19:t + 1].mean(axis=0)
            raw = (
                -(close[t] / close[t - 5] - 1.0),  # reversal_5d
                -(log_vol_hist[t] - np.log(np.exp(log_vol_hist[t - 19:t + 1]).mean(axis=0))),
                np.abs(close[t] / ma20 - 1.0),  # ma20_distance_u
            )
            for k, x in enumerate(raw):
                pending[0, k] = _rank_standardise(x, active)
    return fields, exists
