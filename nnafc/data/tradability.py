"""Exchange daily price limits: days on which a stock could not be bought (or sold) at the close.

A-share prices may move at most a fixed fraction from the reference price, the previous close
(ex-rights adjusted on ex-dividend days), on RAW prices:

- main boards (SH6*, SZ0*): +-10 %;
- ChiNext (SZ300*): +-10 %, +-20 % from 2020-08-24 (registration reform);
- STAR market (SH688*): +-20 %.

Not modelled, because this data cannot tell: ST / *ST stocks (+-5 %; their limit-up days are
missed, and their +-10 % limits are never reached), the first trading days of new listings
(no limit, or +44 % since 2014), and suspension resumptions without limits. A stock's first
traded day in a panel has no previous close, hence no limit (NaN, never "hits").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnafc.data.panel import DataError, Panel

CHINEXT_REFORM = pd.Timestamp("2020-08-24")  # ChiNext limits widen from 10 % to 20 %
TOLERANCE = 0.005  # half a price tick (0.01 CNY): absorbs float32 / adjustment rounding


def price_limit_rate(instruments: pd.Index | list[str], dates: pd.DatetimeIndex) -> np.ndarray:
    """`(T, N)` float: the daily limit as a fraction of the reference price (0.1 or 0.2)."""
    codes = pd.Index(instruments).astype(str).str.upper()
    dates = pd.DatetimeIndex(dates)
    star = np.asarray(codes.str.startswith("SH688"))  # (N,)
    chinext = np.asarray(codes.str.startswith("SZ300"))  # (N,)
    after = np.asarray(dates >= CHINEXT_REFORM)  # (T,)
    wide = star[None, :] | (chinext[None, :] & after[:, None])  # (T, N)
    return np.where(wide, 0.2, 0.1)


def _round_price(x: np.ndarray) -> np.ndarray:
    """Round to 0.01 half up, as exchanges do (the epsilon undoes float error at exact halves)."""
    return np.floor(x * 100.0 + 0.5 + 1e-6) / 100.0


def reference_price(panel: Panel) -> np.ndarray:
    """`(T, N)` raw reference price: the last traded day's close, ex-rights adjusted.

    In raw terms that is `adjusted close[prev] / factor[t]` (= the previous raw close when the
    factor did not change), rounded to 0.01. Days after a suspension use the last close
    before it. Only days before t are read.
    """
    close = np.where(panel.traded, panel["close"].astype(np.float64), np.nan)  # (T, N) adjusted
    last = pd.DataFrame(close).ffill().shift(1).to_numpy()  # (T, N) last traded close before t
    factor = panel.fields.get("factor")
    if factor is not None:
        # today's factor where the stock has a row, else the last known one (still <= t)
        factor = pd.DataFrame(factor.astype(np.float64)).ffill().to_numpy()
        last = last / factor
    return _round_price(last)


def limit_prices(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """`(up, down)`, each `(T, N)` float64 RAW prices: the day's limit-up and limit-down prices."""
    ref = reference_price(panel)
    rate = price_limit_rate(panel.instruments, panel.dates)
    return _round_price(ref * (1.0 + rate)), _round_price(ref * (1.0 - rate))


def _raw_field(panel: Panel, field: str) -> np.ndarray:
    if field not in ("open", "high", "low", "close"):
        raise DataError(f"price limits apply to open/high/low/close, not {field!r}")
    return panel.raw(field).astype(np.float64)


def hits_limit_up(panel: Panel, field: str = "close") -> np.ndarray:
    """`(T, N)` bool: traded and `field` at (or above) the limit-up price: a buyer could not fill."""
    up, _ = limit_prices(panel)
    return panel.traded & (_raw_field(panel, field) >= up - TOLERANCE)  # NaN compares False


def hits_limit_down(panel: Panel, field: str = "close") -> np.ndarray:
    """`(T, N)` bool: traded and `field` at (or below) the limit-down price: a seller could not fill."""
    _, down = limit_prices(panel)
    return panel.traded & (_raw_field(panel, field) <= down + TOLERANCE)
