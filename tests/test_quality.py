"""evaluate.quality: runs that construct, then load, the same factors, and the summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc.data import Panel, load_panel
from nnafc.evaluate import quality

SIZES = {"n_train": 60, "n_valid": 15, "n_test": 15}
TINY = {"m": 10, "net_cfg": {"hidden": [8]}, "pretrain_epochs": 1, "epochs": 2, "q": 10}


@pytest.fixture(scope="module")
def panel(data_dir: Path) -> Panel:
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2018-06-01", end="2019-12-31",
                      universe="csi300")


def test_run_constructs_then_loads_the_same_factors(panel: Panel, tmp_path: Path) -> None:
    starts = [str(panel.dates[40].date()), str(panel.dates[140].date())]
    first = quality.quality_run(panel, ["MA10", "RSI12"], starts, cfg=TINY, zoo=tmp_path,
                                init_seeds=(0, 1), progress=False, **SIZES)
    assert len(first) == 2 * 2 * 2 and not first["from zoo"].any()
    assert list(first["window"].unique()) == starts  # one window per start, in order
    assert set(first["init seed"]) == {0, 1}
    again = quality.quality_run(panel, ["MA10", "RSI12"], starts, cfg=TINY, zoo=tmp_path,
                                init_seeds=(0, 1), progress=False, **SIZES)
    assert again["from zoo"].all()
    cols = ["window", "seed factor", "init seed", "seed factor test IC", "valid IC", "test IC", "best epoch"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    # the stored ICs are the measured ones: the seed's test IC is that of the PK factor itself
    assert first["test IC"].between(-1, 1).all() and first["seed factor test IC"].notna().all()
    ma = first[(first["seed factor"] == "MA10")]
    # same seed factor, same days: one value
    assert ma.groupby("window")["seed factor test IC"].nunique().eq(1).all()


def test_summary_on_a_constructed_table() -> None:
    table = pd.DataFrame({
        "window": ["a", "a", "b", "b"], "seed factor": ["x", "y", "x", "y"], "init seed": [0, 0, 0, 0],
        "seed factor test IC": [0.00, 0.20, 0.05, 0.05], "valid IC": [0.1, 0.1, 0.2, 0.2],
        "test IC": [0.10, 0.10, 0.06, 0.12],
    })
    s = quality.quality_summary(table, aim=0.1)
    assert list(s.index) == ["a", "b", "all windows"]
    assert s.loc["a", "test IC"] == pytest.approx(0.10) and s.loc["b", "test IC"] == pytest.approx(0.09)
    assert s.loc["all windows", "test IC"] == pytest.approx(0.095)
    assert s.loc["a", "std"] == pytest.approx(0.0)
    assert s.loc["b", "std"] == pytest.approx(np.std([0.06, 0.12], ddof=1))
    assert s.loc["a", "beats seed factor"] == 0.5 and s.loc["b", "beats seed factor"] == 1.0
    assert s.loc["all windows", "beats seed factor"] == 0.75
    table.loc[1, "seed factor test IC"] = -0.15  # a reversal seed: beaten as signed, not as |IC|
    s = quality.quality_summary(table, aim=0.1)
    assert s.loc["a", "beats seed factor"] == 1.0 and s.loc["a", "beats |seed factor|"] == 0.5
    assert s.loc["all windows", "factors"] == 4
    assert bool(s.loc["a", "≥ 0.1"]) and not bool(s.loc["b", "≥ 0.1"])


def test_by_seed_on_a_constructed_table() -> None:
    table = pd.DataFrame({
        "window": ["a", "a", "b", "b"], "seed factor": ["x", "y", "x", "y"], "init seed": [0, 0, 0, 0],
        "seed factor test IC": [0.00, 0.20, 0.04, 0.10], "test IC": [0.10, 0.02, 0.06, 0.04],
    })
    table_by_seed = quality.by_seed(table)
    assert list(table_by_seed.index) == ["x", "y"]  # best mean first
    assert table_by_seed.loc["x", "mean"] == pytest.approx(0.08)
    assert table_by_seed.loc["y", "seed's own"] == pytest.approx(0.15)
    assert table_by_seed.loc["y", "b"] == pytest.approx(0.04)
