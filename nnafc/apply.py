"""Compute stored factors on any panel: new dates, another universe, a qlib directory.

`select_factors` picks factors from a zoo (by key, by family = network name, or all) and/or
the prior-knowledge library; `apply_factors` reads the data they need — the requested days plus
the warm-up history each factor's inputs reach back over — and returns their values as one long
frame indexed by `(datetime, instrument)`, one column per factor: the layout alphalens'
`get_clean_factor_and_forward_returns` and `nnafc.export` take.

Every check (unknown key or family, a field the data lacks, dates outside the data) runs before
any factor is computed. Values on day t read only data up to day t (`Factor`'s contract), and
the data is read only up to `end`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nnafc.data.locate import source_for
from nnafc.data.panel import FIELDS, DataError, Panel
from nnafc.factor import Factor
from nnafc.progress import bar as progress_bar

PK_MEMORY = 4  # PK warm-up = 4 x its window: an EMA keeps (1 - 2/(N+1))^(4N) ~ e^-8 of its start value
CALENDAR_PAD = 20  # extra calendar days read before the warm-up (holidays: Spring Festival, National Day)


# --------------------------------------------------------------------------- choosing factors


def select_factors(zoo: str | os.PathLike | None = None, keys: Sequence[str] | None = None,
                   family: str | None = None, pk: Sequence[str] | None = None,
                   device: str = "cpu") -> list[Factor]:
    """Factors to apply: zoo `keys`, or the zoo's `family` (network name, e.g. "fcn"), or the
    whole zoo, plus any prior-knowledge names `pk`. ValueError before loading anything when a
    key, family, name or the zoo itself does not exist."""
    from nnafc import pk as pk_lib

    if keys and family:
        raise ValueError("give zoo keys or a family, not both")
    if (keys or family) and zoo is None:
        raise ValueError("--keys / --family need --zoo DIR")
    _check_device(device)
    chosen: list[Factor] = []
    if zoo is not None:
        chosen += _from_zoo(Path(zoo), keys, family, pk_only=bool(pk) and not (keys or family), device=device)
    names = list(pk or [])
    specs = [pk_lib.get(n) for n in names]  # ValueError naming the closest names
    chosen += [pk_lib.factor(s.name) for s in specs]
    if not chosen:
        raise ValueError("no factors chosen: give --zoo DIR (with --keys or --family) and/or --pk NAME")
    return chosen


def _from_zoo(root: Path, keys: Sequence[str] | None, family: str | None, pk_only: bool,
              device: str) -> list[Factor]:
    if not root.is_dir():  # Zoo() would create it: nothing is written on a bad argument
        raise ValueError(f"zoo directory does not exist: {root}")
    from nnafc.zoo import Zoo

    store = Zoo(root)
    table = store.list()
    if keys:
        unknown = [k for k in keys if k not in set(table["key"])]
        if unknown:
            raise ValueError(f"unknown zoo key {unknown[0]!r} in {root} ({len(table)} factors there"
                             + (f", e.g. {table['key'].iloc[0]}" if len(table) else "") + ")")
        chosen = list(keys)
    elif family:
        chosen = list(table.loc[table["net"].astype(str).str.lower() == family.lower(), "key"])
        if not chosen:
            have = sorted(str(x) for x in table["net"].dropna().unique())
            raise ValueError(f"no factors of family {family!r} in {root}; families there: {have or 'none'}")
    elif pk_only:
        return []  # only --pk names were asked for; the zoo just came along
    else:
        chosen = list(table["key"])
        if not chosen:
            raise ValueError(f"zoo {root} holds no factors")
    return [store.load(k, device=device) for k in chosen]


def _check_device(device: str) -> None:
    """Where the networks run (PK factors are computed on the CPU)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", str(device)):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for but torch sees no CUDA device")


def warmup_days(factor: Factor) -> int:
    """Trading days of history before its first output day that `factor`'s value reads.

    A network reads an `(5, m)` window: m - 1 days. A PK factor reads its `window`; EMA-based
    ones are recursions, read `PK_MEMORY` windows back so that their start has decayed away.
    """
    standardiser = getattr(factor.compute, "standardiser", None)
    if standardiser is not None:
        return int(standardiser.m) - 1
    if factor.origin == "pk":
        from nnafc import pk as pk_lib

        return PK_MEMORY * int(pk_lib.get(factor.name).window)
    raise ValueError(f"factor {factor.name!r} (origin {factor.origin!r}): its warm-up is unknown")


def required_fields(factor: Factor) -> tuple[str, ...]:
    """The panel fields `factor` computes from: the five inputs of §3.2 (networks and PK alike)."""
    return FIELDS


def column_names(factors: Sequence[Factor]) -> list[str]:
    """One unique column name per factor: its name, + its zoo key's first 8 digits on a clash."""
    names = [f.name for f in factors]
    out = []
    for f in factors:
        key = f.meta.get("key")
        out.append(f"{f.name}[{key[:8]}]" if names.count(f.name) > 1 and key else f.name)
    if len(set(out)) != len(out):
        dup = next(n for n in out if out.count(n) > 1)
        raise ValueError(f"factor {dup!r} is asked for twice")
    return out


# --------------------------------------------------------------------------- the data


