"""nnafc apply: stored factors on new dates and on the qlib sample; warm-up, no look-ahead, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc import pk
from nnafc.apply import apply_factors, column_names, select_factors, to_long, warmup_days
from nnafc.cli import main
from nnafc.construct import ConstructConfig, construct_factor
from nnafc.data import DataError, load_panel, make_split
from nnafc.data.kinds import is_stock
from nnafc.export import read_factors
from nnafc.factor import Factor
from nnafc.zoo import Zoo

pytestmark = pytest.mark.data
TINY = {"m": 10, "net_cfg": {"hidden": [8]}, "pretrain_epochs": 1, "epochs": 2, "q": 10}
SIZES = {"n_train": 60, "n_valid": 15, "n_test": 15}


@pytest.fixture(scope="module")
def zoo(data_dir: Path, tmp_path_factory) -> tuple[Path, str]:
    """A one-factor zoo: a tiny FCN constructed from RSI12 on CSI 300, training in 2019 H1."""
    panel = load_panel(data_dir / "csi300_2010_2020.parquet", start="2019-01-01", end="2019-08-31",
                       universe="csi300")
    split = make_split(panel.dates, panel.dates[20], **SIZES)
    factor = construct_factor("RSI12", "fcn", panel, split, ConstructConfig.from_dict(TINY))
    root = tmp_path_factory.mktemp("zoo")
    key = Zoo(root).save(factor, panel, split, values=False)
    return root, key


def one_line_error(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err


def test_new_dates_equal_values_on_a_long_panel(data_dir, zoo) -> None:
    """Applied on Sep-Oct 2019 alone, the factor equals its values on a panel from January:
    the m - 1 warm-up days before the start are read, so the first day is complete too."""
    root, key = zoo
    factor = Zoo(root).load(key)
    assert warmup_days(factor) == TINY["m"] - 1
    got = apply_factors([factor], data_dir, "2019-09-02", "2019-10-31", universe="csi300")
    long = load_panel(data_dir / "csi300_2010_2020.parquet", start="2019-01-01", end="2019-10-31",
                      universe="csi300")
    day0 = long.day_index("2019-09-02")
    full = np.where(long.in_universe, factor.values(long), np.nan)[day0:]
    want = to_long({factor.name: full}, long.dates[day0:], long.instruments)
    pd.testing.assert_index_equal(got.index, want.index)
    np.testing.assert_allclose(got[factor.name], want[factor.name], rtol=1e-5, atol=1e-6)
    first = got.index.get_level_values("datetime") == got.index.get_level_values("datetime").min()
    assert first.sum() > 250  # about 270 CSI 300 members: the first output day is not a warm-up day


def test_no_look_ahead(data_dir, zoo) -> None:
    """Values up to a day do not change when later data is read."""
    root, key = zoo
    factors = [Zoo(root).load(key), pk.factor("MA10")]
    short = apply_factors(factors, data_dir, "2019-09-02", "2019-09-20", universe="csi300")
    longer = apply_factors(factors, data_dir, "2019-09-02", "2019-10-31", universe="csi300")
    assert short.index.get_level_values("datetime").max() == pd.Timestamp("2019-09-20")
    pd.testing.assert_frame_equal(short, longer.loc[short.index], check_exact=False, rtol=1e-6)


def test_pk_warmup_reproduces_the_long_panel(data_dir) -> None:
    """MA10 (a 10-day window) exactly; EMA20 (a recursion) to 1e-4 after 4 windows (1 window: 5e-3 off)."""
    got = apply_factors(select_factors(pk=["MA10", "EMA20"]), data_dir, "2019-06-03", "2019-06-28",
                        universe="csi300")
    long = load_panel(data_dir / "csi300_2010_2020.parquet", start="2017-01-01", end="2019-06-28",
                      universe="csi300")
    day0 = long.day_index("2019-06-03")
    for name, rtol in (("MA10", 0), ("EMA20", 1e-4)):
        full = np.where(long.in_universe, pk.compute(name, long), np.nan)[day0:]
        want = to_long({name: full}, long.dates[day0:], long.instruments)[name]
        np.testing.assert_allclose(got[name].dropna(), want.reindex(got[name].dropna().index), rtol=rtol,
                                   atol=1e-6 if rtol else 0)


def test_qlib_sample_gives_the_parquet_values(data_dir, zoo) -> None:
    """The same factor on the qlib binary sample and on the parquet file of the same stocks agree;
    index codes the qlib directory lists (SH000300 ...) are not in the output."""
    root, key = zoo
    factors = [Zoo(root).load(key), pk.factor("RSI12")]
    sample = apply_factors(factors, data_dir / "qlib_cn_sample", "2020-03-02", "2020-04-30")
    codes = sample.index.get_level_values("instrument").unique()
    assert 30 <= len(codes) <= 40 and is_stock(codes).all()  # the sample's 3 indices are left out
    ref = apply_factors(factors, data_dir / "csi300_2010_2020.parquet", "2020-03-02", "2020-04-30")
    common = sample.index.intersection(ref.index)
    assert len(common) > 0.95 * len(sample)
    np.testing.assert_allclose(sample.loc[common].to_numpy(), ref.loc[common].to_numpy(), rtol=1e-4,
                               atol=1e-5)


def test_selection_by_family_keys_and_errors(tmp_path, zoo) -> None:
    root, key = zoo
    assert [f.meta["key"] for f in select_factors(root, family="fcn")] == [key]
    assert [f.meta["key"] for f in select_factors(root, keys=[key])] == [key]
    assert [f.name for f in select_factors(root, pk=["MA10"])] == ["MA10"]  # the zoo only came along
    with pytest.raises(ValueError, match="unknown zoo key"):
        select_factors(root, keys=["0123abcd"])
    with pytest.raises(ValueError, match="no factors of family 'lstm'.*fcn"):
        select_factors(root, family="lstm")
    with pytest.raises(ValueError, match="zoo directory does not exist"):
        select_factors(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()  # nothing created on a bad argument
    with pytest.raises(ValueError, match="did you mean"):
        select_factors(pk=["MA11"])


def test_cli_apply_writes_what_apply_factors_returns(data_dir, zoo, tmp_path, capsys) -> None:
    root, key = zoo
    out = tmp_path / "f.parquet"
    assert main(["apply", "--zoo", str(root), "--family", "fcn", "--pk", "MA10", "--data", str(data_dir),
                 "--universe", "csi300", "--start", "2019-09-02", "--end", "2019-09-30", "--out", str(out),
                 "--quiet"]) == 0
    assert "rows x 2 factors (2019-09-02..2019-09-30)" in capsys.readouterr().out
    want = apply_factors(select_factors(root, family="fcn", pk=["MA10"]), data_dir, "2019-09-02",
                         "2019-09-30", universe="csi300")
    pd.testing.assert_frame_equal(read_factors(out), want)


@pytest.fixture
def no_volume_csv(data_dir, tmp_path) -> Path:
    frame = pd.read_parquet(data_dir / "csi300_2010_2020.parquet",
                            filters=[("instrument", "in", ["SH600000", "SH600036"]),
                                     ("datetime", ">=", pd.Timestamp("2019-01-01"))])
    path = tmp_path / "no_volume.csv"
    frame.drop(columns=["volume"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case, needle", [
    ("unknown key", "unknown zoo key 'abcdef012345'"),
    ("unknown family", "no factors of family 'tcn'"),
    ("field lacking", "needs field(s) ['volume']"),
    ("start before data", "start 2009-06-01 is before the first date"),
    ("end after data", "end 2021-03-01 is after the last date"),
    ("start after end", "start 2019-10-01 is after end 2019-09-01"),
    ("bad out", "--out must end in .parquet or .csv"),
    ("bad device", "device must be"),
])
def test_cli_bad_inputs_one_line_exit_2_nothing_written(case, needle, data_dir, zoo, no_volume_csv, tmp_path,
                                                         capsys) -> None:
    root, _ = zoo
    out = tmp_path / "out.parquet"
    args = {"--zoo": str(root), "--data": str(data_dir), "--start": "2019-09-02", "--end": "2019-09-30",
            "--out": str(out)}
    extra: list[str] = []
    if case == "unknown key":
        extra = ["--keys", "abcdef012345"]
    elif case == "unknown family":
        extra = ["--family", "tcn"]
    elif case == "field lacking":
        args["--data"] = str(no_volume_csv)
    elif case == "start before data":
        args["--start"] = "2009-06-01"
    elif case == "end after data":
        args["--end"] = "2021-03-01"
    elif case == "start after end":
        args["--start"], args["--end"] = "2019-10-01", "2019-09-01"
    elif case == "bad out":
        out = tmp_path / "out.txt"
        args["--out"] = str(out)
    elif case == "bad device":
        extra = ["--device", "tpu"]
    argv = ["apply", *[x for kv in args.items() for x in kv], *extra, "--quiet"]
    assert main(argv) == 2
    one_line_error(capsys, needle)
    assert not out.exists() and list(tmp_path.glob(".*tmp")) == []


def test_cli_apply_on_the_qlib_sample(data_dir, tmp_path, capsys) -> None:
    sample = tmp_path / "qlib"
    shutil.copytree(data_dir / "qlib_cn_sample", sample)
    out = tmp_path / "f.csv"
    assert main(["apply", "--pk", "MA10", "RSI12", "--data", str(sample), "--start", "2020-11-02",
                 "--end", "2020-12-31", "--out", str(out), "--quiet"]) == 0
    frame = read_factors(out)
    assert list(frame.columns) == ["MA10", "RSI12"]
    assert frame.index.get_level_values("datetime").max() == pd.Timestamp("2020-12-31")


def test_device_and_undefined_factor_errors(data_dir, zoo, tmp_path) -> None:
    root, key = zoo
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            select_factors(root, keys=[key], device="cuda")
    # stocks that were never CSI 300 members, asked for in the CSI 300 universe: no value anywhere
    frame = pd.read_parquet(data_dir / "ashare_2010_2020.parquet",
                            filters=[("instrument", "in", ["SZ300750", "SH600007"]),
                                     ("datetime", ">=", pd.Timestamp("2019-06-01")),
                                     ("datetime", "<=", pd.Timestamp("2019-12-31"))])
    frame.to_parquet(tmp_path / "two.parquet")
    shutil.copy(data_dir / "instruments_csi300.txt", tmp_path)
    assert len(apply_factors(select_factors(root, keys=[key]), tmp_path / "two.parquet", "2019-10-08",
                             "2019-10-31")) > 0  # in the "all" universe they have values
    with pytest.raises(DataError, match="universe 'csi300' holds no stock between"):  # said by load_panel
        apply_factors(select_factors(root, keys=[key]), tmp_path / "two.parquet", "2019-10-08", "2019-10-31",
                      universe="csi300")


def test_column_names_of_factors_with_one_name() -> None:
    a = Factor("f", "nnafc", compute=lambda p: None, meta={"key": "aaaaaaaa1111"})
    b = Factor("f", "nnafc", compute=lambda p: None, meta={"key": "bbbbbbbb2222"})
    assert column_names([a, b, pk.factor("MA10")]) == ["f[aaaaaaaa]", "f[bbbbbbbb]", "MA10"]
    with pytest.raises(ValueError, match="asked for twice"):
        column_names([pk.factor("MA10"), pk.factor("MA10")])
