"""The factor tear sheet: known answers on constructed cases, agreement with alphalens-reloaded on real
data, and `nnafc evaluate` (HTML / PNG set, one-line errors)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from nnafc.apply import apply_factors, select_factors
from nnafc.cli import main
from nnafc.data import DataError, forward_returns, load_panel
from nnafc.evaluate.tearsheet import quantile_labels, quantile_means, tearsheet, tearsheet_arrays, turnover
from nnafc.export import write_table


def one_line_error(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


# --------------------------------------------------------------------------- constructed cases


def test_quantile_labels_are_pandas_qcut() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 23))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[2] = np.repeat([1.0, 2.0], [20, 3])  # heavy ties: repeated edges, qcut raises, the day is dropped
    labels = quantile_labels(x, np.isfinite(x), 5)
    for t in range(6):
        ok = np.isfinite(x[t])
        if t == 2:
            with pytest.raises(ValueError):
                pd.qcut(x[t][ok], 5, labels=False)
            assert (labels[t] == -1).all()
            continue
        np.testing.assert_array_equal(labels[t][ok], pd.qcut(x[t][ok], 5, labels=False))
        assert (labels[t][~ok] == -1).all()
    with pytest.raises(ValueError, match="quantiles"):
        quantile_labels(x, np.isfinite(x), 1)


def test_quantile_means_and_turnover_known_answer() -> None:
    labels = np.array([[0, 0, 1, 1], [1, 0, 0, 1], [-1, -1, 1, 1]], dtype=np.int8)
    r = np.array([[1.0, 3.0, 5.0, 7.0], [1.0, 2.0, 3.0, 4.0], [9.0, 9.0, 2.0, 0.0]])
    np.testing.assert_array_equal(quantile_means(r, labels, 2), [[2, 6], [2.5, 2.5], [np.nan, 1]])
    # top quantile {2,3} -> {0,3}: one of two new; -> {2,3}: one of two new
    np.testing.assert_array_equal(turnover(labels, 1), [np.nan, 0.5, 0.5])


def test_oracle_and_noise_on_a_simulated_panel() -> None:
    """A factor equal to the forward return it is scored on has rank IC 1 and increasing quantile
    returns (the sheet scores it against the future: that is its job, not the factor's); its negative
    has -1; independent noise has a mean IC near 0."""
    rng = np.random.default_rng(1)
    close = np.cumprod(1 + 0.02 * rng.standard_normal((80, 60)), axis=0) * 10  # (T, N)
    dates = pd.bdate_range("2020-01-01", periods=80)
    oracle = forward_returns(close, 5).astype(np.float64)
    sheet = tearsheet_arrays({"oracle": oracle, "minus": -oracle, "noise": rng.standard_normal(close.shape)},
                             close, dates, horizon=5, quantiles=5)
    s = sheet.summary
    assert s.loc["oracle", "rank IC mean"] == pytest.approx(1.0) and s.loc["oracle", "days"] == 75
    assert s.loc["minus", "rank IC mean"] == pytest.approx(-1.0)
    assert abs(s.loc["noise", "rank IC mean"]) < 0.05
    assert (np.diff(sheet.quantile_returns.loc["oracle"].to_numpy()) > 0).all()
    assert s.loc["oracle", "long-short"] > 0 > s.loc["minus", "long-short"]
    assert sheet.corr.loc["oracle", "minus"] == pytest.approx(-1.0)
    assert sheet.ic_decay.loc[5, "oracle"] == pytest.approx(1.0) and sheet.ic_decay.loc[1, "oracle"] < 0.9
    assert s.loc["noise", "top q turnover"] > 0.6  # fresh noise every day: most of the top is new


# --------------------------------------------------------------------------- real data vs alphalens


@pytest.fixture(scope="module")
def factors(data_dir) -> pd.DataFrame:
    return apply_factors(select_factors(pk=["MA10", "RSI12"]), data_dir, "2019-01-02", "2019-06-28",
                         universe="csi300")


@pytest.mark.data
def test_agrees_with_alphalens(data_dir, factors) -> None:
    """Forward returns, daily rank IC, daily quintile mean returns and top-quintile turnover equal
    alphalens-reloaded's on the same factor and prices."""
    al = pytest.importorskip("alphalens", reason="alphalens-reloaded is not installed (test extra)")
    sheet = tearsheet(factors, data_dir, horizon=5, quantiles=5, universe="csi300")
    panel = load_panel(data_dir / "csi300_2010_2020.parquet", start="2019-01-02", end="2019-08-31",
                       min_history=0)
    prices = pd.DataFrame(panel["close"].astype(np.float64), index=panel.dates, columns=panel.instruments)
    ours_fwd = pd.DataFrame(forward_returns(panel["close"], 5), index=panel.dates,
                            columns=panel.instruments).stack(future_stack=True)
    for name in ("MA10", "RSI12"):
        factor = factors[name].astype(np.float64).rename_axis(["date", "asset"])  # the exported column as is
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            al_fwd = al.utils.compute_forward_returns(factor, prices, periods=(5,))
        mine = ours_fwd.reindex(al_fwd.index)
        assert mine.notna().mean() > 0.99
        np.testing.assert_allclose(mine.dropna(), al_fwd["5D"].reindex(mine.dropna().index), rtol=1e-6)

        fwd = mine.astype(np.float64).to_frame("5D")  # the values our sheet uses, in float64 as it does
        fwd.index = al_fwd.index
        data = al.utils.get_clean_factor(factor, fwd, quantiles=5, max_loss=1.0)
        ic = al.performance.factor_information_coefficient(data)["5D"]
        assert len(ic) == sheet.summary.loc[name, "days"] > 110
        np.testing.assert_allclose(sheet.rank_ic[name].reindex(ic.index), ic, rtol=0, atol=1e-12)
        qret = al.performance.mean_return_by_quantile(data, by_date=True, demeaned=False)[0]["5D"]
        qret = qret.unstack("factor_quantile")
        np.testing.assert_allclose(sheet.quantile_daily[name].reindex(qret.index), qret, rtol=1e-9,
                                   atol=1e-12)
        turn = al.performance.quantile_turnover(data["factor_quantile"], 5, period=1)
        np.testing.assert_allclose(sheet.turnover[name].reindex(turn.index), turn, atol=1e-12)
        assert sheet.summary.loc[name, "rank IC mean"] == pytest.approx(ic.mean(), abs=1e-12)


@pytest.mark.data
def test_qlib_sample_prices_give_the_parquet_numbers(data_dir) -> None:
    frame = apply_factors(select_factors(pk=["MA10"]), data_dir / "qlib_cn_sample", "2020-01-02",
                          "2020-06-30")
    a = tearsheet(frame, data_dir / "qlib_cn_sample", horizon=5)
    b = tearsheet(frame, data_dir / "csi300_2010_2020.parquet", horizon=5)
    assert a.meta["rows_unmatched"] == 0 and a.summary.loc["MA10", "days"] >= 115
    np.testing.assert_allclose(a.rank_ic["MA10"], b.rank_ic["MA10"], atol=1e-6)


# --------------------------------------------------------------------------- the command


@pytest.mark.data
def test_cli_evaluate_html_and_png_set(data_dir, factors, tmp_path, capsys) -> None:
    src = write_table(factors, tmp_path / "f.parquet")
    html = tmp_path / "report.html"
    assert main(["evaluate", str(src), "--data", str(data_dir), "--universe", "csi300", "--horizon", "5",
                 "--out", str(html)]) == 0
    out = capsys.readouterr().out
    assert "rank IC mean" in out and "MA10" in out and "RSI12" in out
    page = html.read_text()
    assert page.count("<img") == 3 and "summary" in page and "ic decay" in page
    assert main(["evaluate", str(src), "--data", str(data_dir), "--universe", "csi300",
                 "--out", str(tmp_path / "png")]) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "decay_corr.png", "factor01.png", "factor02.png", "factor_corr.csv", "ic_decay.csv",
        "quantile_returns.csv", "summary.csv"]
    summary = pd.read_csv(tmp_path / "png" / "summary.csv", index_col=0)
    sheet = tearsheet(factors, data_dir, horizon=5, universe="csi300")
    np.testing.assert_allclose(summary["rank IC mean"], sheet.summary["rank IC mean"], rtol=1e-9)


