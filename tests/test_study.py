"""The factor study: parameters checked before work, a tiny study built on real CSI 300 data,
reloaded from its zoo with the stored validation ICs reproduced, resumable, stale entries reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from nnafc import construct
from nnafc.params import ParamsError
from nnafc.study import Study, format_inventory, load_panel_for, load_params

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = {"epochs": 1, "pretrain_epochs": 1, "patience": 1}


def _write(path: Path, **over) -> Path:
    params = {
        "universe": "csi300", "start": "2018-01-02", "end": "2019-06-28",
        "train_starts": ["2018-07-02"], "n_train": 60, "n_valid": 15, "n_test": 15,
        "zoo": str(path.parent / "zoo"), "config": TINY_CONFIG, "n_jobs": 1, "progress": False,
        "families": {
            "gp": {"factors": 2, "gp": {"population": 24, "generations": 1, "history": 40}},
            "fcn": {"factors": 2, "seeds": ["MA10", "RSI12"]},
            "fcn+gp": {"factors": 1},
        },
    }
    params.update(over)
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir) -> Study:
    path = _write(tmp_path_factory.mktemp("study") / "study.yaml")
    study = Study.load(path, data=data_dir)
    study.build(log=lambda _: None)
    return study


def test_paper_scale_is_the_study_with_50_factors_on_a_gpu() -> None:
    study, paper = load_params(REPO / "params" / "study.yaml"), load_params(REPO / "params" / "paper.yaml")
    assert paper.train_starts == study.train_starts and paper.universe == study.universe
    assert set(paper.families) == set(study.families)
    assert all(f.factors == 50 for f in paper.families.values())
    assert all(f.config.device == "cuda" for f in paper.families.values() if f.config is not None)
    assert paper.zoo != study.zoo  # the GPU study is not the committed one


def test_committed_study_parameters_are_valid() -> None:
    params = load_params(REPO / "params" / "study.yaml")
    assert params.zoo == REPO / "study" / "zoo"
    assert {"gp", "fcn", "fcn+gp", "lenet", "resnet", "lstm", "tcn", "transformer"} <= set(params.families)
    assert all(f.factors >= 10 for f in params.families.values())
    assert len(params.train_starts) >= 3


@pytest.mark.parametrize(("over", "message"), [
    ({"windows": [1]}, "unknown key 'windows'"),
    ({"n_train": "many"}, "n_train must be a positive integer"),
    ({"train_starts": ["not a date"]}, "is not a date"),
    ({"families": {"fnc": {"factors": 2}}}, "unknown net 'fnc'"),
    ({"families": {"fcn": {"factors": 0}}}, "factors must be a positive integer"),
    ({"families": {"fcn": {"factors": 2, "seeds": ["MA11"]}}}, "unknown prior-knowledge factor 'MA11'"),
    ({"families": {"fcn": {"factors": 2, "config": {"epochz": 1}}}}, "did you mean 'epochs'"),
    ({"families": {"fcn+gp": {"factors": 2}}}, "needs the 'gp' family"),
    ({"families": {"gp": {"factors": 2, "gp": {"population": -1}}}}, "population"),
    ({"families": {"fcn": {"factors": 2, "windows": [1]}}}, "window positions 0..0"),
    ({"families": {"fcn": {"factors": 2, "windows": "first"}}}, "windows must be a non-empty list"),
])
def test_bad_parameters_fail_in_one_line(tmp_path, over, message) -> None:
    with pytest.raises(ParamsError, match=message) as info:
        load_params(_write(tmp_path / "bad.yaml", **over))
    assert "\n" not in str(info.value)


def test_construct_command_builds_a_study_file(tmp_path, data_dir, capsys) -> None:
    from nnafc.cli import main

    path = _write(tmp_path / "s.yaml", families={"fcn": {"factors": 1, "seeds": ["MA10"]}})
    assert main(["construct", "--params", str(path), "--data", str(data_dir)]) == 0
    assert "total: 1 of 1 factors" in capsys.readouterr().out
    assert main(["construct", "--params", str(path), "--out", str(tmp_path / "x")]) == 2
    assert "builds into its own `zoo`" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_members_spread_seed_factors_then_new_inits(tmp_path, data_dir) -> None:
    fams = {"fcn": {"factors": 5, "seeds": ["MA10", "RSI12"]}, "lstm": {"factors": 2, "seeds": "table1"}}
    study = Study(load_params(_write(tmp_path / "s.yaml", families=fams)), _panel(data_dir))
    fcn = study.members("fcn", 0)
    assert [(m.seed_factor, m.config.seed) for m in fcn] == [
        ("MA10", 0), ("RSI12", 0), ("MA10", 1), ("RSI12", 1), ("MA10", 2)]
    lstm = study.members("lstm", 0)
    assert [m.seed_factor for m in lstm] == ["MA5", "MACD5_35"]  # positions 0 and 9 of the 18 Table 1 seeds
    assert {m.config.net for m in lstm} == {"lstm"}


def test_a_family_built_on_some_windows_wants_nothing_on_the_others(tmp_path, data_dir) -> None:
    deep = {"factors": 2, "seeds": ["MA10"], "net": "fcn", "net_cfg": {"hidden": [8, 8, 8]}, "windows": [1]}
    fams = {"fcn": {"factors": 2, "seeds": ["MA10"]}, "fcn-deep": deep}
    path = _write(tmp_path / "s.yaml", families=fams, train_starts=["2018-07-02", "2018-08-01"])
    study = Study(load_params(path), _panel(data_dir))
    assert study.members("fcn-deep", 0) == [] and len(study.members("fcn-deep", 1)) == 2
    table = study.inventory().set_index(["family", "window"])
    assert table.loc[("fcn-deep", 0), "wanted"] == 0 and table.loc[("fcn-deep", 1), "wanted"] == 2
    assert table.loc[("fcn", 0), "wanted"] == 2
    with pytest.raises(LookupError, match="built on windows \\[1\\] only"):
        study.factor_set("fcn-deep", 0)


def _panel(data_dir):
    from nnafc.data import load_panel

    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2018-01-02", end="2019-06-28",
                      universe="csi300", min_history=60)


def test_built_study_is_complete_and_stores_no_values(built) -> None:
    table = built.inventory()
    assert (table["missing"] == 0).all(), table
    assert table.set_index("family")["present"].to_dict() == {"gp": 2, "fcn": 2, "fcn+gp": 1}
    assert table.attrs["stale"] == []
    assert not list(built.zoo.root.glob("*/values.parquet"))  # weights, masks, standardiser, meta only
    assert "total: 5 of 5 factors" in format_inventory(table)


def test_reloaded_factors_reproduce_their_stored_validation_ic(built) -> None:
    split = built.windows()[0]
    for family in ("fcn", "fcn+gp"):
        for factor in built.factor_set(family, 0):
            cfg = construct.as_config(factor.meta["config"])
            valid = construct.prepare(built.panel, split, cfg).valid
            values = factor.values(built.panel)  # recomputed from the stored network on the panel
            ic = construct.mean_rank_ic(valid.pad(valid.windows.gather(values)), valid.label)
            assert ic == pytest.approx(factor.meta["ic"]["constructed"]["valid"], abs=1e-6)


def test_test_day_values_are_the_whole_panels_values_on_those_days(built) -> None:
    test = built.windows()[0].test
    for family in ("fcn", "gp"):
        factors, values = built.test_values(family, 0)  # on a cut with only the history they need
        assert values.shape == (len(factors), test.stop - test.start, len(built.panel.instruments))
        whole = np.stack([f.values(built.panel)[test] for f in factors])
        np.testing.assert_allclose(values, whole, rtol=1e-5, atol=1e-6)
        assert np.isfinite(values).mean() > 0.5


def test_maps_and_diversity_read_the_studys_test_day_values(built) -> None:
    from nnafc.evaluate import clustering, extractors

    maps = clustering.study_maps(built, ["gp", "fcn"])  # fcn+gp has one factor: no map with it
    assert [m.window for m in maps] == ["2018-07-02"] and built.built("fcn+gp", 0) == 1
    assert maps[0].families == ["gp", "gp", "fcn", "fcn"] and maps[0].distance.shape == (4, 4)
    assert clustering.study_maps(built, ["gp", "fcn+gp"]) == []
    div = extractors.diversity_table(built, ["gp", "fcn", "lstm"], days=5)  # lstm: not in this study
    assert list(div["family"]) == ["gp", "fcn"] and (div["factors"] == 2).all()
    assert (div["diversity"] >= 0).all()


def test_measured_ic_is_the_constructions_measure_and_partial_tables_read_what_is_built(built) -> None:
    from nnafc import pk

    split = built.windows()[0]
    for factor in built.factor_set("fcn", 0):  # the seed factor's stored ICs, measured again from its values
        cfg = construct.as_config(factor.meta["config"])
        values = pk.factor(factor.meta["seed_factor"]).values(built.panel)
        (ic,) = construct.measured_ics([values], built.panel, split, ("valid", "test"), cfg)
        for period in ("valid", "test"):
            assert ic[period] == pytest.approx(factor.meta["ic"]["seed_factor"][period], abs=1e-6)
    table = built.ic_table("fcn", partial=True)
    assert len(table) == 2 and table.equals(built.ic_table("fcn"))


def test_table6_factor_table_reads_networks_and_measures_formulas(built) -> None:
    from nnafc.evaluate import extractors

    t = extractors.factor_table(built, ["gp", "fcn", "lstm"])  # lstm: not a family of this study
    assert t["family"].value_counts().to_dict() == {"gp": 2, "fcn": 2}
    fcn = t[t["family"] == "fcn"]
    stored = [f.meta["ic"]["constructed"]["test"] for f in built.factor_set("fcn", 0)]
    assert sorted(fcn["test IC"]) == sorted(stored)
    gp = t[t["family"] == "gp"]
    assert gp["test IC"].notna().all() and gp["seed factor test IC"].isna().all()
    assert (gp["seconds"] > 0).all() and t["window"].nunique() == 1


def test_gp_seeded_family_uses_the_windows_gp_formulas(built) -> None:
    gp_set = built.factor_set("gp", 0)
    seeded = built.factor_set("fcn+gp", 0)
    assert [f.meta["seed_factor_origin"] for f in seeded] == ["gp"]
    assert seeded[0].meta["seed_factor"] == gp_set[0].name
    values = gp_set[0].values(built.panel)
    assert np.isfinite(values[built.windows()[0].test]).any()


def test_trading_windows_get_only_the_sets_built_for_exactly_them(built, data_dir) -> None:
    from nnafc.data import load_panel
    from nnafc.data.splits import Split, make_split
    from nnafc.evaluate import table5, table7

    # a chapter's panel may start on another day: the study window is found by its dates
    panel = load_panel(data_dir / "csi300_2010_2020.parquet", start="2018-03-01", end="2019-06-28",
                       universe="csi300", min_history=60)
    same = make_split(panel.dates, "2018-07-02", n_train=60, n_valid=15, n_test=15)
    assert built.window_of(same, panel) == 0
    sets = built.sets_for(same, panel)
    assert {f: len(v) for f, v in sets.items()} == {"gp": 2, "fcn": 2, "fcn+gp": 1}
    np.testing.assert_allclose(sets["fcn"][0].values(panel)[same.test],  # the study's network, this panel
                               built.factor_set("fcn", 0)[0].values(panel)[same.test], rtol=1e-5, atol=1e-6)
    for other in (make_split(panel.dates, "2018-07-03", n_train=60, n_valid=15, n_test=15),  # a day later
                  make_split(panel.dates, "2018-07-02", n_train=60, n_valid=15, n_test=16),  # a longer test
                  Split(slice(same.train.start, same.train.stop - 1),
                        slice(same.valid.start - 1, same.valid.stop), same.test)):  # other validation days
        assert built.window_of(other, panel) is None and built.sets_for(other, panel) == {}
    # a strategy window inside the study's: its last training days, the same validation days, a shorter test
    inner = Split(slice(same.train.stop - 40, same.train.stop), same.valid,
                  slice(same.test.start, same.test.start + 10), calendar=panel.dates)
    assert built.window_of(inner, panel) == 0
    net = built.sets_for(inner, panel)["fcn"][0]  # computes only the inner window's days
    values = net.values(panel)
    assert np.isnan(values[: inner.train.start]).all() and np.isnan(values[inner.test.stop:]).all()
    np.testing.assert_allclose(values[inner.test], sets["fcn"][0].values(panel)[inner.test],
                               rtol=1e-5, atol=1e-6)
    for family in ("gp", "fcn+gp"):  # a formula and a residual net, computed from 150 days of history
        whole = built.factor_set(family, 0)[0].values(panel)
        np.testing.assert_allclose(sets[family][0].values(panel)[same.span], whole[same.span],
                                   rtol=1e-5, atol=1e-6)
        assert np.isnan(sets[family][0].values(panel)[: same.train.start]).all()
    assert net.meta["key"] == sets["fcn"][0].meta["key"]
    assert net.meta["dates"][1] == str(panel.dates[inner.test.stop - 1].date())
    everyone = load_panel(data_dir / "ashare_2010_2020.parquet", start="2018-01-02", end="2019-06-28",
                          universe="all", min_history=60)
    assert built.sets_for(make_split(everyone.dates, "2018-07-02", n_train=60, n_valid=15, n_test=15),
                          everyone) == {}  # another universe: its factors were never built there
    pk = table7.pk_set(3)
    rows = table7.table7_sets_for(panel, pk, built)(same)
    assert rows["GP 50"] and rows["GP Combine 50"] and rows["fcn Combine 50"]
    assert rows["lstm Combine 50"] is None  # no lstm family in this study
    assert table7.table7_sets_for(panel, pk, None)(same)["GP 50"] is None
    schemes = table5.table5_sets_for(panel, pk, built)(same)
    assert all(schemes[s] for s in table5.TABLE5_SCHEMES)


def test_gp_set_keeps_its_search_record(built) -> None:
    result = built.gp_result(0)
    kept = built.factor_set("gp", 0)
    assert [f.name for f in result.factors] == [f.name for f in kept]
    assert list(result.table["name"])[: len(kept)] == [f.name for f in kept]
    assert {"parent", "child", "parent_ic", "child_ic", "changed"} <= set(result.lineage.columns)
    assert result.lineage["changed"].dtype == bool and len(result.history) >= 1
    assert result.config.history == built._gp_config(0).history


def test_gp_seeded_family_wants_no_more_factors_than_gp_kept(built) -> None:
    fams = {**built.params.raw["families"], "fcn+gp": {"factors": 5}}
    more = Study(load_params(_write(built.params.path.parent / "more.yaml", families=fams)), built.panel)
    kept = len(built.factor_set("gp", 0))
    row = more.inventory().set_index("family").loc["fcn+gp"]
    assert row["wanted"] == min(5, kept) and row["present"] == 1  # the first one is the built one


def test_ic_table_reads_each_factors_stored_measurements(built) -> None:
    table = built.ic_table("fcn")
    factors = built.factor_set("fcn", 0)
    assert len(table) == len(factors) == 2
    assert list(table["seed factor"]) == [f.meta["seed_factor"] for f in factors]
    assert list(table["test IC"]) == [f.meta["ic"]["constructed"]["test"] for f in factors]
    assert list(table["seed factor valid IC"]) == [f.meta["ic"]["seed_factor"]["valid"] for f in factors]
    assert (table["window"] == str(built.windows()[0].dates()["train"][0].date())).all()
    with pytest.raises(ValueError, match="GP family"):
        built.ic_table("gp")


def test_the_chapter_checks_its_study_family_before_work(built) -> None:
    from nnafc import chapter_params
    from nnafc.params import ParamsError

    defaults = {"study": None, "quality_family": "fcn"}
    chapter_params.check("pretraining", {"study": str(built.params.path)}, defaults)
    with pytest.raises(ParamsError, match="not a network family of the study; it has"):
        chapter_params.check("pretraining", {"study": str(built.params.path), "quality_family": "gp"},
                             defaults)
    with pytest.raises(ParamsError, match="'lstm' is not a network family"):
        chapter_params.check("pretraining", {"quality_family": "lstm", "study": str(built.params.path)},
                             defaults)


def test_build_resumes_and_changed_config_is_never_used(built, tmp_path) -> None:
    before = sorted(built.zoo.keys())
    again = Study(built.params, built.panel).build(log=lambda _: None)  # nothing left to do
    assert sorted(built.zoo.keys()) == before and (again["missing"] == 0).all()
    changed = _write(built.params.path.parent / "changed.yaml", config={**TINY_CONFIG, "lr": 1e-3})
    other = Study(load_params(changed), built.panel)
    table = other.inventory()
    assert table.set_index("family").loc[["fcn", "fcn+gp"], "present"].tolist() == [0, 0]
    assert set(before) <= set(table.attrs["stale"])  # the old networks are reported, not loaded
    with pytest.raises(LookupError, match="nnafc study build"):
        other.factor_set("fcn", 0)


def test_a_timed_piece_does_one_round_then_stops_and_the_next_resumes(tmp_path, data_dir) -> None:
    path = _write(tmp_path / "study.yaml", families={"fcn": {"factors": 3, "seeds": ["MA10"]}})
    study = Study.load(path, data=data_dir)
    logs: list[str] = []
    piece = study.build(max_minutes=0, log=logs.append)  # one round: two jobs for one worker
    assert int(piece["present"].sum()) == 2 and int(piece["missing"].sum()) == 1
    assert any("run the same command again" in line for line in logs)
    resumed = study.build(max_minutes=0, log=lambda _: None)  # its round is the missing job, not a re-skip
    assert int(resumed["present"].sum()) == 3


@pytest.mark.parametrize("study_file", ["study.yaml", "study-qlib.yaml"])
def test_committed_study_factors_reproduce_their_validation_ic(data_dir, study_file) -> None:
    """Every committed family: one factor (of its first complete window) recomputed on the shared data."""
    params = load_params(REPO / "params" / study_file)
    if not any(params.zoo.glob("*/meta.json")):
        pytest.skip("no factor of the study is committed yet (nnafc study build --params params/study.yaml)")
    study = Study(params, load_panel_for(params, data_dir))
    table = study.inventory()
    assert not table.attrs["stale"], "committed entries whose key no longer matches: rebuild or remove them"
    complete = table[(table["missing"] == 0) & (table["present"] > 0) & (table["family"] != "gp")]
    assert len(complete), "no complete family window is committed to check"
    for row in complete.drop_duplicates("family").itertuples():  # each family's code path once
        factor = study.factor_set(row.family, row.window)[0]
        split = study.windows()[row.window]
        valid = construct.prepare(study.panel, split, construct.as_config(factor.meta["config"])).valid
        values = factor.compute(study.panel, split.valid)  # (T, N): the validation days only, NaN elsewhere
        ic = construct.mean_rank_ic(valid.pad(valid.windows.gather(values)), valid.label)
        assert ic == pytest.approx(factor.meta["ic"]["constructed"]["valid"], abs=1e-5)


def test_table6_ic_and_icir_come_from_the_test_day_values(built) -> None:
    from nnafc import metrics
    from nnafc.data.windows import period_labels
    from nnafc.evaluate import extractors

    ics = extractors.test_ic_table(built, ["gp", "fcn"])
    assert list(ics["family"]) == ["gp", "gp", "fcn", "fcn"]
    test = built.windows()[0].test
    factor = built.factor_set("fcn", 0)[1]
    labels = period_labels(built.panel["close"], test, 5)  # no price after the test period's last day
    daily = metrics.rank_ic(factor.values(built.panel)[test], labels, built.panel.in_universe[test])
    row = ics[ics["family"] == "fcn"].iloc[1]
    assert row["rank IC"] == pytest.approx(np.nanmean(daily)) and row["rank ICIR"] == pytest.approx(
        np.nanmean(daily) / np.nanstd(daily, ddof=1))
    # its rank IC is the construction's stored test IC up to the stocks counted (universe vs full windows)
    assert row["rank IC"] == pytest.approx(factor.meta["ic"]["constructed"]["test"], abs=0.02)
    table = extractors.table6(extractors.factor_table(built, ["gp", "fcn"]), ["gp", "fcn"], ics=ics)
    assert table.loc["fcn", "test ICIR"] == pytest.approx(ics.loc[ics["family"] == "fcn", "rank ICIR"].mean())
