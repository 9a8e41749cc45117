"""How an executed chapter is shown to readers: results first, code on demand, no build-machine paths.

`nnafc book` executes each chapter into `runs/<name>/notebooks/` (what nbval re-checks) and renders
a *staged copy* of it (`for_readers`), changed for reading only -- no output is recomputed:

- every code cell's input is folded (Jupyter Book's `hide-input`) unless the chapter tags it
  `show-input` (or already hides or removes it);
- the two parameter cells (the chapter's defaults and the values papermill injected) become one
  folded "Parameters of this run" block;
- a "Reproduce this page" box under the title gives the command and parameter file that built it;
- every absolute path of the build machine (`scrub`: the data directory, the repository, the run
  directory, the home directory) is replaced by a placeholder in inputs and outputs alike.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

FOLDED = "hide-input"
KEEP = {"show-input", "hide-input", "hide-cell", "hide-output",  # a chapter's own choice stands
        "remove-input", "remove-cell", "remove-output"}


def _tags(cell) -> list[str]:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def path_pattern(path: str) -> re.Pattern:
    """`path` where it is a whole path or a path's prefix (`/srv/repo/x`, not `/srv/repo2`)."""
    return re.compile(re.escape(path) + r"(?![\w.-])")


def _scrub_text(text: str, scrub: Mapping[str, str]) -> str:
    for path in sorted(scrub, key=len, reverse=True):  # longest first: a run dir inside the repository
        text = path_pattern(path).sub(lambda _, shown=scrub[path]: shown, text)
    return text


def _scrub(node, scrub: Mapping[str, str]):
    """Every string in a cell (source, text and HTML outputs), paths replaced; images are left as
    they are (base64 text could hold a path's characters by chance)."""
    if isinstance(node, str):
        return _scrub_text(node, scrub)
    if isinstance(node, list):
        return [_scrub(v, scrub) for v in node]
    if isinstance(node, dict):
        return {k: v if str(k).startswith("image/") else _scrub(v, scrub) for k, v in node.items()}
    return node


def _markdown(source: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": source}


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _parameters_block(defaults: str, injected: str, chapter: str) -> str:
    body = [f"Defaults of `book/{chapter}.py`:", "", "```python", defaults.strip(), "```"]
    if injected.strip():
        body = ["Set for this run (they override the defaults):", "", "```python", injected.strip(), "```",
                "", *body]
    return "\n".join(["````{dropdown} Parameters of this run", *body, "````"])


def reproduce_box(chapter: str, command: str, seconds: float | None) -> str:
    took = f" It executed in {int(seconds) // 60} min {int(seconds) % 60:02d} s." if seconds else ""
    return (f"```{{admonition}} Reproduce this page\n:class: tip\n`{command}` executes this chapter "
            f"(`book/{chapter}.py`, with the parameters below) and renders the book; `<data>` is the "
            f"data directory (`--data` or `NNAFC_DATA`).{took}\n```")


def unlink_missing(markdown: str, chapters: Sequence[str]) -> str:
    """Links to chapters this run did not execute become plain text (a smoke run may be a subset)."""
    return re.sub(r"\{doc\}`([\w-]+)`", lambda m: m.group(0) if m.group(1) in chapters else m.group(1),
                  markdown)


def for_readers(nb: dict, chapter: str, command: str, scrub: Mapping[str, str],
                links: Sequence[str] | None = None, front: bool = False) -> dict:
    """A staged copy of an executed notebook (nbformat 4 as a dict) for rendering; `nb` is unchanged.
    `links`: the chapters this run rendered ({doc} links to any other become plain text). `front`:
    the book's front page, results only: no parameters block and no reproduce box (it says itself
    what built the book)."""
    nb = copy.deepcopy(nb)
    cells, out = nb["cells"], []
    defaults = next((c for c in cells if "parameters" in _tags(c)), None)
    injected = next((c for c in cells if "injected-parameters" in _tags(c)), None)
    seconds = nb.get("metadata", {}).get("nnafc", {}).get("seconds")
    for i, cell in enumerate(cells):
        if cell is defaults or cell is injected:
            if cell is (defaults or injected) and not front:  # one block where the first of them stood
                block = _parameters_block(_source(defaults) if defaults else "",
                                          _source(injected) if injected else "", chapter)
                out.append(_markdown(block, f"{chapter}-parameters"))
            continue
        if cell["cell_type"] == "code" and not KEEP & set(_tags(cell)):
            _tags(cell).append(FOLDED)
        out.append(cell)
        if i == 0 and cell["cell_type"] == "markdown" and not front:  # under the title
            box = reproduce_box(chapter, command, seconds)
            out.append(_markdown(box, f"{chapter}-reproduce"))
    nb["cells"] = [_scrub(c, scrub) for c in out]
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            c.pop("outputs", None)
            c.pop("execution_count", None)
            if links is not None:
                c["source"] = unlink_missing(_source(c), links)
    return nb


def stage(executed: Path, staged: Path, chapter: str, command: str, scrub: Mapping[str, str],
          links: Sequence[str] | None = None, front: bool = False) -> None:
    """Write the readers' copy of an executed notebook file."""
    nb = json.loads(executed.read_text())
    staged.write_text(json.dumps(for_readers(nb, chapter, command, scrub, links, front), indent=1))


def scrub_paths(data: str | Path | None, repo: str | Path, run_dir: str | Path) -> dict[str, str]:
    """Absolute paths of the build machine -> what a page shows instead: the data directory as
    `<data>`, the run directory relative to the repository (else `<run>`), the repository as `.`,
    the home directory as `~`."""
    repo, run_dir = Path(repo).resolve(), Path(run_dir).resolve()
    out = {str(repo): "."}
    out[str(run_dir)] = str(run_dir.relative_to(repo)) if run_dir.is_relative_to(repo) else "<run>"
    if data:
        out[str(Path(data).resolve())] = "<data>"
    home = str(Path.home())
    if home not in ("/", ""):
        out.setdefault(home, "~")
    return out
