"""Execute the book's chapters with papermill, then render them with Jupyter Book (execution off).

The published pages therefore show exactly the outputs that were executed, with the parameters
recorded in each notebook. A run directory holds:

    runs/<name>/notebooks/<chapter>.ipynb   executed notebooks (what nbval checks in CI)
    runs/<name>/site/                       the staged book sources
    runs/<name>/_build/html/index.html      the rendered book

A chapter whose executed notebook already exists with the same source and parameters is not
executed again, so an interrupted `make book` resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from nnafc import chapter_params, pages
from nnafc.data.locate import data_dir
from nnafc.params import BookParams, ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]  # the repository: book/, _config.yml, _toc.yml
BOOK_DIR = ROOT / "book"
FRONT = "intro"  # the front page: executed after the chapters, from the claims they recorded


def chapters() -> list[str]:
    """The book's own chapters: the py:percent notebooks in book/ (the front page aside)."""
    return sorted(p.stem for p in BOOK_DIR.glob("*.py") if p.stem != FRONT)


def chapter_source(chapter: str) -> Path:
    """book/<chapter>.py; ParamsError for any name that is not one of the book's chapters (a path
    such as "../x/evil" included: only the book's own notebooks are ever executed)."""
    known = chapters()
    if not isinstance(chapter, str) or chapter not in [*known, FRONT]:
        raise ParamsError(f"unknown chapter {chapter!r}; the book has {known}")
    return BOOK_DIR / f"{chapter}.py"


class ChapterFailed(RuntimeError):
    """A chapter raised while executing; the message is one line (chapter, cell, executed notebook)."""

    def __init__(self, chapter: str, cell: int, total: int, error: str, notebook: Path) -> None:
        self.chapter, self.cell, self.notebook = chapter, cell, notebook
        super().__init__(f"chapter {chapter!r} failed in cell {cell} of {total} ({error}); "
                         f"executed notebook: {notebook}")


class BookFailed(RuntimeError):
    """Some chapters failed; the others were executed (and rendered). One line per failure."""

    def __init__(self, failures: list[ChapterFailed], run_dir: Path) -> None:
        self.failures, self.run_dir = failures, run_dir
        super().__init__("; ".join(str(f) for f in failures))


HEARTBEAT_S = 60.0  # a code cell running longer than this is reported again every HEARTBEAT_S


class _ProgressEngine:
    """papermill's nbclient engine, printing `cell n of N, elapsed` as each code cell starts and
    `still running` every HEARTBEAT_S while one runs long (for logs; an interactive terminal
    gets papermill's own progress bar instead)."""

    @classmethod
    def register(cls) -> str:
        import papermill.engines as engines

        class Engine(engines.NBClientEngine):
            @classmethod
            def execute_managed_notebook(klass, nb_man, kernel_name, **kwargs):
                label = kwargs.pop("progress_label", "chapter")
                total, t0, start = len(nb_man.nb.cells), time.monotonic(), nb_man.cell_start
                running, done = {"cell": None}, threading.Event()

                def say(index: int, what: str = "") -> None:
                    elapsed = int(time.monotonic() - t0)
                    print(f"[book] {label}: cell {index + 1} of {total}{what}, "
                          f"{elapsed // 60}m{elapsed % 60:02d}s elapsed", file=sys.stderr, flush=True)

                def cell_start(cell, cell_index=None, **kw):
                    start(cell, cell_index, **kw)
                    if cell.cell_type == "code" and cell_index is not None:
                        running["cell"] = cell_index
                        say(cell_index)

                def heartbeat() -> None:
                    while not done.wait(HEARTBEAT_S):
                        if running["cell"] is not None:
                            say(running["cell"], " still running")

                nb_man.cell_start = cell_start
                threading.Thread(target=heartbeat, daemon=True).start()
                try:
                    return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
                finally:
                    done.set()

        engines.papermill_engines.register("nnafc-progress", Engine)
        return "nnafc-progress"


