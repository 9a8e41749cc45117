"""nnafc export: long tables and qlib binary features, each read back equal; qlib's own D.features."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc.apply import apply_factors, select_factors
from nnafc.cli import main
from nnafc.data import DataError
from nnafc.export import qlib_field, read_factors, read_qlib, to_qlib, write_table


def one_line_error(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def tiny_qlib(root: Path, n_days: int = 12) -> Path:
    """A qlib directory with a calendar only (features are what export adds)."""
    days = pd.bdate_range("2020-01-02", periods=n_days)
    (root / "calendars").mkdir(parents=True)
    (root / "calendars" / "day.txt").write_text("\n".join(str(d.date()) for d in days) + "\n")
    return root


def small_frame() -> pd.DataFrame:
    """Two factors, two stocks; SZ000001 starts on the calendar's 3rd day and has a gap."""
    days = pd.bdate_range("2020-01-02", periods=12)
    rows = [(d, "SH600000", 0.5 * i, -float(i)) for i, d in enumerate(days[:8])]
    rows += [(d, "SZ000001", 10.0 + i, np.nan if i == 3 else 1.0) for i, d in enumerate(days[2:10])]
    frame = pd.DataFrame(rows, columns=["datetime", "instrument", "fcn(MA10)@2019", "RSI 12"])
    return frame.set_index(["datetime", "instrument"])


def test_qlib_binary_layout_known_answer(tmp_path) -> None:
    """Bytes as qlib writes them: first value = calendar index of the first date, then one per day."""
    root = tiny_qlib(tmp_path / "q")
    written = to_qlib(small_frame(), root)
    assert list(written["field"]) == ["nnafc_fcn_ma10_2019", "nnafc_rsi_12"]
    raw = np.fromfile(root / "features" / "sz000001" / "nnafc_fcn_ma10_2019.day.bin", dtype="<f4")
    np.testing.assert_array_equal(raw, np.r_[2.0, 10.0 + np.arange(8)])  # days 2..9
    raw = np.fromfile(root / "features" / "sz000001" / "nnafc_rsi_12.day.bin", dtype="<f4")
    assert raw[0] == 2 and len(raw) == 9 and np.isnan(raw[4]) and (np.delete(raw[1:], 3) == 1).all()
    back = read_qlib(root, list(written["field"]))
    back.columns = list(small_frame().columns)
    pd.testing.assert_frame_equal(back, small_frame().dropna(how="all").sort_index(), check_dtype=False)


def test_qlib_checks_before_writing(tmp_path) -> None:
    root = tiny_qlib(tmp_path / "q")
    frame = small_frame()
    to_qlib(frame, root)
    before = {p: p.read_bytes() for p in (root / "features").rglob("*.bin")}
    with pytest.raises(DataError, match="exists"):
        to_qlib(frame * 2, root)
    saturday = {pd.Timestamp("2020-01-02"): pd.Timestamp("2020-01-04")}
    shifted = frame.rename(index=saturday, level=0)
    with pytest.raises(DataError, match="2020-01-04 is not a date of"):
        to_qlib(shifted, root, overwrite=True)
    assert {p: p.read_bytes() for p in (root / "features").rglob("*.bin")} == before
    to_qlib(frame * 2, root, overwrite=True)
    assert read_qlib(root, ["nnafc_rsi_12"]).min().item() == -14.0
    with pytest.raises(DataError, match="not a qlib directory"):
        to_qlib(frame, tmp_path)
    assert qlib_field("fcn(RSI12)@2019-02-01#s0") == "nnafc_fcn_rsi12_2019_02_01_s0"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_table_round_trip(tmp_path, suffix) -> None:
    frame = small_frame().astype(np.float32)
    path = write_table(frame, tmp_path / f"f{suffix}")
    back = read_factors(path)
    assert back.index.names == ["datetime", "instrument"]
    pd.testing.assert_frame_equal(back.astype(np.float32), frame.sort_index())
    assert not list(tmp_path.glob(".*tmp"))