@pytest.mark.data
@pytest.mark.parametrize("args, needle", [
    (["--horizon", "0"], "horizon must be a positive integer"),
    (["--quantiles", "1"], "quantiles must be an integer >= 2"),
    (["--data", "/nonexistent/data"], "data path does not exist"),
])
def test_cli_evaluate_bad_inputs(args, needle, data_dir, factors, tmp_path, capsys) -> None:
    src = write_table(factors, tmp_path / "f.parquet")
    out = tmp_path / "r.html"
    assert main(["evaluate", str(src), "--data", str(data_dir), *args, "--out", str(out)]) == 2
    one_line_error(capsys, needle)
    assert not out.exists()


@pytest.mark.data
def test_factor_dates_outside_the_data(data_dir, tmp_path, capsys) -> None:
    late = pd.DataFrame({"datetime": pd.to_datetime(["2021-03-01", "2021-03-02"]),
                         "instrument": ["SH600000", "SH600000"], "f": [1.0, 2.0]})
    src = write_table(late, tmp_path / "late.csv")
    assert main(["evaluate", str(src), "--data", str(data_dir), "--out", str(tmp_path / "r.html")]) == 2
    one_line_error(capsys, "fall outside the data")
    with pytest.raises(DataError, match="no factor row matches"):
        tearsheet(late.assign(datetime=pd.to_datetime(["2019-03-01", "2019-03-04"]), instrument="XX1"),
                  data_dir, universe="csi300")
