"""Qlib's CSI 300 protocol: its label, measures and settings with known answers, and a short run on the
real CSI 300 data that no price after the test period can change."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from nnafc import metrics, pk
from nnafc.data.locate import source_for
from nnafc.data.sources import load_panel
from nnafc.data.windows import period_labels
from nnafc.evaluate import qlib_protocol as qp
from nnafc.params import ROOT, ParamsError


def test_lagged_label_is_qlibs_ref_close_minus_2_over_ref_close_minus_1():
    close = np.array([[10.0], [11.0], [12.1], [9.0], [9.9], [10.0]], dtype=np.float32)  # (T, 1)
    got = period_labels(close, slice(1, 6), horizon=1, lag=1)[:, 0]  # days 1..5
    expect = [close[t + 2, 0] / close[t + 1, 0] - 1 for t in (1, 2, 3)]
    np.testing.assert_allclose(got[:3], expect, rtol=1e-5)
    assert np.isnan(got[3:]).all()  # would read day 6 and 7: past the period's last day
    no_lag = period_labels(close, slice(1, 6), 2)
    np.testing.assert_array_equal(no_lag, period_labels(close, slice(1, 6), 2, lag=0))


def test_risk_analysis_is_qlibs_sum_mode():
    r = pd.Series([0.01, -0.02, 0.03, 0.0])
    got = qp.risk_analysis(r, annualization=238)
    assert got["annualized return"] == pytest.approx(0.005 * 238)
    assert got["information ratio"] == pytest.approx(0.005 / r.std(ddof=1) * np.sqrt(238))
    assert got["max drawdown"] == pytest.approx(-0.02)  # cumulative sum 0.01 -> -0.01


def test_signal_ics_of_the_label_itself_and_its_negative():
    rng = np.random.default_rng(0)
    close = 10 * np.cumprod(1 + rng.normal(0, 0.02, (30, 40)), axis=0)

    class _Panel:  # the two things signal_ics reads
        fields = {"close": close}
        in_universe = np.ones((30, 40), dtype=bool)

        def __getitem__(self, name):
            return self.fields[name]

    days = slice(5, 25)
    label = np.full(close.shape, np.nan)
    label[days] = period_labels(close, days, 1, 1)
    same = metrics.signal_ics(label, _Panel(), days, 1, 1)
    flipped = metrics.signal_ics(-label, _Panel(), days, 1, 1)
    assert same["IC"] == pytest.approx(1.0) and same["Rank IC"] == pytest.approx(1.0)
    assert flipped["Rank IC"] == pytest.approx(-1.0)


def test_the_parameter_file_is_qlibs_settings():
    protocol = qp.load_protocol(ROOT / "params" / "qlib-csi300.yaml")
    assert protocol == qp.QlibProtocol()
    assert (protocol.top_k, protocol.n_drop, protocol.buy_cost, protocol.sell_cost) == (50, 5, 0.0005, 0.0015)


@pytest.mark.parametrize(("text", "message"), [
    ("top_kk: 50\n", "unknown qlib protocol key 'top_kk' (did you mean 'top_k'?)"),
    ("valid: ['2014-06-01', '2016-12-31']\n", "train, valid and test must follow each other"),
    ("n_drop: 60\n", "n_drop must be an integer in 0..top_k"),
    ("benchmark: SPX\n", "benchmark must be one of ['ZZ500', 'HS300']"),
    ("train: ['2010-01-01'\n", "not valid YAML"),
    ("- a\n", "expected a mapping of protocol settings"),
    ("model: {max_deph: [3]}\n", "model: "),
    ("train: 2010\n", "q.yaml: "),
    ("buy_cost: cheap\n", "q.yaml: "),
])
def test_bad_protocol_files_fail_in_one_line(tmp_path, text, message):
    path = tmp_path / "q.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=re.escape(message)):
        qp.load_protocol(path)


SHORT = qp.QlibProtocol(train=("2016-01-01", "2016-12-31"), valid=("2017-01-01", "2017-03-31"),
                        test=("2017-04-01", "2017-06-30"), top_k=20, n_drop=2,
                        model={"max_depth": [3], "learning_rate": [0.1], "n_estimators": [30]})


def test_the_protocol_split_on_real_data(data_dir):
    panel = load_panel(source_for(data_dir, "csi300"), end="2020-08-31", universe="csi300")
    split = qp.protocol_split(panel, qp.QlibProtocol())
    d = split.dates()
    assert d["train"][0] == panel.dates[65] and d["train"][-1] <= pd.Timestamp("2014-12-31")  # warm-up first
    assert d["valid"][0] >= pd.Timestamp("2015-01-01") and d["valid"][-1] <= pd.Timestamp("2016-12-31")
    assert d["test"][0] >= pd.Timestamp("2017-01-01") and d["test"][-1] <= pd.Timestamp("2020-08-01")


def test_a_short_protocol_run_sees_no_price_after_its_test_period(data_dir):
    factors = [pk.factor(n) for n in ("MA10", "RSI12", "BOLL20")]

    class _Study:  # a study that built three "fcn" factors on exactly this split
        def sets_for(self, split, panel, device):
            return {"fcn": [pk.factor(n) for n in ("ROC20", "VOL20", "PSY12")]}

    rows = []
    for corrupt in (False, True):
        panel = load_panel(source_for(data_dir, "csi300"), start="2015-06-01", end="2017-12-31",
                           universe="csi300")
        if corrupt:
            cut = int(panel.dates.searchsorted(pd.Timestamp(SHORT.test[1]), side="right"))
            for name in ("open", "high", "low", "close", "volume"):
                panel[name][cut:] *= 1.5
        sets = qp.protocol_sets(panel, SHORT, factors, _Study())
        assert list(sets) == ["PK 50", "fcn Combine 50"] and len(sets["fcn Combine 50"]) == 3  # of 6
        rows.append(qp.run_protocol(panel, sets, SHORT, data_dir, n_jobs=1))
    pd.testing.assert_frame_equal(rows[0], rows[1])
    row = rows[0].loc["PK 50"]
    assert all(np.isfinite(row[m]) for m in qp.METRICS) and row["factors"] == 3
    assert -1 < row["Rank IC"] < 1 and row["max drawdown"] <= 0
    facts = qp.protocol_facts(rows[0])
    assert facts.loc["PK 50", "published rows"] == len(qp.QLIB_PUBLISHED)
    assert list(qp.beside_qlib(rows[0])["source"])[:2] == ["ours", "ours"]
    said = qp.summary(rows[0])
    assert said["rank_ic"] == row["Rank IC"] and said["combine"].startswith("fcn Combine 50: Rank IC")
    assert qp.summary(None)["days"] == "not run" and np.isnan(qp.summary(None)["rank_ic"])
