"""Index closes for benchmarks (ZZ500 = SH000905, HS300 = SH000300), from wherever the data is.

A qlib directory holds its indices beside the stocks (`features/sh000905/close.day.bin`); a
directory of long-format files holds them in its `indices` file (found by role, see
`nnafc.data.locate`). Stock panels never hold indices (`nnafc.data.kinds`): benchmarks are
read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc.data.locate import find_role, is_qlib_dir
from nnafc.data.panel import DataError
from nnafc.data.qlib import qlib_features, read_bin, read_calendar


def index_source(data: str | os.PathLike) -> Path | None:
    """The qlib directory or `indices` file that holds index closes for `data` (a data
    directory, a qlib directory or a file inside a data directory), or None if there is none."""
    path = Path(data)
    if is_qlib_dir(path):
        return path
    return find_role(path if path.is_dir() else path.parent, "indices")


def index_closes(data: str | os.PathLike, codes: Sequence[str]) -> pd.DataFrame | None:
    """Daily closes `(dates, codes)` of the index `codes`, or None when `data` holds no indices.

    DataError when the data holds indices but not one of `codes` (naming what it has).
    """
    source = index_source(data)
    if source is None:
        return None
    codes = [c.upper() for c in codes]
    if source.is_dir():
        calendar = read_calendar(source)
        features = qlib_features(source)
        missing = [c for c in codes if c.lower() not in features
                   or not (features[c.lower()] / "close.day.bin").is_file()]
        if missing:
            raise DataError(f"{source}: no index {missing[0]} (features/{missing[0].lower()}/close.day.bin)")
        out = np.full((len(calendar), len(codes)), np.nan, dtype=np.float32)  # (T, K)
        for k, code in enumerate(codes):
            read_bin(features[code.lower()] / "close.day.bin", out[:, k])
        closes = pd.DataFrame(out.astype(np.float64), index=calendar, columns=codes)
    else:
        closes = _closes_from_file(source, codes)
    closes.index.name = None
    closes.attrs["source"] = str(source)
    return closes


def _closes_from_file(path: Path, codes: list[str]) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path, columns=["datetime", "instrument", "close"])
        else:
            frame = pd.read_csv(path, usecols=["datetime", "instrument", "close"])
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"cannot read index closes (datetime, instrument, close) from {path}: "
                        f"{str(err).splitlines()[0]}") from None
    frame["instrument"] = frame["instrument"].astype(str).str.strip().str.upper()
    have = sorted(frame["instrument"].unique())
    missing = [c for c in codes if c not in have]
    if missing:
        raise DataError(f"{path.name}: no index {missing[0]}; it has {', '.join(have[:10])}")
    frame = frame[frame["instrument"].isin(codes)]
    frame["datetime"] = pd.to_datetime(frame["datetime"], errors="coerce")
    if frame["datetime"].isna().any():
        raise DataError(f"{path.name}: unparseable date in column 'datetime'")
    if frame.duplicated(["datetime", "instrument"]).any():
        raise DataError(f"{path.name}: duplicate index rows")
    return frame.pivot(index="datetime", columns="instrument", values="close")[codes].astype(np.float64)


def index_returns(data: str | os.PathLike, names: Mapping[str, str],
                  dates: pd.DatetimeIndex) -> pd.DataFrame | None:
    """Close-to-close daily returns on `dates`, one column per name of `names` (name -> code,
    e.g. {"ZZ500": "SH000905"}), or None when `data` holds no indices.

    DataError if an index has no return on one of `dates` (no close that day or the day before).
    """
    closes = index_closes(data, list(names.values()))
    if closes is None:
        return None
    returns = closes.dropna(how="all").pct_change(fill_method=None)
    out = returns.reindex(pd.DatetimeIndex(dates))
    for code in closes.columns:
        if out[code].isna().any():
            bad = out.index[out[code].isna().to_numpy()]
            raise DataError(f"index {code} has no return on {len(bad)} of the dates, first {bad[0].date()} "
                            f"({closes.attrs['source']})")
    out.columns = list(names)
    out.attrs["source"] = closes.attrs["source"]
    return out
