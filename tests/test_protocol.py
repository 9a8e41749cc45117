"""The protocol study: candidates built resumably on real CSI 300 windows, the selection table on a
table with known answers, and the best-PK baseline chosen on train + valid days only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nnafc import metrics, pk
from nnafc.data import load_panel, make_split
from nnafc.evaluate import protocol

TINY = {"m": 10, "net_cfg": {"hidden": [8]}, "pretrain_epochs": 1, "epochs": 1, "patience": 1, "q": 10}
SIZES = {"n_train": 60, "n_valid": 15, "n_test": 15}


@pytest.fixture(scope="module")
def panel(data_dir):
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2018-01-02", end="2019-06-28",
                      universe="csi300")


def test_candidates_are_valid_configs() -> None:
    from nnafc.construct import ConstructConfig

    for cand in protocol.CANDIDATES.values():
        ConstructConfig.from_dict(cand.config)
        assert set(cand.sizes) <= {"n_train", "n_valid", "n_test"}
    assert set(protocol.SELECTION_STARTS).isdisjoint(protocol.CONFIRMATION_STARTS)
    assert max(protocol.SELECTION_STARTS) < min(protocol.CONFIRMATION_STARTS)


def test_protocol_run_builds_each_candidate_and_resumes(panel, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "SIZES", SIZES)
    cands = {"defaults": protocol.Candidate(), "longer valid": protocol.Candidate(sizes={"n_valid": 25}),
             "lr": protocol.Candidate({"lr": 1e-4})}
    table = protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                                  progress=False)
    assert list(table["candidate"]) == list(cands) and not table["from zoo"].any()
    assert table["valid IC"].between(-1, 1).all() and table["test IC"].between(-1, 1).all()
    assert table["test IC"].nunique() == 3  # three different factors
    assert set(table["window"]) == {"2018-04-02"}  # reported under the window's own first day
    longer = {**SIZES, "n_valid": 25}
    (start, window), = protocol._aligned_starts(panel, ["2018-04-02"], longer).items()
    assert window == "2018-04-02" and start < window  # the longer validation split starts earlier ...
    assert make_split(panel.dates, start, **longer).test == make_split(panel.dates, window, **SIZES).test
    again = protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                                  progress=False)
    assert again["from zoo"].all()
    pd.testing.assert_series_equal(again["test IC"], table["test IC"])


def test_selection_table_on_known_numbers() -> None:
    table = pd.DataFrame({
        "candidate": ["a", "a", "b", "b"], "valid IC": [0.10, 0.10, 0.20, 0.20],
        "test IC": [0.05, 0.07, 0.02, 0.04], "seed factor test IC": [0.06, 0.0, 0.0, 0.05],
        "seconds": [10.0, 20.0, 5.0, 5.0],
    })
    out = protocol.selection_table(table)
    assert out.loc["a", "test IC"] == pytest.approx(0.06)
    assert out.loc["b", "test / valid"] == pytest.approx(0.15)
    assert out.loc["a", "beats seed factor"] == 0.5 and out.loc["b", "beats seed factor"] == 0.5
    assert out.loc["a", "seconds per factor"] == 15.0
    assert out["chosen"].tolist() == [True, False]  # chosen on test IC, not on the higher valid IC of b


def test_best_pk_baseline_is_chosen_before_the_test_days(panel) -> None:
    split = make_split(panel.dates, "2018-04-02", **SIZES)
    factors = [pk.factor(n) for n in ("MA10", "RSI12", "ROC12", "REV5")]
    base = protocol.best_pk_baseline(panel, split, factors=factors)
    chosen_on = slice(split.train.start, split.valid.stop)
    ics = {f.name: metrics.mean_ic(metrics.period_rank_ic(f.values(panel), panel, chosen_on))
           for f in factors}
    best = max(ics, key=lambda k: abs(ics[k]))
    assert base["factor"] == best and base["sign"] == np.sign(ics[best])
    assert base["train+valid IC"] == pytest.approx(abs(ics[best]))
    test = metrics.mean_ic(metrics.period_rank_ic(pk.factor(best).values(panel), panel, split.test))
    assert base["test IC"] == pytest.approx(np.sign(ics[best]) * test)
    moved = {k: v.copy() for k, v in panel.fields.items()}
    for v in moved.values():
        v[split.valid.stop:] *= np.random.default_rng(0).uniform(0.5, 2.0, v[split.valid.stop:].shape)
    other = protocol.best_pk_baseline(replace(panel, fields=moved), split, factors=factors)
    assert other["factor"] == base["factor"]
    assert other["train+valid IC"] == pytest.approx(base["train+valid IC"])
