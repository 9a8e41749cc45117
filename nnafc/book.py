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
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nnafc.data.locate import data_dir
from nnafc.params import BookParams, ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]  # the repository: book/, _config.yml, _toc.yml
BOOK_DIR = ROOT / "book"


def chapter_source(chapter: str) -> Path:
    path = BOOK_DIR / f"{chapter}.py"
    if not path.is_file():
        known = sorted(p.stem for p in BOOK_DIR.glob("*.py"))
        raise ParamsError(f"unknown chapter {chapter!r}; the book has {known}")
    return path


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
        declared = {p for p in papermill.inspect_notebook(str(raw))}
        unknown = sorted(set(parameters) - declared)
        if unknown:
            raise ParamsError(
                f"chapter {chapter!r} has no parameter(s) {unknown}; it declares {sorted(declared)}"
            )
        partial = out_dir / f".{chapter}.partial.ipynb"  # renamed into place only when complete
        print(f"[book] executing {chapter} with {parameters}")
        papermill.execute_notebook(
            str(raw), str(partial), parameters=parameters, kernel_name="python3",
            cwd=str(out_dir), progress_bar=sys.stderr.isatty(), request_save_on_cell_execute=False,
        )
        done = nbformat.read(partial, as_version=4)
        done.metadata["nnafc"] = {"fingerprint": fingerprint, "parameters": parameters}
        nbformat.write(done, partial)
        os.replace(partial, executed)
    return executed


def _staged_toc(chapters: list[str]) -> str:
    """_toc.yml restricted to the chapters that were executed (a smoke run executes a subset)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    toc["chapters"] = [c for c in toc.get("chapters", []) if Path(c["file"]).name in chapters]
    return yaml.safe_dump(toc, sort_keys=False)


def _unlink_missing(markdown: str, chapters: list[str]) -> str:
    """Links to chapters this run did not execute become plain text (a smoke run is a subset)."""
    return re.sub(
        r"\{doc\}`([\w-]+)`", lambda m: m.group(0) if m.group(1) in chapters else m.group(1), markdown
    )


def render(run_dir: Path, chapters: list[str]) -> Path:
    """Stage the executed notebooks as book sources and build HTML with execution off."""
    site = run_dir / "site"
    shutil.rmtree(site, ignore_errors=True)
    (site / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", site / "_config.yml")
    (site / "_toc.yml").write_text(_staged_toc(chapters))
    for page in BOOK_DIR.glob("*.md"):
        (site / "book" / page.name).write_text(_unlink_missing(page.read_text(), chapters))
    for chapter in chapters:
        shutil.copy(run_dir / "notebooks" / f"{chapter}.ipynb", site / "book" / f"{chapter}.ipynb")
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
    """Execute every chapter of a parameter set, then render the book; returns the run dir."""
    params: BookParams = load_params(params_path)
    run_dir = Path(out or ROOT / "runs" / params.name).resolve()
    for chapter in params.chapters:
        chapter_source(chapter)  # fail on an unknown chapter before executing anything
    # Resolve the data once (--data, else the params file, else NNAFC_DATA) and record it in every
    # chapter's parameters, so a re-execution (nbval, a reader) reads exactly the same data.
    root = data_dir(data if data is not None else params.shared.get("data"))
    for chapter in params.chapters:
        parameters = params.for_chapter(chapter)
        if root is not None:
            parameters["data"] = str(root.resolve())
        execute_chapter(chapter, parameters, run_dir / "notebooks", force=force)
    if render_html:
        render(run_dir, params.chapters)
    return run_dir
