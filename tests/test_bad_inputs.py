"""Hostile and broken input, end to end through the `nnafc` command (issue 13 §5).

Every case asserts the one-line `error: ...` message, the exit status (2: the user's to fix)
without a traceback, and that nothing was written: no run directory, no notebook, no zoo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nnafc.cli import main

ROOT = Path(__file__).resolve().parents[1]
DAYS = pd.bdate_range("2020-01-06", periods=12)


def frame(codes=("SH600000", "SZ000001")) -> pd.DataFrame:
    rows = []
    for k, code in enumerate(codes):
        for t, d in enumerate(DAYS):
            c = 10.0 + k + 0.1 * t
            rows.append((d, code, c - 0.05, c + 0.2, c - 0.2, c, 1000.0 * (t + 1)))
    return pd.DataFrame(rows, columns=["datetime", "instrument", "open", "high", "low", "close", "volume"])


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def fails(argv: list[str], needle: str, capsys, root: Path) -> None:
    """`nnafc argv` exits 2 with one line `error: ...` holding `needle`, writing nothing under root."""
    before = files(root)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err, err
    assert "Traceback" not in err
    assert files(root) == before


# ----------------------------------------------------------------------------- data files


def _csv(tmp: Path, f: pd.DataFrame, text: str | None = None) -> Path:
    path = tmp / "bad.csv"
    path.write_text(text) if text is not None else f.to_csv(path, index=False)
    return path


def _parquet(tmp: Path, f: pd.DataFrame) -> Path:
    path = tmp / "bad.parquet"
    f.to_parquet(path, index=False)
    return path


def _set(f: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    f = f.copy()
    for k, v in values.items():
        f.loc[row, k] = v
    return f


def _year_9999(tmp: Path) -> Path:
    """A parquet timestamp (microseconds) in year 9999: nanosecond pandas would wrap it to 1815."""
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    f = frame()
    dates = [d.to_pydatetime() for d in f["datetime"]]
    dates[3] = datetime.datetime(9999, 1, 4)
    table = pa.table({"datetime": pa.array(dates, type=pa.timestamp("us")),
                      **{c: f[c].to_numpy() for c in f.columns if c != "datetime"}})
    pq.write_table(table, tmp / "bad.parquet")
    return tmp / "bad.parquet"


def _bytes(tmp: Path, data: bytes) -> Path:
    (tmp / "bad.parquet").write_bytes(data)
    return tmp / "bad.parquet"


DATA_CASES = {  # name -> (writer(tmp) -> path, message)
    "missing column": (lambda t: _csv(t, frame().drop(columns="high")), "missing columns ['high']"),
    "non-positive price": (lambda t: _csv(t, _set(frame(), 2, close=0.0)),
                           "non-positive or non-finite close for SH600000 on 2020-01-08"),
    "high < low": (lambda t: _csv(t, _set(frame(), 1, high=9.0)), "high < low for SH600000 on 2020-01-07"),
    "close above high": (lambda t: _parquet(t, _set(frame(), 4, close=10.9)),
                         "close outside [low, high] for SH600000 on 2020-01-10"),
    "open below low": (lambda t: _csv(t, _set(frame(), 5, open=9.0)),
                       "open outside [low, high] for SH600000 on 2020-01-13"),
    "duplicate rows": (lambda t: _csv(t, pd.concat([frame(), frame().iloc[[3]]])),
                       "duplicate rows for (2020-01-09, SH600000)"),
    "unparseable date": (lambda t: _csv(t, _set(frame().astype({"datetime": str}), 2, datetime="2020-13-45")),
                         "unparseable date '2020-13-45'"),
    "year 9999": (_year_9999, "date 9999-01-04 in column 'datetime' is outside 1900-01-01..2261-12-31"),
    "integer date not YYYYMMDD": (
        lambda t: _parquet(t, frame().assign(datetime=np.arange(24, dtype=np.int64) + 1514851200)),
        "integer date 1514851200 in column 'datetime' is not YYYYMMDD"),
    "string price in parquet": (lambda t: _parquet(t, frame().astype({"close": str})),
                                "bad.parquet: column 'close' holds text values, not numbers (first '10.0')"),
    "empty file": (lambda t: _csv(t, frame(), "datetime,instrument,open,high,low,close,volume\n"),
                   "no rows in"),
    "random bytes": (lambda t: _bytes(t, os.urandom(256)), "cannot read"),
    "semicolon CSV": (lambda t: _csv(t, frame(), frame().to_csv(index=False, sep=";")), "is missing columns"),
    "no stock codes": (lambda t: _csv(t, frame(codes=("AAPL", "MSFT"))),
                       "no instrument code is a stock by the rule"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_files(case, tmp_path, capsys):
    write, message = DATA_CASES[case]
    path = write(tmp_path)
    fails(["data", "check", str(path)], message, capsys, tmp_path)


def test_integer_yyyymmdd_dates_are_parsed(tmp_path, capsys):
    f = frame().assign(datetime=lambda x: x["datetime"].dt.strftime("%Y%m%d").astype(np.int64))
    for path in (_parquet(tmp_path, f), _csv(tmp_path, f)):
        assert main(["data", "check", str(path)]) == 0
        assert "12 days 2020-01-06..2020-01-21" in capsys.readouterr().out


def qlib_dir(root: Path, first: float = 0.0) -> Path:
    (root / "calendars").mkdir(parents=True)
    (root / "calendars" / "day.txt").write_text("\n".join(str(d.date()) for d in DAYS))
    for code in ("sh600000", "sh000300"):
        (root / "features" / code).mkdir(parents=True)
        close = np.linspace(10, 11, len(DAYS))
        for name, v in {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                        "volume": np.full(len(DAYS), 1e5)}.items():
            np.concatenate([[first], v]).astype("<f4").tofile(root / "features" / code / f"{name}.day.bin")
    return root


@pytest.mark.parametrize(("case", "message"), [
    ("truncated bin", "sh600000/close.day.bin: empty or corrupt qlib feature file"),
    ("negative start", "sh600000/close.day.bin: negative start index -3 into calendars/day.txt"),
    ("missing calendar", "looks like a qlib directory but has no calendars/day.txt"),
    ("missing field", "fields ['volume'] are missing for some instruments"),
])
def test_bad_qlib_dirs(case, message, tmp_path, capsys):
    root = qlib_dir(tmp_path / "q")
    close = root / "features" / "sh600000" / "close.day.bin"
    if case == "truncated bin":
        close.write_bytes(close.read_bytes()[:2])
    elif case == "negative start":
        np.concatenate([[-3.0], np.linspace(10, 11, len(DAYS))]).astype("<f4").tofile(close)
    elif case == "missing calendar":
        (root / "calendars" / "day.txt").unlink()
    else:
        (root / "features" / "sh600000" / "volume.day.bin").unlink()
    fails(["data", "check", str(root)], message, capsys, tmp_path)


# ----------------------------------------------------------------------------- nnafc construct

BASE = {"data": "simulated", "universe": "all", "seeds": ["MA10"], "nets": ["fcn"], "splits": [100],
        "config": {"epochs": 1, "pretrain_epochs": 1}, "progress": False}


def _construct_file(tmp: Path, text: str | None = None, **over) -> Path:
    path = tmp / "c.yaml"
    path.write_text(text if text is not None else yaml.safe_dump({**BASE, **over}))
    return path


CONSTRUCT_CASES = [
    ({"sedes": ["MA10"]}, "unknown key 'sedes' (did you mean 'seeds'?)"),
    ({"seeds": ["MA11"]}, "unknown prior-knowledge factor"),
    ({"nets": ["fnc"]}, "unknown net 'fnc'"),
    ({"universe": "sp500"}, "unknown universe 'sp500'"),
    ({"universe": "top0"}, "unknown universe 'top0'"),
    ({"threads": "lots"}, "threads must be a positive integer or null, got 'lots'"),
    ({"threads": 0}, "threads must be a positive integer or null, got 0"),
    ({"progress": "yes_please"}, "progress must be true or false, got 'yes_please'"),
    ({"start": "2020-05-01", "end": "2020-01-01"}, "start 2020-05-01 is after end 2020-01-01"),
    ({"splits": ["soon"]}, "splits entry 'soon' is not a date"),
    ({"stocks": "SH[60"}, "stocks pattern 'SH[60' is not a regular expression"),
    ({"n_jobs": 0}, "n_jobs must be >= 1"),
]


@pytest.mark.parametrize(("over", "message"), CONSTRUCT_CASES)
def test_bad_construct_params(over, message, tmp_path, capsys):
    path = _construct_file(tmp_path, **over)
    fails(["construct", "--params", str(path), "--out", str(tmp_path / "run")], message, capsys, tmp_path)


def test_python_object_yaml_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = f"!!python/object/apply:os.system ['touch {marker}']\n"
    path = _construct_file(tmp_path, text="seeds: " + evil)
    fails(["construct", "--params", str(path), "--out", str(tmp_path / "run")], "not valid YAML",
          capsys, tmp_path)
    book = tmp_path / "b.yaml"
    book.write_text("chapters: [kernel]\nseed: " + evil)
    fails(["book", "--params", str(book), "--out", str(tmp_path / "run")], "not valid YAML", capsys, tmp_path)
    assert not marker.exists()


def test_construct_out_is_checked_before_loading_data(tmp_path, capsys, monkeypatch):
    import nnafc.construct_cli as cc

    monkeypatch.setattr(cc, "load_data", lambda *a, **k: pytest.fail("data loaded before --out was checked"))
    path = _construct_file(tmp_path)
    (tmp_path / "taken").write_text("a file")
    fails(["construct", "--params", str(path), "--out", str(tmp_path / "taken")],
          "is a file, not a directory", capsys, tmp_path)
    fails(["construct", "--params", str(path), "--out", str(tmp_path / "taken" / "sub")],
          "taken is a file, not a directory", capsys, tmp_path)
    fails(["construct", "--params", str(path), "--out", "/proc/nnafc-run"], "is not writable",
          capsys, tmp_path)


def test_empty_membership_file(tmp_path, capsys):
    frame().to_parquet(tmp_path / "ashare.parquet")
    (tmp_path / "instruments_csi300.txt").write_text("")
    (tmp_path / "p").mkdir()
    path = _construct_file(tmp_path / "p", data=str(tmp_path), universe="csi300")
    fails(["construct", "--params", str(path), "--out", str(tmp_path / "run")],
          "instruments_csi300.txt is empty: expected lines CODE start end", capsys, tmp_path)


def test_data_dir_without_known_files(tmp_path, capsys):
    frame().to_parquet(tmp_path / "prices_2012_2026.parquet")
    path = _construct_file(tmp_path, data=str(tmp_path))
    fails(["construct", "--params", str(path), "--out", str(tmp_path / "run")],
          "found c.yaml, prices_2012_2026.parquet", capsys, tmp_path)


# ----------------------------------------------------------------------------- nnafc book

BOOK_CASES = [
    ({"kernel": {"n_samples": "many"}}, "chapter 'kernel': n_samples must be an integer >= 1, got 'many'"),
    ({"pretraining": {"epochs": -3}}, "chapter 'pretraining': epochs must be an integer >= 1, got -3"),
    ({"kernel": {"universe": "top0"}}, "chapter 'kernel': universe must be 'all', 'csi300' or 'top<N>'"),
    ({"device": "tpu"}, "chapter 'kernel': device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    ({"kernel": {"start": "2020-01-01", "end": "2019-01-01"}},
     "chapter 'kernel': start 2020-01-01 is after end 2019-01-01"),
    ({"pretraining": {"epoch": 3}},
     "chapter 'pretraining' has no parameter(s) ['epoch'] (did you mean 'epochs'?)"),
    ({"kernel": {"p": "high"}}, "chapter 'kernel': p must be a number in (0, inf), got 'high'"),
    ({"kernel": {"factors": ["MA20", "NOPE"]}}, "factors entry 'NOPE' is not a PK factor"),
    ({"real_world": {"table5_windows": [7]}}, "table5_windows entries must be in 0..3"),
    ({"real_world": {"benchmark": "SPX"}}, "benchmark must be one of ['ZZ500', 'HS300']"),
    ({"real_world": {"qlib_protocol": "params/nope.yaml"}},
     "chapter 'real_world': qlib_protocol must be null or the path of an existing Qlib protocol parameter"),
    ({"real_world": {"selection_end": "2017-03-01"}},  # the rule would be chosen on a reported day
     "chapter 'real_world': selection_end 2017-03-01 is not before test_start 2017-03-01"),
    ({"gp_vs_nnafc": {"study": "params/nope.yaml"}},
     "chapter 'gp_vs_nnafc': study must be null or the path of an existing study parameter file (YAML)"),
    ({"pretraining": {"quality_family": "gp"}},
     "chapter 'pretraining': quality_family 'gp' is not a network family of the study"),
    ({"chapters": ["kernel", "../../x/evil"]}, "unknown chapter '../../x/evil'"),
    ({"chapters": ["clustering"], "clustering": {"maps": [["fcn", "lenett"]]}},
     "chapter 'clustering': maps names 'lenett', not a family of the study study.yaml "
     "(did you mean 'lenet'?)"),
    ({"chapters": ["clustering"], "clustering": {"maps": [["fcn"]]}},
     "chapter 'clustering': maps entry ['fcn'] must name at least two distinct families"),
    ({"chapters": ["clustering"], "clustering": {"window": 9}},
     "chapter 'clustering': window 9 is not one of the study's windows 0..3"),
    ({"chapters": ["clustering"], "clustering": {"variants": ["fcn-deep"]}},
     "chapter 'clustering': variants must name at least two distinct families (or none)"),
]


@pytest.mark.parametrize(("over", "message"), BOOK_CASES)
def test_bad_book_params_fail_before_any_chapter(over, message, tmp_path, capsys):
    raw = {"seed": 0, "device": "cpu", "chapters": ["kernel", "pretraining", "gp_vs_nnafc", "real_world"],
           **over}
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(raw))
    fails(["book", "--params", str(path), "--out", str(tmp_path / "run"), "--no-render"], message,
          capsys, tmp_path)


def test_a_chapter_path_outside_the_book_is_never_executed(tmp_path, capsys):
    marker = tmp_path / "marker"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "evil.py").write_text(
        f'# %% tags=["parameters"]\nseed = 0\n\n# %%\nopen({str(marker)!r}, "w").write("ran")\n')
    rel = os.path.relpath(tmp_path / "x" / "evil", ROOT / "book")
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"chapters": [rel]}))
    fails(["book", "--params", str(path), "--out", str(tmp_path / "run")], "unknown chapter",
          capsys, tmp_path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- processes


def test_workers_exit_when_the_construct_process_is_killed(tmp_path):
    """kill -9 of `nnafc construct` with n_jobs: 2: its workers and the resource tracker go too."""
    path = _construct_file(tmp_path, seeds=["MA10", "RSI12", "REV5", "ROC12"], n_jobs=2, threads=1,
                           config={"epochs": 500, "pretrain_epochs": 200, "patience": 500},
                           n_train=100, n_valid=20, n_test=20)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nnafc.cli", "construct", "--params", str(path),
                             "--out", str(tmp_path / "run")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    children: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(children) < 3:  # two workers and the resource tracker
        time.sleep(1)
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True)
        children = [int(p) for p in out.stdout.split()]
    assert len(children) >= 3, "the pool did not start"
    time.sleep(3)  # the workers are inside their jobs
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [p for p in alive if Path(f"/proc/{p}").exists()
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]
    for p in alive:  # never leave them behind, even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not alive, f"processes still alive 15 s after their parent was killed: {alive}"
