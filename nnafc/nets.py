"""Feature extractors of NNAFC (paper §3.2-3.3, §4.3) behind one registry.

Every net maps a batch of input windows `x` of shape (n, 5, m) -- n stocks of one or more
trading days, the fields open/high/low/close/volume, m days -- to one factor value per stock,
shape (n,). `forward(x, day=None)` has the same signature for every net so that `construct`
can drive them alike; only the cross-sectional net `crossconv` (Fig. 5) reads `day`, every
other net scores each stock from its own window alone (`cross_sectional = False`).

Nets are plain modules: no training loop, no optimiser state, no batch statistics (BatchNorm
would make a stock's value depend on the other stocks in its batch and differ between train
and eval). Pruning (Eq. 16, f(x) = (W·M)ᵀx + b) is applied by `construct` to the tensors
`prunable_weights` returns.

    net = build("fcn", m=30, hidden=(128, 64, 64))   # unknown keys fail loudly
    factor = net(x)                                   # (n, 5, 30) -> (n,)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nnafc.params import unknown_key

N_FIELDS = 5  # open, high, low, close, volume

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


# ---------------------------------------------------------------------------- validation


def _ints(owner: str, key: str, value: Any, *, min_len: int = 1) -> tuple[int, ...]:
    """A non-empty tuple of positive ints; YAML lists are accepted and frozen into tuples."""
    if not isinstance(value, list | tuple) or len(value) < min_len:
        raise ValueError(f"{owner}.{key} must be a sequence of at least {min_len} ints, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError(f"{owner}.{key} must hold positive ints, got {value!r}")
    return tuple(value)


def _int(owner: str, key: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner}.{key} must be an int >= {minimum}, got {value!r}")
    return value


def _choice(owner: str, key: str, value: Any, options: list[str] | tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{owner}.{key} must be one of {list(options)}, got {value!r}")
    return value


def _rate(owner: str, key: str, value: Any) -> float:
    if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.{key} must be a float in [0, 1), got {value!r}")
    return float(value)


def _act(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


# ---------------------------------------------------------------------------- base


class _Net(nn.Module):
    """Common plumbing: the config, the window length m and the input check."""

    name: ClassVar[str]
    Config: ClassVar[type]
    cross_sectional: ClassVar[bool] = False  # True: output of a stock depends on its day's others
    min_m: ClassVar[int] = 1  # shortest window the architecture can take

    def __init__(self, config: Any, m: int) -> None:
        super().__init__()
        self.config = config
        self.m = m

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != N_FIELDS or x.shape[2] != self.m:
            raise ValueError(
                f"{self.name}: expected input of shape (n, {N_FIELDS}, {self.m}), got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        return f"m={self.m}"


# ---------------------------------------------------------------------------- fcn (Fig. 4)


@dataclass
class FCNConfig:
    hidden: tuple[int, ...] = (128, 128, 64)  # hidden widths; the paper: 3-5 layers of 64-128 units
    activations: tuple[str, ...] = ("tanh", "relu")  # cycled over hidden layers (paper: tanh and relu)
    dropout: float = 0.0  # after each hidden activation; 0 keeps train and eval outputs identical

    def __post_init__(self) -> None:
        self.hidden = _ints("FCNConfig", "hidden", self.hidden)
        if isinstance(self.activations, str):
            self.activations = (self.activations,)
        self.activations = tuple(self.activations)
        if not self.activations:
            raise ValueError("FCNConfig.activations must name at least one activation")
        for a in self.activations:
            _choice("FCNConfig", "activations", a, list(ACTIVATIONS))
        self.dropout = _rate("FCNConfig", "dropout", self.dropout)


class FCN(_Net):
    """The pre-training MLP of Fig. 4 / Eq. 11: flatten the 5×m window, hidden layers, linear out.

    The output layer is not activated (the paper), so the factor can take any real value.
    """

    name = "fcn"
    Config = FCNConfig

    def __init__(self, config: FCNConfig, m: int) -> None:
        super().__init__(config, m)
        layers: list[nn.Module] = [nn.Flatten()]  # (n, 5*m)
        width = N_FIELDS * m
        for i, h in enumerate(config.hidden):
            layers += [nn.Linear(width, h), _act(config.activations[i % len(config.activations)])]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = h
        layers.append(nn.Linear(width, 1))  # unactivated output
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)  # (n, 5, m)
        return self.net(x).squeeze(-1)  # (n,)


# ---------------------------------------------------------------------------- crossconv (Fig. 5)


@dataclass
class CrossConvConfig:
    width: int = 64  # per-stock embedding size carried through the mixing layers
    layers: int = 3  # cross-sectional mixing layers (Fig. 5 repeats its convolution layer)
    pools: tuple[str, ...] = ("mean", "std", "max")  # per-day summaries each stock sees; "rank" adds
    #   a soft cross-sectional rank (for TOP10-like indicators) at O(stocks_per_day² · width) memory
    activation: str = "tanh"  # of the encoder and of every mixing layer
    rank_tau: float = 0.1  # soft-rank temperature, in units of the day's std of each channel

    def __post_init__(self) -> None:
        self.width = _int("CrossConvConfig", "width", self.width)
        self.layers = _int("CrossConvConfig", "layers", self.layers)
        if isinstance(self.pools, str):
            self.pools = (self.pools,)
        self.pools = tuple(self.pools)
        if not self.pools or len(set(self.pools)) != len(self.pools):
            raise ValueError(f"CrossConvConfig.pools must be distinct and non-empty, got {self.pools!r}")
        for p in self.pools:
            _choice("CrossConvConfig", "pools", p, list(POOLS))
        self.activation = _choice("CrossConvConfig", "activation", self.activation, list(ACTIVATIONS))
        if not isinstance(self.rank_tau, int | float) or self.rank_tau <= 0:
            raise ValueError(f"CrossConvConfig.rank_tau must be > 0, got {self.rank_tau!r}")


def _group_mean(h: torch.Tensor, inv: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    g = counts.shape[0]
    total = h.new_zeros(g, h.shape[1]).index_add(0, inv, h)  # (g, d)
    return total / counts.to(h.dtype)[:, None]


def _pool_mean(h: torch.Tensor, inv: torch.Tensor, counts: torch.Tensor, tau: float) -> torch.Tensor:
    return _group_mean(h, inv, counts)[inv]  # (n, d)


def _pool_std(h: torch.Tensor, inv: torch.Tensor, counts: torch.Tensor, tau: float) -> torch.Tensor:
    centred = h - _group_mean(h, inv, counts)[inv]
    var = _group_mean(centred.square(), inv, counts)  # (g, d), population variance
    return (var + 1e-8).sqrt()[inv]  # eps: finite gradient on one-stock days


def _pool_max(h: torch.Tensor, inv: torch.Tensor, counts: torch.Tensor, tau: float) -> torch.Tensor:
    idx = inv[:, None].expand_as(h)
    top = h.new_zeros(counts.shape[0], h.shape[1]).scatter_reduce(
        0, idx, h, "amax", include_self=False
    )  # (g, d)
    return top[inv]


def _pool_rank(h: torch.Tensor, inv: torch.Tensor, counts: torch.Tensor, tau: float) -> torch.Tensor:
    """Soft rank in (0, 1) of each stock among its day, per channel: mean_j σ((h_i - h_j)/(τ·std))."""
    order = torch.argsort(inv, stable=True)
    parts = []
    for hg in h[order].split(counts.tolist()):  # one day at a time: (k, d)
        scale = hg.detach().std(0, unbiased=False).clamp_min(1e-6) * tau  # (d,)
        parts.append(torch.sigmoid((hg[:, None, :] - hg[None, :, :]) / scale).mean(1))  # (k, d)
    back = torch.empty_like(order)
    back[order] = torch.arange(order.numel(), device=order.device)
    return torch.cat(parts)[back]  # (n, d)


POOLS = {"mean": _pool_mean, "std": _pool_std, "max": _pool_max, "rank": _pool_rank}


class CrossConv(_Net):
    """Fig. 5: stocks of one trading day exchange information, for cross-sectional indicators.

    The paper convolves across the stocks of a day and stacks such layers until every stock
    has seen every other. A convolution over the stock axis depends on the arbitrary order of
    instruments, so here each "cross-sectional convolution" is its permutation-invariant form:
    every stock is encoded from its own window, then each of `layers` mixing layers updates a
    stock from its own embedding and from per-day pooled summaries (mean / std / max / soft
    rank) of all stocks of that day -- the field a stack of convolutions reaches, in one layer:

        h_i <- h_i + act(W [h_i, pool_day(i)(h)] + b)

    The output is permutation-equivariant over the stocks of a day, and rows of different days
    (`day` ids) never mix; without `day` all rows are one day. Its output for a stock therefore
    depends on which other stocks are in the batch: feed it whole days.
    """

    name = "crossconv"
    Config = CrossConvConfig
    cross_sectional = True

    def __init__(self, config: CrossConvConfig, m: int) -> None:
        super().__init__(config, m)
        d, k = config.width, len(config.pools)
        self.encode = nn.Sequential(nn.Flatten(), nn.Linear(N_FIELDS * m, d), _act(config.activation))
        self.mix = nn.ModuleList(nn.Linear(d * (1 + k), d) for _ in range(config.layers))
        self.act = _act(config.activation)
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)  # (n, 5, m)
        n = x.shape[0]
        if day is None:
            inv = torch.zeros(n, dtype=torch.long, device=x.device)
            counts = torch.full((1,), n, dtype=torch.long, device=x.device)
        else:
            if day.shape != (n,) or day.dtype.is_floating_point:
                raise ValueError(f"crossconv: day must be an integer tensor of shape ({n},)")
            _, inv, counts = torch.unique(day, return_inverse=True, return_counts=True)  # (n,)
        h = self.encode(x)  # (n, d)
        for layer in self.mix:
            pooled = [POOLS[p](h, inv, counts, self.config.rank_tau) for p in self.config.pools]
            h = h + self.act(layer(torch.cat([h, *pooled], dim=1)))  # (n, d)
        return self.head(h).squeeze(-1)  # (n,)


# ---------------------------------------------------------------------------- lenet


@dataclass
class LeNetConfig:
    channels: tuple[int, int] = (6, 16)  # LeNet-5's two convolution widths
    kernel: int = 3  # LeNet-5 uses 5; the 5-row "image" only fits a 3×3 twice
    hidden: tuple[int, ...] = (120, 84)  # LeNet-5's fully connected layers
    activation: str = "tanh"  # LeNet-5's squashing activation; "relu" for the modern variant

    def __post_init__(self) -> None:
        self.channels = _ints("LeNetConfig", "channels", self.channels, min_len=2)
        if len(self.channels) != 2:
            raise ValueError(f"LeNetConfig.channels must hold two ints, got {self.channels!r}")
        self.kernel = _int("LeNetConfig", "kernel", self.kernel)
        if self.kernel % 2 == 0 or self.kernel > N_FIELDS:
            raise ValueError(f"LeNetConfig.kernel must be odd and <= {N_FIELDS}, got {self.kernel}")
        self.hidden = _ints("LeNetConfig", "hidden", self.hidden)
        self.activation = _choice("LeNetConfig", "activation", self.activation, list(ACTIVATIONS))


class LeNet(_Net):
    """LeNet-5 over the window as a 1×5×m image, with stride 1 and pooling along time only.

    conv(same) → avgpool(1,2) → conv(valid) → avgpool(1,2) → fc → fc → linear: the original
    layout; the paper keeps it and only shrinks strides for the low-resolution input.
    """

    name = "lenet"
    Config = LeNetConfig
    min_m = 5

    def __init__(self, config: LeNetConfig, m: int) -> None:
        super().__init__(config, m)
        c1, c2 = config.channels
        k = config.kernel
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, k, padding=k // 2),  # (n, c1, 5, m)
            _act(config.activation),
            nn.AvgPool2d((1, 2), ceil_mode=True),  # (n, c1, 5, ceil(m/2))
            nn.Conv2d(c1, c2, k),  # (n, c2, 5-k+1, ceil(m/2)-k+1)
            _act(config.activation),
            nn.AvgPool2d((1, 2), ceil_mode=True),  # (n, c2, 5-k+1, ~m/4)
            nn.Flatten(),
        )
        w = math.ceil(m / 2) - k + 1
        if w < 1:
            raise ValueError(f"lenet: m={m} is too short for kernel {k}")
        flat = c2 * (N_FIELDS - k + 1) * math.ceil(w / 2)
        layers: list[nn.Module] = []
        for h in config.hidden:
            layers += [nn.Linear(flat, h), _act(config.activation)]
            flat = h
        layers.append(nn.Linear(flat, 1))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)  # (n, 5, m)
        z = self.features(x.unsqueeze(1))  # (n, c2*h*w)
        return self.classifier(z).squeeze(-1)  # (n,)


# ---------------------------------------------------------------------------- resnet


@dataclass
class ResNetConfig:
    widths: tuple[int, ...] = (8, 16, 32)  # channels of each stage; CIFAR-style (16, 32, 64) x 2
    #   blocks cost 18 MFLOP per window, 240x the FCN (125 s per CSI 300 epoch): halved widths and
    #   one block per stage are 9x fewer FLOPs, ~5x faster (bench_construct); the paper gives no size
    blocks: tuple[int, ...] = (1, 1, 1)  # basic blocks per stage; depth = 2 + 2*sum(blocks) = 8
    norm: str = "group"  # "group": per-sample GroupNorm; "none". No BatchNorm: it mixes stocks
    pool: str = "avg"  # "avg": global average pool (ResNet's); "flatten": keep time positions

    def __post_init__(self) -> None:
        self.widths = _ints("ResNetConfig", "widths", self.widths)
        self.blocks = _ints("ResNetConfig", "blocks", self.blocks)
        if len(self.widths) != len(self.blocks):
            raise ValueError(
                f"ResNetConfig.widths and .blocks need one entry per stage, got "
                f"{self.widths!r} and {self.blocks!r}"
            )
        self.norm = _choice("ResNetConfig", "norm", self.norm, ["group", "none"])
        self.pool = _choice("ResNetConfig", "pool", self.pool, ["avg", "flatten"])


def _norm(kind: str, c: int) -> nn.Module:
    return nn.GroupNorm(math.gcd(8, c), c) if kind == "group" else nn.Identity()


class _BasicBlock(nn.Module):
    """ResNet's basic block: two 3×3 convs and an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int], norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias)
        self.norm2 = _norm(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out or stride != (1, 1):
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=bias), _norm(norm, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(_Net):
    """A small ResNet with basic blocks over the 1×5×m image.

    ResNet-50's 224×224 design (7×7 stride-2 stem, max-pool, four stride-2 stages, bottlenecks)
    would shrink a 5×30 input to nothing after its stem; this keeps its ideas -- residual basic
    blocks in stages that widen while downsampling -- with a stride-1 3×3 stem and stride (1, 2)
    (time only) at each new stage, as the paper's "smaller stride". Depth 2 + 2·sum(blocks),
    14 by default.
    """

    name = "resnet"
    Config = ResNetConfig

    def __init__(self, config: ResNetConfig, m: int) -> None:
        super().__init__(config, m)
        c0 = config.widths[0]
        bias = config.norm == "none"
        self.stem = nn.Sequential(
            nn.Conv2d(1, c0, 3, padding=1, bias=bias), _norm(config.norm, c0), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in, width = c0, m
        for s, (c, nb) in enumerate(zip(config.widths, config.blocks, strict=True)):
            for b in range(nb):
                stride = (1, 2) if s > 0 and b == 0 else (1, 1)
                if stride[1] == 2:
                    width = (width - 1) // 2 + 1
                blocks.append(_BasicBlock(c_in, c, stride, config.norm))
                c_in = c
        self.blocks = nn.Sequential(*blocks)
        flat = c_in if config.pool == "avg" else c_in * N_FIELDS * width
        self.head = nn.Linear(flat, 1)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)  # (n, 5, m)
        z = self.blocks(self.stem(x.unsqueeze(1)))  # (n, c, 5, m')
        z = z.mean(dim=(2, 3)) if self.config.pool == "avg" else z.flatten(1)  # (n, c | c*5*m')
        return self.head(z).squeeze(-1)  # (n,)


# ---------------------------------------------------------------------------- lstm


@dataclass
class LSTMConfig:
    hidden: int = 32  # hidden state size; 64 x 2 layers is 11x the FLOPs and ~5x slower per epoch
    #   on CPU (oneDNN's LSTM is already used; its time is all in the 30 sequential steps)
    layers: int = 1  # stacked LSTM layers (the paper gives no size)
    dropout: float = 0.0  # between stacked layers (torch's); 0 keeps train == eval

    def __post_init__(self) -> None:
        self.hidden = _int("LSTMConfig", "hidden", self.hidden)
        self.layers = _int("LSTMConfig", "layers", self.layers)
        self.dropout = _rate("LSTMConfig", "dropout", self.dropout)


class LSTMNet(_Net):
    """An LSTM over the m days (5 fields per step); the last hidden state → linear."""

    name = "lstm"
    Config = LSTMConfig

    def __init__(self, config: LSTMConfig, m: int) -> None:
        super().__init__(config, m)
        self.lstm = nn.LSTM(
            N_FIELDS,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)  # (n, 5, m)
        out, _ = self.lstm(x.transpose(1, 2))  # (n, m, hidden)
        return self.head(out[:, -1]).squeeze(-1)  # (n,)


# ---------------------------------------------------------------------------- tcn


@dataclass
class TCNConfig:
    channels: tuple[int, ...] = (32, 32, 32, 32)  # one residual block per entry, dilation 2**i
    kernel: int = 3  # causal kernel size; receptive field 1 + 2(kernel-1)(2**levels - 1) = 61
    dropout: float = 0.0  # after each conv (Bai et al.); 0 keeps train == eval

    def __post_init__(self) -> None:
        self.channels = _ints("TCNConfig", "channels", self.channels)
        self.kernel = _int("TCNConfig", "kernel", self.kernel, minimum=2)
        self.dropout = _rate("TCNConfig", "dropout", self.dropout)


class _TemporalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (Bai, Kolter & Koltun 2018)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation  # left padding only: day t never sees day t+1
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.shortcut = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, c_in, m)
        out = self.drop(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))  # (n, c_out, m)
        out = self.drop(F.relu(self.conv2(F.pad(out, (self.pad, 0)))))  # (n, c_out, m)
        return F.relu(out + self.shortcut(x))

    def last(self, x: torch.Tensor) -> torch.Tensor:  # (n, c_in, m) -> (n, c_out)
        """`forward(x)[:, :, -1]`, computing only what the last day needs.

        conv2 at day m-1 reads conv1 at the k days m-1-pad, ..., m-1 (d apart), and each of
        those reads pad+1 input days: k short slices, stacked into the batch, through the same
        conv1 -- k instead of m conv1 outputs and 1 instead of m conv2 outputs (the TCN's head
        reads the last day only). conv1 outputs before day 0 are conv2's zero padding.
        """
        n, c, m = x.shape
        k, d = self.conv1.kernel_size[0], self.conv1.dilation[0]
        w = F.pad(x, (2 * self.pad, 0))[:, :, -(2 * self.pad + 1):]  # (n, c_in, 2·pad+1)
        sl = w.unfold(2, self.pad + 1, d)  # (n, c_in, k, pad+1): conv1's inputs for the k days
        h = self.conv1(sl.permute(0, 2, 1, 3).reshape(n * k, c, self.pad + 1))  # (n·k, c_out, 1)
        h = self.drop(F.relu(h.view(n, k, -1).transpose(1, 2)))  # (n, c_out, k)
        days = m - 1 - self.pad + d * torch.arange(k, device=x.device)  # (k,) days of those outputs
        h = h * (days >= 0).to(h.dtype)  # days before the window: conv2's zero padding
        spread = h.new_zeros(n, h.shape[1], self.pad + 1)  # (n, c_out, pad+1): the k outputs
        spread[:, :, ::d] = h  # at their days, d apart, so conv2 (dilation d) reads them as it would
        out = self.drop(F.relu(self.conv2(spread)))[:, :, 0]  # (n, c_out)
        return F.relu(out + self.shortcut(x[:, :, -1:])[:, :, 0])