def data_span(source: Path) -> tuple[pd.Timestamp, pd.Timestamp, set[str]]:
    """First and last date of a parquet / CSV file or qlib directory, and the fields it has,
    read without loading the data (parquet: the datetime column only; qlib: the calendar)."""
    if source.is_dir():
        calendar = pd.to_datetime((source / "calendars" / "day.txt").read_text().split())
        features = source / "features"
        have: set[str] = set()
        if features.is_dir():
            for d in features.iterdir():
                have |= {p.name[: -len(".day.bin")] for p in d.glob("*.day.bin")}
        if not len(calendar):
            raise DataError(f"{source}/calendars/day.txt lists no dates")
        return calendar[0], calendar[-1], have
    if source.suffix.lower() == ".parquet":
        try:
            names = set(pq.read_schema(source).names)
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"cannot read {source} as parquet: {err}") from None
        if "datetime" not in names:
            raise DataError(f"{source.name} has no 'datetime' column")
        col = pq.read_table(source, columns=["datetime"]).column("datetime")
        if len(col) == 0:
            raise DataError(f"no rows in {source}")
        lo, hi = pc.min_max(col).values()
        return pd.Timestamp(lo.as_py()).normalize(), pd.Timestamp(hi.as_py()).normalize(), names
    if source.suffix.lower() == ".csv":
        head = pd.read_csv(source, nrows=0)
        if "datetime" not in head.columns:
            raise DataError(f"{source.name} has no 'datetime' column")
        days = pd.to_datetime(pd.read_csv(source, usecols=["datetime"])["datetime"], errors="coerce")
        if days.isna().all():
            raise DataError(f"no dated rows in {source}")
        return days.min().normalize(), days.max().normalize(), set(head.columns)
    raise DataError(f"unknown source type {source.name!r}: expected .parquet, .csv or a qlib directory")


def _date(value, what: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(value).normalize()
    except (ValueError, TypeError):
        raise ValueError(f"{what} {value!r} is not a date") from None


def check_request(factors: Sequence[Factor], source: Path, start, end) -> tuple[pd.Timestamp, ...]:
    """(start, end, first date of the data), after checking the dates and every factor's fields."""
    start, end = _date(start, "start"), _date(end, "end")
    if start > end:
        raise ValueError(f"start {start.date()} is after end {end.date()}")
    first, last, have = data_span(source)
    for f in factors:
        missing = [x for x in required_fields(f) if x not in have]
        if missing:
            raise DataError(f"factor {f.name!r} needs field(s) {missing}, which {source} lacks "
                            f"(it has {sorted(have)})")
    if start < first:
        raise DataError(f"start {start.date()} is before the first date in {source.name} ({first.date()})")
    if end > last:
        raise DataError(f"end {end.date()} is after the last date in {source.name} ({last.date()})")
    return start, end, first


def load_with_warmup(source: Path, start: pd.Timestamp, end: pd.Timestamp, warmup: int,
                     universe: str = "all", first: pd.Timestamp | None = None) -> tuple[Panel, int]:
    """The panel over [start, end] with at least `warmup` trading days before `start` (fewer only
    where the data begins later); returns it and the position of the first day >= start."""
    from nnafc.data import load_panel

    first = data_span(source)[0] if first is None else first
    pad = int(warmup * 1.6) + CALENDAR_PAD
    while True:
        lo = max(first, start - pd.Timedelta(days=pad))
        panel = load_panel(source, start=lo, end=end, universe=universe)
        day0 = int(panel.dates.searchsorted(start))
        if day0 >= warmup or lo <= first:
            if day0 >= len(panel.dates):
                raise DataError(f"no trading dates between {start.date()} and {end.date()} in {source}")
            return panel, day0
        pad *= 2


# --------------------------------------------------------------------------- applying


def apply_factors(factors: Sequence[Factor], data: str | os.PathLike, start, end, universe: str = "all",
                  progress: bool = False) -> pd.DataFrame:
    """Values of `factors` on the trading days in [start, end] of `data`, long format.

    Index `(datetime, instrument)`, one float32 column per factor (`column_names`), one row
    per (day, stock) in the point-in-time `universe` where some factor is defined (index and
    fund codes of a qlib directory are left out: `load_panel` holds stocks only, by the rule of
    `nnafc.data.kinds`). `data`: a parquet / CSV file, a qlib directory or a data directory
    (`nnafc.data.locate`).
    """
    from nnafc.data.locate import data_dir

    root = data_dir(data)
    if root is None:
        raise ValueError("no data: give --data PATH or set NNAFC_DATA")
    source = source_for(root, universe)
    if not factors:
        raise ValueError("no factors to apply")
    columns = column_names(factors)
    start, end, first = check_request(factors, source, start, end)
    warmup = max(warmup_days(f) for f in factors)
    panel, day0 = load_with_warmup(source, start, end, warmup, universe, first)

    keep = panel.in_universe[day0:]  # (D, N)
    values = {}
    for name, f in progress_bar(list(zip(columns, factors, strict=True)), desc="factors", unit="factor",
                                disable=not progress):
        v = f.values(panel)[day0:]  # (D, N) causal: day t reads days <= t
        values[name] = np.where(keep, v, np.nan).astype(np.float32)
        if not np.isfinite(values[name]).any():
            raise DataError(f"factor {name!r} has no value on {source.name} between {start.date()} and "
                            f"{end.date()} (universe {universe!r}): no stock there is in the universe with "
                            "the history the factor reads, or, for a network standardised per stock "
                            "('train_zscore'), none is one it was trained on")
    return to_long(values, panel.dates[day0:], panel.instruments)


def to_long(values: dict[str, np.ndarray], dates: pd.DatetimeIndex, instruments: pd.Index) -> pd.DataFrame:
    """`{name: (D, N)}` -> long frame over the (day, stock) pairs where any value is finite."""
    stack = np.stack(list(values.values()))  # (K, D, N)
    t, n = np.nonzero(np.isfinite(stack).any(axis=0))
    index = pd.MultiIndex.from_arrays(
        [pd.DatetimeIndex(dates[t], name="datetime"),
         pd.Index(np.asarray(instruments)[n], name="instrument")])
    return pd.DataFrame({k: v[t, n] for k, v in values.items()}, index=index)
