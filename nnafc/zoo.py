"""The factor zoo: constructed factors on disk, content-addressed, resumable and safe to load.

Each factor lives in `<root>/<key>/`, `key` a hash of everything that determines it: the seed,
the construction config, the data it was built from (a fingerprint of the panel up to the end of
the test period, the universe, the split dates) and the code's format version. Re-running a job
whose key exists is a no-op, so an interrupted run resumes where it stopped.

    <key>/weights.npz        the net's state_dict as plain arrays (no pickle; compressed: pruned
                             zeros take no room). Zoos written before hold weights.pt, read with
                             torch.load(weights_only=True)
          masks.npz          the pruning masks M of Eq. 16 (bits, np.packbits, same names; compressed)
          standardiser.npz   the fitted input standardiser (plain arrays, no pickle; compressed)
          meta.json          name, config, seed, split, pre-training report, ICs, training curve
          values.parquet     long values over the split's days: datetime, instrument, value
                             (not in a zoo made with store_values=False, e.g. the committed study:
                             values are recomputed from the network on load)
    sets/<key>.json          a formula factor set (GP), `nnafc.gp.to_json` plus its metadata
    zoo.json                 the zoo's own settings: {"store_values": bool}

A directory appears only complete: it is written under a temporary name and renamed into place
(os.replace), so a killed writer leaves no half-factor behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import nnafc
from nnafc import nets
from nnafc.construct import INFERENCE_ROWS, ConstructConfig, NetScorer, as_config
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.data.windows import Standardiser
from nnafc.factor import Factor
from nnafc.files import atomic_path

FORMAT = 2  # bump when the on-disk layout or the meaning of a stored factor changes
NOT_HASHED = ("progress", "batch_rows")  # config fields that do not change the factor
HASHED_IF_SET = {"pretrain_stock_fraction": 1.0, "report_every": 1}  # fields added after FORMAT 2:
#   hashed only when not at this default (the behaviour before they existed): existing keys stay valid
FILES = ("weights.npz", "masks.npz", "standardiser.npz", "meta.json", "values.parquet")
# (older zoos hold weights.pt, torch tensors, and masks.pt, bool tensors: both still read; the
#   layout change keeps FORMAT, so their keys stay valid)
_HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"  # no "-" in it


# ---------------------------------------------------------------------------- keys


_FINGERPRINTS: dict[tuple[int, int], tuple[Panel, str]] = {}


def panel_fingerprint(panel: Panel, stop: int | None = None) -> str:
    """Hash of the panel's dates, instruments, fields and masks on days [0, stop).

    Construction reads history before the split too (windows, EMA-based seeds), so the whole
    prefix is hashed; days after `stop` (the end of the test period) are not. Cached per panel.
    """
    stop = len(panel.dates) if stop is None else stop
    cached = _FINGERPRINTS.get((id(panel), stop))
    if cached is not None and cached[0] is panel:
        return cached[1]
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(panel.dates[:stop].asi8).tobytes())
    h.update("\n".join(map(str, panel.instruments)).encode())
    for name in sorted(panel.fields):
        h.update(name.encode())
        h.update(np.ascontiguousarray(panel.fields[name][:stop]).tobytes())
    h.update(np.packbits(panel.traded[:stop]).tobytes())
    h.update(np.packbits(panel.in_universe[:stop]).tobytes())
    digest = h.hexdigest()
    if len(_FINGERPRINTS) > 64:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[(id(panel), stop)] = (panel, digest)
    return digest


def describe(seed: str | Factor, cfg: ConstructConfig | dict | None, panel: Panel, split: Split) -> dict:
    """What a factor's key hashes: seed, config, data, split and code format (JSON-able)."""
    cfg = as_config(cfg)
    seed_id = seed if isinstance(seed, str) else {"name": seed.name, "origin": seed.origin,
                                                     "meta": _plain(seed.meta)}
    dates = split.dates(panel.dates)
    return {
        "format": FORMAT,
        "code": nnafc.__version__,
        "seed_factor": seed_id,
        "config": {k: v for k, v in cfg.to_dict().items()
                   if k not in NOT_HASHED and not (k in HASHED_IF_SET and v == HASHED_IF_SET[k])},
        "data": {
            "fingerprint": panel_fingerprint(panel, split.test.stop),
            "universe": panel.universe,
            "simulated": panel.simulated,
            "first_date": str(panel.dates[0].date()),
        },
        "split": {k: [str(v[0].date()), str(v[-1].date()), len(v)] if len(v) else []
                  for k, v in dates.items()},
    }