class TCN(_Net):
    """A temporal convolutional network over the 5 field series; the last time step → linear.

    Without the original's weight normalisation: it splits each kernel into a direction and a
    norm, and a pruning mask (Eq. 16) must apply to the kernel itself. The last block computes
    only the last day (`_TemporalBlock.last`): same outputs, ~1/4 fewer FLOPs at 4 levels.
    """

    name = "tcn"
    Config = TCNConfig

    def __init__(self, config: TCNConfig, m: int) -> None:
        super().__init__(config, m)
        blocks, c_in = [], N_FIELDS
        for i, c in enumerate(config.channels):
            blocks.append(_TemporalBlock(c_in, c, config.kernel, 2**i, config.dropout))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, 1)

    @property
    def receptive_field(self) -> int:
        """Days of history the last output sees; below m the oldest days are ignored."""
        return 1 + 2 * (self.config.kernel - 1) * (2 ** len(self.config.channels) - 1)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)  # (n, 5, m)
        z = self.blocks[:-1](x)  # (n, c, m)
        z = self.blocks[-1].last(z)  # (n, c): the last block at the last day only (the head's input)
        return self.head(z).squeeze(-1)  # (n,)


# ---------------------------------------------------------------------------- transformer


@dataclass
class TransformerConfig:
    d_model: int = 32  # embedding size of each day
    heads: int = 2  # attention heads; must divide d_model. 4 heads of 8 dims are ~20 % slower on CPU
    #   (tiny per-head matmuls) for the same FLOPs
    layers: int = 2  # encoder layers (the paper keeps only the self-attention encoder)
    ff: int = 64  # feed-forward width inside each layer
    dropout: float = 0.0  # inside the encoder layers; 0 keeps train == eval
    pool: str = "mean"  # "mean" over days, or "last" day's embedding, → linear

    def __post_init__(self) -> None:
        self.d_model = _int("TransformerConfig", "d_model", self.d_model)
        self.heads = _int("TransformerConfig", "heads", self.heads)
        if self.d_model % self.heads:
            raise ValueError(f"TransformerConfig.heads={self.heads} must divide d_model={self.d_model}")
        self.layers = _int("TransformerConfig", "layers", self.layers)
        self.ff = _int("TransformerConfig", "ff", self.ff)
        self.dropout = _rate("TransformerConfig", "dropout", self.dropout)
        self.pool = _choice("TransformerConfig", "pool", self.pool, ["mean", "last"])


