"""The qlib binary directory format, read without qlib itself.

    calendars/day.txt              one trading date a line
    instruments/all.txt            CODE<TAB>start<TAB>end (indices and funds beside stocks)
    features/<code>/<field>.day.bin  little-endian float32: the index of the first date in the
                                   calendar, then one value per calendar day

Directory names are lower-case in qlib and read case-insensitively here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nnafc.data.panel import DataError


def read_calendar(path: Path, end: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """A qlib directory's trading days (`calendars/day.txt`) up to `end`."""
    calendar = pd.DatetimeIndex(pd.to_datetime(
        (path / "calendars" / "day.txt").read_text().split(), errors="coerce"), name="datetime")
    if calendar.isna().any():
        raise DataError(f"{path}/calendars/day.txt has an unparseable date")
    if end is not None:
        if len(calendar) and end < calendar[0]:
            raise DataError(f"end {end.date()} is before the first date in the data ({calendar[0].date()})")
        calendar = calendar[: calendar.searchsorted(end, side="right")]
    return calendar


def qlib_features(path: Path) -> dict[str, Path]:
    """lower-case code -> its `features/<code>` directory (names are case-insensitive)."""
    root = path / "features"
    return {d.name.lower(): d for d in root.iterdir() if d.is_dir()} if root.is_dir() else {}


def qlib_codes(path: Path) -> list[str]:
    """The codes `instruments/all.txt` lists (else every feature directory) that have features, upper-case."""
    features = qlib_features(path)
    listing = path / "instruments" / "all.txt"
    codes = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()] \
        if listing.is_file() else list(features)
    return sorted({c.upper() for c in codes if c.lower() in features})


def read_bin(file: Path, out: np.ndarray) -> None:
    """Fill `out` (one column, calendar-aligned) from a qlib `.day.bin`, reading no day past it."""
    with open(file, "rb") as fh:
        head = np.fromfile(fh, dtype="<f4", count=1)
        if len(head) == 0 or not np.isfinite(head[0]):
            raise DataError(f"{file}: empty or corrupt qlib feature file")
        first = int(head[0])
        if first < 0:
            raise DataError(f"{file}: negative start index {first} into calendars/day.txt")
        if first >= len(out):
            return
        values = np.fromfile(fh, dtype="<f4", count=len(out) - first)
    out[first:first + len(values)] = values
