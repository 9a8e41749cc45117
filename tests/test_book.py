"""The book pipeline: resume logic and rendering of executed notebooks (execution itself is
exercised by `make test`, which executes the smoke book and checks it with nbval)."""

import nbformat
import pytest

from nnafc import book


def _executed_notebook(path, fingerprint):
    nb = nbformat.v4.new_notebook()
    result = nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)
    nb.cells = [
        nbformat.v4.new_markdown_cell("# The kernel"),
        nbformat.v4.new_code_cell("1 + 1", outputs=[result]),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["nnafc"] = {"fingerprint": fingerprint}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_fingerprint_depends_on_source_and_parameters():
    source = book.chapter_source("kernel")
    a = book._fingerprint(source, {"seed": 0, "p": 1.83})
    assert a == book._fingerprint(source, {"p": 1.83, "seed": 0})  # key order does not matter
    assert a != book._fingerprint(source, {"seed": 1, "p": 1.83})


def test_executed_chapter_is_current_only_with_same_fingerprint(tmp_path):
    path = tmp_path / "kernel.ipynb"
    assert not book._is_current(path, "abc")
    _executed_notebook(path, "abc")
    assert book._is_current(path, "abc")
    assert not book._is_current(path, "abd")
    path.write_text("{not json")
    assert not book._is_current(path, "abc")


def test_execute_chapter_skips_an_up_to_date_notebook(tmp_path, capsys):
    params = {"seed": 0}
    fingerprint = book._fingerprint(book.chapter_source("kernel"), params)
    _executed_notebook(tmp_path / "kernel.ipynb", fingerprint)
    before = (tmp_path / "kernel.ipynb").read_text()
    book.execute_chapter("kernel", params, tmp_path)
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "kernel.ipynb").read_text() == before


def test_render_builds_html_with_the_executed_outputs(tmp_path):
    _executed_notebook(tmp_path / "notebooks" / "kernel.ipynb", "x")
    index = book.render(tmp_path, ["kernel"])
    assert index.is_file()
    page = (tmp_path / "_build" / "html" / "book" / "kernel.html").read_text()
    assert "The kernel" in page
    toc = (tmp_path / "site" / "_toc.yml").read_text()
    assert "book/kernel" in toc


def test_staged_toc_keeps_only_executed_chapters():
    staged = book._staged_toc([])
    assert "book/intro" in staged and "book/kernel" not in staged


@pytest.mark.parametrize("bad", ["kernal", "../kernel"])
def test_unknown_chapter_is_refused(bad):
    with pytest.raises(book.ParamsError):
        book.chapter_source(bad)



def test_links_to_chapters_not_executed_become_text():
    text = "see {doc}`kernel` and {doc}`real_world`"
    assert book._unlink_missing(text, ["kernel"]) == "see {doc}`kernel` and real_world"