def _fingerprint(source: Path, parameters: dict) -> str:
    blob = source.read_bytes() + json.dumps(parameters, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _is_current(executed: Path, fingerprint: str) -> bool:
    if not executed.is_file():
        return False
    try:
        meta = json.loads(executed.read_text())["metadata"].get("nnafc", {})
    except (OSError, ValueError, KeyError):
        return False
    return meta.get("fingerprint") == fingerprint


def execute_chapter(chapter: str, parameters: dict, out_dir: Path, force: bool = False) -> Path:
    """Execute book/<chapter>.py with papermill into out_dir/<chapter>.ipynb (atomically)."""
    import jupytext
    import nbformat
    import papermill

    source = chapter_source(chapter)
    executed = out_dir / f"{chapter}.ipynb"
    fingerprint = _fingerprint(source, parameters)
    if not force and _is_current(executed, fingerprint):
        print(f"[book] {chapter}: up to date, not re-executed")
        return executed

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"{chapter}.ipynb"
        nb = jupytext.read(source)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, raw)
        chapter_params.check(chapter, parameters, chapter_params.declared(source))
        partial = out_dir / f".{chapter}.partial.ipynb"  # renamed into place only when complete
        failed = out_dir / f"{chapter}.failed.ipynb"
        failed.unlink(missing_ok=True)
        print(f"[book] executing {chapter} with {parameters}", flush=True)
        tty, t0 = sys.stderr.isatty(), time.monotonic()
        try:
            papermill.execute_notebook(
                str(raw), str(partial), parameters=parameters, kernel_name="python3",
                cwd=str(out_dir), progress_bar=tty, request_save_on_cell_execute=False,
                **({} if tty else {"engine_name": _ProgressEngine.register(), "progress_label": chapter}),
            )
        except papermill.PapermillExecutionError as exc:
            if partial.is_file():
                os.replace(partial, failed)
            total = len(nb.cells) + 1  # papermill injects one cell of parameters
            line = next((ln for ln in str(exc.source).splitlines() if ln.strip()), "")[:80]
            error = f"`{line}`: {exc.ename}: {' '.join(str(exc.evalue).split())[:300]}"
            raise ChapterFailed(chapter, exc.cell_index + 1, total, error, failed) from None
        seconds = round(time.monotonic() - t0, 1)
        done = nbformat.read(partial, as_version=4)
        done.metadata["nnafc"] = {"fingerprint": fingerprint, "parameters": parameters, "seconds": seconds}
        nbformat.write(done, partial)
        os.replace(partial, executed)
    print(f"[book] {chapter}: executed in {int(seconds) // 60}m{int(seconds) % 60:02d}s", flush=True)
    return executed


