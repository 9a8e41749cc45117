"""Where the data is: an explicit path, else NNAFC_DATA, else nothing (the simulated market)."""

from __future__ import annotations

import os
from pathlib import Path

from nnafc.data.panel import DataError

ALL_SHARES_FILE = "ashare_2010_2020.parquet"
CSI300_FILE = "csi300_2010_2020.parquet"


def data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The data directory to use, or None when none is configured."""
    chosen = path if path not in (None, "") else os.environ.get("NNAFC_DATA") or None
    if chosen is None:
        return None
    chosen = Path(chosen).expanduser()
    if not chosen.exists():
        raise DataError(f"data path does not exist: {chosen}")
    return chosen


def source_for(root: Path, universe: str) -> Path:
    """The file or qlib directory inside `root` that serves `universe`.

    CSI 300 work reads the smaller CSI 300 file (every stock that was ever a member, with
    all its rows); everything else reads all A-shares. A qlib directory serves both.
    """
    if root.is_file() or (root / "calendars").is_dir():
        return root
    name = CSI300_FILE if universe == "csi300" else ALL_SHARES_FILE
    if (root / name).exists():
        return root / name
    if (root / ALL_SHARES_FILE).exists():
        return root / ALL_SHARES_FILE
    raise DataError(f"no {name} or qlib directory (calendars/) under {root}")
