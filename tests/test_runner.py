"""runner and `nnafc construct`: skip what exists, retry and report failures, resume after a kill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nnafc.construct import ConstructConfig
from nnafc.construct_cli import load_construct_params, run
from nnafc.data import Panel, load_panel, make_split
from nnafc.params import ParamsError
from nnafc.runner import Job, RunError, run_jobs
from nnafc.zoo import Zoo

SIZES = {"n_train": 60, "n_valid": 15, "n_test": 15}
TINY = {"m": 10, "net_cfg": {"hidden": [8]}, "pretrain_epochs": 1, "epochs": 2, "q": 10}
START, END = "2019-01-01", "2019-08-31"



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets gain nothing from threads, and threads on shared cores stall: one, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
@pytest.fixture(scope="module")
def panel(data_dir: Path) -> Panel:
    return load_panel(data_dir / "csi300_2010_2020.parquet", start=START, end=END, universe="csi300")


@pytest.fixture(scope="module")
def jobs(panel: Panel) -> list[Job]:
    split = make_split(panel.dates, panel.dates[20], **SIZES)
    cfg = ConstructConfig.from_dict(TINY)
    return [Job("RSI12", "fcn", split, cfg), Job("MA10", "fcn", split, cfg)]


def _weights(zoo: Zoo, key: str) -> dict[str, torch.Tensor]:
    return zoo.weights(key)


def _same_factor(zoo_a: Zoo, zoo_b: Zoo, key: str) -> None:
    a, b = _weights(zoo_a, key), _weights(zoo_b, key)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(zoo_a.values(key), zoo_b.values(key))


def test_saves_then_skips(tmp_path, panel, jobs) -> None:
    zoo = Zoo(tmp_path)
    first = run_jobs(jobs, panel, zoo, progress=False)
    assert [o.status for o in first.outcomes] == ["saved", "saved"]
    assert sorted(first.keys) == zoo.keys() and len(set(first.keys)) == 2
    again = run_jobs(jobs, panel, zoo, progress=False)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"] and again.keys == first.keys


def test_failures_are_retried_reported_and_raised(tmp_path, panel, jobs) -> None:
    bad = Job("NOT_A_FACTOR", "fcn", jobs[0].split, jobs[0].cfg)
    with pytest.raises(RunError, match="1 of 2 construction jobs failed") as err:
        run_jobs([bad, jobs[0]], panel, tmp_path, retries=2, progress=False)
    failed = err.value.result.failed
    assert [o.job.seed_factor for o in failed] == ["NOT_A_FACTOR"] and failed[0].attempts == 3
    assert "unknown prior-knowledge factor" in failed[0].error
    result = run_jobs([bad, jobs[0]], panel, tmp_path, retries=0, progress=False, raise_on_failure=False)
    assert [o.status for o in result.outcomes] == ["failed", "skipped"]  # the good one was kept
    assert list(result.summary()["status"]) == ["failed", "skipped"]


def test_process_pool_equals_in_process(tmp_path, panel, jobs) -> None:
    here = Zoo(tmp_path / "here")
    pool = Zoo(tmp_path / "pool")
    run_jobs(jobs, panel, here, threads=1, progress=False)
    result = run_jobs(jobs, panel, pool, n_jobs=2, threads=1, progress=False)
    assert [o.status for o in result.outcomes] == ["saved", "saved"]
    for key in here.keys():
        _same_factor(here, pool, key)


def test_ray_backend_equals_the_process_pool(tmp_path, panel, jobs, monkeypatch) -> None:
    """A local 2-CPU Ray instance builds the same factors (keys, weights, values) as the process pool."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'nnafc[ray]')")
    # Ray's raylet gives its agents 15 s to start by default: not enough on a busy 2-core machine
    monkeypatch.setenv("RAY_agent_register_timeout_ms", "120000")
    pool = Zoo(tmp_path / "pool")
    expected = run_jobs(jobs, panel, pool, n_jobs=2, threads=1, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_jobs(jobs, panel, tmp_path / "ray", backend="ray", n_jobs=2, threads=1, progress=False)
    finally:
        ray.shutdown()
    assert [o.status for o in result.outcomes] == ["saved"] * len(jobs)
    assert result.keys == expected.keys and Zoo(tmp_path / "ray").keys() == pool.keys()
    for key in pool.keys():
        _same_factor(pool, Zoo(tmp_path / "ray"), key)


# ---------------------------------------------------------------------------- nnafc construct


def _params(tmp_path: Path, data_dir: Path, **over) -> Path:
    raw = {"data": str(data_dir / "csi300_2010_2020.parquet"), "universe": "csi300", "start": START,
           "end": END, "seeds": ["RSI12", "MA10", "REV5", "ROC12"], "nets": {"fcn": {"hidden": [8]}},
           "splits": [20], **SIZES, "config": {k: v for k, v in TINY.items() if k != "net_cfg"},
           "threads": 1, "progress": False, **over}
    path = tmp_path / "construct-test.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("over", "message"), [
    ({"sedes": ["MA10"]}, "unknown key 'sedes' (did you mean 'seeds'?)"),
    ({"seeds": ["MA11"]}, "unknown prior-knowledge factor"),
    ({"nets": {"fcn": {"hiden": [8]}}}, "unknown config key for net 'fcn'"),
    ({"config": {"epoch": 3}}, "did you mean 'epochs'"),
    ({"config": {"net": "lstm"}}, "set nets under 'nets'"),
    ({"seeds": []}, "'seeds' is required"),
    ({"backend": "dask"}, "backend must be"),
])
def test_params_are_validated(tmp_path, data_dir, over, message) -> None:
    with pytest.raises(ParamsError, match=re.escape(message)):
        load_construct_params(_params(tmp_path, data_dir, **over))


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, data_dir, capsys) -> None:
    params = _params(tmp_path, data_dir)
    n_jobs = len(load_construct_params(params).seeds)
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nnafc.construct_cli", "--params", str(params),
                             "--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    zoo_dir = killed / "zoo"
    while time.monotonic() < deadline and proc.poll() is None:
        if zoo_dir.is_dir() and any((p / "meta.json").is_file() for p in zoo_dir.iterdir()):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = Zoo(zoo_dir).keys()
    assert 1 <= len(done) < n_jobs, "the run should have been killed after its first factor"

    resumed = run(params, out=killed)
    assert (resumed["status"] == "skipped").sum() == len(done)
    assert (resumed["status"] == "saved").sum() == n_jobs - len(done)
    fresh = run(params, out=tmp_path / "fresh")
    assert (fresh["status"] == "saved").all() and list(fresh["key"]) == list(resumed["key"])
    for key in fresh["key"]:
        _same_factor(Zoo(killed / "zoo"), Zoo(tmp_path / "fresh" / "zoo"), key)
    printed = capsys.readouterr().out
    assert "RSI12" in printed and "test_ic" in printed
    assert pd.read_csv(tmp_path / "fresh" / "summary.csv")["test_ic"].notna().all()
    assert np.isfinite(fresh["test_ic"].astype(float)).all()


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("params/construct-*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_construct_params_are_valid(path: Path) -> None:
    params = load_construct_params(path)
    assert params.seeds and params.nets and params.splits


def test_cli_without_data_uses_the_simulated_market(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NNAFC_DATA", raising=False)
    raw = {"seeds": ["MA10"], "nets": {"fcn": {"hidden": [8]}}, "splits": [60], "n_train": 80,
           "n_valid": 20, "n_test": 20, "simulate": {"n_stocks": 60, "n_days": 200},
           "config": {k: v for k, v in TINY.items() if k != "net_cfg"}, "threads": 1, "progress": False}
    path = tmp_path / "construct-sim.yaml"
    path.write_text(yaml.safe_dump(raw))
    table = run(path, out=tmp_path / "run")
    assert list(table["status"]) == ["saved"]
    meta = Zoo(tmp_path / "run" / "zoo").meta(table["key"][0])
    assert meta["simulated"] is True and meta["describe"]["data"]["simulated"] is True
