"""Many independent construction jobs at once: local processes by default, Ray for a cluster.

A job is (seed, net, split, config); each writes one factor into the zoo under its content key
and is skipped when that key exists, so a stopped run resumes. A failing job is retried up to
`retries` times and, if it still fails, reported -- never silently dropped:

    result = run_jobs(jobs, panel, "runs/x/zoo", n_jobs=4)   # raises RunError listing failures
    result.summary()                                          # one row per job

Workers are spawned processes (fork would inherit torch's thread pools), each with
`threads` torch threads, loading the panel once (shipped at start-up, not per job). With
n_jobs=1 jobs run in this process, one after another.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from nnafc.construct import ConstructConfig, as_config, construct_factor
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.factor import Factor
from nnafc.progress import bar as progress_bar
from nnafc.zoo import Zoo, factor_key

BACKENDS = ("local", "ray")
PARENT_CHECK_SECONDS = 1.0  # how often a pool worker checks that the run that started it is alive


@dataclass(frozen=True)
class Job:
    """One factor to construct: a seed factor, a net, a split and the construction config."""

    seed_factor: str | Factor  # a PK name, or a formula factor (a GP formula seeds "GP and NNAFC")
    net: str
    split: Split
    cfg: ConstructConfig = field(default_factory=ConstructConfig)

    @property
    def label(self) -> str:
        start = self.split.calendar[self.split.train.start].date() if self.split.calendar is not None \
            else f"day{self.split.train.start}"
        seed = self.seed_factor if isinstance(self.seed_factor, str) else self.seed_factor.name
        return f"{self.net}({seed})@{start}#s{self.cfg.seed}"


@dataclass
class Outcome:
    """What became of one job."""

    job: Job
    status: str  # "saved" (constructed now), "skipped" (already in the zoo) or "failed"
    key: str | None = None
    seconds: float = 0.0
    attempts: int = 0
    error: str = ""  # the last traceback of a failed job


class RunError(RuntimeError):
    """Some jobs still failed after their retries; `.result` holds every outcome."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        failed = result.failed
        lines = [f"{len(failed)} of {len(result.outcomes)} construction jobs failed:"]
        lines += [f"  {o.job.label}: {o.error.strip().splitlines()[-1] if o.error else '?'}" for o in failed]
        super().__init__("\n".join(lines))


@dataclass
class RunResult:
    outcomes: list[Outcome]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def keys(self) -> list[str]:
        """Zoo keys of every job that has its factor (saved now or before)."""
        return [o.key for o in self.outcomes if o.status != "failed" and o.key]

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "job": o.job.label, "seed_factor": o.job.seed_factor, "net": o.job.net, "status": o.status,
            "key": o.key,
            "attempts": o.attempts, "seconds": round(o.seconds, 2),
            "error": o.error.strip().splitlines()[-1] if o.error else "",
        } for o in self.outcomes])


def _effective(job: Job) -> Job:
    """The job with its net inside its config, so the zoo key hashes what is built."""
    cfg = as_config(job.cfg)
    if cfg.net != job.net:
        cfg = replace(cfg, net=job.net)
    return Job(job.seed_factor, job.net, job.split, cfg)


# ---------------------------------------------------------------------------- one job, anywhere


_WORKER: dict[str, Any] = {}


