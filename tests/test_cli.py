"""The `nnafc` command: exit codes, one-line errors without tracebacks, and the handlers' wiring."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc.cli import main
from nnafc.params import ParamsError

BAD_CSV = ("datetime,instrument,open,high,low,close,volume\n"
           "2020-01-02,SH600000,10,9.5,10.5,10,100\n")  # high < low


def qlib_tree(root: Path, n_days: int = 30) -> Path:
    """A two-stock qlib directory in the genuine binary format."""
    days = pd.bdate_range("2020-01-02", periods=n_days)
    (root / "calendars").mkdir(parents=True)
    (root / "calendars" / "day.txt").write_text("\n".join(str(d.date()) for d in days))
    (root / "instruments").mkdir()
    (root / "instruments" / "all.txt").write_text(
        "".join(f"{c}\t{days[0].date()}\t{days[-1].date()}\n" for c in ("SH600000", "SZ000001")))
    for k, code in enumerate(("sh600000", "sz000001")):
        (root / "features" / code).mkdir(parents=True)
        close = np.linspace(10, 11, n_days) * (k + 1)
        for name, v in {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                        "volume": np.full(n_days, 1e5)}.items():
            np.concatenate([[0], v]).astype("<f4").tofile(root / "features" / code / f"{name}.day.bin")
    return root


def one_line_error(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err


@pytest.fixture
def bad_csv(tmp_path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    return path


@pytest.mark.data
def test_info_and_check_on_the_real_qlib_sample(data_dir, capsys):
    sample = str(data_dir / "qlib_cn_sample")
    assert main(["data", "info", sample]) == 0
    out = capsys.readouterr().out
    assert "2010-01-04 .. 2020-12-31" in out and "2020: 40" in out  # SH000001/300/905 are not stocks
    assert "40 stocks, 3 indices, 0 funds" in out and "stocks:        40 (" in out
    assert main(["data", "info", sample, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "qlib" and info["instruments_per_year"]["2010"] == 30
    assert main(["data", "check", sample]) == 0
    assert capsys.readouterr().out.startswith("OK: ")


@pytest.mark.parametrize("action", ["info", "check"])
def test_bad_csv_is_one_line_error(bad_csv, capsys, action):
    assert main(["data", action, str(bad_csv)]) == 2
    one_line_error(capsys, "high < low for SH600000 on 2020-01-02")


def test_default_path_is_nnafc_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNAFC_DATA", str(qlib_tree(tmp_path / "q")))
    assert main(["data", "check"]) == 0
    assert "2 instruments" in capsys.readouterr().out
    monkeypatch.delenv("NNAFC_DATA")
    assert main(["data", "info"]) == 2
    one_line_error(capsys, "NNAFC_DATA is not set")


@pytest.mark.parametrize("argv", [[], ["data"], ["data", "inspect"], ["data", "info", "--bogus"],
                                  ["book"], ["construct", "--data", "x"], ["nonsense"]])
def test_argparse_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: nnafc" in err and "Traceback" not in err


def test_help_and_version(capsys):
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("nnafc ")
    assert main(["data", "download", "--help"]) == 0
    assert "--sha256" in capsys.readouterr().out


def test_download_over_file_url(tmp_path, capsys):
    archive = tmp_path / "qlib_bin.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(qlib_tree(tmp_path / "tree"), arcname="qlib_bin")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    target = tmp_path / "data"
    argv = ["data", "download", "--dir", str(target), "--url", archive.as_uri(), "--quiet"]
    assert main([*argv, "--sha256", sha]) == 0
    assert f"export NNAFC_DATA={target}" in capsys.readouterr().out
    assert main(["data", "check", str(target)]) == 0
    capsys.readouterr()
    assert main(argv) == 2  # already there
    one_line_error(capsys, "already exists")
    assert main([*argv, "--force", "--sha256", "f" * 64]) == 2
    one_line_error(capsys, "sha256 mismatch")
    assert (target / "calendars" / "day.txt").is_file()  # a failed replacement keeps the old data
    assert main([*argv, "--force"]) == 0


def test_book_calls_build_book(monkeypatch, tmp_path, capsys):
    import nnafc.book

    calls = []
    monkeypatch.setattr(nnafc.book, "build_book", lambda *a, **k: calls.append((a, k)) or tmp_path)
    assert main(["book", "--params", "params/smoke.yaml", "--data", "D", "--out", "O", "--no-render"]) == 0
    expected = {"data": "D", "out": "O", "render_html": False, "force": False}
    assert calls == [(("params/smoke.yaml",), expected)]
    assert str(tmp_path) in capsys.readouterr().out


def test_book_with_a_missing_params_file(tmp_path, capsys):
    assert main(["book", "--params", str(tmp_path / "none.yaml"), "--no-render"]) == 2
    one_line_error(capsys, "parameter file not found")


def test_construct_wiring_and_errors(monkeypatch, capsys):
    import nnafc.construct_cli

    calls = []
    monkeypatch.setattr(nnafc.construct_cli, "run", lambda *a, **k: calls.append((a, k)))
    assert main(["construct", "--params", "p.yaml", "--data", "D"]) == 0
    assert calls == [(("p.yaml",), {"data": "D", "out": None})]

    def bad(*a, **k):
        raise ParamsError("p.yaml: unknown key 'netz'")

    monkeypatch.setattr(nnafc.construct_cli, "run", bad)
    assert main(["construct", "--params", "p.yaml"]) == 2
    one_line_error(capsys, "unknown key 'netz'")

    monkeypatch.setitem(sys.modules, "nnafc.construct_cli", None)  # as if not installed
    assert main(["construct", "--params", "p.yaml"]) == 2
    one_line_error(capsys, "cannot be imported")


def test_console_entry_point_has_no_traceback(bad_csv):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "nnafc", "data", "check", str(bad_csv)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_value_errors_are_one_line_and_ctrl_c_is_130(monkeypatch, capsys):
    import nnafc.book

    def bad_value(*a, **k):
        raise ValueError("start 'yesterday' is not a date\n(check params)")

    monkeypatch.setattr(nnafc.book, "build_book", bad_value)
    assert main(["book", "--params", "p.yaml"]) == 2
    one_line_error(capsys, "not a date (check params)")
    monkeypatch.setenv("NNAFC_DEBUG", "1")
    with pytest.raises(ValueError, match="not a date"):
        main(["book", "--params", "p.yaml"])
    monkeypatch.delenv("NNAFC_DEBUG")

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(nnafc.book, "build_book", ctrl_c)
    assert main(["book", "--params", "p.yaml"]) == 130
    assert capsys.readouterr().err == "interrupted\n"

    def bug(*a, **k):
        raise TypeError("a bug")

    monkeypatch.setattr(nnafc.book, "build_book", bug)
    with pytest.raises(TypeError):  # a bug keeps its traceback
        main(["book", "--params", "p.yaml"])
