"""The numbers the paper reports, transcribed once, so every table can put them beside ours.

They are never used as inputs or expectations: only as the "paper" column of a comparison.
Source: ../shared/paper/nnafc-paper.txt (Tables 2-7). Percentages are fractions.
"""

from __future__ import annotations

import pandas as pd

# Table 2: pre-training MSE of the network output against the indicator.
TABLE2_MSE = pd.DataFrame(
    {
        "train": [0.00240, 0.00371, 0.00685, 0.16262, 0.00291, 0.04314, 0.05336, 0.00357],
        "test": [0.00324, 0.00635, 0.01392, 0.16525, 0.00286, 0.05257, 0.05582, 0.00352],
    },
    index=pd.Index(["MA", "EMA", "MACD", "RSI", "Top10", "DC", "BOLL", "PVT"], name="factor"),  # as Table 2
)

# Table 3: buy/sell accuracy of the pre-trained network against the indicator's own rule.
TABLE3_ACCURACY = pd.DataFrame(
    {
        "train": [0.9392, 0.9166, 0.9282, 0.9528, 0.9509, 0.9805, 0.9453, 0.9099],
        "test": [0.9348, 0.8781, 0.9377, 0.8911, 0.9125, 0.9147, 0.8675, 0.8475],
    },
    index=TABLE2_MSE.index,
)

# Table 4: out-of-sample IC and diversity of the three schemes (FCN, §4.2).
TABLE4_SCHEMES = pd.DataFrame(
    {"IC": [0.094, 0.122, 0.107], "diversity": [17.21, 25.44, 21.65]},
    index=pd.Index(["Only GP", "GP and NNAFC", "Only NNAFC"], name="scheme"),
)

# Table 5: strategy absolute return over each two-month test window.
TABLE5_RETURNS = pd.DataFrame(
    {
        "Only GP": [0.0259, 0.0540, -0.0527, 0.1300],
        "GP and NNAFC": [0.0574, 0.1026, -0.0495, 0.1562],
        "Only NNAFC": [0.0452, 0.0833, -0.0416, 0.1541],
        "ZZ500": [0.0167, 0.0253, -0.0698, 0.1375],
    },
    index=pd.Index(
        ["2015 -> 2016-02..03", "2016 -> 2017-02..03", "2017 -> 2018-02..03", "2018 -> 2019-02..03"],
        name="train -> test",
    ),
)
# The windows of Table 5: training year, then the two test months.
TABLE5_WINDOWS = [
    ("2015-01-01", "2015-12-31", "2016-02-01", "2016-03-31"),
    ("2016-01-01", "2016-12-31", "2017-02-01", "2017-03-31"),
    ("2017-01-01", "2017-12-31", "2018-02-01", "2018-03-31"),
    ("2018-01-01", "2018-12-31", "2019-02-01", "2019-03-31"),
]

# Table 6: IC, diversity and time for 50 factors per feature extractor (1080 Ti GPU).
TABLE6_EXTRACTORS = pd.DataFrame(
    {
        "IC": [0.072, 0.124, 0.123, 0.108, 0.170, 0.105, 0.111],
        "diversity": [17.532, 22.151, 20.194, 21.403, 24.469, 21.139, 25.257],
        "hours": [0.215, 0.785, 1.365, 3.450, 1.300, 2.725, 4.151],
    },
    index=pd.Index(["gp", "fcn", "lenet", "resnet", "lstm", "tcn", "transformer"], name="network"),
)

# Table 7: annualised (excess) revenue, max drawdown and Sharpe of the XGBoost strategy.
TABLE7_STRATEGY = pd.DataFrame(
    {
        "revenue": [0.196, 0.186, 0.247, 0.176, 0.254, 0.296, 0.275, 0.293, 0.299, 0.269, 0.272],
        "max_drawdown": [0.135, 0.203, 0.189, 0.253, 0.148, 0.157, 0.164, 0.172, 0.150, 0.168, 0.151],
        "sharpe": [1.982, 1.606, 2.314, 1.435, 2.672, 3.167, 2.921, 2.787, 3.289, 2.729, 2.806],
    },
    index=pd.Index(
        [
            "ZZ500", "HS300", "PK 50", "GP 50", "GP Combine 50", "fcn Combine 50", "lenet Combine 50",
            "resnet Combine 50", "lstm Combine 50", "tcn Combine 50", "transformer Combine 50",
        ],
        name="group",
    ),
)


def beside(ours: pd.DataFrame, paper: pd.DataFrame, suffixes=("ours", "paper")) -> pd.DataFrame:
    """Our table and the paper's, column by column (`IC ours`, `IC paper`, ...), rows aligned.

    Rows missing on either side stay, as NaN: a number we did not measure shows as missing,
    never as the paper's.
    """
    cols = [c for c in ours.columns if c in paper.columns]
    out = pd.DataFrame(index=ours.index.union(paper.index, sort=False))
    for col in cols:
        out[f"{col} {suffixes[0]}"] = ours[col]
        out[f"{col} {suffixes[1]}"] = paper[col]
    return out