def sinusoidal_positions(m: int, d: int) -> torch.Tensor:
    """(m, d) fixed sine/cosine position codes (Vaswani et al.): no parameters to prune."""
    pos = torch.arange(m, dtype=torch.float64)[:, None]  # (m, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    pe = torch.zeros(m, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return pe.float()


class _SelfAttention(nn.Module):
    """Multi-head self-attention with torch's `nn.MultiheadAttention` parameters and init.

    Same names (`in_proj_weight`, `in_proj_bias`, `out_proj`), shapes and initialisation order,
    so a state dict of either loads into the other; the attention itself is two plain batched
    matmuls and a softmax: over m = 30 days with 8-16 dims per head that is faster on CPU than
    torch's fused (flash) kernel, which is built for long sequences (bench_construct).
    """

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d))
        self.out_proj = nn.Linear(d, d)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (n, m, d)
        n, m, d = h.shape
        qkv = F.linear(h, self.in_proj_weight, self.in_proj_bias)  # (n, m, 3d)
        q, k, v = qkv.view(n, m, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (n, nh, m, hs)
        att = torch.softmax((q * (d // self.heads) ** -0.5) @ k.transpose(-1, -2), dim=-1)  # (n, nh, m, m)
        att = F.dropout(att, self.dropout, self.training)
        out = (att @ v).transpose(1, 2).reshape(n, m, d)  # (n, m, d)
        return self.out_proj(out)


class _EncoderLayer(nn.Module):
    """Pre-norm encoder layer: `nn.TransformerEncoderLayer(norm_first=True, activation=relu)`
    re-laid out (same parameter names, init order and arithmetic) around `_SelfAttention`."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = _SelfAttention(d, heads, dropout)
        self.linear1 = nn.Linear(d, ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (n, m, d)
        h = h + self.dropout1(self.self_attn(self.norm1(h)))
        return h + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(self.norm2(h))))))


class Transformer(_Net):
    """A self-attention encoder over the m days: embed 5 fields → + positions → layers → pool.

    Pre-norm layers with a final LayerNorm (stable without warm-up); each layer is built
    separately so layers start from different weights (torch's TransformerEncoder deep-copies one).
    The layers are `_EncoderLayer`s: torch's `nn.TransformerEncoderLayer` with its attention
    as plain matmuls (faster on 30 tokens; same weights, init and outputs).
    """

    name = "transformer"
    Config = TransformerConfig

    def __init__(self, config: TransformerConfig, m: int) -> None:
        super().__init__(config, m)
        d = config.d_model
        self.embed = nn.Linear(N_FIELDS, d)
        self.register_buffer("pos", sinusoidal_positions(m, d), persistent=False)  # (m, d)
        self.layers = nn.ModuleList(
            _EncoderLayer(d, config.heads, config.ff, config.dropout) for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor, day: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)  # (n, 5, m)
        h = self.embed(x.transpose(1, 2)) + self.pos  # (n, m, d)
        for layer in self.layers:
            h = layer(h)  # (n, m, d)
        h = self.norm(h)
        h = h.mean(1) if self.config.pool == "mean" else h[:, -1]  # (n, d)
        return self.head(h).squeeze(-1)  # (n,)


# ---------------------------------------------------------------------------- registry

NETS: dict[str, type[_Net]] = {
    cls.name: cls for cls in (FCN, CrossConv, LeNet, ResNet, LSTMNet, TCN, Transformer)
}


def names() -> list[str]:
    """The registered net names, in the paper's order (Table 6) with crossconv after fcn."""
    return list(NETS)


def make_config(name: str, **cfg: Any) -> Any:
    """The validated config dataclass of net `name`; an unknown key raises ValueError."""
    wrong = unknown_key("net", [name], names())
    if wrong:
        raise ValueError(wrong)
    config_cls = NETS[name].Config
    wrong = unknown_key(f"config key for net {name!r}:", cfg, [f.name for f in fields(config_cls)])
    if wrong:
        raise ValueError(wrong)
    return config_cls(**cfg)


def build(name: str, m: int = 30, **cfg: Any) -> nn.Module:
    """A freshly initialised net `name` for windows of m days; `cfg` overrides its config.

    Initialisation draws from torch's global generator: seed with `torch.manual_seed` first.
    """
    config = make_config(name, **cfg)
    cls = NETS[name]
    if not isinstance(m, int) or isinstance(m, bool) or m < cls.min_m:
        raise ValueError(f"{name}: m must be an int >= {cls.min_m}, got {m!r}")
    return cls(config, m)


def config_dict(net: nn.Module) -> dict[str, Any]:
    """`{"name", "m", **config}` of a built net: enough to rebuild it with `build(**d)`."""
    return {"name": net.name, "m": net.m, **asdict(net.config)}


# ---------------------------------------------------------------------------- pruning, cost


def prunable_named_weights(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, tensor) of the weight matrices and kernels a pruning mask applies to (Eq. 16).

    Every parameter with at least two dimensions: Linear and Conv weights, LSTM weight_ih/hh,
    attention in_proj. Biases and normalisation gains are never pruned. Names key the masks.
    """
    return [(n, p) for n, p in module.named_parameters() if p.ndim >= 2]


def prunable_weights(module: nn.Module) -> list[nn.Parameter]:
    """The tensors W of Eq. 16 that `construct` multiplies by 0/1 masks M."""
    return [p for _, p in prunable_named_weights(module)]


def count_flops(module: nn.Module, m: int | None = None) -> int:
    """Approximate multiply-adds to score one stock: Linear, Conv, LSTM and attention only.

    Measured by running one window through the net with hooks (in train mode, so torch's fused
    attention path is off and every sub-layer is called; RNG state is preserved). Cross-stock
    pooling of crossconv, activations and norms are not counted.
    """
    m = module.m if m is None else m
    total = 0

    def hook(mod: nn.Module, args: tuple, out: Any) -> None:
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features
        elif isinstance(mod, nn.Conv1d | nn.Conv2d):
            total += out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
        elif isinstance(mod, nn.LSTM):
            steps = args[0].shape[1 if mod.batch_first else 0]
            dirs = 2 if mod.bidirectional else 1
            for layer in range(mod.num_layers):
                size_in = mod.input_size if layer == 0 else mod.hidden_size * dirs
                total += dirs * steps * 4 * mod.hidden_size * (size_in + mod.hidden_size)
        elif isinstance(mod, nn.MultiheadAttention | _SelfAttention):
            batch_first = getattr(mod, "batch_first", True)  # _SelfAttention: (n, m, d)
            steps = args[0].shape[1 if batch_first else 0]
            d = mod.in_proj_weight.shape[1]
            total += 3 * steps * d * d + 2 * steps * steps * d  # q,k,v projections + QKᵀ, AV
            if isinstance(mod, nn.MultiheadAttention):  # its out_proj is not called as a module
                total += steps * d * d

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM, nn.MultiheadAttention, _SelfAttention)
    handles = [mod.register_forward_hook(hook) for mod in module.modules() if isinstance(mod, kinds)]
    was_training = module.training
    param = next(module.parameters())
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            module.train()
            module(torch.zeros(1, N_FIELDS, m, dtype=param.dtype, device=param.device))
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total


def flops_per_sample(name: str, cfg: dict[str, Any] | None = None, m: int = 30) -> int:
    """`count_flops` of net `name` with config `cfg`, without disturbing the global RNG."""
    with torch.random.fork_rng(devices=[]):
        net = build(name, m, **(cfg or {}))
    return count_flops(net, m)


def n_params(module: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