def _init_worker(panel: Panel, zoo_root: str, threads: int | None) -> None:
    """Per-process state: the panel (shipped once), the zoo, torch's thread count (None: leave it)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    _WORKER.update(panel=panel, zoo=Zoo(zoo_root))


def _init_pool_worker(parent: int, panel: Panel, zoo_root: str, threads: int | None) -> None:
    """A pool worker: `_init_worker`, and a watchdog that ends the worker once `parent` is gone.

    A parent killed with SIGKILL cannot tell its workers; without the watchdog they (and
    multiprocessing's resource tracker, which waits for them) stay blocked on a pipe.
    """
    import threading

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:  # re-parented: the run that started us is dead
                os._exit(1)

    threading.Thread(target=watch, name="nnafc-parent-watchdog", daemon=True).start()
    _init_worker(panel, zoo_root, threads)


def _run_one(job: Job) -> tuple[str, str, float, str]:
    """(status, key, seconds, error) of one job in this process; exceptions become "failed"."""
    t0 = time.perf_counter()
    key = None
    try:
        panel, zoo = _WORKER["panel"], _WORKER["zoo"]
        key = factor_key(job.seed_factor, job.cfg, panel, job.split)
        if zoo.has(key):
            return "skipped", key, time.perf_counter() - t0, ""
        factor = construct_factor(job.seed_factor, job.net, panel, job.split, job.cfg)
        zoo.save(factor, panel, job.split, key=key)
        return "saved", key, time.perf_counter() - t0, ""
    except Exception:  # noqa: BLE001 -- reported to the caller, retried, listed in the summary
        return "failed", key, time.perf_counter() - t0, traceback.format_exc()


# ---------------------------------------------------------------------------- the runner


def run_jobs(jobs: Sequence[Job], panel: Panel, zoo: Zoo | str | os.PathLike, n_jobs: int = 1,
             backend: str = "local", retries: int = 1, threads: int | None = None,
             progress: bool = True, raise_on_failure: bool = True) -> RunResult:
    """Construct every job's factor into `zoo`, skipping those already there.

    `n_jobs` workers (1: in this process), each with `threads` torch threads (default: the
    cores divided among the workers). A failed job is retried `retries` times, in a fresh
    worker pool (a crashed worker breaks its pool); failures that remain are listed in the
    result and, with `raise_on_failure`, raised as RunError after every other job has run.
    `backend="ray"` runs the jobs as Ray tasks (`pip install ray`; `ray.init` first for a cluster).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    jobs = [_effective(j) for j in jobs]
    zoo = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
    if threads is None and (n_jobs > 1 or backend == "ray"):  # in-process runs keep the caller's setting
        threads = max(1, (os.cpu_count() or 1) // n_jobs)
    outcomes = [Outcome(job, "failed") for job in jobs]
    keys = [factor_key(j.seed_factor, j.cfg, panel, j.split) for j in jobs]
    pending = []
    for i, key in enumerate(keys):
        outcomes[i].key = key
        if zoo.has(key):
            outcomes[i].status = "skipped"
        else:
            pending.append(i)
    bar = _bar(len(jobs), progress)
    bar.update(len(jobs) - len(pending))
    execute = {"local": _local_round, "ray": _ray_round}[backend]
    for attempt in range(retries + 1):
        if not pending:
            break
        results = execute([jobs[i] for i in pending], panel, str(zoo.root), n_jobs, threads, bar)
        retry = []
        for i, (status, key, seconds, error) in zip(pending, results, strict=True):
            o = outcomes[i]
            o.status, o.seconds, o.error, o.attempts = status, seconds, error, attempt + 1
            o.key = key or o.key
            if status == "failed":
                retry.append(i)
        pending = retry
    bar.close()
    for i in pending:
        bar.write(f"FAILED after {outcomes[i].attempts} attempts: {jobs[i].label}")
    result = RunResult(outcomes)
    if result.failed and raise_on_failure:
        raise RunError(result)
    return result


def _local_round(jobs: list[Job], panel: Panel, root: str, n_jobs: int, threads: int | None,
                 bar: Any) -> list[tuple[str, str, float, str]]:
    """Run jobs once, in this process (n_jobs=1) or in a fresh pool of spawned workers."""
    if n_jobs == 1:
        import torch

        caller_threads = torch.get_num_threads()
        _init_worker(panel, root, threads)
        out = []
        try:
            for job in jobs:
                out.append(_run_one(job))
                _report(bar, job, out[-1])
        finally:
            _WORKER.clear()
            torch.set_num_threads(caller_threads)
        return out
    out: list[Any] = [None] * len(jobs)
    ctx = mp.get_context("spawn")
    init = (os.getpid(), panel, root, threads)
    with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs)), mp_context=ctx,
                             initializer=_init_pool_worker, initargs=init) as pool:
        futures = {pool.submit(_run_one, job): k for k, job in enumerate(jobs)}
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                out[k] = fut.result()
            except Exception:  # noqa: BLE001 -- a dead worker (BrokenProcessPool), retried next round
                out[k] = ("failed", None, 0.0, traceback.format_exc())
            _report(bar, jobs[k], out[k])
    return out


def _ray_round(jobs: list[Job], panel: Panel, root: str, n_jobs: int, threads: int | None,
               bar: Any) -> list[tuple[str, str, float, str]]:
    """Run jobs once as Ray tasks (`threads` CPUs each); the panel goes to the object store once."""
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs ray: pip install 'nnafc[ray]'") from None
    if not ray.is_initialized():
        ray.init(num_cpus=n_jobs * threads, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=threads, max_retries=0)(_ray_task)
    panel_ref = ray.put(panel)
    refs = [task.remote(job, panel_ref, root, threads) for job in jobs]
    out = []
    for job, ref in zip(jobs, refs, strict=True):
        try:
            out.append(ray.get(ref))
        except Exception:  # noqa: BLE001 -- a dead worker or Ray error: retried next round
            out.append(("failed", None, 0.0, traceback.format_exc()))
        _report(bar, job, out[-1])
    return out


def _report(bar: Any, job: Job, result: tuple[str, str, float, str]) -> None:
    if result[0] == "failed":
        bar.write(f"job {job.label} failed: {result[3].strip().splitlines()[-1]}")
    else:
        bar.update(1)


def _ray_task(job: Job, panel: Panel, root: str, threads: int | None) -> tuple[str, str, float, str]:
    _init_worker(panel, root, threads)
    return _run_one(job)


def _bar(total: int, progress: bool) -> Any:
    return progress_bar(total=total, desc="factors", unit="job", disable=not progress)
