"""nnafc.nets: every registered extractor maps (n, 5, m) to (n,), trains, and validates its config."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnafc import nets

M = 30
ALL = nets.names()
# Smaller than the defaults where the default is slow on one CPU thread; same architecture.
SMALL = {"resnet": {"widths": (8, 16), "blocks": (1, 1)}, "lstm": {"hidden": 32, "layers": 1}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These nets are tiny: a second intra-op thread only adds contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _x(n: int, m: int = M, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, m, generator=g, dtype=dtype)  # (n, 5, m)


def _net(name: str, seed: int = 0, **cfg) -> nn.Module:
    torch.manual_seed(seed)
    return nets.build(name, M, **cfg)


def test_registry_names() -> None:
    assert ALL == ["fcn", "crossconv", "lenet", "resnet", "lstm", "tcn", "transformer"]
    assert set(nets.NETS) == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_shape_finite_all_batch_sizes(name: str) -> None:
    net = _net(name)
    for n in (1, 7, 300):
        y = net(_x(n))
        assert y.shape == (n,)
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL)
def test_gradient_reaches_every_parameter(name: str) -> None:
    net = _net(name)
    net(_x(7)).square().sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_seed(name: str) -> None:
    a, b, c = _net(name, seed=3), _net(name, seed=3), _net(name, seed=4)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)
    x = _x(7)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("name", ALL)
def test_float64_and_eval_mode(name: str) -> None:
    net = _net(name)
    x = _x(7)
    y32 = net(x)
    net64 = _net(name).double()
    y64 = net64(x.double())
    assert y64.dtype == torch.float64 and y64.shape == (7,)
    torch.testing.assert_close(y64.float(), y32, rtol=1e-4, atol=1e-5)
    # no dropout by default and no batch statistics: train and eval (torch's fast paths) agree
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), y32.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_per_stock_nets_ignore_other_stocks(name: str) -> None:
    net = _net(name)
    x = _x(9)
    alone = torch.stack([net(x[i : i + 1])[0] for i in range(3)])
    if net.cross_sectional:
        assert not torch.allclose(alone, net(x)[:3])
    else:
        torch.testing.assert_close(alone, net(x)[:3], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pools", [("mean", "std", "max"), ("rank",), ("mean", "max", "rank")])
def test_crossconv_permutation_equivariant_within_days(pools: tuple[str, ...]) -> None:
    net = _net("crossconv", pools=pools).double()
    x = _x(40, dtype=torch.float64)
    day = torch.tensor([20200102] * 15 + [20200103] * 25)
    y = net(x, day)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(x[perm], day[perm]), y[perm])


@pytest.mark.parametrize("pools", [("mean", "std", "max"), ("rank",)])
def test_crossconv_never_mixes_days(pools: tuple[str, ...]) -> None:
    net = _net("crossconv", pools=pools).double()
    x = _x(30, dtype=torch.float64)
    day = torch.tensor([7, 3] * 15)  # interleaved, unsorted ids
    y = net(x, day)
    x2 = x.clone()
    x2[day == 3] = _x(15, seed=5, dtype=torch.float64)  # change every stock of the other day
    y2 = net(x2, day)
    torch.testing.assert_close(y2[day == 7], y[day == 7], rtol=0, atol=0)
    assert not torch.allclose(y2[day == 3], y[day == 3])
    # each day alone gives the same values as the days batched together
    torch.testing.assert_close(net(x[day == 7]), y[day == 7])
    # default: all rows are one day
    torch.testing.assert_close(net(x), net(x, torch.zeros(30, dtype=torch.long)))


def test_crossconv_rejects_bad_day() -> None:
    net = _net("crossconv")
    with pytest.raises(ValueError, match="day"):
        net(_x(4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="day"):
        net(_x(4), torch.zeros(4))


def test_fcn_structure_matches_config() -> None:
    net = _net("fcn", hidden=(64, 96, 128, 64), activations=("relu", "tanh"))
    linears = [mod for mod in net.modules() if isinstance(mod, nn.Linear)]
    shapes = [(lin.in_features, lin.out_features) for lin in linears]
    assert shapes == [(150, 64), (64, 96), (96, 128), (128, 64), (64, 1)]
    acts = [type(mod) for mod in net.modules() if isinstance(mod, nn.Tanh | nn.ReLU)]
    assert acts == [nn.ReLU, nn.Tanh, nn.ReLU, nn.Tanh]
    assert isinstance(net.net[-1], nn.Linear)  # the output is not activated
    default = _net("fcn")
    widths = [lin.out_features for lin in default.modules() if isinstance(lin, nn.Linear)]
    assert widths[:-1] == [128, 128, 64] and 3 <= len(widths) - 1 <= 5  # the paper's range


def test_unknown_config_key_names_valid_keys() -> None:
    with pytest.raises(ValueError, match=r"'hiden'.*did you mean 'hidden'.*activations"):
        nets.build("fcn", hiden=(64,))


def test_unknown_net_lists_names() -> None:
    with pytest.raises(ValueError, match=r"'fnc'.*did you mean 'fcn'.*transformer"):
        nets.build("fnc")


@pytest.mark.parametrize(
    ("name", "cfg", "match"),
    [
        ("fcn", {"hidden": ()}, "hidden"),
        ("fcn", {"hidden": (64, -1)}, "positive"),
        ("fcn", {"activations": ("tanh", "sigmoidd")}, "activations"),
        ("fcn", {"dropout": 1.5}, "dropout"),
        ("crossconv", {"pools": ("mean", "median")}, "pools"),
        ("lenet", {"kernel": 4}, "kernel"),
        ("resnet", {"widths": (8, 16), "blocks": (1,)}, "stage"),
        ("transformer", {"d_model": 30, "heads": 4}, "divide"),
        ("tcn", {"kernel": 1}, "kernel"),
    ],
)
def test_invalid_config_values(name: str, cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nets.build(name, **cfg)


def test_yaml_lists_become_tuples_and_config_roundtrips() -> None:
    net = nets.build("resnet", m=20, widths=[8, 16], blocks=[1, 1])
    assert net.config.widths == (8, 16)
    d = nets.config_dict(net)
    assert d == {
        "name": "resnet",
        "m": 20,
        "widths": (8, 16),
        "blocks": (1, 1),
        "norm": "group",
        "pool": "avg",
    }
    again = nets.build(**d)
    assert nets.n_params(again) == nets.n_params(net)


def test_wrong_input_shape_and_too_short_m() -> None:
    with pytest.raises(ValueError, match=r"\(n, 5, 30\)"):
        _net("fcn")(torch.zeros(3, 5, 20))
    with pytest.raises(ValueError, match="m must be"):
        nets.build("lenet", m=3)


@pytest.mark.parametrize("name", ALL)
def test_other_window_lengths(name: str) -> None:
    torch.manual_seed(0)
    net = nets.build(name, m=10, **SMALL.get(name, {}))
    assert net(_x(4, m=10)).shape == (4,)


@pytest.mark.parametrize("m", [7, 30, 31])
def test_resnet_flatten_head_and_tcn_receptive_field(m: int) -> None:
    net = nets.build("resnet", m=m, widths=(4, 8, 8), blocks=(1, 1, 1), pool="flatten")
    assert net(_x(3, m=m)).shape == (3,)
    assert nets.build("tcn").receptive_field == 61 >= M


@pytest.mark.parametrize("name", ALL)
def test_prunable_weights_are_matrices_and_kernels(name: str) -> None:
    net = _net(name)
    weights = nets.prunable_weights(net)
    assert weights and all(w.ndim >= 2 for w in weights)
    names = [n for n, _ in nets.prunable_named_weights(net)]
    assert not any(n.endswith("bias") for n in names)
    # every non-prunable parameter is a vector (bias / norm gain)
    ids = {id(w) for w in weights}
    assert all(p.ndim == 1 for p in net.parameters() if id(p) not in ids)


def test_masking_prunable_weights_zeroes_their_contribution() -> None:
    net = _net("fcn")
    for w in nets.prunable_weights(net):
        w.data.mul_(torch.zeros_like(w))  # Eq. 16 with M = 0
    y = net(_x(5))
    assert torch.allclose(y, y[0].expand(5))  # output is the bias path alone


def test_flops() -> None:
    assert nets.flops_per_sample("fcn") == 150 * 128 + 128 * 128 + 128 * 64 + 64
    assert nets.flops_per_sample("fcn", {"hidden": (64,)}, m=10) == 50 * 64 + 64
    # transformer: embed + per layer (4 projections + 2 attention products + 2 ff) + head
    d, f, m = 32, 64, M
    layer = 4 * m * d * d + 2 * m * m * d + 2 * m * d * f
    assert nets.flops_per_sample("transformer") == m * 5 * d + 2 * layer + d
    state = torch.get_rng_state()
    for name in ALL:
        assert nets.flops_per_sample(name) > 0
    assert torch.equal(state, torch.get_rng_state())  # counting leaves the global RNG alone


@pytest.mark.parametrize("name", ALL)
def test_learns_mean_close(name: str) -> None:
    """~100 Adam steps reduce MSE on a simple learnable target: the mean close of the window."""
    net = _net(name, **SMALL.get(name, {}))
    x = _x(64, seed=11)
    y = x[:, 3].mean(1)  # (n,)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.no_grad():
        before = (net(x) - y).square().mean().item()
    for _ in range(100):
        opt.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * before


def test_crossconv_fits_cross_sectional_target_fcn_cannot() -> None:
    """A target that needs the other stocks of the day (Fig. 5's reason).

    The same 20 windows recur on 20 days in different company; the target, last close minus
    the day's average, differs between a window's days. A per-stock net can at best fit each
    window's average target; crossconv sees the day and fits it.
    """
    g = torch.Generator().manual_seed(12)
    windows = _x(20, seed=12)  # (20, 5, m)
    pick = torch.stack([torch.randperm(20, generator=g)[:5] for _ in range(20)]).flatten()
    x, day = windows[pick], torch.arange(20).repeat_interleave(5)  # (100, 5, m), (100,)
    last = x[:, 3, -1]
    y = last - (torch.zeros(20).index_add(0, day, last) / 5)[day]  # (100,)
    errors = {}
    for name in ("fcn", "crossconv"):
        net = _net(name)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(150):
            opt.zero_grad()
            loss = (net(x, day) - y).square().mean()
            loss.backward()
            opt.step()
        errors[name] = loss.item() / y.var().item()
    assert errors["crossconv"] < 0.02, errors
    assert errors["fcn"] > 0.08, errors


# ---------------------------------------------------------------------------- speed re-layouts


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_encoder_layer_is_torchs_layer_relaid_out(heads: int) -> None:
    """`_EncoderLayer` = `nn.TransformerEncoderLayer(norm_first=True)`: same init for a seed,
    same parameter names (old state dicts load), same outputs and gradients."""
    torch.manual_seed(5)
    ref = nn.TransformerEncoderLayer(32, heads, 64, 0.0, batch_first=True, norm_first=True).double()
    torch.manual_seed(5)
    new = nets._EncoderLayer(32, heads, 64, 0.0).double()
    sd_ref, sd_new = ref.state_dict(), new.state_dict()
    assert list(sd_ref) == list(sd_new)
    assert all(torch.equal(sd_ref[k], sd_new[k]) for k in sd_ref)
    with torch.no_grad():  # make the biases non-zero so that they are tested too
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    new.load_state_dict(ref.state_dict())
    h = torch.randn(6, M, 32, dtype=torch.float64, requires_grad=True)
    a, b = ref(h), new(h)
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    ga = torch.autograd.grad(a.square().sum(), [h, *ref.parameters()])
    gb = torch.autograd.grad(b.square().sum(), [h, *new.parameters()])
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-9)


def test_transformer_attention_dropout_only_in_training() -> None:
    net = _net("transformer", dropout=0.3)
    x = _x(5)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("name", [n for n in ALL if n != "lstm"])
def test_count_flops_matches_torch_flop_counter(name: str) -> None:
    """`count_flops` (hooks) agrees with torch's FlopCounterMode (2 FLOPs per multiply-add);
    torch has no formula for the oneDNN LSTM, hence the LSTM is left out."""
    from torch.utils.flop_counter import FlopCounterMode

    net = _net(name)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net.train()(_x(3))
    assert fc.get_total_flops() == 2 * 3 * nets.count_flops(net)


@pytest.mark.parametrize(
    ("name", "old", "fewer"),
    [
        ("resnet", {"widths": (16, 32, 64), "blocks": (2, 2, 2)}, 8),
        ("lstm", {"hidden": 64, "layers": 2}, 10),
    ],
)
def test_smaller_defaults_cut_flops(name: str, old: dict, fewer: int) -> None:
    """The defaults shrunk for CPU speed (see the config comments) cost at least `fewer`x less."""
    assert nets.flops_per_sample(name, old) >= fewer * nets.flops_per_sample(name)
    assert _net(name, **old)(_x(4)).shape == (4,)  # the old sizes stay valid configs


@pytest.mark.parametrize(
    ("m", "channels", "kernel"),
    [(30, (32, 32, 32, 32), 3), (10, (8, 16), 3), (7, (4, 4, 4), 2), (30, (8,), 5)],
)
def test_tcn_last_day_only_equals_full_blocks(m: int, channels: tuple, kernel: int) -> None:
    """The last block computed at the last day only = all blocks over all days, then day m-1,
    also where the receptive field reaches before the window (m=7, 10: zero padding)."""
    torch.manual_seed(0)
    net = nets.build("tcn", m=m, channels=channels, kernel=kernel).double()
    x = _x(6, m=m, dtype=torch.float64)
    full = net.head(net.blocks(x)[:, :, -1]).squeeze(-1)  # (n,)
    torch.testing.assert_close(net(x), full, rtol=1e-12, atol=1e-12)
    g_full = torch.autograd.grad(full.sum(), list(net.parameters()))
    g_last = torch.autograd.grad(net(x).sum(), list(net.parameters()))
    for a, b in zip(g_full, g_last, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
