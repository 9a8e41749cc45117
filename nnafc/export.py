"""Factor values where other tools read them: long tables (pandas, alphalens) and qlib binary features.

The one frame that flows is `nnafc.apply`'s: indexed by `(datetime, instrument)`, one float
column per factor. `factor_frame[name]` is then exactly the factor Series alphalens'
`get_clean_factor_and_forward_returns` takes. `write_table` / `read_factors` store it as
parquet or CSV (columns `datetime, instrument, <factor>...`); `to_qlib` writes each factor as
`features/<code>/<field>.day.bin` of an existing qlib directory, aligned to its
`calendars/day.txt`, so that `$<field>` works in qlib expressions; `read_qlib` reads such
fields back through the project's qlib reader.

Writes are atomic per file (temporary name, then `os.replace`), and every check runs before
the first file is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc.data.panel import DataError
from nnafc.data.qlib import read_bin  # the project's reader of one qlib .day.bin
from nnafc.files import atomic_path

KEYS = ("datetime", "instrument")
TABLE_SUFFIXES = (".parquet", ".csv")


# --------------------------------------------------------------------------- long tables


def read_factors(path: str | os.PathLike) -> pd.DataFrame:
    """A factor table (parquet / CSV, as `write_table` writes it) as the `(datetime, instrument)` frame."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"factor file does not exist: {path}")
    if path.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {path} as parquet: {err}") from None
    elif path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype={"instrument": str})
    else:
        raise DataError(f"factor file must be .parquet or .csv, got {path.name!r}")
    return as_factor_frame(frame, path.name)


def as_factor_frame(frame: pd.DataFrame, what: str = "factor frame") -> pd.DataFrame:
    """Validate and normalise: `(datetime, instrument)` index (sorted, unique, upper-case codes),
    float columns."""
    if list(frame.index.names) == list(KEYS):
        frame = frame.reset_index()
    missing = [k for k in KEYS if k not in frame.columns]
    if missing:
        raise DataError(f"{what} has no {missing} column(s): expected datetime, instrument, <factor>...")
    dates = pd.to_datetime(frame["datetime"], errors="coerce")
    if dates.isna().any():
        raise DataError(f"{what}: unparseable datetime {frame.loc[dates.isna(), 'datetime'].iloc[0]!r}")
    columns = [c for c in frame.columns if c not in KEYS]
    if not columns:
        raise DataError(f"{what} has no factor columns")
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise DataError(f"{what}: factor column {bad[0]!r} is not numeric")
    index = pd.MultiIndex.from_arrays(
        [pd.DatetimeIndex(dates.dt.normalize(), name="datetime"),
         pd.Index(frame["instrument"].astype(str).str.strip().str.upper(), name="instrument")])
    out = pd.DataFrame({str(c): _floats(frame[c].to_numpy()) for c in columns}, index=index)
    if out.index.has_duplicates:
        d, i = out.index[out.index.duplicated()][0]
        raise DataError(f"{what}: duplicate rows for ({d.date()}, {i})")
    return out.sort_index()


