"""The rendered book checked in a real browser: what a reader would see broken, found before they do.

Every HTML page of a built book (`<run>/_build/html`) is opened in headless Chromium (Playwright
driving the system's Chromium: Debian's `chromium` package, or `NNAFC_CHROMIUM`), and a page fails on

- a page that does not load;
- an error or a traceback in a cell's output (`Traceback (most recent call last)`, an `...Error:`
  line in a stderr output, or myst-nb's error / traceback output);
- an image that did not load; a table with no rows;
- an absolute path of the build machine in its text (the repository, run and data directories,
  the home directory: `pages.scrub_paths`);
- an internal link to a page or an anchor that does not exist.

A full-page screenshot of each page is saved (`<run>/screenshots/<page>.png`). JavaScript errors
are reported beside the problems, not counted: they come from the theme, not the book.

    nnafc pagecheck runs/smoke          # exit status 1 and one line per problem when any
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# what each page is asked for, in the page itself (one round trip)
_PROBE = """() => ({
  text: document.body ? document.body.innerText : "",
  images: [...document.images].map(i => [i.getAttribute("src"), i.complete && i.naturalWidth > 0]),
  tables: [...document.querySelectorAll("table")].map(t => t.querySelectorAll("tr td, tr th").length
                                                        && t.querySelectorAll("tbody tr").length),
  errors: [...document.querySelectorAll(".output.traceback, .output.error, .output.stderr")]
            .map(e => [e.className, e.innerText.slice(0, 300)]),
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
  ids: [...document.querySelectorAll("[id]")].map(e => e.id),
})"""
_ERROR_LINE = re.compile(r"^\w*(Error|Exception): ", re.M)
_REDIRECT = re.compile(r'<meta[^>]+http-equiv="refresh"[^>]+url=([^"\s>]+)', re.I)


@dataclass(frozen=True)
class Problem:
    page: str
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.what}: {self.detail}"


@dataclass
class PageReport:
    pages: list[str]
    problems: list[Problem]
    js_errors: list[str]
    screenshots: Path | None


def chromium() -> str:
    """The Chromium executable: `NNAFC_CHROMIUM`, else the first of `CHROMIUMS` on PATH."""
    path = os.environ.get("NNAFC_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUMS)), None)
    if not path or not Path(path).exists():
        raise ValueError("no Chromium found for the browser check: install Debian's `chromium` package "
                         "(apt-get install chromium) or set NNAFC_CHROMIUM to a Chromium executable")
    return path


def _error_outputs(errors: list[list[str]]) -> list[str]:
    out = []
    for cls, text in errors:
        if "traceback" in cls or "error" in cls.split() or "Traceback (most recent call last)" in text \
                or _ERROR_LINE.search(text):
            out.append(" ".join(text.split())[:160])
    return out


def check_book(run_dir: str | Path, forbidden: dict[str, str] | None = None,
               screenshots: bool = True) -> PageReport:
    """Open every page of `<run_dir>/_build/html` in headless Chromium and list what is broken.

    `forbidden`: absolute paths that must not appear in any page's text (default: those
    `pages.scrub_paths` hides, for this run directory and the data it was built on).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ValueError("the browser check needs Playwright: pip install -e '.[test]'") from None

    from nnafc.pages import path_pattern, scrub_paths
    from nnafc.params import ROOT

    run_dir = Path(run_dir).resolve()
    html = run_dir / "_build" / "html"
    if not (html / "index.html").is_file():
        raise ValueError(f"no rendered book in {run_dir} (no {html / 'index.html'}): run `nnafc book` first")
    forbidden = scrub_paths(_data_of(run_dir), ROOT, run_dir) if forbidden is None else forbidden
    files = sorted(p for p in html.rglob("*.html") if not {"_static", "_sources"} & set(p.parts))
    shots = run_dir / "screenshots" if screenshots else None
    if shots:
        shutil.rmtree(shots, ignore_errors=True)
        shots.mkdir(parents=True)
    problems: list[Problem] = []
    js_errors: list[str] = []
    ids: dict[Path, set[str]] = {}
    links: dict[Path, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda exc: js_errors.append(f"{page.url}: {exc}"))
        for file in files:
            name = str(file.relative_to(html))
            redirect = _REDIRECT.search(file.read_text(errors="replace"))
            if redirect:  # a redirect page (the book's index.html): its target must exist, nothing to see
                links[file] = [(file.parent / redirect.group(1)).resolve().as_uri()]
                ids[file] = set()
                continue
            try:
                response = page.goto(file.as_uri(), wait_until="load", timeout=60_000)
            except Exception as exc:  # noqa: BLE001 -- any failure to load is the finding
                problems.append(Problem(name, "does not load", " ".join(str(exc).split())[:200]))
                continue
            if response is not None and not response.ok:
                problems.append(Problem(name, "does not load", f"status {response.status}"))
            seen = page.evaluate(_PROBE)
            problems += [Problem(name, "error output", e) for e in _error_outputs(seen["errors"])]
            problems += [Problem(name, "missing image", str(src)) for src, ok in seen["images"] if not ok]
            empty = sum(1 for rows in seen["tables"] if not rows)
            if empty:
                problems.append(Problem(name, "empty table", f"{empty} table(s) without rows"))
            problems += [Problem(name, "build-machine path", p) for p in forbidden
                         if path_pattern(p).search(seen["text"])]
            ids[file] = set(seen["ids"])
            links[file] = seen["links"]
            if shots:
                page.screenshot(path=str(shots / (name.replace("/", "_")[:-5] + ".png")), full_page=True)
        browser.close()
    problems += _broken_links(html, links, ids)
    return PageReport([str(f.relative_to(html)) for f in files], problems, js_errors, shots)


def _broken_links(html: Path, links: dict[Path, list[str]], ids: dict[Path, set[str]]) -> list[Problem]:
    """Internal links (file:// inside the book) to a missing file or a missing anchor."""
    out = []
    for file, hrefs in links.items():
        for href in dict.fromkeys(hrefs):
            url = urlparse(href)
            if url.scheme != "file":
                continue  # the web: not checked (CI has no internet)
            target = Path(unquote(url.path))
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                out.append(Problem(str(file.relative_to(html)), "broken link", href))
            elif url.fragment and target in ids and unquote(url.fragment) not in ids[target]:
                out.append(Problem(str(file.relative_to(html)), "broken anchor", href))
    return out


def _data_of(run_dir: Path) -> str | None:
    """The data directory a run's chapters were executed on (their notebooks' recorded parameters)."""
    import json

    for nb in sorted((run_dir / "notebooks").glob("*.ipynb")):
        try:
            data = json.loads(nb.read_text())["metadata"]["nnafc"]["parameters"].get("data")
        except (OSError, ValueError, KeyError):
            continue
        if data:
            return data
    return None


def format_report(report: PageReport) -> str:
    lines = [f"{len(report.pages)} pages checked in Chromium"
             + (f"; screenshots in {report.screenshots}" if report.screenshots else "")]
    lines += [f"  {p}" for p in report.problems]
    if report.js_errors:
        lines.append(f"  ({len(report.js_errors)} JavaScript errors from the theme, not counted; first: "
                     f"{report.js_errors[0][:160]})")
    lines.append("no problems" if not report.problems else f"{len(report.problems)} problem(s)")
    return "\n".join(lines)
