"""Where the data is: an explicit path, else NNAFC_DATA, else nothing (the simulated market).

A data directory is either a qlib directory (`calendars/day.txt`, `features/`, `instruments/`:
it serves every role itself) or a directory of long-format files, found by **role**, not by
the years in their names:

| role          | what                                              | names looked for (or `.csv`)           |
|---------------|---------------------------------------------------|----------------------------------------|
| `all`         | every A-share stock                               | `ashare.parquet`, `ashare_*.parquet`   |
| `csi300`      | the stocks ever in CSI 300 (optional, faster)     | `csi300.parquet`, `csi300_*.parquet`   |
| `indices`     | index closes (SH000905 = ZZ500, SH000300 = HS300) | `indices.parquet`, `indices_*.parquet` |
| `memberships` | CSI 300 spells `CODE<TAB>start<TAB>end`           | `instruments_csi300.txt`               |

`ashare_2010_2020.parquet` and `ashare_2012_2026.parquet` both serve `all`. A manifest
`nnafc-data.yaml` in the directory names the files outright and may set the stock-code rule
of `nnafc.data.kinds` for data named otherwise; its keys (all optional):

    all: prices.parquet
    csi300: null
    indices: benchmarks.parquet
    memberships: csi300_spells.txt
    stocks: "[0-9]{6}\\.(SH|SZ)"   # regular expression of stock codes
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from nnafc.data.panel import DataError

MANIFEST = "nnafc-data.yaml"
ROLES = {  # role -> file-name stems looked for (then <stem>_<anything>)
    "all": "ashare", "csi300": "csi300", "indices": "indices",
}
MEMBERSHIPS_FILE = "instruments_csi300.txt"
SUFFIXES = (".parquet", ".csv")
MANIFEST_KEYS = (*ROLES, "memberships", "stocks")


def data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The data directory to use, or None when none is configured."""
    chosen = path if path not in (None, "") else os.environ.get("NNAFC_DATA") or None
    if chosen is None:
        return None
    chosen = Path(chosen).expanduser()
    if not chosen.exists():
        raise DataError(f"data path does not exist: {chosen}")
    return chosen


def is_qlib_dir(path: Path) -> bool:
    return path.is_dir() and (path / "calendars" / "day.txt").is_file()


def manifest(directory: Path) -> dict:
    """The directory's `nnafc-data.yaml` (empty without one); DataError on a bad manifest."""
    file = Path(directory) / MANIFEST
    if not file.is_file():
        return {}
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{file}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{file}: expected a mapping of roles to file names")
    unknown = sorted(set(raw) - set(MANIFEST_KEYS))
    if unknown:
        raise DataError(f"{file}: unknown key {unknown[0]!r}; keys are {', '.join(MANIFEST_KEYS)}")
    for key, value in raw.items():
        if value is not None and not isinstance(value, str):
            raise DataError(f"{file}: {key!r} must be a file name (or, for stocks, a pattern), got {value!r}")
        if key != "stocks" and value is not None and not (file.parent / value).exists():
            raise DataError(f"{file}: {key} file {value!r} does not exist")
    return raw


def find_role(directory: Path, role: str) -> Path | None:
    """The file serving `role` in a directory of long-format files, or None if there is none.

    The manifest decides when it names the role (null: no such file); otherwise `<stem>.parquet`,
    then a single `<stem>_*.parquet` (then the same in `.csv`). Several candidates: DataError.
    """
    directory = Path(directory)
    listed = manifest(directory)
    if role in listed:
        return None if listed[role] is None else directory / listed[role]
    if role == "memberships":
        file = directory / MEMBERSHIPS_FILE
        return file if file.is_file() else None
    stem = ROLES[role]
    for suffix in SUFFIXES:
        exact = directory / f"{stem}{suffix}"
        if exact.is_file():
            return exact
        found = sorted(directory.glob(f"{stem}_*{suffix}"))
        if len(found) > 1:
            raise DataError(f"several {role} files under {directory}: {', '.join(p.name for p in found)}; "
                            f"name the one to use in {MANIFEST} ({role}: FILE)")
        if found:
            return found[0]
    return None


def stock_pattern(source: Path) -> str | None:
    """The manifest's `stocks` rule for a source (a file: its directory's manifest), else None."""
    source = Path(source)
    return manifest(source if source.is_dir() else source.parent).get("stocks")


def source_for(root: Path, universe: str) -> Path:
    """The file or qlib directory inside `root` that serves `universe`.

    CSI 300 work reads the smaller CSI 300 file when there is one (every stock that was ever a
    member, with all its rows); everything else reads all A-shares. A qlib directory serves both.
    """
    root = Path(root)
    if root.is_file() or is_qlib_dir(root):
        return root
    if (root / "calendars").is_dir() or (root / "features").is_dir():
        raise DataError(f"{root} looks like a qlib directory but has no calendars/day.txt")
    if universe == "csi300":
        found = find_role(root, "csi300")
        if found is not None:
            return found
    found = find_role(root, "all")
    if found is not None:
        return found
    listing = sorted(p.name for p in root.iterdir())[:12] if root.is_dir() else []
    raise DataError(
        f"no all-A-share data under {root}: expected a qlib directory (calendars/day.txt), "
        f"ashare.parquet / ashare_<years>.parquet, or a {MANIFEST} naming it (all: FILE); "
        f"found {', '.join(listing) if listing else 'nothing'}"
    )
