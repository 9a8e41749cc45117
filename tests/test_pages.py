"""The pages readers see: code folded, one parameters block, a reproduce box, no build-machine
paths (`nnafc.pages`); and the browser check (`nnafc.pagecheck`) finding each kind of breakage on
a small constructed site in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnafc import pages
from nnafc.cli import main


def _code(src: str, tags=(), outputs=()) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": src, "outputs": list(outputs),
            "execution_count": 1}


def _md(src: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": src}


def _notebook() -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"nnafc": {"seconds": 75.0}}, "cells": [
        _md("# Title"),
        _code('data = None  # data directory\nseed = 0', tags=["parameters"]),
        _code('# Parameters\ndata = "/srv/me/data"\nseed = 1\n', tags=["injected-parameters"]),
        _code("ch = setup(data)", outputs=[{"output_type": "stream", "name": "stdout",
                                           "text": "read /srv/me/data/a.parquet in /srv/repo/runs/x\n"}]),
        _code("table", tags=["nbval-check-output", "hide-input"],
              outputs=[{"output_type": "display_data", "metadata": {},
                        "data": {"image/png": "iVBOR/srv/me/data+x",
                                 "text/plain": "<Figure /srv/me/data>"}}]),
        _code("shown()", tags=["show-input"]),
    ]}


def test_readers_copy_folds_code_merges_parameters_and_hides_paths() -> None:
    nb = _notebook()
    scrub = pages.scrub_paths("/srv/me/data", "/srv/repo", "/srv/repo/runs/x")
    out = pages.for_readers(nb, "real_world", "nnafc book --params params/p.yaml --data <data>", scrub)
    kinds = [(c["cell_type"], c["metadata"].get("tags", [])) for c in out["cells"]]
    assert kinds == [("markdown", []), ("markdown", []), ("markdown", []),  # title, reproduce box, parameters
                     ("code", ["hide-input"]), ("code", ["nbval-check-output", "hide-input"]),
                     ("code", ["show-input"])]
    box, params = out["cells"][1]["source"], out["cells"][2]["source"]
    assert "Reproduce this page" in box and "nnafc book --params params/p.yaml" in box and "1 min 15 s" in box
    assert params.startswith("````{dropdown} Parameters of this run")
    assert "seed = 1" in params and "seed = 0" in params  # the run's values and the defaults, one block
    text = str(out).replace("iVBOR/srv/me/data+x", "")  # but for the image's bytes
    assert "/srv/" not in text
    assert 'data = "<data>"' in params and "read <data>/a.parquet in runs/x" in text
    assert nb["cells"][3]["outputs"][0]["text"].startswith("read /srv/me/data")  # the executed one unchanged
    figure = out["cells"][4]["outputs"][0]["data"]
    assert figure == {"image/png": "iVBOR/srv/me/data+x", "text/plain": "<Figure <data>>"}  # bytes untouched


def test_the_front_page_shows_results_only() -> None:
    out = pages.for_readers(_notebook(), "intro", "nnafc book", {}, links=["kernel"], front=True)
    sources = [c["source"] for c in out["cells"]]
    assert sources[0] == "# Title"
    assert not any("Parameters of this run" in s or "Reproduce" in s for s in sources)
    assert [c["cell_type"] for c in out["cells"]] == ["markdown", "code", "code", "code"]


def test_scrub_keeps_paths_that_only_share_a_prefix() -> None:
    scrub = pages.scrub_paths(None, "/srv/repo", "/elsewhere/run")
    text = "/srv/repo /srv/repo2 /srv/repo/x /elsewhere/run/y"
    assert pages._scrub_text(text, scrub) == ". /srv/repo2 ./x <run>/y"


def _site(root: Path, body: str, extra: dict[str, str] | None = None) -> Path:
    html = root / "_build" / "html"
    html.mkdir(parents=True)
    _png(html / "ok.png")
    (html / "index.html").write_text(f"<html><body>{body}</body></html>")
    for name, text in (extra or {}).items():
        (html / name).write_text(f"<html><body>{text}</body></html>")
    return root


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)


def _has_chromium() -> bool:
    from nnafc.pagecheck import chromium

    try:
        chromium()
        import playwright  # noqa: F401
    except (ValueError, ImportError):
        return False
    return True


needs_chromium = pytest.mark.skipif(not _has_chromium(), reason="no Chromium / Playwright here "
                                    "(apt-get install chromium; pip install -e '.[test]')")


@needs_chromium
def test_pagecheck_passes_a_clean_site(tmp_path) -> None:
    from nnafc.pagecheck import check_book

    good = ('<h1 id="top">Fine</h1><img src="ok.png"><table><tbody><tr><td>1</td></tr></tbody></table>'
            '<a href="other.html#sec">next</a><a href="https://example.org/x">web</a>')
    site = _site(tmp_path, good, {"other.html": '<h2 id="sec">Other</h2><a href="index.html#top">back</a>',
                                  "go.html": '<meta http-equiv="Refresh" content="0; url=other.html" />'})
    report = check_book(site, forbidden={"/srv/repo": "."})
    assert report.problems == [] and sorted(report.pages) == ["go.html", "index.html", "other.html"]
    assert (site / "screenshots" / "index.png").is_file()


@needs_chromium
def test_pagecheck_finds_every_kind_of_breakage(tmp_path, capsys) -> None:
    from nnafc.pagecheck import check_book

    bad = ('<div class="cell_output"><div class="output traceback"><pre>Traceback (most recent call last):\n'
           'KeyError: 3</pre></div><div class="output stderr"><pre>ValueError: bad window</pre></div>'
           '<div class="output stderr"><pre>100%|#####| 4/4 [00:01]</pre></div></div>'
           '<img src="missing.png"><table><thead><tr><th>a</th></tr></thead><tbody></tbody></table>'
           '<p>read /srv/repo/runs/x/data.parquet</p>'
           '<a href="nowhere.html">gone</a><a href="other.html#nosuch">anchor</a>')
    redirect = '<meta http-equiv="Refresh" content="0; url=book/gone.html" />'
    site = _site(tmp_path, bad, {"other.html": '<h2 id="sec">Other</h2>', "go.html": redirect})
    report = check_book(site, forbidden={"/srv/repo": "."}, screenshots=False)
    found = sorted((p.page, p.what) for p in report.problems)
    assert found == [("go.html", "broken link"), ("index.html", "broken anchor"),
                     ("index.html", "broken link"), ("index.html", "build-machine path"),
                     ("index.html", "empty table"),
                     ("index.html", "error output"), ("index.html", "error output"),
                     ("index.html", "missing image")]  # the progress bar on stderr is not an error
    assert main(["pagecheck", str(site), "--no-screenshots"]) == 1  # /srv/repo is no path of this machine
    assert "7 problem(s)" in capsys.readouterr().out


def test_pagecheck_says_what_is_missing_in_one_line(tmp_path, capsys) -> None:
    assert main(["pagecheck", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no rendered book in") and "\n" not in err
