"""§3.3 measured: how well networks mimic prior knowledge (Tables 2-3), how one factor is built
(Fig. 6) and what the pruning rate does.

Each function runs the public stages of `nnafc.construct` (pretrain, prune, train_ic) and only
measures; the training loop itself lives in `construct`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from nnafc import construct, metrics, nets, pk
from nnafc.data import Panel, Split, Standardiser
from nnafc.evaluate.saliency import saliency_map


def _days(panel: Panel, start: str, end: str, step: int = 1) -> np.ndarray:
    """Day positions in [start, end], every `step`-th one (pre-training needs no consecutive days)."""
    lo = panel.dates.searchsorted(pd.Timestamp(start))
    hi = panel.dates.searchsorted(pd.Timestamp(end), "right")
    if hi - lo < 1:
        raise ValueError(f"no trading days between {start} and {end} in {panel}")
    return np.arange(lo, hi, step)


def mimic_table(panel: Panel, seeds: dict[str, str], structures=("fcn", "crossconv"),
                train: tuple[str, str] = ("2010-02-01", "2018-03-31"),
                test: tuple[str, str] = ("2018-05-01", "2020-03-31"),
                cfg: construct.ConstructConfig | dict | None = None, day_step: int = 1) -> pd.DataFrame:
    """Tables 2-3: pre-train each structure on each seed over `train`, measure on `test`.

    `seeds` maps the paper's row name (MA, EMA, ...) to a PK factor (e.g. "MA10"). Rows: one per
    (factor, structure) with train/test MSE (Eq. 15 on the standardised seed), error rate and
    buy/sell accuracy (see `construct.PretrainReport`), and seconds. The standardiser is fitted
    on the training days only.
    """
    cfg = construct.as_config(cfg)
    train_days, test_days = _days(panel, *train, day_step), _days(panel, *test, day_step)
    st = Standardiser(cfg.normalisation, cfg.m).fit(panel, slice(int(train_days[0]), int(train_days[-1]) + 1))
    w_train, w_test = st.transform(panel, train_days), st.transform(panel, test_days)
    rows = []
    for label, seed in seeds.items():
        values = pk.compute(seed, panel)  # (T, N), causal
        for structure in structures:
            torch.manual_seed(cfg.seed)
            net = nets.build(structure, m=cfg.m).to(cfg.device)
            t0 = pd.Timestamp.now()
            report = construct.pretrain(net, w_train, values, cfg, holdout=(w_test, values))
            rows.append({
                "factor": label, "seed factor": seed, "structure": structure,
                "train MSE": report.train_mse, "test MSE": report.test_mse,
                "train error rate": report.train_error_rate, "test error rate": report.test_error_rate,
                "train accuracy": report.train_accuracy, "test accuracy": report.test_accuracy,
                "seconds": (pd.Timestamp.now() - t0).total_seconds(),
            })
    return pd.DataFrame(rows)


def best_structure(table: pd.DataFrame) -> pd.DataFrame:
    """Per factor, the structure with the lower TRAINING MSE (never chosen on test), as Tables 2-3."""
    best = table.loc[table.groupby("factor", sort=False)["train MSE"].idxmin()]
    return best.set_index("factor")


def split_ics(values: np.ndarray, panel: Panel, split: Split, horizon: int = 5) -> dict[str, float]:
    """Mean daily rank IC of `(T, N)` values on each part of a split, labels cut at each part's end."""
    return {part: metrics.mean_ic(metrics.period_rank_ic(values, panel, getattr(split, part), horizon))
            for part in ("train", "valid", "test")}


@dataclass
class ConstructionTrace:
    """One factor's construction (Fig. 6): ICs at each stage and saliency before / after IC training."""

    ic: pd.DataFrame  # rows seed / pre-trained + pruned / constructed; columns train / valid / test
    saliency_before: np.ndarray  # (5, m) after pre-training and pruning
    saliency_after: np.ndarray  # (5, m) after IC training
    curve: pd.DataFrame  # per epoch: train loss, validation rank IC
    best_epoch: int


