"""The paper's numbers sit beside ours; a number we did not measure never borrows the paper's."""

import numpy as np
import pandas as pd

from nnafc import paper


def test_beside_aligns_rows_and_keeps_missing_as_nan():
    ours = pd.DataFrame({"IC": [0.05]}, index=pd.Index(["Only GP"], name="scheme"))
    table = paper.beside(ours, paper.TABLE4_SCHEMES)
    assert list(table.columns) == ["IC ours", "IC paper"]
    assert table.loc["Only GP", "IC ours"] == 0.05
    assert table.loc["Only GP", "IC paper"] == paper.TABLE4_SCHEMES.loc["Only GP", "IC"]
    assert np.isnan(table.loc["Only NNAFC", "IC ours"])


def test_tables_are_complete():
    assert paper.TABLE2_MSE.shape == paper.TABLE3_ACCURACY.shape == (8, 2)
    assert len(paper.TABLE5_WINDOWS) == len(paper.TABLE5_RETURNS) == 4
    assert paper.TABLE7_STRATEGY.notna().all().all()