def factor_key(seed: str | Factor, cfg: ConstructConfig | dict | None, panel: Panel, split: Split) -> str:
    """The content hash naming a factor in the zoo (20 hex digits)."""
    return content_key(describe(seed, cfg, panel, split))


def content_key(description: dict) -> str:
    """20 hex digits of the SHA-256 of a JSON-able description: the zoo's keys (factors and sets)."""
    blob = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# ---------------------------------------------------------------------------- standardiser state


def standardiser_state(st: Standardiser) -> dict[str, np.ndarray]:
    """The fitted Standardiser as plain arrays (np.savez-able, loadable without pickle)."""
    codes = [] if st.instruments_ is None else [str(s) for s in st.instruments_]
    fit = st.fit_days_ or slice(-1, -1)
    return {
        "method": np.array(st.method),
        "m": np.array(st.m, dtype=np.int64),
        "instruments": np.array(codes, dtype=str),
        "fitted_instruments": np.array(st.instruments_ is not None),
        "mean": np.zeros((0, 5)) if st.mean_ is None else np.asarray(st.mean_, dtype=np.float64),
        "std": np.zeros((0, 5)) if st.std_ is None else np.asarray(st.std_, dtype=np.float64),
        "has_stats": np.array(st.mean_ is not None),
        "fit_days": np.array([fit.start, fit.stop], dtype=np.int64),
    }


