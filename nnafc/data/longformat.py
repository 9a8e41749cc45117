"""Long-format market data files (parquet, CSV) read into checked rows.

One row per stock and trading day: `datetime, instrument, open, high, low, close, volume
[, factor]`. Dates may be timestamps, date strings or YYYYMMDD integers; every value column
must be numeric. Rows come back as numpy arrays (`Rows`), cut at `end`, codes upper-cased.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nnafc.data.panel import FIELDS, DataError

KEYS = ("datetime", "instrument")
OPTIONAL_FIELDS = ("factor",)  # qlib adjustment factor: raw price = adjusted / factor


@dataclass
class Rows:
    """Long-format rows as numpy arrays (one entry per row)."""

    day: np.ndarray  # (R,) int64 days since 1970-01-01
    inst: np.ndarray  # (R,) int64 position in `names`
    names: np.ndarray  # (N_all,) upper-case codes, sorted, unique
    values: dict[str, np.ndarray]  # field -> (R,) float32

def _check_columns(names: list[str], path: Path) -> None:
    missing = [c for c in (*KEYS, *FIELDS) if c not in names]
    if missing:
        raise DataError(f"{path.name} is missing columns {missing} (has {list(names)})")


def read_parquet(path: Path, end: pd.Timestamp | None) -> Rows:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"cannot read {path} as parquet: {err}") from None
    _check_columns(schema.names, path)
    columns = [c for c in (*KEYS, *FIELDS, *OPTIONAL_FIELDS) if c in schema.names]
    dtype = schema.field("datetime").type
    filters = None
    if end is not None and pa.types.is_timestamp(dtype) and dtype.tz is None:
        # push the end cut into the reader: rows after `end` are never decoded
        filters = [("datetime", "<", pa.scalar(end + pd.Timedelta(days=1), type=dtype))]
    table = pq.read_table(path, columns=columns, filters=filters).unify_dictionaries()

    inst = table.column("instrument")
    if not pa.types.is_dictionary(inst.type):
        inst = inst.cast(pa.string()).dictionary_encode()
    inst = inst.combine_chunks() if isinstance(inst, pa.ChunkedArray) else inst
    if inst.null_count:
        raise DataError(f"{path.name}: {inst.null_count} rows have no instrument")
    codes = inst.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    labels = np.array([str(x) for x in inst.dictionary.to_pylist()], dtype=object)

    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        col = table.column("datetime")
        if col.null_count:
            raise DataError(f"{path.name}: {col.null_count} rows have no datetime")
        if pa.types.is_timestamp(dtype) and dtype.tz is not None:
            col = col.cast(pa.timestamp(dtype.unit))  # wall-clock dates in the stored zone
        day = col.to_numpy().astype("datetime64[D]").astype(np.int64)
    else:
        day = _parse_days(table.column("datetime").to_pandas(), path)
    values = {c: _numeric(table.column(c), c, path) for c in columns if c not in KEYS}
    return _rows(day, codes, labels, values, end, path)


def _numeric(col: pa.ChunkedArray, name: str, path: Path) -> np.ndarray:
    """A parquet value column as float32; DataError naming the column when it is not numeric."""
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)
            or pa.types.is_null(col.type)):
        first = next((v for v in col.to_pylist() if v is not None), None)
        kind = "text" if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) else col.type
        raise DataError(f"{path.name}: column {name!r} holds {kind} values, not numbers "
                        f"(first {first!r})")
    return col.to_numpy().astype(np.float32, copy=False)


def read_csv(path: Path, end: pd.Timestamp | None) -> Rows:
    try:
        frame = pd.read_csv(path, dtype={"instrument": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path} as CSV: {str(err).splitlines()[0]}") from None
    _check_columns(list(frame.columns), path)
    if frame["instrument"].isna().any():
        raise DataError(f"{path.name}: {int(frame['instrument'].isna().sum())} rows have no instrument")
    day = _parse_days(frame["datetime"], path)
    codes, labels = pd.factorize(frame["instrument"].astype(str))
    values = {}
    for c in (*FIELDS, *OPTIONAL_FIELDS):
        if c in frame:
            numeric = pd.to_numeric(frame[c], errors="coerce")
            if (numeric.isna() & frame[c].notna()).any():
                bad = frame.loc[numeric.isna() & frame[c].notna(), c].iloc[0]
                raise DataError(f"{path.name}: column {c!r} has a non-numeric value {bad!r}")
            values[c] = numeric.to_numpy(dtype=np.float32)
    return _rows(day, codes.astype(np.int64), np.asarray(labels, dtype=object), values, end, path)


def _parse_days(raw: pd.Series, path: Path) -> np.ndarray:
    """Dates as int64 days since the epoch; DataError naming the first unparseable value.

    Integers are read as YYYYMMDD (20180102), the only integer dates in market data; anything
    else as a date string.
    """
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_float_dtype(raw):
        raise DataError(f"{path.name}: column 'datetime' holds {raw.dtype} values, not dates")
    if pd.api.types.is_integer_dtype(raw):
        parsed = pd.to_datetime(raw.astype("int64").astype(str), format="%Y%m%d", errors="coerce")
        if parsed.isna().any():
            bad = raw[parsed.isna()].iloc[0]
            raise DataError(f"{path.name}: integer date {int(bad)} in column 'datetime' is not YYYYMMDD")
        return parsed.to_numpy().astype("datetime64[D]").astype(np.int64)
    parsed = pd.to_datetime(raw, errors="coerce")
    if parsed.isna().any():
        bad = raw[parsed.isna()].iloc[0]
        raise DataError(f"{path.name}: unparseable date {bad!r} in column 'datetime'")
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.to_numpy().astype("datetime64[D]").astype(np.int64)


FIRST_DAY, LAST_DAY = np.datetime64("1900-01-01", "D"), np.datetime64("2261-12-31", "D")


def _rows(day: np.ndarray, codes: np.ndarray, labels: np.ndarray, values: dict[str, np.ndarray],
          end: pd.Timestamp | None, path: Path) -> Rows:
    """Check the dates' range, cut rows after `end`, upper-case and sort the codes (merging case variants)."""
    if len(day):
        lo, hi = FIRST_DAY.astype(np.int64), LAST_DAY.astype(np.int64)
        bad = (day < lo) | (day > hi)
        if bad.any():
            first = np.datetime64(int(day[np.argmax(bad)]), "D")
            raise DataError(f"{path.name}: date {first} in column 'datetime' is outside "
                            f"{FIRST_DAY}..{LAST_DAY} ({int(bad.sum())} rows)")
    if end is not None:
        keep = day <= end.to_datetime64().astype("datetime64[D]").astype(np.int64)
        if not keep.all():
            day, codes, values = day[keep], codes[keep], {k: v[keep] for k, v in values.items()}
    upper = np.array([s.strip().upper() for s in labels], dtype=object)
    names, remap = np.unique(upper.astype(str), return_inverse=True)
    return Rows(day=day, inst=remap[codes] if len(codes) else codes, names=names, values=values)
