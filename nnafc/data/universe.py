"""Point-in-time stock universes: which stocks a strategy may hold on each day.

Every mask here is causal: its value on day t depends only on data up to and including t.
Three universes:

- ``"all"``: every eligible stock;
- ``"csi300"``: CSI 300 members on that day (membership spells ``CODE<TAB>start<TAB>end``);
- ``"top<N>"`` (e.g. ``"top1000"``): the N eligible stocks with the largest mean traded value
  (close x volume; both adjusted, so their product is the raw amount) over days t-19..t.

All are intersected with `eligible`: traded today with at least `min_history` traded days.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc.data.panel import DataError

LIQUIDITY_WINDOW = 20  # trading days of traded value behind a "top<N>" ranking
UNIVERSE_FORMS = "'all', 'csi300' or 'top<N>' (e.g. 'top1000')"


def eligible(traded: np.ndarray, min_history: int = 60, prior: np.ndarray | None = None) -> np.ndarray:
    """`(T, N)` bool: traded today and at least `min_history` traded days up to and including today.

    The history requirement keeps new listings (whose first days are limit-up runs, not
    price discovery) and stocks back from long suspensions out of the universe. `prior` is an
    optional `(N,)` count of traded days before the first row of `traded`, so a panel cut at
    `start` still knows each stock's full history.
    """
    if min_history < 0:
        raise DataError(f"min_history must be >= 0, got {min_history}")
    counts = np.cumsum(traded, axis=0, dtype=np.int64)  # (T, N) traded days up to t
    if prior is not None:
        counts += np.asarray(prior, dtype=np.int64)[None, :]
    return traded.astype(bool) & (counts >= min_history)


def parse_universe(name: str) -> tuple[str, int | None]:
    """`("all", None)`, `("csi300", None)` or `("top", N)`; DataError for anything else."""
    if name in ("all", "csi300"):
        return name, None
    match = re.fullmatch(r"top([1-9][0-9]*)", str(name))
    if match:
        return "top", int(match.group(1))
    raise DataError(f"unknown universe {name!r}: use {UNIVERSE_FORMS}")


def read_memberships(path: str | os.PathLike) -> pd.DataFrame:
    """Membership spells `CODE<TAB>start<TAB>end` -> DataFrame(code, start, end), codes upper-case."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"membership file not found: {path}")
    try:
        spells = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, comment="#")
    except pd.errors.EmptyDataError:
        raise DataError(f"membership file {path} is empty: expected lines CODE start end") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"membership file {path} cannot be read: {str(err).splitlines()[0]}") from None
    if spells.shape[1] != 3:
        raise DataError(f"membership file {path} must have 3 columns CODE start end, found {spells.shape[1]}")
    spells.columns = ["code", "start", "end"]
    spells["code"] = spells["code"].str.upper()
    for col in ("start", "end"):
        parsed = pd.to_datetime(spells[col], errors="coerce", format="%Y-%m-%d")
        if parsed.isna().any():
            bad = spells.loc[parsed.isna(), col].iloc[0]
            raise DataError(f"membership file {path}: unparseable date {bad!r}")
        spells[col] = parsed
    return spells


def membership_mask(spells: pd.DataFrame, dates: pd.DatetimeIndex, instruments: pd.Index) -> np.ndarray:
    """`(T, N)` bool: member on day d if some spell has start <= d <= end.

    Codes without price data are ignored. Vectorised with a difference array: +1 at each
    spell's first day, -1 after its last, cumulative sum > 0.
    """
    col = instruments.get_indexer(spells["code"])
    known = col >= 0
    first = dates.searchsorted(spells["start"].to_numpy()[known], side="left")
    stop = dates.searchsorted(spells["end"].to_numpy()[known], side="right")
    diff = np.zeros((len(dates) + 1, len(instruments)), dtype=np.int32)  # (T+1, N)
    np.add.at(diff, (first, col[known]), 1)
    np.add.at(diff, (stop, col[known]), -1)
    return np.cumsum(diff[:-1], axis=0) > 0


def top_liquidity(close: np.ndarray, volume: np.ndarray, allowed: np.ndarray, n: int,
                  window: int = LIQUIDITY_WINDOW) -> np.ndarray:
    """`(T, N)` bool: the `n` `allowed` stocks with the largest traded value over days t-window+1..t.

    A day without a trade counts as zero traded value (a stock suspended half the month is
    illiquid). The mean over the window ranks the same as the sum, so the sum is used; ties
    go to the earlier instrument.
    """
    amount = np.nan_to_num(close.astype(np.float64) * volume, nan=0.0)  # (T, N) raw amount
    csum = np.cumsum(amount, axis=0)
    rolling = csum.copy()
    rolling[window:] -= csum[:-window]  # (T, N) sum over the trailing window
    score = np.where(allowed, rolling, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")  # (T, N) best first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(score.shape[1])[None, :], axis=1)
    return allowed & (rank < n)


def universe_mask(universe: str, dates: pd.DatetimeIndex, instruments: pd.Index, close: np.ndarray,
                  volume: np.ndarray, traded: np.ndarray, min_history: int = 60,
                  memberships: str | os.PathLike | None = None,
                  prior: np.ndarray | None = None) -> np.ndarray:
    """The point-in-time `(T, N)` universe mask, always within `eligible(traded, min_history)`."""
    kind, n = parse_universe(universe)
    mask = eligible(traded, min_history, prior=prior)
    if kind == "csi300":
        if memberships is None:
            raise DataError("universe 'csi300' needs a membership file: pass memberships=PATH")
        mask &= membership_mask(read_memberships(memberships), dates, instruments)
    elif kind == "top":
        mask = top_liquidity(close, volume, mask, n)
    return mask
