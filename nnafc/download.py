"""Getting real data: download a qlib binary archive safely, then describe and check any source.

`download_qlib_data` fetches a `.tar.gz` of a qlib data directory (by default the community
A-share build of chenditc/investment_data) and installs it so that a crash or Ctrl-C never
leaves a half-written data directory behind: the archive is streamed, hashed and extracted
into a temporary directory beside the target, and only a complete, checked tree is renamed
into place (one `rename`, atomic on one filesystem). A killed process can leave only a
`.<name>.*.partial` directory beside the target, never a broken target; the next download
removes such directories once their process is gone.

`data_info` and `data_check` work on every source `load_panel` reads (parquet, CSV, qlib
directory) and return plain values; `format_info` renders the info for the command line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

import numpy as np

from nnafc.data.kinds import count_kinds
from nnafc.data.locate import data_dir, source_for, stock_pattern
from nnafc.data.panel import PRICE_FIELDS, DataError
from nnafc.data.sources import load_panel, source_codes
from nnafc.progress import bar as progress_bar

DEFAULT_URL = "https://github.com/chenditc/investment_data/releases/latest/download/qlib_bin.tar.gz"
DEFAULT_DIR = Path("~/.qlib/qlib_data/cn_data")  # where qlib itself looks by default
CHUNK = 1 << 20  # bytes read per step while streaming
OWNER_FILE = "owner.pid"  # inside a .partial directory: the downloading process


def download_qlib_data(target_dir: str | os.PathLike = DEFAULT_DIR, url: str = DEFAULT_URL,
                       sha256: str | None = None, expected_size: int | None = None,
                       progress: bool = True, force: bool = False, timeout: float = 60.0) -> Path:
    """Download the qlib archive at `url` and install its qlib directory at `target_dir`.

    Any URL urllib opens works (https://, file://). `sha256` (hex) and `expected_size` (bytes)
    are checked when given. An existing non-empty `target_dir` is replaced only with
    `force=True`. Returns the installed directory; raises `DataError` on a failed download, a
    mismatch, an unsafe or non-qlib archive — with nothing left at the target.
    """
    target = Path(target_dir).expanduser().absolute()
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise DataError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if _occupied(target) and not force:
        raise DataError(f"{target} already exists; pass force=True (--force) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(target)

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    (tmp / OWNER_FILE).write_text(str(os.getpid()))
    try:
        archive = tmp / "archive.tar.gz"
        _fetch(url, archive, sha256, expected_size, progress, timeout)
        _extract(archive, tmp / "extract")
        archive.unlink()  # free the space before the tree moves
        root = _find_qlib_root(tmp / "extract")
        _install(root, target, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # also on Ctrl-C: no partial download stays behind
    return target


def clean_stale_partials(target: Path) -> list[Path]:
    """Remove `.<name>.*.partial` directories beside `target` left by killed downloads.

    Each download writes its process id into its directory; a directory whose process is gone
    (or that has no id) is stale. A download still running keeps its directory. Returns what
    was removed.
    """
    removed = []
    for tmp in Path(target).parent.glob(f".{Path(target).name}.*.partial"):
        if tmp.is_dir() and not _owner_alive(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _owner_alive(tmp: Path) -> bool:
    try:
        pid = int((tmp / OWNER_FILE).read_text().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _occupied(path: Path) -> bool:
    return path.is_file() or path.is_symlink() or (path.is_dir() and any(path.iterdir()))


def _fetch(url: str, dest: Path, sha256: str | None, expected_size: int | None, progress: bool,
           timeout: float) -> None:
    """Stream `url` into `dest`, hashing as it goes; DataError (file removed) on any mismatch."""
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                               desc=Path(url).name or "download", disable=not progress)
            with open(dest, "wb") as out, bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, ValueError, OSError) as err:
        dest.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise DataError(f"cannot download {url}: {reason}") from None
    try:
        if total is not None and done != total:
            raise DataError(f"download of {url} is truncated: {done} of {total} bytes")
        if expected_size is not None and done != expected_size:
            raise DataError(f"downloaded {done} bytes from {url}, expected {expected_size} bytes")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise DataError(f"sha256 mismatch for {url}: got {digest.hexdigest()}, expected {sha256.lower()}")
    except DataError:
        dest.unlink(missing_ok=True)
        raise


def _extract(archive: Path, dest: Path) -> None:
    """Extract a tar.gz refusing absolute paths, `..`, links out of `dest` and special files."""
    dest.mkdir()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", m.name):
                    raise DataError(f"unsafe path in archive: {m.name!r}")
                if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                    raise DataError(f"archive member {m.name!r} is not a regular file or directory")
            tar.extractall(dest, members=members, filter="data")  # also checks links' targets
    except tarfile.FilterError as err:
        raise DataError(f"unsafe archive member: {err}") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"cannot extract {archive.name}: not a valid tar.gz ({err})") from None


def _find_qlib_root(top: Path) -> Path:
    """The shallowest directory under `top` holding calendars/day.txt (the qlib root)."""
    found = sorted((p.parent.parent for p in top.rglob("day.txt") if p.parent.name == "calendars"),
                   key=lambda p: (len(p.parts), str(p)))
    if not found:
        raise DataError("the archive holds no qlib directory (no calendars/day.txt)")
    if len(found) > 1 and len(found[1].parts) == len(found[0].parts):
        names = ", ".join(str(p.relative_to(top)) for p in found[:3])
        raise DataError(f"the archive holds several qlib directories ({names}): cannot choose")
    if not (found[0] / "features").is_dir():
        raise DataError(f"qlib directory {found[0].relative_to(top)} in the archive has no features/")
    return found[0]


def _install(root: Path, target: Path, tmp: Path) -> None:
    """Rename `root` to `target`; an existing target is moved into `tmp` first (restored on failure)."""
    old = None
    if target.is_symlink() or target.is_file():
        old = tmp / "previous"
        os.replace(target, old)
    elif target.is_dir():
        if any(target.iterdir()):
            old = tmp / "previous"
            os.replace(target, old)
        else:
            target.rmdir()
    try:
        os.replace(root, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old, target)
        raise


# --- describing and checking a source ----------------------------------------------------------

def resolve_source(path: str | os.PathLike | None) -> Path:
    """The file or qlib directory to read: `path`, else NNAFC_DATA; a data directory of parquet
    files resolves to its all-shares file."""
    root = data_dir(path)
    if root is None:
        raise DataError("no data path given and NNAFC_DATA is not set")
    return source_for(root, "all") if root.is_dir() else root


def data_info(path: str | os.PathLike | None = None) -> dict:
    """What a source holds: date range, trading days, instruments by kind (stock, index, fund,
    other: `nnafc.data.kinds`), stocks per year, missing rows, fields.

    Every count but `instruments_by_kind` is over stocks, what a universe may hold. A missing
    row is a stock-day inside the stock's listed span (its first to its last row)
    without a row: a suspension. Rows with zero or missing volume are counted apart.
    """
    source = resolve_source(path)
    panel = load_panel(source, universe="all", min_history=0)
    exists = np.zeros(panel.shape, dtype=bool)  # (T, N) a row exists
    for name in PRICE_FIELDS:
        exists |= np.isfinite(panel[name])
    t = np.arange(panel.shape[0])[:, None]
    first = exists.argmax(axis=0)  # (N,) every instrument has a row (load_panel keeps only those)
    last = panel.shape[0] - 1 - exists[::-1].argmax(axis=0)
    span = (t >= first) & (t <= last)  # (T, N)
    years = panel.dates.year.to_numpy()
    per_year = {int(y): int(exists[years == y].any(axis=0).sum()) for y in np.unique(years)}
    rows = int(exists.sum())
    return {
        "source": str(source),
        "format": "qlib" if source.is_dir() else source.suffix.lstrip(".").lower(),
        "start": str(panel.dates[0].date()),
        "end": str(panel.dates[-1].date()),
        "trading_days": int(panel.shape[0]),
        "instruments": int(panel.shape[1]),
        "instruments_by_kind": count_kinds(source_codes(source), stock_pattern(source)),
        "instruments_per_year": per_year,
        "rows": rows,
        "missing_share": float((span & ~exists).sum() / span.sum()),
        "untraded_share": float((exists & ~panel.traded).sum() / max(rows, 1)),
        "fields": list(panel.fields),
    }


def format_info(info: dict) -> str:
    """`data_info`'s result as a short human-readable report."""
    years = "\n".join(f"  {y}: {n}" for y, n in info["instruments_per_year"].items())
    kinds = ", ".join(f"{n} {k}{'s' if k != 'index' else 'es'}".replace("indexes", "indices")
                      for k, n in info["instruments_by_kind"].items())
    return (
        f"source:        {info['source']} ({info['format']})\n"
        f"dates:         {info['start']} .. {info['end']} ({info['trading_days']} trading days)\n"
        f"instruments:   {kinds}\n"
        f"stocks:        {info['instruments']} ({info['rows']:,} rows; only stocks enter a universe)\n"
        f"missing rows:  {info['missing_share']:.2%} of stock-days within each stock's listed span\n"
        f"no volume:     {info['untraded_share']:.2%} of rows (zero or missing volume: not traded)\n"
        f"fields:        {', '.join(info['fields'])}\n"
        f"stocks per year:\n{years}"
    )


def data_check(path: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Run `load_panel`'s validation on a source: (True, "OK: ...") or (False, the DataError message)."""
    try:
        source = resolve_source(path)
        panel = load_panel(source, universe="all", min_history=0)
    except DataError as err:
        return False, str(err)
    return True, f"OK: {source} loads as {panel}"
