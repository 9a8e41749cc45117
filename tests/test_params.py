"""Parameter files: safe loading, loud failures on unknown keys and chapters."""

from pathlib import Path

import pytest

from nnafc.book import chapter_source, execute_chapter
from nnafc.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["smoke", "default"])
def test_shipped_params_load_and_name_real_chapters(name):
    params = load_params(ROOT / "params" / f"{name}.yaml")
    assert params.name == name
    for chapter in params.chapters:
        assert chapter_source(chapter).is_file()
    assert params.for_chapter(params.chapters[0])["seed"] == 0


def test_chapter_keys_override_shared(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("seed: 1\nchapters: [kernel]\nkernel:\n  seed: 7\n  p: 2.0\n")
    assert load_params(path).for_chapter("kernel") == {"seed": 7, "p": 2.0}


@pytest.mark.parametrize(
    "text, message",
    [
        ("chapters: [kernel]\nkernal:\n  p: 2\n", "unknown key 'kernal'"),
        ("seed: 0\n", "'chapters' must be"),
        ("chapters: [kernel]\nkernel: 3\n", "must be a mapping"),
        ("- a\n- b\n", "expected a mapping"),
        ("chapters: [kernel\n", "not valid YAML"),
    ],
)
def test_bad_params_fail_with_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message) as err:
        load_params(path)
    assert "\n" not in str(err.value)


def test_missing_file_and_unknown_chapter(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ParamsError, match="unknown chapter 'kernal'"):
        chapter_source("kernal")


def test_unknown_notebook_parameter_fails_before_executing(tmp_path):
    with pytest.raises(ParamsError, match=r"no parameter\(s\) \['pp'\]"):
        execute_chapter("kernel", {"pp": 2.0}, tmp_path)
    assert not list(tmp_path.glob("*.ipynb"))


@pytest.mark.parametrize("name", ["smoke", "default"])
def test_every_chapter_default_and_shipped_value_passes_the_checks(name):
    from nnafc import book, chapter_params

    for chapter in book.chapters():
        defaults = chapter_params.declared(book.chapter_source(chapter))
        assert {"data", "seed", "device"} <= set(defaults)
        assert {"universe", "study"} & set(defaults)  # its own universe, or the factor study's
        chapter_params.check(chapter, defaults, defaults)  # a chapter's own defaults are valid
    params = load_params(ROOT / "params" / f"{name}.yaml")
    for chapter in params.chapters:
        chapter_params.check(chapter, params.for_chapter(chapter),
                             chapter_params.declared(book.chapter_source(chapter)))