def construction_trace(seed: str, net: str, panel: Panel, split: Split,
                       cfg: construct.ConstructConfig | dict | None = None) -> ConstructionTrace:
    """Run the three stages of `construct` on one seed and record what each changed.

    Construction reads the panel only up to the end of validation (`construct.prepare`); the
    test ICs are computed afterwards, for reporting.
    """
    cfg = replace(construct.as_config(cfg), net=net)
    with construct.deterministic(cfg.device):
        torch.manual_seed(cfg.seed)
        model = nets.build(net, m=cfg.m, **cfg.net_cfg).to(cfg.device)
        data = construct.prepare(panel, split, cfg)
        seed_cut = pk.compute(seed, data.panel)
        construct.pretrain(model, data.train.windows, seed_cut, cfg, holdout=(data.valid.windows, seed_cut))
        masks = construct.prune(model, cfg.prune_rate)
        before_values = construct.NetScorer(model, data.standardiser, cfg.device, masks=masks)(panel)
        before_map = saliency_map(model, data.train.windows)
        report = construct.train_ic(model, data, cfg, masks=masks)
    after_values = construct.NetScorer(model, data.standardiser, cfg.device, masks=masks)(panel)
    after_map = saliency_map(model, data.train.windows)
    ic = pd.DataFrame({
        f"seed {seed}": split_ics(pk.compute(seed, panel), panel, split, cfg.horizon),
        "pre-trained + pruned": split_ics(before_values, panel, split, cfg.horizon),
        "constructed (IC-trained)": split_ics(after_values, panel, split, cfg.horizon),
    }).T
    curve = pd.DataFrame(report.curve)
    return ConstructionTrace(ic, before_map, after_map, curve, report.best_epoch)


def pruning_effect(seed: str, net: str, panel: Panel, split: Split, rates=(0.0, 0.2, 0.35, 0.5),
                   cfg: construct.ConstructConfig | dict | None = None) -> pd.DataFrame:
    """Per pruning rate: the constructed factor's validation rank IC and its rank correlation with the seed.

    Both measured on the validation days only, where the rate would be chosen.
    """
    cfg = construct.as_config(cfg)
    seed_values = pk.compute(seed, panel)
    days = split.valid
    rows = []
    for rate in rates:
        factor = construct.construct_factor(seed, net, panel, split, replace(cfg, prune_rate=float(rate)))
        values = factor.values(panel)
        corr = metrics.rank_ic(values[days], seed_values[days], panel.in_universe[days])
        rows.append({
            "prune rate": float(rate),
            "valid rank IC": factor.meta["ic"]["constructed"]["valid"],
            "rank corr with seed": float(np.nanmean(corr)),
        })
    return pd.DataFrame(rows).set_index("prune rate")


def mimic_periods(panel: Panel, train: tuple[str, str], test: tuple[str, str]) -> tuple[tuple, tuple]:
    """The requested periods, or an 80/20 split of the panel when it does not cover them
    (the simulated market, a short custom dataset)."""
    covered = panel.dates[0] <= pd.Timestamp(train[0]) and panel.dates[-1] >= pd.Timestamp(test[1])
    if covered:
        return tuple(train), tuple(test)
    cut = panel.dates[int(0.8 * len(panel.dates))]
    first, last = (str(d.date()) for d in (panel.dates[0], panel.dates[-1]))
    return (first, str(cut.date())), (str((cut + pd.Timedelta(days=1)).date()), last)


def field_shares(before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
    """Share of absolute saliency on each input field (open ... volume), before / after IC training."""
    from nnafc.data import FIELDS

    def share(smap: np.ndarray) -> np.ndarray:
        weight = np.abs(np.asarray(smap)).sum(1)  # (5,)
        return weight / weight.sum()

    return pd.DataFrame({"before IC training": share(before), "after IC training": share(after)},
                        index=list(FIELDS))
