"""Downloading a qlib archive (over file://), safe extraction, atomic install, and data info/check."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc import download
from nnafc.data import load_panel
from nnafc.data.panel import DataError
from nnafc.download import data_check, data_info, download_qlib_data, format_info

DAYS = pd.bdate_range("2019-12-02", "2020-03-31")  # 87 weekdays across a year boundary
# instrument -> (first calendar index, number of days); SZ000002 lists late, SH600519 stops early
SPANS = {"SH600000": (0, len(DAYS)), "SZ000002": (30, len(DAYS) - 30), "SH600519": (0, 50)}
GAP = ("SH600000", 40, 43)  # rows 40..42 of SH600000 missing: a 3-day suspension


def write_bin(path: Path, first: int, values: np.ndarray) -> None:
    np.concatenate([[first], values]).astype("<f4").tofile(path)


def make_qlib_tree(root: Path) -> dict[str, np.ndarray]:
    """A tiny genuine-format qlib directory; returns the close series written per instrument."""
    (root / "calendars").mkdir(parents=True)
    (root / "instruments").mkdir()
    (root / "calendars" / "day.txt").write_text("\n".join(str(d.date()) for d in DAYS) + "\n")
    lines, closes = [], {}
    rng = np.random.default_rng(0)
    for code, (first, n) in SPANS.items():
        lines.append(f"{code}\t{DAYS[first].date()}\t{DAYS[first + n - 1].date()}")
        close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        if code == GAP[0]:
            close[GAP[1]:GAP[2]] = np.nan
        values = {"open": close * 0.99, "high": close * 1.02, "low": close * 0.97, "close": close,
                  "volume": np.where(np.isnan(close), np.nan, 1e6), "factor": np.ones(n)}
        feat = root / "features" / code.lower()
        feat.mkdir(parents=True)
        for name, v in values.items():
            write_bin(feat / f"{name}.day.bin", first, v)
        closes[code] = close
    (root / "instruments" / "all.txt").write_text("\n".join(lines) + "\n")
    return closes


def make_archive(tree: Path, archive: Path, arcname: str = "qlib_bin") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname=arcname)
    return archive


@pytest.fixture
def served(tmp_path):
    """A qlib archive with the tree nested one level down (as the real one is), its closes and sha256."""
    closes = make_qlib_tree(tmp_path / "src" / "tree")
    archive = make_archive(tmp_path / "src" / "tree", tmp_path / "src" / "qlib_bin.tar.gz")
    return archive, closes, hashlib.sha256(archive.read_bytes()).hexdigest()


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_download_installs_a_loadable_qlib_dir(served, tmp_path):
    archive, closes, sha = served
    target = tmp_path / "data" / "cn"
    out = download_qlib_data(target, url=archive.as_uri(), sha256=sha,
                             expected_size=archive.stat().st_size, progress=False)
    assert out == target.absolute() and (target / "calendars" / "day.txt").is_file()
    assert leftovers(target.parent) == ["cn"]  # no temporary directory left
    panel = load_panel(target, min_history=0)
    assert list(panel.instruments) == sorted(SPANS) and len(panel.dates) == len(DAYS)
    col = panel.instruments.get_loc("SZ000002")
    np.testing.assert_allclose(panel["close"][30:, col], closes["SZ000002"], rtol=1e-6)
    assert np.isnan(panel["close"][:30, col]).all()


def test_sha256_mismatch_leaves_nothing(served, tmp_path):
    archive, _, sha = served
    target = tmp_path / "data" / "cn"
    wrong = ("0" if sha[0] != "0" else "1") + sha[1:]
    with pytest.raises(DataError, match="sha256 mismatch"):
        download_qlib_data(target, url=archive.as_uri(), sha256=wrong, progress=False)
    assert leftovers(target.parent) == []
    with pytest.raises(DataError, match="expected 5 bytes"):
        download_qlib_data(target, url=archive.as_uri(), expected_size=5, progress=False)
    assert leftovers(target.parent) == []
    with pytest.raises(DataError, match="64 hex digits"):
        download_qlib_data(target, url=archive.as_uri(), sha256="abc", progress=False)


def test_existing_target_needs_force(served, tmp_path):
    archive, _, _ = served
    target = tmp_path / "cn"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        download_qlib_data(target, url=archive.as_uri(), progress=False)
    assert (target / "keep.txt").read_text() == "mine"
    download_qlib_data(target, url=archive.as_uri(), progress=False, force=True)
    assert not (target / "keep.txt").exists() and (target / "calendars").is_dir()
    assert leftovers(tmp_path) == ["cn", "src"]


def test_interrupted_download_leaves_nothing(served, tmp_path, monkeypatch):
    archive, _, _ = served
    target = tmp_path / "data" / "cn"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_extract", interrupt)  # Ctrl-C after the archive is on disk
    with pytest.raises(KeyboardInterrupt):
        download_qlib_data(target, url=archive.as_uri(), progress=False)
    assert leftovers(target.parent) == []


def test_stale_partial_directories_are_cleaned(served, tmp_path):
    """A killed download leaves `.cn.*.partial`; the next download removes it, but not one whose
    process is still alive (a download running beside it)."""
    import os
    import subprocess

    archive, _, _ = served
    target = tmp_path / "data" / "cn"
    target.parent.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a process id that no longer runs
    stale, orphan, running = (target.parent / f".cn.{k}.partial" for k in ("a1", "b2", "c3"))
    for d, pid in ((stale, dead.pid), (orphan, None), (running, os.getppid())):
        (d / "extract").mkdir(parents=True)
        if pid is not None:
            (d / download.OWNER_FILE).write_text(str(pid))
    download_qlib_data(target, url=archive.as_uri(), progress=False)
    assert leftovers(target.parent) == [".cn.c3.partial", "cn"]


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"x", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


@pytest.mark.parametrize("member", [
    {"name": "../evil.txt"},
    {"name": "/tmp/nnafc-evil.txt"},
    {"name": "qlib/features/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
    {"name": "qlib/features/link", "type": tarfile.SYMTYPE, "linkname": "../../../evil"},
    {"name": "qlib/dev", "type": tarfile.CHRTYPE},
])
def test_malicious_archive_is_rejected(tmp_path, member):
    make_qlib_tree(tmp_path / "tree")
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="qlib")
        name = member.pop("name")
        add_member(tar, name, **member)
    target = tmp_path / "out" / "cn"
    with pytest.raises(DataError, match="unsafe|not a regular"):
        download_qlib_data(target, url=archive.as_uri(), progress=False)
    assert leftovers(target.parent) == [] and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/nnafc-evil.txt").exists()


def test_not_an_archive_or_not_qlib(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid tar.gz"):
        download_qlib_data(tmp_path / "a", url=junk.as_uri(), progress=False)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "readme.txt").write_text("hi")
    plain = make_archive(tmp_path / "plain", tmp_path / "plain.tar.gz")
    with pytest.raises(DataError, match="no qlib directory"):
        download_qlib_data(tmp_path / "b", url=plain.as_uri(), progress=False)
    with pytest.raises(DataError, match="cannot download"):
        download_qlib_data(tmp_path / "c", url=(tmp_path / "absent.tar.gz").as_uri(), progress=False)
    assert leftovers(tmp_path) == ["junk.tar.gz", "plain", "plain.tar.gz"]


def test_data_info_counts_missing_rows_within_listed_spans(tmp_path):
    make_qlib_tree(tmp_path / "q")
    info = data_info(tmp_path / "q")
    assert info["format"] == "qlib" and info["trading_days"] == len(DAYS) and info["instruments"] == 3
    assert (info["start"], info["end"]) == ("2019-12-02", "2020-03-31")
    assert info["instruments_per_year"] == {2019: 2, 2020: 3}  # SZ000002 lists in January
    listed = sum(n for _, n in SPANS.values())  # stock-days inside the listed spans
    gap = GAP[2] - GAP[1]
    assert info["missing_share"] == pytest.approx(gap / listed)
    assert info["rows"] == listed - gap
    assert info["fields"] == ["open", "high", "low", "close", "volume", "factor"]
    text = format_info(info)
    assert "87 trading days" in text and "2020: 3" in text


def test_data_check(tmp_path):
    make_qlib_tree(tmp_path / "q")
    ok, message = data_check(tmp_path / "q")
    assert ok and message.startswith("OK")
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,instrument,open,high,low,close,volume\n2020-01-02,SH600000,10,9,11,10,100\n")
    ok, message = data_check(bad)
    assert not ok and "high < low" in message and "\n" not in message
    ok, message = data_check(tmp_path / "nowhere")
    assert not ok and "does not exist" in message


@pytest.mark.data
def test_data_info_on_the_real_qlib_sample(data_dir):
    info = data_info(data_dir / "qlib_cn_sample")
    assert info["start"] == "2010-01-04" and info["end"] <= "2020-12-31"
    assert info["instruments"] == 40 and 2600 < info["trading_days"] < 2700  # stocks only
    assert info["instruments_by_kind"] == {"stock": 40, "index": 3, "fund": 0, "other": 0}
    assert 0 <= info["missing_share"] < 0.2 and "factor" in info["fields"]
    assert 0.005 < info["untraded_share"] < 0.2  # qlib keeps suspension days as zero-volume rows
