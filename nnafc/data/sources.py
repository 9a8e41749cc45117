"""Reading daily market data into a validated, point-in-time `Panel`.

Three sources, one result: a long-format parquet or CSV file (`datetime, instrument, open,
high, low, close, volume [, factor]`, one row per stock and trading day) or a qlib binary
directory. Nothing dated after `end` is read. Rows before `start` are read only to know each
stock's traded history and trailing liquidity, so the universe on the first returned day is
the one a trader would have had then.

Only stocks enter a panel (`nnafc.data.kinds`); indices are benchmarks (`nnafc.data.indices`).
File parsing is `nnafc.data.longformat`, the binary format `nnafc.data.qlib`.

Rows whose volume is missing (NaN) are kept but count as not traded: the qlib-derived A-share
data has about 1,200 of them, flat-price placeholders on suspension days.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nnafc.data.kinds import STOCK_PATTERN, instrument_kinds
from nnafc.data.locate import find_role, stock_pattern
from nnafc.data.longformat import OPTIONAL_FIELDS, Rows, read_csv, read_parquet
from nnafc.data.panel import FIELDS, PRICE_FIELDS, DataError, Panel
from nnafc.data.qlib import qlib_codes, qlib_features, read_bin, read_calendar
from nnafc.data.universe import LIQUIDITY_WINDOW, parse_universe, read_memberships, universe_mask


def load_panel(source: str | os.PathLike, start: str | pd.Timestamp | None = None,
               end: str | pd.Timestamp | None = None, universe: str = "all", min_history: int = 60,
               memberships: str | os.PathLike | None = None,
               fields: list[str] | tuple[str, ...] | None = None, stocks: str | None = None) -> Panel:
    """Load `source` as a dense `Panel` of stocks over the trading dates in [start, end].

    `universe` is "all", "csi300" or "top<N>" (see `nnafc.data.universe`); `memberships` is
    the CSI 300 spell file (default: the `memberships` file beside a file source, see
    `nnafc.data.locate`, or `instruments/csi300.txt` in a qlib directory). `fields` restricts
    the returned fields (default: open, high, low, close, volume, and factor when present).

    Only stocks are loaded: indices and funds (`nnafc.data.kinds`; `stocks` is the regular
    expression of stock codes, default the manifest's or the A-share rule) are left out, and
    for "csi300" and "top<N>" so is every stock never in the universe in [start, end]. Indices
    are read with `nnafc.data.indices`. Raises `DataError` with a one-line message on bad input.
    """
    path = Path(source)
    parse_universe(universe)  # fail fast on a bad name
    if not path.exists():
        raise DataError(f"data source not found: {path}")
    start_ts, end_ts = _timestamp(start, "start"), _timestamp(end, "end")
    if start_ts is not None and end_ts is not None and start_ts > end_ts:
        raise DataError(f"start {start_ts.date()} is after end {end_ts.date()}")
    if stocks is None:
        stocks = stock_pattern(path)
    kind = parse_universe(universe)[0]

    if path.is_dir():
        if not (path / "calendars" / "day.txt").is_file():
            raise DataError(f"{path} is a directory but not a qlib directory (no calendars/day.txt)")
        default_memberships = path / "instruments" / "csi300.txt"
    elif path.suffix.lower() in (".parquet", ".csv"):
        default_memberships = find_role(path.parent, "memberships") or path.parent / "instruments_csi300.txt"
    else:
        raise DataError(f"unknown source type {path.name!r}: expected .parquet, .csv or a qlib directory")
    if kind == "csi300" and memberships is None:  # before reading: a missing file fails at once
        if not default_memberships.is_file():
            raise DataError(f"universe 'csi300' needs a membership file: pass memberships= or put "
                            f"{default_memberships.name} at {default_memberships}")
        memberships = default_memberships
    spells = read_memberships(memberships) if kind == "csi300" else None

    if path.is_dir():
        only = None if spells is None else _members_in(spells, start_ts, end_ts)
        dates, names, dense, prior = _read_qlib(path, end_ts, stocks, only)
    else:
        rows = read_parquet(path, end_ts) if path.suffix.lower() == ".parquet" else read_csv(path, end_ts)
        rows = _stocks_only(rows, path, stocks)
        dates, names, dense, prior = _pivot(rows, path, start_ts, end_ts)

    first = _first_day(dates, start_ts, end_ts, path)
    exists = np.zeros(dense["close"].shape, dtype=bool)  # (T, N) a row exists
    for name in PRICE_FIELDS:
        exists |= ~np.isnan(dense[name])
    keep = exists[first:].any(axis=0)  # instruments with a row in [start, end]
    if not keep.all():
        names, exists, prior = names[keep], exists[:, keep], prior[keep]
        dense = {k: v[:, keep] for k, v in dense.items()}

    traded = exists & (np.nan_to_num(dense["volume"]) > 0)  # (T, N)
    instruments = pd.Index(names, name="instrument")
    in_universe = universe_mask(universe, dates, instruments, dense["close"], dense["volume"], traded,
                                min_history=min_history, memberships=memberships, prior=prior)
    if kind != "all":  # stocks never in the universe in [start, end] cost time and memory only
        ever = in_universe[first:].any(axis=0)
        if not ever.any():
            raise DataError(f"universe {universe!r} holds no stock between {dates[first].date()} and "
                            f"{dates[-1].date()} in {path.name}")
        if not ever.all():
            instruments, traded, in_universe = instruments[ever], traded[:, ever], in_universe[:, ever]
            dense = {k: v[:, ever] for k, v in dense.items()}

    wanted = _wanted_fields(fields, dense)
    return Panel(
        dates=dates[first:],
        instruments=instruments,
        fields={k: dense[k][first:] for k in wanted},  # row slices stay C-contiguous
        traded=traded[first:],
        in_universe=in_universe[first:],
        universe=universe,
        meta={"source": str(path), "min_history": min_history,
              **({"memberships": str(memberships)} if memberships is not None else {}),
              **({"stocks": stocks} if stocks is not None else {})},
    )


# --- parameters ------------------------------------------------------------------------------

def _timestamp(value: str | pd.Timestamp | None, what: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value).normalize()
    except (ValueError, TypeError):
        raise DataError(f"{what} {value!r} is not a date") from None


def _first_day(dates: pd.DatetimeIndex, start: pd.Timestamp | None, end: pd.Timestamp | None,
               path: Path) -> int:
    """Position of the first returned date; DataError if [start, end] misses the data."""
    if len(dates) == 0:
        raise DataError(f"no rows in {path}" + (f" up to end {end.date()}" if end is not None else ""))
    if start is not None and start > dates[-1]:
        if end is None:
            raise DataError(f"start {start.date()} is after the last date in the data ({dates[-1].date()})")
        raise DataError(f"no trading dates between {start.date()} and {end.date()} "
                        f"(the data up to {end.date()} ends on {dates[-1].date()})")
    return 0 if start is None else int(dates.searchsorted(start))


def _wanted_fields(fields: list[str] | tuple[str, ...] | None, dense: dict[str, np.ndarray]) -> list[str]:
    if fields is None:
        return [k for k in (*FIELDS, *OPTIONAL_FIELDS) if k in dense]
    unknown = [f for f in fields if f not in dense]
    if unknown:
        raise DataError(f"unknown fields {unknown}: the data has {[k for k in dense]}")
    return list(fields)


def _members_in(spells: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> set[str]:
    """Codes with a membership spell overlapping [start, end]: the only ones a CSI 300 run reads."""
    keep = np.ones(len(spells), dtype=bool)
    if start is not None:
        keep &= (spells["end"] >= start).to_numpy()
    if end is not None:
        keep &= (spells["start"] <= end).to_numpy()
    return set(spells.loc[keep, "code"])


def _stock_names(names: np.ndarray, source: Path, stocks: str | None) -> np.ndarray:
    """`(N,)` bool: which codes are stocks; DataError when none is (data named otherwise)."""
    kinds = instrument_kinds(names, stocks)
    keep = kinds == "stock"
    if len(names) and not keep.any():
        rule = stocks if stocks is not None else STOCK_PATTERN
        raise DataError(f"{source.name}: no instrument code is a stock by the rule {rule!r} (codes such as "
                        f"{', '.join(map(str, names[:3]))}); set 'stocks: PATTERN' in nnafc-data.yaml "
                        f"or pass stocks=")
    return keep


def _stocks_only(rows: Rows, path: Path, stocks: str | None) -> Rows:
    """The rows of stocks only: indices and funds never enter a stock universe."""
    keep = _stock_names(rows.names, path, stocks)
    if keep.all():
        return rows
    new = np.cumsum(keep) - 1  # old code -> new code
    row_keep = keep[rows.inst]
    return Rows(day=rows.day[row_keep], inst=new[rows.inst[row_keep]], names=rows.names[keep],
                 values={k: v[row_keep] for k, v in rows.values.items()})


def _pivot(rows: Rows, path: Path, start: pd.Timestamp | None, end: pd.Timestamp | None):
    """Validate every row, then pivot [start - 19 trading days, end] into dense `(T, N)` arrays.

    Returns (dates, names, dense fields, prior traded-day counts per instrument).
    """
    if len(rows.day) == 0:
        _raise_outside(path, end)
    present = np.zeros(rows.day.max() - rows.day.min() + 1, dtype=bool)
    present[rows.day - rows.day.min()] = True
    calendar = np.flatnonzero(present) + rows.day.min()  # (T_all,) trading days
    lookup = np.cumsum(present) - 1
    t_code = lookup[rows.day - rows.day.min()]  # (R,) position in calendar
    n_all = len(rows.names)
    _validate(rows.values, lambda i: (pd.Timestamp(calendar[t_code[i]], unit="D").date(),
                                      rows.names[rows.inst[i]]), path)
    key = t_code * n_all + rows.inst
    counts = np.bincount(key, minlength=len(calendar) * n_all)
    if counts.max(initial=0) > 1:
        t, n = divmod(int(np.argmax(counts)), n_all)
        raise DataError(f"{path.name}: duplicate rows for ({pd.Timestamp(calendar[t], unit='D').date()}, "
                        f"{rows.names[n]}) ({int((counts > 1).sum())} duplicated keys)")

    dates_all = pd.DatetimeIndex(calendar.astype("datetime64[D]").astype("datetime64[ns]"), name="datetime")
    first = 0 if start is None else int(dates_all.searchsorted(start))
    warm = max(0, first - (LIQUIDITY_WINDOW - 1))  # days before start the universe needs
    early = t_code < warm
    volume = rows.values["volume"]
    prior = np.bincount(rows.inst[early & (np.nan_to_num(volume) > 0)], minlength=n_all)  # (N_all,)

    late = ~early
    t_idx, n_idx = t_code[late] - warm, rows.inst[late]
    shape = (len(calendar) - warm, n_all)
    dense = {}
    for name, vals in rows.values.items():
        out = np.full(shape, np.nan, dtype=np.float32)  # (T, N)
        out[t_idx, n_idx] = vals[late]
        dense[name] = out
    return dates_all[warm:], rows.names, dense, prior


def _raise_outside(path: Path, end: pd.Timestamp | None) -> None:
    """No rows up to `end`: say where the data starts (reading only the datetime column)."""
    if end is not None and path.suffix.lower() == ".parquet":
        col = pq.read_table(path, columns=["datetime"]).column("datetime")
        if len(col):
            first = pd.Timestamp(pc.min(col).as_py()).date()
            raise DataError(f"end {end.date()} is before the first date in the data ({first})")
    elif end is not None:
        frame = pd.read_csv(path, usecols=["datetime"])
        if len(frame):
            first = pd.to_datetime(frame["datetime"], errors="coerce").min().date()
            raise DataError(f"end {end.date()} is before the first date in the data ({first})")
    raise DataError(f"no rows in {path}")


def _validate(values: dict[str, np.ndarray], where, path: Path) -> None:
    """Prices finite and > 0, low <= open, close <= high, volume >= 0 or missing, factor finite and > 0."""
    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            day, code = where(i)
            raise DataError(f"{path.name}: {what} for {code} on {day} ({int(mask.sum())} rows)")

    for name in (*PRICE_FIELDS, *OPTIONAL_FIELDS):
        if name in values:
            v = values[name]
            fail(~(np.isfinite(v) & (v > 0)), f"non-positive or non-finite {name}")
    fail(values["high"] < values["low"], "high < low")
    for name in ("open", "close"):
        fail((values[name] < values["low"]) | (values[name] > values["high"]), f"{name} outside [low, high]")
    vol = values["volume"]
    fail(np.isinf(vol) | (vol < 0), "negative or infinite volume")


# --- qlib binary directory (format: nnafc.data.qlib) ---------------------------------------------

def source_codes(source: str | os.PathLike) -> list[str]:
    """Every instrument code a source lists (stocks, indices, funds ...), upper-case, sorted."""
    path = Path(source)
    if path.is_dir():
        return qlib_codes(path)
    if path.suffix.lower() == ".parquet":
        col = pq.read_table(path, columns=["instrument"]).column("instrument")
        return sorted({str(c).strip().upper() for c in pc.unique(col).to_pylist() if c is not None})
    frame = pd.read_csv(path, usecols=["instrument"], dtype=str)
    return sorted({c.strip().upper() for c in frame["instrument"].dropna().unique()})


def _read_qlib(path: Path, end: pd.Timestamp | None, stocks: str | None = None,
               only: set[str] | None = None):
    """Dense arrays straight from `features/<code>/<field>.day.bin` (float32, first value = start
    index into `calendars/day.txt`) of stocks only (and of `only` when given). Only calendar
    days up to `end` are read."""
    calendar = read_calendar(path, end)
    features = qlib_features(path)
    names = np.array(source_codes(path), dtype=str)
    if len(names) == 0:
        raise DataError(f"{path}: no instruments with feature directories")
    names = names[_stock_names(names, path, stocks)]
    if only is not None:
        names = names[np.isin(names, sorted(only))]
        if len(names) == 0:
            raise DataError(f"{path}: no stock of the membership file has feature directories")
    present = {f for f in (*FIELDS, *OPTIONAL_FIELDS)
               if all((features[c.lower()] / f"{f}.day.bin").is_file() for c in names)}
    missing = [f for f in FIELDS if f not in present]
    if missing:
        raise DataError(f"{path}: fields {missing} are missing for some instruments")

    shape = (len(calendar), len(names))
    dense = {f: np.full(shape, np.nan, dtype=np.float32) for f in (*FIELDS, *OPTIONAL_FIELDS) if f in present}
    for n, code in enumerate(names):  # one file per stock and field: the format's layout
        for f, out in dense.items():
            read_bin(features[code.lower()] / f"{f}.day.bin", out[:, n])
    exists = np.zeros(shape, dtype=bool)
    for f in PRICE_FIELDS:
        exists |= ~np.isnan(dense[f])
    t_idx, n_idx = np.nonzero(exists)
    _validate({f: v[t_idx, n_idx] for f, v in dense.items()},
              lambda i: (calendar[t_idx[i]].date(), names[n_idx[i]]), path)
    return calendar, names, dense, np.zeros(len(names), dtype=np.int64)