def test_read_factors_rejects_bad_tables(tmp_path) -> None:
    flat = small_frame().reset_index()
    flat.iloc[:2].assign(datetime=flat["datetime"].iloc[0]).assign(instrument="SH600000").to_csv(
        tmp_path / "dup.csv", index=False)
    with pytest.raises(DataError, match="duplicate rows"):
        read_factors(tmp_path / "dup.csv")
    flat.drop(columns=["instrument"]).to_csv(tmp_path / "noinst.csv", index=False)
    with pytest.raises(DataError, match=r"no \['instrument'\] column"):
        read_factors(tmp_path / "noinst.csv")
    flat.assign(**{"RSI 12": "x"}).to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DataError, match="not numeric"):
        read_factors(tmp_path / "text.csv")


@pytest.fixture(scope="module")
def sample_copy(data_dir, tmp_path_factory) -> Path:
    """A writable copy of the real qlib sample (3.5 MiB)."""
    root = tmp_path_factory.mktemp("qlib") / "cn"
    shutil.copytree(data_dir / "qlib_cn_sample", root)
    for p in root.rglob("*"):
        p.chmod(p.stat().st_mode | 0o200)
    return root


@pytest.fixture(scope="module")
def sample_factors(sample_copy) -> pd.DataFrame:
    return apply_factors(select_factors(pk=["MA10", "RSI12"]), sample_copy, "2020-01-02", "2020-06-30")


@pytest.mark.data
def test_cli_export_to_the_qlib_sample_reads_back_equal(sample_copy, sample_factors, tmp_path,
                                                         capsys) -> None:
    src = write_table(sample_factors, tmp_path / "f.parquet")
    assert main(["export", str(src), "--out", str(sample_copy)]) == 0
    assert "$nnafc_ma10: 40 instruments" in capsys.readouterr().out
    back = read_qlib(sample_copy, ["nnafc_ma10", "nnafc_rsi12"])
    back.columns = ["MA10", "RSI12"]
    pd.testing.assert_frame_equal(back, sample_factors.astype(np.float32), check_dtype=False)
    calendar = (sample_copy / "calendars" / "day.txt").read_text().split()
    raw = np.fromfile(sample_copy / "features" / "sh600004" / "nnafc_ma10.day.bin", dtype="<f4")
    assert calendar[int(raw[0])] == "2020-01-02"
    assert main(["export", str(src), "--out", str(sample_copy)]) == 2  # exists: --force to replace
    one_line_error(capsys, "exists (use --force")
    assert main(["export", str(src), "--out", str(sample_copy), "--force"]) == 0


@pytest.mark.data
def test_cli_export_tables_and_bad_outputs(sample_factors, tmp_path, capsys) -> None:
    src = write_table(sample_factors, tmp_path / "f.parquet")
    assert main(["export", str(src), "--out", str(tmp_path / "f.csv")]) == 0
    pd.testing.assert_frame_equal(read_factors(tmp_path / "f.csv").astype(np.float32), read_factors(src))
    assert main(["export", str(src), "--out", str(tmp_path / "plain_dir")]) == 2
    one_line_error(capsys, "existing qlib directory")
    assert not (tmp_path / "plain_dir").exists()
    assert main(["export", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "g.csv")]) == 2
    one_line_error(capsys, "factor file does not exist")
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.data
def test_qlib_reads_the_exported_fields(sample_copy, sample_factors) -> None:
    """qlib's own expression engine: `$nnafc_ma10` and `Ref($nnafc_rsi12, 1)` in D.features."""
    qlib = pytest.importorskip("qlib", reason="pyqlib is not installed (optional: pip install pyqlib)")
    from qlib.data import D

    to_qlib(sample_factors, sample_copy, overwrite=True)
    qlib.init(provider_uri=str(sample_copy), region="cn", kernels=1)
    codes = ["SH600004", "SH601668"]
    got = D.features(codes, ["$nnafc_ma10", "Ref($nnafc_rsi12, 1)"], start_time="2020-01-02",
                     end_time="2020-06-30")
    got = got.swaplevel().sort_index()  # qlib: (instrument, datetime)
    want = sample_factors.loc[(slice(None), codes), :].sort_index()
    np.testing.assert_allclose(got["$nnafc_ma10"].reindex(want.index), want["MA10"], rtol=1e-6)
    lagged = want["RSI12"].unstack("instrument").shift(1).stack().reindex(want.index)  # by calendar day
    np.testing.assert_allclose(got["Ref($nnafc_rsi12, 1)"].reindex(want.index), lagged, rtol=1e-6)
