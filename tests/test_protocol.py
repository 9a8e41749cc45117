"""The protocol study: candidates built resumably on real CSI 300 windows, the selection table on a
table with known answers, and the best-PK baseline chosen on train + valid days only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc import metrics, pk
from nnafc.data import load_panel, make_split
from nnafc.evaluate import protocol

TINY = {"m": 10, "net_cfg": {"hidden": [8]}, "pretrain_epochs": 1, "epochs": 1, "patience": 1, "q": 10}
SIZES = {"n_train": 60, "n_valid": 15, "n_test": 15}


@pytest.fixture(scope="module")
def panel(data_dir):
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2018-01-02", end="2019-06-28",
                      universe="csi300")


def test_candidates_are_valid_configs() -> None:
    from nnafc.construct import ConstructConfig

    for cand in protocol.CANDIDATES.values():
        ConstructConfig.from_dict(cand.config)
        assert set(cand.sizes) <= {"n_train", "n_valid", "n_test"}
    assert set(protocol.SELECTION_STARTS).isdisjoint(protocol.CONFIRMATION_STARTS)
    assert max(protocol.SELECTION_STARTS) < min(protocol.CONFIRMATION_STARTS)


def test_protocol_run_builds_each_candidate_and_resumes(panel, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "SIZES", SIZES)
    cands = {"defaults": protocol.Candidate(), "longer valid": protocol.Candidate(sizes={"n_valid": 25}),
             "lr": protocol.Candidate({"lr": 1e-4})}
    table = protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                                  progress=False)
    assert list(table["candidate"]) == list(cands) and not table["from zoo"].any()
    assert table["valid IC"].between(-1, 1).all() and table["test IC"].between(-1, 1).all()
    assert table["test IC"].nunique() == 3  # three different factors
    assert set(table["window"]) == {"2018-04-02"}  # reported under the window's own first day
    longer = {**SIZES, "n_valid": 25}
    (start, window), = protocol._aligned_starts(panel, ["2018-04-02"], longer).items()
    assert window == "2018-04-02" and start < window  # the longer validation split starts earlier ...
    assert make_split(panel.dates, start, **longer).test == make_split(panel.dates, window, **SIZES).test
    again = protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                                  progress=False)
    assert again["from zoo"].all()
    pd.testing.assert_series_equal(again["test IC"], table["test IC"])


def test_selection_table_on_known_numbers() -> None:
    table = pd.DataFrame({
        "candidate": ["a", "a", "b", "b"], "valid IC": [0.10, 0.10, 0.20, 0.20],
        "test IC": [0.05, 0.07, 0.02, 0.04], "seed factor test IC": [0.06, 0.0, 0.0, 0.05],
        "seconds": [10.0, 20.0, 5.0, 5.0],
    })
    out = protocol.selection_table(table)
    assert out.loc["a", "test IC"] == pytest.approx(0.06)
    assert out.loc["b", "test / valid"] == pytest.approx(0.15)
    assert out.loc["a", "beats seed factor"] == 0.5 and out.loc["b", "beats seed factor"] == 0.5
    assert out.loc["a", "seconds per factor"] == 15.0
    assert out["chosen"].tolist() == [True, False]  # chosen on test IC, not on the higher valid IC of b


def test_best_pk_baseline_is_chosen_before_the_test_days(panel, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "SIZES", SIZES)
    split = make_split(panel.dates, "2018-04-02", **SIZES)
    factors = [pk.factor(n) for n in ("MA10", "RSI12", "ROC12", "REV5")]
    base = protocol.best_pk_baselines(panel, ["2018-04-02", "2018-06-01"], factors=factors)
    assert list(base.index) == ["2018-04-02", "2018-06-01"]
    base = base.loc["2018-04-02"]
    chosen_on = slice(split.train.start, split.valid.stop)
    ics = {f.name: metrics.mean_ic(metrics.period_rank_ic(f.values(panel), panel, chosen_on))
           for f in factors}
    best = max(ics, key=lambda k: abs(ics[k]))
    assert base["factor"] == best and base["sign"] == np.sign(ics[best])
    assert base["train+valid IC"] == pytest.approx(abs(ics[best]))
    test = metrics.mean_ic(metrics.period_rank_ic(pk.factor(best).values(panel), panel, split.test))
    assert base["test IC"] == pytest.approx(np.sign(ics[best]) * test)
    moved = {k: v.copy() for k, v in panel.fields.items()}
    for v in moved.values():
        v[split.valid.stop:] *= np.random.default_rng(0).uniform(0.5, 2.0, v[split.valid.stop:].shape)
    other = protocol.best_pk_baselines(replace(panel, fields=moved), ["2018-04-02"], factors=factors)
    assert other.loc["2018-04-02", "factor"] == base["factor"]
    assert other.loc["2018-04-02", "train+valid IC"] == pytest.approx(base["train+valid IC"])


def test_confirmation_facts_on_known_numbers() -> None:
    table = pd.DataFrame({
        "candidate": ["a", "a", "b", "b"], "window": ["w1", "w2", "w1", "w2"],
        "valid IC": [0.10, 0.10, 0.20, 0.20], "test IC": [0.05, 0.07, 0.02, 0.04],
        "seed factor test IC": [0.0] * 4, "seconds": [1.0] * 4,
    })
    baselines = pd.DataFrame({"test IC": [0.03, 0.08]}, index=pd.Index(["w1", "w2"], name="window"))
    out = protocol.confirmation_facts(table, baselines)
    assert out.loc["a", "windows above best PK"] == 1 and out.loc["b", "windows above best PK"] == 0
    assert out.loc["a", "test IC w2"] == pytest.approx(0.07)
    assert out.loc["b", "best PK test IC"] == pytest.approx(0.055)


def test_best_pk_seeds_are_chosen_on_the_training_days_only(panel) -> None:
    split = make_split(panel.dates, "2018-04-02", **SIZES)
    factors = [pk.factor(n) for n in ("MA10", "RSI12", "ROC12", "REV5", "VOL20")]
    (seeds,) = protocol.best_pk_seeds(panel, [split], 2, factors=factors)
    ics = {f.name: abs(metrics.mean_ic(metrics.period_rank_ic(f.values(panel), panel, split.train)))
           for f in factors}
    assert seeds == sorted(ics, key=ics.get, reverse=True)[:2]
    later = panel.fields["close"].copy()
    later[split.train.stop:] *= np.random.default_rng(0).uniform(0.5, 2, later[split.train.stop:].shape)
    moved = replace(panel, fields={**panel.fields, "close": later.astype(np.float32)})
    assert protocol.best_pk_seeds(moved, [split], 2, factors=factors) == [seeds]  # nothing after training
    later_split = make_split(panel.dates, "2018-06-01", **SIZES)
    both = protocol.best_pk_seeds(panel, [split, later_split], 2, factors=factors)
    assert both[0] == seeds and both[1] == protocol.best_pk_seeds(panel, [later_split], 2, factors=factors)[0]
    with pytest.raises(ValueError, match="6 asked"):
        protocol.best_pk_seeds(panel, [split], 6, factors=factors)


def test_ensemble_rows_average_the_inits_into_one_factor(panel, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "SIZES", SIZES)
    cands = {"defaults": protocol.Candidate()}
    table = protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                                  init_seeds=(0, 1), progress=False)
    rows = protocol.ensemble_rows(table, panel, "defaults", 2, tmp_path)
    assert len(rows) == 1 and rows["candidate"].iloc[0] == "defaults, 2 inits"
    assert rows["seconds"].iloc[0] == pytest.approx(table["seconds"].sum())
    from nnafc.zoo import Zoo

    members = [Zoo(tmp_path).load(k) for k in table["key"]]
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # days no member scores stay NaN
        mean = np.nanmean([metrics.rank_score(f.values(panel)) for f in members], axis=0)
    split = make_split(panel.dates, "2018-04-02", **SIZES)
    want = metrics.mean_ic(metrics.period_rank_ic(mean, panel, split.test))
    assert rows["test IC"].iloc[0] == pytest.approx(want)
    with pytest.raises(ValueError, match="run them first"):
        protocol.ensemble_rows(table, panel, "defaults", 3, tmp_path)
    for weights in tmp_path.glob("*/weights.npz"):  # a zoo of measurements only still answers
        weights.unlink()
    again = protocol.ensemble_rows(table, panel, "defaults", 2, tmp_path, build=False)
    pd.testing.assert_frame_equal(again, rows)
    with pytest.raises(LookupError, match="nnafc protocol"):
        protocol.ensemble_rows(table[::-1], panel, "defaults", 2, tmp_path, build=False)  # other members


def test_a_best_pk_candidate_builds_each_windows_own_seeds(panel, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "SIZES", SIZES)
    monkeypatch.setattr(protocol, "best_pk_seeds",
                        lambda panel, splits, k, horizon: [["REV5", "ROC12"][:k]] * len(splits))
    table = protocol.protocol_run(panel, {"best": protocol.Candidate({"residual": 1.0}, seeds="best pk")},
                                  ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path, progress=False)
    assert table["seed factor"].tolist() == ["REV5"] and table["window"].tolist() == ["2018-04-02"]
    with pytest.raises(ValueError, match="seeds must be one of"):
        protocol.Candidate(seeds="best")


def test_reading_only_names_the_missing_factor_and_the_build_command(panel, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "SIZES", SIZES)
    cands = {"defaults": protocol.Candidate()}
    with pytest.raises(LookupError, match="nnafc protocol"):
        protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                              progress=False, build=False)
    built = protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                                  progress=False)
    read = protocol.protocol_run(panel, cands, ["2018-04-02"], ["MA10"], base=TINY, zoo=tmp_path,
                                 progress=False, build=False)
    pd.testing.assert_frame_equal(read.drop(columns="from zoo"), built.drop(columns="from zoo"))


def test_protocol_params_are_checked_before_any_work(tmp_path) -> None:
    from nnafc.params import ParamsError

    good = protocol.load_protocol_params()
    assert list(good.universes) == ["csi300", "all"] and Path(good.zoo).is_absolute()
    cases = {
        "universes: {top5: {seeds: [MA10]}}": "runs on 'csi300' or 'all'",
        "universes: {csi300: {seeds: [NOPE]}}": "seeds must be a list of PK",
        "universes: {csi300: {candidates: 3, seeds: [MA10]}}": "after the first",
        "universes: {csi300: {seeds: [MA10], cands: all}}": "did you mean 'candidates'",
        "zoo: x\nuniverse: {}": "did you mean 'universes'",
        "universes: {csi300: {seeds: [MA10]}}\nn_jobs: 0": "n_jobs",
    }
    for text, message in cases.items():
        path = tmp_path / "p.yaml"
        path.write_text(text)
        with pytest.raises(ParamsError, match=message):
            protocol.load_protocol_params(path)


def test_the_cli_gives_one_line_for_a_bad_stage_or_file(tmp_path, capsys) -> None:
    from nnafc.cli import main

    assert main(["protocol", "--stage", "confirm"]) == 2
    bad = tmp_path / "p.yaml"
    bad.write_text("universes: {csi300: {seeds: [NOPE]}}\n")
    assert main(["protocol", "--stage", "selection", "--params", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_a_committed_protocol_factor_is_rebuilt_with_its_stored_ics(data_dir) -> None:
    """The committed measurements are what the code computes: rebuild one (CSI 300, defaults)."""
    from nnafc.construct import construct_factor
    from nnafc.zoo import Zoo, factor_key

    params = protocol.load_protocol_params()
    store = Zoo(params.zoo)
    panel = protocol.stage_panel(params, "csi300", "selection", str(data_dir))
    (start,) = protocol._aligned_starts(panel, protocol.SELECTION_STARTS[:1], protocol.SIZES)
    split = make_split(panel.dates, start, **protocol.SIZES)
    seed = params.universes["csi300"]["seeds"][0]
    key = factor_key(seed, {}, panel, split)
    if not store.has(key):
        pytest.skip(f"the protocol study has no committed factor {key} (build it with `nnafc protocol`)")
    stored = store.meta(key)["ic"]["constructed"]
    rebuilt = construct_factor(seed, params.net, panel, split, {})
    # Bit-identical on the CPU that built it; another CPU's BLAS sums in another order (seen: an AMD
    # EPYC with AVX-512 rebuilt a factor stored on another machine 3e-5 apart in IC, and MKL_CBWR
    # alone moves it by 1e-5), which training carries into the ICs: agreement to 5e-4 is the check
    # across machines -- a changed config, label or loss moves them by far more.
    for part in ("train", "valid", "test"):
        assert rebuilt.meta["ic"]["constructed"][part] == pytest.approx(stored[part], abs=5e-4)


def test_period_ic_from_full_panel_ics_equals_the_cut_labels_ic(panel) -> None:
    f = pk.factor("MA10")
    daily = protocol.pk_daily_ics(panel, 5, [f])["MA10"]
    assert protocol.pk_daily_ics(panel, 5, [f])["MA10"] is daily  # computed once per panel
    for days in (slice(10, 70), slice(100, 131), slice(200, 204), slice(0, 3)):
        want = metrics.mean_ic(metrics.period_rank_ic(f.values(panel), panel, days, 5))
        got = protocol.period_ic(daily, days, 5)
        assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want, abs=1e-12)


def test_the_report_has_one_set_of_facts_and_says_why_it_is_absent() -> None:
    from nnafc.evaluate import protocol_report

    rep, why = protocol_report.read(None, None, simulated=True)
    assert rep is None and "simulated" in why
    empty = protocol_report.facts(None)
    per_universe = ("ic", "ratio", "defaults", "pk", "wins")
    assert {f"p_{u}_{k}" for u in protocol.AIMS for k in per_universe} <= set(empty)
    assert all(isinstance(v, float | int | str) for v in empty.values())


def test_the_chapter_report_reads_the_committed_study_and_its_aims(data_dir, monkeypatch) -> None:
    """The pre-training chapter's protocol section on the shared data: every factor it reports is
    committed (none missing, none rebuilt), the one choice is marked in every universe's rows, and
    the aims table is computed from the confirmation rows of that choice."""
    from nnafc.evaluate import protocol_report

    monkeypatch.setattr(protocol, "run_stage", _read_only(protocol.run_stage))
    rep, why = protocol_report.read(None, str(data_dir), simulated=False)
    assert rep is not None, why
    sel = rep.selection_table()
    assert sel["chosen"].groupby(level="universe").sum().eq(1).all()
    assert (sel[sel["chosen"]].index.get_level_values("candidate") == rep.chosen).all()
    conf, aims = rep.confirmation_table(), rep.aims()
    for u in aims.index:
        assert aims.loc[u, "chosen test IC"] == pytest.approx(conf.loc[(u, rep.chosen), "test IC"])
        assert bool(aims.loc[u, "IC aim met"]) == (aims.loc[u, "chosen test IC"] >= protocol.AIMS[u])
    facts = protocol_report.facts(rep)
    assert facts["p_chosen"] == rep.chosen
    assert facts["p_all_ic"] == pytest.approx(aims.loc["all", "chosen test IC"])


def _read_only(run_stage):
    def wrapped(*args, **kwargs):
        assert kwargs.get("build") is False, "the report must never build"
        return run_stage(*args, **kwargs)
    return wrapped