def pack_masks(masks: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """0/1 masks as bits (np.packbits) plus each one's shape: 1/8 of a bool tensor on disk."""
    out = {}
    for name, m in masks.items():
        bits = m.detach().cpu().bool().numpy()
        out[name] = np.packbits(bits.ravel())
        out[f"{name}#shape"] = np.array(bits.shape, dtype=np.int64)
    return out


def unpack_masks(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {}
    for name, packed in state.items():
        if name.endswith("#shape"):
            continue
        shape = tuple(int(v) for v in state[f"{name}#shape"])
        bits = np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)
        out[name] = torch.from_numpy(bits)
    return out


def standardiser_from_state(state: dict[str, np.ndarray]) -> Standardiser:
    st = Standardiser(str(state["method"]), int(state["m"]))
    if bool(state["fitted_instruments"]):
        st.instruments_ = pd.Index([str(s) for s in state["instruments"]])
    if bool(state["has_stats"]):
        st.mean_, st.std_ = np.array(state["mean"]), np.array(state["std"])
    a, b = (int(v) for v in state["fit_days"])
    st.fit_days_ = slice(a, b) if b > a else None
    return st


# ---------------------------------------------------------------------------- the zoo


class Zoo:
    """Constructed factors under `root`, one directory per content key."""

    key = staticmethod(factor_key)

    def __init__(self, root: str | os.PathLike, store_values: bool | None = None) -> None:
        """`store_values`: whether `save` writes values.parquet by default. None: as the zoo was made
        (its zoo.json; True for a new zoo). A setting is written to zoo.json so that every writer
        (the runner's worker processes too) follows it."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        settings = self.root / "zoo.json"
        stored = json.loads(settings.read_text()) if settings.is_file() else {}
        if store_values is not None and stored.get("store_values") != store_values:
            _atomic_write(settings, json.dumps({**stored, "store_values": store_values}, indent=1) + "\n")
            stored["store_values"] = store_values
        self.store_values = bool(stored.get("store_values", True))
        self._remove_orphans()

    def __repr__(self) -> str:
        return f"Zoo({str(self.root)!r}, {len(self.keys())} factors)"

    def path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a zoo key: {key!r}")
        return self.root / key

    def has(self, key: str) -> bool:
        """True when the factor `key` is complete on disk."""
        return (self.path(key) / "meta.json").is_file()

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "meta.json").is_file())

    def save(self, factor: Factor, panel: Panel, split: Split, key: str | None = None,
             values: bool | None = None, overwrite: bool = False) -> str:
        """Write a constructed factor atomically; an existing key is kept. Returns its key.

        `key` defaults to `factor_key` of the factor's seed name and config on `panel` / `split`
        (pass the key you looked up with, e.g. for a seed that is not a PK name). With `values`
        (default: the zoo's `store_values`), its values over the split's days are stored too.
        """
        values = self.store_values if values is None else values
        if not isinstance(factor.compute, NetScorer):
            raise ValueError(f"factor {factor.name!r} was not constructed by nnafc.construct (origin "
                             f"{factor.origin!r}); the zoo stores networks")
        seed_factor = factor.meta.get("seed_factor", factor.name)
        if factor.compute.base is not None:
            _residual_base(factor.meta)  # a residual factor is stored only with a seed it can rebuild
        desc = describe(seed_factor, factor.meta.get("config"), panel, split)
        key = key or factor_key(seed_factor, factor.meta.get("config"), panel, split)
        final = self.path(key)
        if self.has(key) and not overwrite:
            return key
        scorer = factor.compute
        tmp = self.root / f".tmp-{key}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            state = {k: v.detach().cpu().numpy() for k, v in scorer.net.state_dict().items()}
            np.savez_compressed(tmp / "weights.npz", **state)
            np.savez_compressed(tmp / "masks.npz", **pack_masks(scorer.masks or {}))
            np.savez_compressed(tmp / "standardiser.npz", **standardiser_state(scorer.standardiser))
            if values:
                block = scorer(panel, split.span)  # (T, N), NaN outside the split
                _long(block, panel, split.span).to_parquet(tmp / "values.parquet", index=False)
            meta = {**factor.meta, "key": key, "name": factor.name, "origin": factor.origin,
                    "format": FORMAT, "code": nnafc.__version__, "describe": desc}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
            if overwrite and final.exists():
                shutil.rmtree(final)
            try:
                os.replace(tmp, final)
            except OSError:
                if not self.has(key):  # not a lost race with another writer: a real error
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return key

    def meta(self, key: str) -> dict:
        if not self.has(key):
            raise KeyError(f"no factor {key!r} in {self.root}")
        return json.loads((self.path(key) / "meta.json").read_text())

    def load(self, key: str, device: str = "cpu") -> Factor:
        """The stored factor, its network rebuilt from the config and its weights loaded safely."""
        meta = self.meta(key)
        spec = dict(meta["net"])
        net = nets.build(spec.pop("name"), m=spec.pop("m"), **spec)
        d = self.path(key)
        net.load_state_dict(self.weights(key))
        if (d / "masks.npz").is_file():
            with np.load(d / "masks.npz", allow_pickle=False) as z:
                masks = unpack_masks({k: z[k] for k in z.files})
        else:  # a zoo written before masks were packed
            masks = torch.load(d / "masks.pt", map_location="cpu", weights_only=True)
        with np.load(d / "standardiser.npz", allow_pickle=False) as z:
            st = standardiser_from_state({k: z[k] for k in z.files})
        residual = meta.get("residual") or {}
        weight = float(residual.get("weight", 0.0)) * float(residual.get("sign", 1.0))
        scorer = NetScorer(net.to(device).eval(), st, device, INFERENCE_ROWS,  # not the build run's chunk
                           masks={k: v.float().to(device) for k, v in masks.items()},
                           base=_residual_base(meta) if weight else None, base_weight=weight)
        return Factor(name=meta["name"], origin=meta["origin"], compute=scorer, meta=meta)

    def weights(self, key: str) -> dict[str, torch.Tensor]:
        """The stored network's state_dict (CPU tensors), read without unpickling."""
        d = self.path(key)
        if not (d / "weights.npz").is_file():  # a zoo written before weights were compressed
            return torch.load(d / "weights.pt", map_location="cpu", weights_only=True)
        with np.load(d / "weights.npz", allow_pickle=False) as z:
            return {k: torch.from_numpy(z[k]) for k in z.files}

    def values(self, key: str) -> pd.DataFrame:
        """Stored long values (datetime, instrument, value) over the factor's split."""
        path = self.path(key) / "values.parquet"
        if not path.is_file():
            raise KeyError(f"factor {key!r} was saved without values")
        return pd.read_parquet(path)

    def list(self) -> pd.DataFrame:
        """One row per stored factor: key, name, seed, net, split, ICs, best epoch, seconds."""
        rows = []
        for key in self.keys():
            meta = self.meta(key)
            ic = meta.get("ic", {})
            split = meta.get("split", {})
            rows.append({
                "key": key,
                "name": meta.get("name"),
                "seed_factor": meta.get("seed_factor"),
                "net": meta.get("config", {}).get("net"),
                "train_start": (split.get("train") or [None])[0],
                "test_end": (split.get("test") or [None, None])[-1],
                "seed_factor_test_ic": ic.get("seed_factor", {}).get("test"),
                "valid_ic": ic.get("constructed", {}).get("valid"),
                "test_ic": ic.get("constructed", {}).get("test"),
                "best_epoch": meta.get("training", {}).get("best_epoch"),
                "seconds": meta.get("seconds"),
            })
        cols = ["key", "name", "seed_factor", "net", "train_start", "test_end", "seed_factor_test_ic",
                "valid_ic", "test_ic", "best_epoch", "seconds"]
        return pd.DataFrame(rows, columns=cols)

    # ---- formula factor sets (GP): no network, a JSON list of formulas

    def _set_path(self, key: str) -> Path:
        return self.path(key).parent / "sets" / f"{key}.json"

    def has_set(self, key: str) -> bool:
        return self._set_path(key).is_file()

    def set_keys(self) -> list[str]:
        d = self.root / "sets"
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []

    def save_set(self, key: str, factors: list[Factor], meta: dict | None = None) -> str:
        """Store formula factors (GP) under `key`, atomically; an existing key is kept."""
        from nnafc.gp import to_json

        path = self._set_path(key)
        if not path.is_file():
            path.parent.mkdir(exist_ok=True)
            body = {"key": key, "format": FORMAT, "code": nnafc.__version__, "meta": _plain(meta or {}),
                    "factors": json.loads(to_json(list(factors)))}
            _atomic_write(path, json.dumps(body, indent=1, sort_keys=True) + "\n")
        return key

    def set_meta(self, key: str) -> dict:
        if not self.has_set(key):
            raise KeyError(f"no factor set {key!r} in {self.root}")
        return json.loads(self._set_path(key).read_text())["meta"]

    def load_set(self, key: str) -> list[Factor]:
        """The stored formula factors (parsed, never eval-ed), in the order saved."""
        from nnafc.gp import from_json

        if not self.has_set(key):
            raise KeyError(f"no factor set {key!r} in {self.root}")
        body = json.loads(self._set_path(key).read_text())
        return from_json(json.dumps(body["factors"]))

    def _remove_orphans(self) -> None:
        """Delete temporary directories of writers on this host that no longer run (killed mid-save).

        Writers on other hosts of a shared file system (a Ray cluster) are left alone.
        """
        for p in self.root.glob(f".tmp-*-{_HOST}-*"):
            try:
                pid = int(p.name.split("-")[-2])
            except (IndexError, ValueError):
                continue
            if not _alive(pid):
                shutil.rmtree(p, ignore_errors=True)


def _residual_base(meta: dict) -> Factor:
    """The seed factor a residual-form factor adds to its net: a PK factor by name, a GP seed
    from its stored formula (parsed, never eval-ed)."""
    name, origin = meta.get("seed_factor"), meta.get("seed_factor_origin")
    if origin == "pk":
        from nnafc import pk

        return pk.factor(name)
    if "seed_factor_formula" in meta:
        from nnafc.gp import factor_from_formula

        return factor_from_formula(meta["seed_factor_formula"], name=name)
    raise ValueError(f"a residual-form factor seeded by {name!r} (origin {origin!r}) cannot be stored: "
                     "its seed must be a PK factor or a GP formula so that loading can rebuild it")


def _atomic_write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _long(values: np.ndarray, panel: Panel, days: slice) -> pd.DataFrame:
    """`(T, N)` values -> long frame of the finite entries on `days`."""
    block = values[days]  # (D, N)
    t, n = np.nonzero(np.isfinite(block))
    return pd.DataFrame({
        "datetime": panel.dates[days][t],
        "instrument": pd.Categorical(np.asarray(panel.instruments)[n]),
        "value": block[t, n].astype(np.float32),
    })


def split_dates(split: Split, dates: pd.DatetimeIndex) -> dict[str, list[str]]:
    """A split's first and last day per period, as ISO strings (how stored entries name their window)."""
    return {k: [str(v[0].date()), str(v[-1].date())] if len(v) else [] for k, v in split.dates(dates).items()}