def _staged_toc(chapters: list[str]) -> str:
    """_toc.yml restricted to the chapters that were executed (a smoke run executes a subset)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    toc["chapters"] = [c for c in toc.get("chapters", []) if Path(c["file"]).name in chapters]
    return yaml.safe_dump(toc, sort_keys=False)


def render(run_dir: Path, chapters: list[str], failed: list[str] = (), command: str = "nnafc book",
           data: str | Path | None = None) -> Path:
    """Stage the executed notebooks as book sources (`pages.for_readers`: code folded, parameters in
    one block, a "Reproduce this page" box with `command`, no build-machine paths) and build HTML
    with execution off (`failed` chapters from their marked `<chapter>.failed.ipynb`)."""
    site = run_dir / "site"
    shutil.rmtree(site, ignore_errors=True)
    (site / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", site / "_config.yml")
    shown = [*chapters, *failed]
    (site / "_toc.yml").write_text(_staged_toc(shown))
    for page in BOOK_DIR.glob("*.md"):
        (site / "book" / page.name).write_text(pages.unlink_missing(page.read_text(), shown))
    scrub = pages.scrub_paths(data, ROOT, run_dir)
    front = [FRONT] if (run_dir / "notebooks" / f"{FRONT}.ipynb").is_file() and FRONT not in failed else []
    if not front and FRONT not in shown and not (site / "book" / f"{FRONT}.md").is_file():  # the root page
        (site / "book" / f"{FRONT}.md").write_text(
            "# NNAFC, reproduced\n\nThe front page was not executed in this run; the chapters follow.\n")
    for chapter in [*front, *shown]:
        name = f"{chapter}.failed.ipynb" if chapter in failed else f"{chapter}.ipynb"
        pages.stage(run_dir / "notebooks" / name, site / "book" / f"{chapter}.ipynb", chapter, command, scrub,
                    links=shown, front=chapter == FRONT)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(site), "--path-output", str(run_dir)]
    cmd += ["-W", "--keep-going"]  # a broken reference or missing output fails the build
    print("[book] rendering:", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(result.stdout[-3000:])
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-5000:])
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode})")
    index = run_dir / "_build" / "html" / "index.html"
    print(f"[book] rendered: {index}")
    return index


def build_book(
    params_path: str | Path,
    data: str | None = None,
    out: str | Path | None = None,
    render_html: bool = True,
    force: bool = False,
) -> Path:
    """Execute every chapter of a parameter set, then render the book; returns the run dir.

    Every chapter's parameters are checked (names, types, ranges) before the first executes. A
    chapter that fails does not stop the others; the book is rendered with the chapters that
    ran and a page per failed one saying where it failed, then `BookFailed` is raised.
    """
    params: BookParams = load_params(params_path)
    run_dir = Path(out or ROOT / "runs" / params.name).resolve()
    # Resolve the data once (--data, else the params file, else NNAFC_DATA) and record it in every
    # chapter's parameters, so a re-execution (nbval, a reader) reads exactly the same data.
    root = data_dir(data if data is not None else params.shared.get("data"))
    results = run_dir / "results"  # each chapter's claims for the front page (`nnafc.headline`)
    planned = {}
    for chapter in params.chapters:  # every check before anything executes
        parameters = params.for_chapter(chapter)
        if root is not None:
            parameters["data"] = str(root.resolve())
        declared = chapter_params.declared(chapter_source(chapter))
        if "results" in declared:
            parameters["results"] = str(results)
        chapter_params.check(chapter, parameters, declared)
        planned[chapter] = parameters
    failures = []
    for chapter, parameters in planned.items():
        try:
            execute_chapter(chapter, parameters, run_dir / "notebooks", force=force)
        except ChapterFailed as exc:
            print(f"[book] FAILED: {exc}", file=sys.stderr, flush=True)
            failures.append(exc)
    if (BOOK_DIR / f"{FRONT}.py").is_file():  # the front page, always from this run's claims
        failed = [f.chapter for f in failures]
        front = {"results": str(results), "chapters": list(planned), "failed": failed,
                 "params_file": _shown_path(params_path), "data": str(root.resolve()) if root else None}
        try:
            execute_chapter(FRONT, front, run_dir / "notebooks", force=True)
        except ChapterFailed as exc:
            print(f"[book] FAILED: {exc}", file=sys.stderr, flush=True)
            failures.append(exc)
    print("[book] execution times: " + ", ".join(
        f"{c} {_seconds(run_dir / 'notebooks' / f'{c}.ipynb') or 0:.0f}s" for c in planned), flush=True)
    if render_html:
        t0 = time.monotonic()
        failed = [f.chapter for f in failures]
        _mark_failed(run_dir / "notebooks", failures)
        command = f"nnafc book --params {_shown_path(params_path)}" + (" --data <data>" if root else "")
        render(run_dir, [c for c in params.chapters if c not in failed], failed=failed, command=command,
               data=root)
        print(f"[book] rendered in {time.monotonic() - t0:.0f}s", flush=True)
    if failures:
        raise BookFailed(failures, run_dir)
    return run_dir


def _shown_path(path: str | Path) -> str:
    """A parameter file as a page shows it: relative to the repository when inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name


def _seconds(executed: Path) -> float | None:
    """How long an executed chapter took (its notebook's metadata); None if unknown or failed."""
    try:
        return float(json.loads(executed.read_text())["metadata"]["nnafc"]["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mark_failed(notebooks: Path, failures: list[ChapterFailed]) -> None:
    """Put a warning on top of each failed chapter's executed notebook (the page readers see)."""
    import nbformat

    for f in failures:
        if not f.notebook.is_file():
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_markdown_cell(f"# {f.chapter}")]
        else:
            nb = nbformat.read(f.notebook, as_version=4)
        note = f"```{{warning}}\nThis chapter **failed to execute**: {f}\n```"
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
        nbformat.write(nb, notebooks / f"{f.chapter}.failed.ipynb")
