"""The book pipeline: resume logic and rendering of executed notebooks (execution itself is
exercised by `make test`, which executes the smoke book and checks it with nbval)."""

import nbformat
import pytest

from nnafc import book, pages


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


def test_chapter_seconds_read_from_the_executed_notebook(tmp_path):
    path = tmp_path / "kernel.ipynb"
    assert book._seconds(path) is None  # not executed
    _executed_notebook(path, "abc")
    assert book._seconds(path) is None  # executed before seconds were recorded
    nb = nbformat.read(path, as_version=4)
    nb.metadata["nnafc"]["seconds"] = 83.5
    nbformat.write(nb, path)
    assert book._seconds(path) == 83.5


def test_render_builds_html_with_the_executed_outputs(tmp_path):
    _executed_notebook(tmp_path / "notebooks" / "kernel.ipynb", "x")
    index = book.render(tmp_path, ["kernel"])
    assert index.is_file()
    page = (tmp_path / "_build" / "html" / "book" / "kernel.html").read_text()
    assert "The kernel" in page
    assert "Reproduce this page" in page and "hide above-input" in page  # the readers' copy (nnafc.pages)
    assert str(tmp_path) not in page
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
    assert pages.unlink_missing(text, ["kernel"]) == "see {doc}`kernel` and real_world"


def _tiny_book(tmp_path, monkeypatch):
    """A book of two tiny chapters, `bad` (raises in its third cell) and `good`."""
    chapters = tmp_path / "book"
    chapters.mkdir()
    head = '# %% [markdown]\n# # {}\n\n# %% tags=["parameters"]\ndata = None\nseed = 0\n'
    (chapters / "good.py").write_text(head.format("Good") + 'n = 3\n\n# %%\nprint(sum(range(n)))\n')
    bad = '\n# %%\nx = 1\n\n# %%\nraise ZeroDivisionError("boom")\n'
    (chapters / "bad.py").write_text(head.format("Bad") + bad)
    monkeypatch.setattr(book, "BOOK_DIR", chapters)
    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\nchapters: [bad, good]\ngood:\n  n: 4\n")
    return params


def test_a_failed_chapter_is_one_line_and_the_others_still_run(tmp_path, monkeypatch, capfd):
    from nnafc.cli import main

    params = _tiny_book(tmp_path, monkeypatch)
    assert main(["book", "--params", str(params), "--out", str(tmp_path / "run"), "--no-render"]) == 1
    err = capfd.readouterr().err
    failed = tmp_path / "run" / "notebooks" / "bad.failed.ipynb"
    line = (f"error: chapter 'bad' failed in cell 5 of 5 (`raise ZeroDivisionError(\"boom\")`: "
            f"ZeroDivisionError: boom); executed notebook: {failed}\n")
    assert line in err and "Traceback" not in err
    assert "[book] bad: cell 4 of 5, 0m" in err and "[book] good: cell 4 of 4, 0m" in err  # progress
    assert failed.is_file() and not (tmp_path / "run" / "notebooks" / "bad.ipynb").exists()
    good = nbformat.read(tmp_path / "run" / "notebooks" / "good.ipynb", as_version=4)
    assert good.cells[-1].outputs[0]["text"] == "6\n"  # n = 4 from the params file


def test_a_long_cell_is_reported_while_it_runs(tmp_path, monkeypatch, capfd):
    from nnafc.cli import main

    chapters = tmp_path / "book"
    chapters.mkdir()
    (chapters / "slow.py").write_text('# %% [markdown]\n# # Slow\n\n# %% tags=["parameters"]\ndata = None\n'
                                      'seed = 0\n\n# %%\nimport time\ntime.sleep(1.5)\n')
    monkeypatch.setattr(book, "BOOK_DIR", chapters)
    monkeypatch.setattr(book, "HEARTBEAT_S", 0.3)
    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\nchapters: [slow]\n")
    assert main(["book", "--params", str(params), "--out", str(tmp_path / "run"), "--no-render"]) == 0
    err = capfd.readouterr().err
    assert "[book] slow: cell 4 of 4, 0m" in err and "[book] slow: cell 4 of 4 still running, 0m" in err


def test_failed_chapter_page_is_marked(tmp_path):
    notebooks = tmp_path / "notebooks"
    _executed_notebook(notebooks / "real_world.failed.ipynb", "x")
    path = notebooks / "real_world.failed.ipynb"
    failure = book.ChapterFailed("real_world", 2, 2, "ZeroDivisionError: boom", path)
    book._mark_failed(notebooks, [failure])
    nb = nbformat.read(notebooks / "real_world.failed.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and "failed to execute" in nb.cells[0].source
    assert "chapter 'real_world' failed in cell 2 of 2" in nb.cells[0].source
