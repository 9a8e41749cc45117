"""NNAFC itself (§3.2-3.3): mimic a seed factor, prune, then train the network on rank IC.

    cfg = ConstructConfig(epochs=20)
    split = make_split(panel.dates, "2016-01-01")          # 250 / 30 / 90 trading days (§4.1)
    f = construct_factor("MA10", "fcn", panel, split, cfg)  # a Factor, origin "nnafc"
    f.values(panel)                                         # (T, N), any panel with the same fields

The three stages, each usable on its own:

1. `pretrain` (Eq. 15): MSE between the net's output and the seed factor's cross-sectionally
   standardised values -- prior knowledge enters the weights (§3.3).
2. `prune` (Eq. 16): fixed 0/1 magnitude masks M, f(x) = (W·M)ᵀx + b for the rest of training.
3. `train_ic` (Eq. 14): maximise the kernel rank IC averaged over q random training days per
   batch, keep the epoch with the best exact rank IC on the validation days.

No look-ahead, by construction: everything before the final network is computed on the panel
cut after the last validation day; training labels end at the last training day (no label
reads a validation price) and validation labels at the last validation day. The test days are
read once, after construction, to report the factor's test IC.

Batches are whole trading days: one forward pass scores all stocks of the q days at once, and
the windows of a split are built once. Same `seed` + config -> bit-identical values on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nnafc import losses, metrics, nets
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.data.windows import Standardiser, Windows, period_labels
from nnafc.factor import Factor
from nnafc.params import unknown_key
from nnafc.progress import bar as progress_bar

LOSSES = ("kernel", "softrank")
NORMALISATIONS = ("window", "train_zscore")
TARGET_NORMS = ("cross_section", "pooled")
INFERENCE_ROWS = 1 << 10  # windows per inference chunk: on a CPU, 1,024 rows keep a conv net's activations
#   in cache -- 3-5x faster than 65,536 for ResNet / TCN / Transformer (benchmarks/bench_inference.py)
MIN_DAY_STOCKS = 10  # a day with fewer labelled stocks has no meaningful cross-sectional IC: skipped


# ---------------------------------------------------------------------------- configuration


@dataclass
class ConstructConfig:
    """Everything that defines one constructed factor (besides the seed, the data and the split)."""

    net: str = "fcn"  # feature extractor, one of nets.names(); §4.2's headline results use fcn
    net_cfg: dict = field(default_factory=dict)  # overrides of that net's own config, validated by nets
    m: int = 30  # input window length in trading days (§4.1: the past 30 days)
    horizon: int = 5  # Δt of Eq. 12: the label is the 5-day forward return (weekly)
    normalisation: str = "window"  # "window": scale-free per window (no fitted state, any stock);
    #   "train_zscore": §4.1's per-stock mean/std over the training days
    # --- pre-training (Eq. 15)
    pretrain_epochs: int = 10  # passes over the training days; 0 skips pre-training (random init)
    pretrain_lr: float = 1e-3  # Adam step size of the MSE fit
    pretrain_q: int = 5  # trading days (all their stocks) per MSE step: whole days, as crossconv needs
    report_every: int = 1  # the train-set measures reported in meta (the mimic fit, train rank ICs)
    #   read every k-th training day: on a large universe they cost a pass over every training row
    #   per net; the factor itself does not change
    pretrain_stock_fraction: float = 1.0  # share of each step's stocks fitted (a random subset per
    #   step, as stock_fraction): mimicking a seed needs far fewer rows than a pass over every stock
    target_norm: str = "pooled"  # seed z-scored over all training rows ("pooled") or per day
    #   ("cross_section"); pooled is the one a per-stock net can fit (MA10 error rate 0.04 vs 0.9)
    target_clip: float = 3.0  # seed z-scores clipped at ±3: §3.3 removes outliers so MSE fits the bulk
    # --- pruning (Eq. 16)
    prune_rate: float = 0.3  # fraction of every weight matrix masked to 0 (paper: 0.2-0.5)
    # --- IC training (Eq. 14)
    epochs: int = 50  # maximum passes; early stopping on validation usually ends sooner
    steps_per_epoch: int | None = None  # batches per epoch; None: one pass over the training days
    q: int = 20  # trading days per batch (§4.1: IC averaged over 20 random trading days)
    lr: float = 3e-3  # AdamW step size; chosen on validation IC (all A-shares, 2016 window: 3e-3
    #   0.121 > 1e-3 0.115; train_zscore inputs 0.028)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    patience: int = 10  # epochs without a better validation rank IC before stopping (25 labelled
    #   validation days make a noisy IC: a short patience stops before training has moved the net)
    valid_smoothing: int = 1  # model choice and early stopping on the mean validation IC of the last
    #   k epochs (1: the epoch's own IC). 25 labelled validation days make one epoch's IC noisy
    stock_fraction: float = 1.0  # share of each batch day's stocks that enter the loss and the
    #   forward pass (a random subset per step): cheaper steps, and a regulariser
    keep_pretrained: bool = False  # may model choice return the un-trained seed mimic (epoch 0)?
    #   False: the factor is always an IC-trained net, as in the paper (epoch 0 is only reported)
    loss: str = "kernel"  # "kernel": Eq. 13-14 (the paper); "softrank": differentiable soft ranks
    p: float = 1.83  # steepness of the kernel g(x) of Eq. 13
    decorrelation: float = 0.0  # weight of the mean squared kernel IC with a pool of existing
    #   factors (the diversity term of Eq. 7); 0 = off
    residual: float = 0.0  # the residual form (a departure from the paper; 0 = off): the factor is
    #   residual · s · rank_score(seed) + net(x), s the sign of the seed's training rank IC -- the
    #   net learns a correction to its seed's cross-sectional rank instead of replacing it
    # --- execution
    device: str = "cpu"  # "cpu" or "cuda"
    seed: int = 0  # seeds the init and the day sampling: same seed + config -> same factor
    progress: bool = False  # tqdm bar over epochs
    batch_rows: int = INFERENCE_ROWS  # windows per inference chunk (whole days): speed, memory, not results

    def __post_init__(self) -> None:
        if self.net not in nets.names():
            raise ValueError(unknown_key("net", [str(self.net)], nets.names()))
        if not isinstance(self.net_cfg, dict):
            raise ValueError(f"net_cfg must be a mapping of {self.net} config keys, got {self.net_cfg!r}")
        nets.make_config(self.net, **self.net_cfg)  # unknown keys / bad values fail here, not mid-run
        for name in ("m", "horizon", "pretrain_q", "epochs", "q", "patience", "batch_rows",
                     "valid_smoothing", "report_every"):
            _check_int(name, getattr(self, name), 1)
        _check_int("pretrain_epochs", self.pretrain_epochs, 0)
        _check_int("seed", self.seed, 0)
        if self.steps_per_epoch is not None:
            _check_int("steps_per_epoch", self.steps_per_epoch, 1)
        for name in ("pretrain_lr", "lr", "p", "target_clip"):
            _check_float(name, getattr(self, name), positive=True)
        for name in ("weight_decay", "decorrelation", "residual"):
            _check_float(name, getattr(self, name), positive=False)
        _check_float("prune_rate", self.prune_rate, positive=False)
        if self.prune_rate >= 1:
            raise ValueError(f"prune_rate must be in [0, 1), got {self.prune_rate}")
        for name in ("stock_fraction", "pretrain_stock_fraction"):
            _check_float(name, getattr(self, name), positive=True)
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.target_norm not in TARGET_NORMS:
            raise ValueError(f"target_norm must be one of {list(TARGET_NORMS)}, got {self.target_norm!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {list(NORMALISATIONS)}, "
                             f"got {self.normalisation!r}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        for name in ("progress", "keep_pretrained"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ConstructConfig:
        """A config from a mapping (YAML); an unknown key raises ValueError naming the closest one."""
        d = dict(d or {})
        valid = [f.name for f in fields(cls)]
        wrong = unknown_key("construct config key", d, valid)
        if wrong:
            raise ValueError(wrong)
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (what the zoo hashes and stores)."""
        d = asdict(self)
        d["net_cfg"] = _jsonable(d["net_cfg"])
        return d


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(name: str, value: Any, positive: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind} number, got {value!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def as_config(cfg: ConstructConfig | dict | None) -> ConstructConfig:
    """`cfg` as a ConstructConfig (a mapping is validated, None gives the defaults)."""
    if isinstance(cfg, ConstructConfig):
        return cfg
    return ConstructConfig.from_dict(cfg)


# ---------------------------------------------------------------------------- days as batches


class DaySet:
    """The windows of a set of days, laid out for `(q, n)` day batches (§3.2: one batch = whole days).

    `index[d, j]` is the row of the j-th stock of the d-th day (-1 pads days with fewer stocks),
    so a batch of days is one gather, one forward pass over all their stocks, one scatter.
    """

    def __init__(self, windows: Windows, label: torch.Tensor | None = None, device: str = "cpu") -> None:
        day = windows.day.numpy()
        if len(day) and np.any(np.diff(day) < 0):
            raise ValueError("windows must be sorted by day")
        self.windows = windows
        self.x = windows.x.to(device)  # (R, 5, m)
        self.day = windows.day.to(device)  # (R,) panel day positions
        self.days, start, counts = np.unique(day, return_index=True, return_counts=True)  # (D,)
        n_max = int(counts.max()) if len(counts) else 0
        inv = np.repeat(np.arange(len(self.days)), counts)  # (R,) local day of each row
        pos = np.arange(len(day)) - start[inv]  # (R,) place of the row within its day
        index = np.full((len(self.days), n_max), -1, dtype=np.int64)
        index[inv, pos] = np.arange(len(day))
        self.index = torch.from_numpy(index).to(device)  # (D, n_max)
        self.valid = self.index >= 0  # (D, n_max)
        self.label = None if label is None else self.pad(label)  # (D, n_max), NaN where missing
        self.base: torch.Tensor | None = None  # (R,) added to the net's output (the residual form)

    def __len__(self) -> int:
        return len(self.days)

    def pad(self, values: torch.Tensor | np.ndarray) -> torch.Tensor:
        """`(R,)` per-row values -> `(D, n_max)`, NaN on pads."""
        values = torch.as_tensor(values, dtype=torch.float32).to(self.index.device)
        out = torch.full(self.index.shape, float("nan"), device=self.index.device)
        out[self.valid] = values[self.index[self.valid]]
        return out

    def forward(self, net: nn.Module, b: torch.Tensor | np.ndarray,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """Net outputs for all stocks of days `b` (positions into `days`), `(q, n_max)`, 0 on pads
        (and, with a `(q, n_max)` bool `keep`, 0 on the stocks it leaves out: they are not run)."""
        b = torch.as_tensor(b, device=self.index.device)
        valid = self.valid[b] if keep is None else self.valid[b] & keep  # (q, n_max)
        rows = self.index[b][valid]  # (r,) day-major, as the windows are
        out = net(self.x[rows], self.day[rows])  # (r,)
        if self.base is not None:
            out = out + self.base[rows]
        pred = out.new_zeros(valid.shape)  # (q, n_max)
        return pred.masked_scatter(valid, out)

    def predict(self, net: nn.Module, batch_rows: int = INFERENCE_ROWS) -> torch.Tensor:
        """`(R,)` outputs for every row, in eval mode, in chunks of `batch_rows` rows (whole days
        for a cross-sectional net, whose stock's output depends on its day's others)."""
        was = net.training
        net.eval()
        outs = []
        try:
            with torch.no_grad():
                if getattr(net, "cross_sectional", True):  # a net of unknown kind: whole days
                    for b in _day_chunks(self.valid.sum(1).cpu().numpy(), batch_rows):
                        outs.append(self.forward(net, b)[self.valid[b]])
                else:  # rows are day-major, in `valid`'s order
                    for a in range(0, len(self.x), batch_rows):
                        out = net(self.x[a : a + batch_rows], self.day[a : a + batch_rows])
                        outs.append(out if self.base is None else out + self.base[a : a + batch_rows])
        finally:
            net.train(was)
        return torch.cat(outs) if outs else self.x.new_zeros(0)

    def every(self, k: int) -> DaySet:
        """The DaySet of every k-th of these days (labels and base kept); itself when k == 1."""
        if k == 1:
            return self
        rows = torch.from_numpy(np.flatnonzero(np.isin(self.windows.day.numpy(), self.days[::k])))
        w = self.windows
        sub = DaySet(Windows(w.x[rows], w.day[rows], w.stock[rows]), None, str(self.index.device))
        if self.label is not None:
            sub.label = sub.pad(self.label[self.valid][rows.to(self.index.device)])  # row order = valid order
        if self.base is not None:
            sub.base = self.base[rows.to(self.base.device)]
        return sub


def stock_subset(y: torch.Tensor, fraction: float,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A seeded random `fraction` of each batch day's stocks: `(q, n)` labels with the others NaN,
    and the `(q, n)` bool mask to pass to `DaySet.forward` (None, and `y` as it is, at 1)."""
    if fraction >= 1:
        return y, None
    keep = torch.rand(y.shape, generator=gen, device=y.device) < fraction
    return torch.where(keep, y, torch.full_like(y, float("nan"))), keep


def _day_chunks(counts: np.ndarray, batch_rows: int) -> Iterator[np.ndarray]:
    """Consecutive day positions whose row counts sum to at most `batch_rows` (at least one day)."""
    start, total = 0, 0
    for d, c in enumerate(counts):
        if total and total + c > batch_rows:
            yield np.arange(start, d)
            start, total = d, 0
        total += int(c)
    if start < len(counts):
        yield np.arange(start, len(counts))


def standardise_target(values: torch.Tensor, day: torch.Tensor, clip: float = 3.0,
                       method: str = "pooled", ref: torch.Tensor | None = None) -> torch.Tensor:
    """The seed's `(R,)` values as a pre-training target: z-scored, clipped at ±clip (§3.3: outliers out).

    method "cross_section": z-score within each day -- the seed's ranking, which is all an IC
        sees, at a fixed scale; a per-stock net must then also guess each day's dispersion.
    method "pooled": one mean / std over `ref` (the training rows; default `values` itself) --
        the seed's own level, which a per-stock net can reproduce exactly from its window.
    Indicators such as PVT or FORCE have heavy tails whose extremes would dominate an MSE:
    clipping keeps the fit on the bulk. NaN stays NaN (missing), as do days with no spread.
    """
    v = values.double()  # (R,)
    ok = torch.isfinite(v)
    if method == "pooled":
        r = (v if ref is None else ref.double())
        r = r[torch.isfinite(r)]
        mean, std = r.mean(), r.std(unbiased=False)
        z = (v - mean) / std if std > 0 else torch.full_like(v, float("nan"))
        return torch.where(ok, z.clamp(-clip, clip), float("nan")).float()
    if method != "cross_section":
        raise ValueError(f"target normalisation must be 'cross_section' or 'pooled', got {method!r}")
    _, inv = torch.unique(day, return_inverse=True)
    vz = torch.where(ok, v, 0.0)
    g = int(inv.max()) + 1 if len(inv) else 0
    cnt = torch.zeros(g, dtype=torch.float64).index_add(0, inv, ok.double())
    mean = torch.zeros(g, dtype=torch.float64).index_add(0, inv, vz) / cnt
    dev = torch.where(ok, v - mean[inv], 0.0)
    std = (torch.zeros(g, dtype=torch.float64).index_add(0, inv, dev * dev) / cnt).sqrt()
    z = dev / std[inv]
    return torch.where(ok & (std[inv] > 0), z.clamp(-clip, clip), float("nan")).float()


def _rows_of(target: np.ndarray | torch.Tensor, windows: Windows) -> torch.Tensor:
    """A `(T, N)` array gathered at the windows' rows, or `(R,)` values passed through."""
    if target.ndim == 2:
        return windows.gather(np.asarray(target))
    t = torch.as_tensor(target, dtype=torch.float32)
    if t.shape != (len(windows),):
        raise ValueError(f"target must be (T, N) or ({len(windows)},) per window, got {tuple(t.shape)}")
    return t


def daily_rank_ic(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Exact Spearman rank IC per day of padded `(D, n)` arrays (NaN = missing), `(D,)`."""
    return np.asarray(metrics.rank_ic(pred.detach().cpu().numpy(), target.detach().cpu().numpy()))


def mean_rank_ic(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean daily exact rank IC over the days where it is defined (NaN if none)."""
    if pred.numel() == 0:
        return float("nan")
    return metrics.mean_ic(daily_rank_ic(pred, target))


# ---------------------------------------------------------------------------- the data of one split


@dataclass
class Prepared:
    """Windows and labels of one split's training and validation days, built once.

    Built from `panel` cut after the last validation day; training labels stop at the last
    training day, validation labels at the last validation day.
    """

    panel: Panel  # the cut panel: days 0 .. split.valid.stop - 1
    split: Split
    standardiser: Standardiser  # fitted on the training days
    train: DaySet  # label: forward returns readable within training
    valid: DaySet  # label: forward returns readable within training + validation


def prepare(panel: Panel, split: Split, cfg: ConstructConfig | dict | None = None) -> Prepared:
    """Cut the panel, fit the standardiser on the training days, build train/valid windows + labels."""
    cfg = as_config(cfg)
    _check_split(panel, split)
    cut = panel.slice_days(0, split.valid.stop)
    st = Standardiser(cfg.normalisation, cfg.m).fit(cut, split.train)
    sets = [_day_set(cut, days, st, cfg) for days in (split.train, split.valid)]
    if not _ic_days(sets[0]).size:
        raise ValueError(f"no training day has {MIN_DAY_STOCKS}+ stocks with windows and labels: "
                         f"check the split {split} and m={cfg.m}")
    return Prepared(cut, split, st, sets[0], sets[1])


def _check_split(panel: Panel, split: Split) -> None:
    t = len(panel.dates)
    for name in ("train", "valid", "test"):
        sl = getattr(split, name)
        if not (0 <= sl.start <= sl.stop <= t):
            raise ValueError(f"split {name} days {sl.start}..{sl.stop - 1} are outside the {t}-day panel")
    if not (split.train.stop <= split.valid.start and split.valid.stop <= split.test.start):
        raise ValueError(f"split periods must be ordered train < valid < test, got {split}")
    if split.train.stop - split.train.start < 1:
        raise ValueError("the training period is empty")


def _ic_days(ds: DaySet) -> np.ndarray:
    """Positions of days with at least MIN_DAY_STOCKS labelled stocks."""
    if ds.label is None or len(ds) == 0:
        return np.zeros(0, dtype=np.int64)
    n = torch.isfinite(ds.label).sum(1).cpu().numpy()
    return np.flatnonzero(n >= MIN_DAY_STOCKS)


# ---------------------------------------------------------------------------- 1. pre-training


@dataclass
class PretrainReport:
    """How well the net mimics its seed (Tables 2-3), on the standardised seed values.

    mse: Eq. 15 on the z-scored, clipped seed. error_rate: Σ|y - f| / Σ|y|, the relative absolute
    error -- §3.3's (1/N) Σ |(y - f) / y| is undefined at y = 0 and dominated by the many
    near-zero values of a standardised target, so its ratio-of-sums form is reported instead.
    accuracy: the fraction of (stock, day) rows where the net and the seed make the same binary
    buy / sell decision, buy = above the day's cross-sectional mean, sell = below. (The
    PK library's own timing rules are events on crossings of several series, which a single
    reconstructed indicator cannot replay, so the cross-sectional rule is used for every seed.)
    "test" is whatever held-out days were passed: `construct_factor` passes the validation days.
    """

    train_mse: float
    test_mse: float
    train_error_rate: float
    test_error_rate: float
    train_accuracy: float
    test_accuracy: float
    n_train: int  # windows with a finite target
    n_test: int
    epochs: int
    curve: list[float] = field(default_factory=list)  # mean training MSE per epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pretrain(net: nn.Module, windows: Windows, target: np.ndarray | torch.Tensor,
             cfg: ConstructConfig | dict | None = None,
             holdout: tuple[Windows, np.ndarray | torch.Tensor] | None = None) -> PretrainReport:
    """Fit `net` to the seed factor by MSE (Eq. 15): prior knowledge into the weights (§3.3).

    `target`: the seed's raw values, `(T, N)` on the windows' panel or `(R,)` per window; they
    are z-scored per day and clipped here (`standardise_target`). `holdout`: (windows, target) of
    held-out days to report out-of-sample fit on. Batches are `cfg.pretrain_q` whole days.
    """
    cfg = as_config(cfg)
    device = _device_of(net)
    ref = _rows_of(target, windows)  # (R,) raw seed values on the training rows
    train = DaySet(windows, standardise_target(ref, windows.day, cfg.target_clip, cfg.target_norm), device)
    days = np.flatnonzero(torch.isfinite(train.label).any(1).cpu().numpy())
    rng = np.random.default_rng([cfg.seed, 1])
    gen = torch.Generator(device=train.index.device).manual_seed(cfg.seed)  # the stock subsets
    opt = torch.optim.Adam(net.parameters(), lr=cfg.pretrain_lr)
    curve = []
    net.train()
    for _ in _progress(range(cfg.pretrain_epochs), cfg, "pretrain"):
        order, total, count = rng.permutation(days), 0.0, 0
        for b in np.array_split(order, max(1, math.ceil(len(order) / cfg.pretrain_q))):
            y, keep = stock_subset(train.label[b], cfg.pretrain_stock_fraction, gen)  # (q, n)
            ok = torch.isfinite(y)
            if not ok.any():
                continue
            err = (train.forward(net, b, keep) - torch.nan_to_num(y))[ok]  # (r,)
            loss = err.square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * int(ok.sum()), count + int(ok.sum())
        curve.append(total / max(count, 1))
    fit_train = _mimic(net, train.every(cfg.report_every), cfg)
    fit_test = (float("nan"),) * 3 + (0,)
    if holdout is not None:
        hw, ht = holdout
        z = standardise_target(_rows_of(ht, hw), hw.day, cfg.target_clip, cfg.target_norm, ref=ref)
        test = DaySet(hw, z, device)
        fit_test = _mimic(net, test, cfg)
    return PretrainReport(fit_train[0], fit_test[0], fit_train[1], fit_test[1], fit_train[2], fit_test[2],
                          fit_train[3], fit_test[3], cfg.pretrain_epochs, curve)


def _mimic(net: nn.Module, ds: DaySet, cfg: ConstructConfig) -> tuple[float, float, float, int]:
    """(mse, error rate, buy/sell accuracy, rows) of the net against the standardised seed."""
    yp = ds.label.double()  # (D, n) standardised target, NaN = missing
    fp = ds.pad(ds.predict(net, cfg.batch_rows)).double()  # (D, n)
    ok = torch.isfinite(yp)
    if not ok.any():
        return float("nan"), float("nan"), float("nan"), 0
    y, f = yp[ok], fp[ok]
    mse = float((y - f).square().mean())
    err = float((y - f).abs().sum() / y.abs().sum())
    n = ok.sum(1, keepdim=True).clamp_min(1)  # (D, 1)
    above_y = yp > torch.where(ok, yp, 0).sum(1, keepdim=True) / n  # buy: above the day's mean
    above_f = fp > torch.where(ok, fp, 0).sum(1, keepdim=True) / n
    acc = float((above_y == above_f)[ok].double().mean())
    return mse, err, acc, int(ok.sum())


# ---------------------------------------------------------------------------- 2. pruning


def prune(net: nn.Module, rate: float) -> dict[str, torch.Tensor]:
    """Magnitude masks M of Eq. 16, applied now: in every prunable weight matrix the `rate`
    fraction of entries smallest in |w| become 0, for good (re-apply with `apply_masks`).

    Layer by layer, not globally, so no layer can be wiped out. Ties break by position (stable
    sort), so the masks are deterministic.
    """
    _check_float("prune_rate", rate, positive=False)
    if rate >= 1:
        raise ValueError(f"prune rate must be in [0, 1), got {rate}")
    masks = {}
    for name, w in nets.prunable_named_weights(net):
        k = int(rate * w.numel())
        mask = torch.ones(w.numel(), dtype=w.dtype, device=w.device)
        if k:
            mask[torch.argsort(w.detach().abs().flatten(), stable=True)[:k]] = 0
        masks[name] = mask.view_as(w)
    apply_masks(net, masks)
    return masks


def apply_masks(net: nn.Module, masks: dict[str, torch.Tensor] | None, grads: bool = False) -> None:
    """W <- W·M (Eq. 16) for every masked weight; with `grads`, also zero the masked gradients."""
    if not masks:
        return
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            if grads:
                if p.grad is not None:
                    p.grad.mul_(mask)
            else:
                p.mul_(mask)


# ---------------------------------------------------------------------------- 3. IC training


@dataclass
class TrainReport:
    """The IC training run: the chosen epoch and the curve it was chosen from."""

    best_epoch: int  # 0 = the pre-trained, pruned net was kept (only with keep_pretrained)
    best_valid_ic: float  # mean daily exact rank IC on the validation days (with valid_smoothing k > 1:
    #   its mean over the chosen epoch and the k - 1 before it)
    epochs_run: int
    stopped_early: bool
    curve: list[dict] = field(default_factory=list)  # per epoch: train_loss, valid_ic, seconds
    #   (training steps), valid_seconds (the validation pass)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_ic(net: nn.Module, data: Prepared | Panel, cfg: ConstructConfig | dict | None = None, *,
             split: Split | None = None, masks: dict[str, torch.Tensor] | None = None,
             pool: Sequence[np.ndarray] | None = None) -> TrainReport:
    """Maximise the differentiable rank IC (Eq. 14) on batches of q random training days.

    After each epoch the exact rank IC on the validation days is measured; the best epoch's
    weights are restored at the end (the pre-trained net, epoch 0, is a candidate only with
    `cfg.keep_pretrained`), and training stops after `cfg.patience` epochs without improvement.
    `masks` (from `prune`) are kept applied. `pool`: `(T, N)` values of existing factors on the
    cut panel; with `cfg.decorrelation > 0` the loss adds λ·mean_k IC_kernel(net, pool_k)²
    (the diversity side of Eq. 7).
    `data`: a `Prepared` split, or a Panel together with `split`.
    """
    cfg = as_config(cfg)
    if isinstance(data, Panel):
        if split is None:
            raise ValueError("train_ic on a Panel needs the split")
        data = prepare(data, split, cfg)
    train, valid = data.train, data.valid
    days = _ic_days(train)
    loss_fn = _loss_fn(cfg)
    pool_pad = None
    if cfg.decorrelation > 0 and pool:
        pool_pad = torch.stack([train.pad(train.windows.gather(np.asarray(v))) for v in pool])  # (K, D, n)
    rng = np.random.default_rng([cfg.seed, 2])
    steps = cfg.steps_per_epoch or math.ceil(len(days) / cfg.q)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def valid_ic() -> float:
        return mean_rank_ic(valid.pad(valid.predict(net, cfg.batch_rows)), valid.label)

    pick = _Selector(cfg.patience, valid_ic(), net.state_dict(), cfg.keep_pretrained, cfg.valid_smoothing)
    gen = torch.Generator(device=train.index.device).manual_seed(cfg.seed)  # the stock subsets
    stream, epoch = _day_stream(days, cfg.q, rng), 0
    net.train()
    for epoch in _progress(range(1, cfg.epochs + 1), cfg, "IC training"):
        t0, total = time.perf_counter(), 0.0
        for _ in range(steps):
            b = next(stream)  # (q,) distinct training days
            y, keep = stock_subset(train.label[b], cfg.stock_fraction, gen)  # (q, n) NaN = missing
            pred = train.forward(net, b, keep)  # (q, n)
            loss = loss_fn(pred, y)
            if pool_pad is not None:
                ics = torch.stack([_kernel_ic(pred, pk_b, cfg) for pk_b in pool_pad[:, b]])  # (K,)
                loss = loss + cfg.decorrelation * ics.square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            apply_masks(net, masks, grads=True)
            opt.step()
            apply_masks(net, masks)
            total += float(loss.detach())
        seconds = time.perf_counter() - t0
        ic = valid_ic()
        valid_seconds = time.perf_counter() - t0 - seconds
        if not pick.update(epoch, ic, net.state_dict, total / steps, seconds, valid_seconds):
            break
    net.load_state_dict(pick.best_state)
    return pick.report(epoch, cfg.epochs)


class _Selector:
    """Early stopping and model choice on the validation rank IC; epoch 0 is the net as given.

    With `smoothing` k > 1 an epoch is judged by the mean validation IC of the last k trained
    epochs (fewer at the start), and the chosen weights are that epoch's.
    """

    def __init__(self, patience: int, ic0: float, state0: dict[str, torch.Tensor], keep0: bool,
                 smoothing: int = 1) -> None:
        self.patience, self.wait, self.active, self.smoothing = patience, 0, True, smoothing
        self.trained_ics: list[float] = []
        # without keep0 the first trained epoch replaces epoch 0 whatever its IC (NaN loses to anything)
        self.best_ic = ic0 if keep0 else float("nan")
        self.best_epoch, self.best_state = 0, copy.deepcopy(state0)
        self.curve = [{"epoch": 0, "train_loss": float("nan"), "valid_ic": ic0, "seconds": 0.0,
                       "valid_seconds": 0.0}]

    def update(self, epoch: int, ic: float, state: Callable[[], dict[str, torch.Tensor]], train_loss: float,
               seconds: float, valid_seconds: float) -> bool:
        """Record an epoch; False once `patience` epochs passed without a better validation IC."""
        self.curve.append({"epoch": epoch, "train_loss": train_loss, "valid_ic": ic, "seconds": seconds,
                           "valid_seconds": valid_seconds})
        self.trained_ics.append(ic)
        if self.smoothing > 1:
            ic = metrics.mean_ic(self.trained_ics[-self.smoothing:])
            self.curve[-1]["smoothed_valid_ic"] = ic
        if ic > self.best_ic or not math.isfinite(self.best_ic):
            self.best_ic, self.best_epoch, self.best_state, self.wait = ic, epoch, copy.deepcopy(state()), 0
        else:
            self.wait += 1
            self.active = self.wait < self.patience
        return self.active

    def report(self, epochs_run: int, max_epochs: int) -> TrainReport:
        return TrainReport(self.best_epoch, self.best_ic, epochs_run, epochs_run < max_epochs, self.curve)


def _day_stream(days: np.ndarray, q: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Batches of q distinct random days: successive permutations cut in chunks (all days each pass)."""
    q = min(q, len(days))
    while True:
        order = rng.permutation(days)
        for i in range(0, len(order) - q + 1, q):
            yield order[i:i + q]


def _loss_fn(cfg: ConstructConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(pred (q, n), target (q, n) with NaN = missing) -> scalar loss to minimise."""
    if cfg.loss == "kernel":
        return lambda pred, y: losses.kernel_rank_ic_loss(pred, y, mask=torch.isfinite(y), p=cfg.p)
    return lambda pred, y: losses.soft_rank_ic_loss(pred, y, mask=torch.isfinite(y))


def _kernel_ic(pred: torch.Tensor, other: torch.Tensor, cfg: ConstructConfig) -> torch.Tensor:
    """Mean over the batch days of the kernel IC between the net and another factor (q, n)."""
    daily = losses.kernel_ic(pred, other, mask=torch.isfinite(other), p=cfg.p)
    return torch.nanmean(daily) if daily.ndim else daily


# ---------------------------------------------------------------------------- the factor


class NetScorer:
    """A constructed factor's `compute`: standardise windows, run the net, scatter to `(T, N)`.

    Holds the trained net and the Standardiser fitted on the training days; picklable. Works
    on any panel with the five input fields: "train_zscore" statistics are matched by
    instrument code (stocks the training never saw get NaN).
    """

    def __init__(self, net: nn.Module, standardiser: Standardiser, device: str = "cpu",
                 batch_rows: int = INFERENCE_ROWS, days_per_chunk: int = 64,
                 masks: dict[str, torch.Tensor] | None = None, base: Factor | None = None,
                 base_weight: float = 0.0) -> None:
        self.net = net.eval()
        self.base, self.base_weight = base, base_weight  # the residual form: + weight · rank_score(base)
        self.standardiser = standardiser
        self.masks = masks  # the pruning masks M (Eq. 16) the weights were trained under, for the record
        self.device = device
        self.batch_rows = batch_rows
        self.days_per_chunk = days_per_chunk

    def standardiser_for(self, panel: Panel) -> Standardiser:
        st = self.standardiser
        if st.instruments_ is None or st.instruments_.equals(panel.instruments):
            return st
        out = Standardiser(st.method, st.m)
        out.instruments_, out.fit_days_ = panel.instruments, st.fit_days_
        if st.method == "train_zscore":
            idx = st.instruments_.get_indexer(panel.instruments)  # (N',) -1 = unseen
            known = (idx >= 0)[:, None]
            out.mean_ = np.where(known, st.mean_[idx], np.nan)
            out.std_ = np.where(known, st.std_[idx], np.nan)
        return out

    def score(self, windows: Windows) -> torch.Tensor:
        """`(R,)` factor values of the windows (float32, on CPU)."""
        if len(windows) == 0:
            return torch.zeros(0)
        self.net.to(self.device)
        return DaySet(windows, device=self.device).predict(self.net, self.batch_rows).cpu()

    def __call__(self, panel: Panel, days: slice | None = None) -> np.ndarray:
        st = self.standardiser_for(panel)
        t = len(panel.dates)
        lo, hi, _ = (days or slice(0, t)).indices(t)
        out = np.full(panel.shape, np.nan, dtype=np.float32)
        base = None
        if self.base is not None and self.base_weight:
            base = self.base_weight * base_scores(self.base.values(panel))  # (T, N)
        for a in range(lo, hi, self.days_per_chunk):  # bounded memory on long panels
            w = st.transform(panel, slice(a, min(hi, a + self.days_per_chunk)))
            if len(w):
                t, n = w.day.numpy(), w.stock.numpy()
                out[t, n] = self.score(w).numpy() + (0 if base is None else base[t, n])
        return out


class OnDates:
    """A factor's `compute` limited to the days from `first` to `last` of any panel (NaN on the
    others), computed on those days and the `history` days before them only: a strategy window
    scores its own days, not the whole history a chapter's panel holds. The values are the whole
    panel's where `history` covers the factor's memory (a network's input window; GP formulas' and
    a residual seed factor's warm-up, `study.GP_LOOKBACK`)."""

    def __init__(self, compute: Callable[[Panel], np.ndarray], first: pd.Timestamp, last: pd.Timestamp,
                 history: int = 0) -> None:
        self.compute, self.history = compute, history
        self.first, self.last = pd.Timestamp(first), pd.Timestamp(last)

    def __call__(self, panel: Panel) -> np.ndarray:
        out = np.full(panel.shape, np.nan, dtype=np.float32)  # (T, N)
        a = int(panel.dates.searchsorted(self.first))
        b = int(panel.dates.searchsorted(self.last, side="right"))
        if b <= a:
            return out
        start = max(0, a - self.history)
        cut = panel.slice_days(start, b)
        if isinstance(self.compute, NetScorer):  # scores only the days asked for
            values = self.compute(cut, slice(a - start, b - start))
        else:
            values = np.asarray(self.compute(cut), dtype=np.float32)
        out[a:b] = values[a - start:]
        return out


def on_dates(factor: Factor, first: pd.Timestamp, last: pd.Timestamp, history: int = 0) -> Factor:
    """`factor` computed on the days `first` .. `last` only, from `history` days before them
    (`OnDates`). `meta["dates"]` records the limit (the value store keys on it)."""
    dates = [str(pd.Timestamp(first).date()), str(pd.Timestamp(last).date())]
    limited = OnDates(factor.compute, first, last, history)
    return Factor(factor.name, factor.origin, limited, {**factor.meta, "dates": dates})


@contextlib.contextmanager
def deterministic(device: str = "cpu") -> Iterator[None]:
    """Deterministic kernels and a private RNG state for the duration (the caller's is restored)."""
    prev, prev_warn = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    cuda = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda):
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def construct_factor(seed: str | Factor, net: str | None, panel: Panel, split: Split,
                     cfg: ConstructConfig | dict | None = None, *, pool: Sequence[Factor] | None = None,
                     name: str | None = None) -> Factor:
    """Construct one factor: pre-train `net` on `seed` (Eq. 15), prune (Eq. 16), train on IC (Eq. 14).

    `seed`: a PK name (`nnafc.pk`) or any Factor. `net`: a net name (overrides `cfg.net`; None
    keeps it). `pool`: existing factors to decorrelate from when `cfg.decorrelation > 0`.
    Returns a Factor (origin "nnafc") whose `compute` runs the trained network; `meta` holds the
    config, the seed, the pre-training report, the IC training curve and mean daily rank ICs on
    train / valid / test of the seed itself, the pre-trained net and the constructed factor (the
    test ones computed only after the network is final).
    """
    from nnafc import pk  # lazily: pk is heavy and the loop itself does not need it

    cfg = as_config(cfg)
    if net is not None and net != cfg.net:
        cfg = replace(cfg, net=net, net_cfg=cfg.net_cfg)
    seed_f = pk.factor(seed) if isinstance(seed, str) else seed
    if not isinstance(seed_f, Factor):
        raise ValueError(f"seed must be a PK name or a Factor, got {type(seed).__name__}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but torch sees no CUDA device")
    t0 = time.perf_counter()
    with deterministic(cfg.device):
        torch.manual_seed(cfg.seed)
        model = nets.build(cfg.net, m=cfg.m, **cfg.net_cfg).to(cfg.device)
        data = prepare(panel, split, cfg)
        seed_cut = seed_f.values(data.panel)  # (Tc, N) causal: only days <= each day
        pool_cut = [f.values(data.panel) for f in pool] if pool and cfg.decorrelation > 0 else None
        sign = residual_sign(seed_cut, data.train, cfg)  # 1 unless the residual form is on
        target = seed_cut if sign > 0 else -seed_cut  # the residual form mimics the seed as it is traded
        report = pretrain(model, data.train.windows, target, cfg, holdout=(data.valid.windows, target))
        masks = prune(model, cfg.prune_rate)
        if cfg.residual:
            scores = base_scores(seed_cut)
            for ds in (data.train, data.valid):
                set_base(ds, scores, sign * cfg.residual)
        pretrained_net = copy.deepcopy(model)  # the seed's mimic, kept to report its test IC at the end
        report_train = data.train.every(cfg.report_every)  # after set_base: the subset keeps the base
        pretrained = {"train": _ic_of(model, report_train, cfg), "valid": _ic_of(model, data.valid, cfg)}
        training = train_ic(model, data, cfg, masks=masks, pool=pool_cut)
    model.eval()
    scorer = NetScorer(model, data.standardiser, cfg.device, cfg.batch_rows, masks=masks,
                       base=seed_f if cfg.residual else None, base_weight=sign * cfg.residual)
    construct_seconds = time.perf_counter() - t0
    # ---- the network is final; from here on the test days may be read, for reporting only
    constructed = {"train": _ic_of(model, report_train, cfg), "valid": _ic_of(model, data.valid, cfg)}
    test = _test_set(panel, split, data.standardiser, cfg)
    seed_full = seed_f.values(panel) if test is not None else seed_cut
    if test is not None and cfg.residual:
        set_base(test, base_scores(seed_full), sign * cfg.residual)
    seed_ic = {k: _values_ic(seed_full, ds) for k, ds in (("train", report_train), ("valid", data.valid))}
    pretrained["test"] = _ic_of(pretrained_net, test, cfg) if test is not None else float("nan")
    constructed["test"] = _ic_of(model, test, cfg) if test is not None else float("nan")
    seed_ic["test"] = _values_ic(seed_full, test) if test is not None else float("nan")
    dates = split.dates(panel.dates)
    meta = {
        "config": cfg.to_dict(),
        "net": nets.config_dict(model),
        "seed_factor": seed_f.name,
        "seed_factor_origin": seed_f.origin,
        **({"seed_factor_formula": seed_f.meta["formula"]} if "formula" in seed_f.meta else {}),
        "residual": {"weight": cfg.residual, "sign": sign},
        "split": {k: [str(v[0].date()), str(v[-1].date())] if len(v) else [] for k, v in dates.items()},
        "universe": panel.universe,
        "simulated": panel.simulated,
        "n_instruments": len(panel.instruments),
        "pretrain": report.to_dict(),
        "pretrain_holdout": "valid",
        "pruned": {k: float(1 - v.mean()) for k, v in masks.items()},
        "training": training.to_dict(),
        "ic": {"seed_factor": seed_ic, "pretrained": pretrained, "constructed": constructed},
        "seconds": construct_seconds,
    }
    train_start = dates["train"][0].date() if len(dates["train"]) else "?"
    name = name or f"{cfg.net}({seed_f.name})@{train_start}#s{cfg.seed}"
    return Factor(name=name, origin="nnafc", compute=scorer, meta=_jsonable_meta(meta))


def residual_sign(seed_values: np.ndarray, train: DaySet, cfg: ConstructConfig) -> float:
    """s of the residual form: the sign of the seed's mean rank IC on the training days (+1 when
    undefined, or with the residual form off) -- a reversal seed enters its correction reversed."""
    if not cfg.residual:
        return 1.0
    ic = _values_ic(seed_values, train)
    return -1.0 if math.isfinite(ic) and ic < 0 else 1.0


def base_scores(seed_values: np.ndarray) -> np.ndarray:
    """`(T, N)` rank_score of the seed, the residual form's base; a missing seed value scores 0."""
    return np.nan_to_num(metrics.rank_score(seed_values))


def set_base(ds: DaySet, scores: np.ndarray, weight: float) -> None:
    """Add weight · `base_scores` (T, N) to the day set's outputs (the residual form)."""
    ds.base = (weight * ds.windows.gather(scores)).to(ds.index.device)


def _ic_of(net: nn.Module, ds: DaySet, cfg: ConstructConfig) -> float:
    return mean_rank_ic(ds.pad(ds.predict(net, cfg.batch_rows)), ds.label)


def _values_ic(values: np.ndarray, ds: DaySet) -> float:
    return mean_rank_ic(ds.pad(ds.windows.gather(values)), ds.label)


def measured_ics(values: Sequence[np.ndarray], panel: Panel, split: Split,
                 periods: Sequence[str] = ("valid", "test"),
                 cfg: ConstructConfig | dict | None = None) -> list[dict[str, float]]:
    """Mean daily rank IC of any factors' `(T, N)` values on a split's periods, measured exactly as
    `construct_factor` measures its seed factor and its network (the same stocks: those with windows
    under the training-day standardiser; the same labels, cut at each period's end). How formulas
    (GP) are put beside the networks' stored ICs. One dict {period: IC} per values array."""
    cfg = as_config(cfg)
    st = Standardiser(cfg.normalisation, cfg.m).fit(panel.slice_days(0, split.valid.stop), split.train)
    sets = {p: _day_set(panel, getattr(split, p), st, cfg) for p in periods
            if getattr(split, p).stop > getattr(split, p).start}
    return [{p: _values_ic(v, sets[p]) if p in sets else float("nan") for p in periods} for v in values]


def _day_set(panel: Panel, days: slice, st: Standardiser, cfg: ConstructConfig) -> DaySet:
    """The windows of `days` under the standardiser, labelled with the period's labels (cut at
    its last day: `period_labels`): every train / valid / test set the construction measures on."""
    w = st.transform(panel, days)
    y = w.gather(period_labels(panel["close"], days, cfg.horizon), first_day=days.start)  # (R,)
    return DaySet(w, y, cfg.device)


def _test_set(panel: Panel, split: Split, st: Standardiser, cfg: ConstructConfig) -> DaySet | None:
    return None if split.test.stop <= split.test.start else _day_set(panel, split.test, st, cfg)


def _device_of(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _progress(it: range, cfg: ConstructConfig, desc: str) -> Any:
    if not cfg.progress:
        return it
    return progress_bar(it, desc=desc, leave=False)


def _jsonable_meta(value: Any) -> Any:
    """Plain JSON types (NaN kept as float; numpy scalars converted)."""
    if isinstance(value, dict):
        return {str(k): _jsonable_meta(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable_meta(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return str(value)
    return value