def _floats(values: np.ndarray) -> np.ndarray:
    """Float columns as they are (float32 stays float32), anything else numeric as float64."""
    return values if values.dtype.kind == "f" else values.astype(np.float64)


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the factor frame as parquet or CSV (by suffix) atomically; returns the path."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"output must end in .parquet or .csv, got {path.name!r}")
    frame = as_factor_frame(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = frame.reset_index()
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            flat.to_parquet(tmp, index=False)
        else:
            flat.to_csv(tmp, index=False, date_format="%Y-%m-%d", float_format="%.9g")
    return path


# --------------------------------------------------------------------------- qlib binary features


def qlib_field(column: str, prefix: str = "nnafc_") -> str:
    """A qlib field name for a factor column: lower case, `[0-9a-z_]` only, e.g. `nnafc_fcn_ma10`."""
    name = re.sub(r"[^0-9a-z]+", "_", f"{prefix}{column}".lower()).strip("_")
    if not name or not re.match(r"[a-z_]", name):
        raise ValueError(f"cannot make a qlib field name of {column!r} with prefix {prefix!r}")
    return name


def qlib_calendar(qlib_dir: Path) -> pd.DatetimeIndex:
    file = qlib_dir / "calendars" / "day.txt"
    if not file.is_file():
        raise DataError(f"{qlib_dir} is not a qlib directory (no calendars/day.txt)")
    calendar = pd.DatetimeIndex(pd.to_datetime(file.read_text().split(), errors="coerce"))
    if calendar.isna().any() or not calendar.is_monotonic_increasing:
        raise DataError(f"{file} has an unparseable or unsorted date")
    return calendar


def _feature_dirs(qlib_dir: Path) -> dict[str, Path]:
    """upper-case code -> its existing features/<code> directory (any case)."""
    features = qlib_dir / "features"
    return {d.name.upper(): d for d in features.iterdir() if d.is_dir()} if features.is_dir() else {}


def to_qlib(frame: pd.DataFrame, qlib_dir: str | os.PathLike, prefix: str = "nnafc_",
            overwrite: bool = False) -> pd.DataFrame:
    """Write every factor column as `features/<code>/<field>.day.bin` in `qlib_dir`.

    qlib's format: little-endian float32, the first value the position in `calendars/day.txt`
    of the stock's first date, then one value per calendar day up to its last date (NaN where
    the factor is undefined). A factor date missing from the calendar is an error, as is an
    existing field file unless `overwrite`. Returns one row per factor: column, field, files.
    """
    qlib_dir = Path(qlib_dir)
    frame = as_factor_frame(frame)
    calendar = qlib_calendar(qlib_dir)
    fields = {c: qlib_field(c, prefix) for c in frame.columns}
    if len(set(fields.values())) != len(fields):
        raise ValueError(f"factor columns map to the same qlib field name: {fields}")
    dates = frame.index.get_level_values("datetime")
    pos = calendar.get_indexer(dates)  # (R,) calendar position of each row
    if (pos < 0).any():
        raise DataError(f"{dates[pos < 0][0].date()} is not a date of {qlib_dir}/calendars/day.txt "
                        f"({calendar[0].date()}..{calendar[-1].date()})")
    codes, inst = np.unique(frame.index.get_level_values("instrument").to_numpy(dtype=str),
                            return_inverse=True)
    existing = _feature_dirs(qlib_dir)
    targets = {c: existing.get(c, qlib_dir / "features" / c.lower()) for c in codes}
    if not overwrite:
        for c in codes:
            for field in fields.values():
                if (targets[c] / f"{field}.day.bin").exists():
                    raise DataError(f"{targets[c] / f'{field}.day.bin'} exists (use --force to replace it)")

    rows = []
    for column, field in fields.items():
        dense = np.full((len(calendar), len(codes)), np.nan, dtype=np.float32)  # (C, N) on the calendar
        dense[pos, inst] = frame[column].to_numpy(dtype=np.float32)
        finite = np.isfinite(dense)
        written = 0
        for n, code in enumerate(codes):
            days = np.flatnonzero(finite[:, n])
            if days.size == 0:
                continue
            a, b = int(days[0]), int(days[-1]) + 1
            _write_bin(targets[code] / f"{field}.day.bin", a, dense[a:b, n])
            written += 1
        rows.append({"column": column, "field": field, "instruments": written})
    return pd.DataFrame(rows)


def _write_bin(file: Path, first: int, values: np.ndarray) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(file) as tmp:
        np.concatenate([[np.float32(first)], values.astype(np.float32)]).astype("<f4").tofile(tmp)


def read_qlib(qlib_dir: str | os.PathLike, fields: list[str]) -> pd.DataFrame:
    """qlib fields of every instrument that has them, as a `(datetime, instrument)` frame of the
    finite values, read with the project's qlib reader (`nnafc.data.sources`)."""
    qlib_dir = Path(qlib_dir)
    calendar = qlib_calendar(qlib_dir)
    parts = []
    for code, d in sorted(_feature_dirs(qlib_dir).items()):
        files = {f: d / f"{f}.day.bin" for f in fields}
        if not any(p.is_file() for p in files.values()):
            continue
        cols = {}
        for f, p in files.items():
            out = np.full(len(calendar), np.nan, dtype=np.float32)
            if p.is_file():
                read_bin(p, out)
            cols[f] = out
        block = pd.DataFrame(cols, index=pd.MultiIndex.from_product(
            [pd.DatetimeIndex(calendar, name="datetime"), pd.Index([code], name="instrument")]))
        parts.append(block[np.isfinite(block.to_numpy()).any(axis=1)])
    if not parts:
        raise DataError(f"no instrument in {qlib_dir} has any of the fields {fields}")
    return pd.concat(parts).sort_index()
