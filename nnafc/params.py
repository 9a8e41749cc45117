"""Parameter sets for executing the book (params/*.yaml): loaded safely, validated loudly.

A parameter file holds keys shared by every chapter (`data`, `seed`, `device`), the list of
`chapters` to execute, and one mapping per chapter whose keys must exist in that chapter's
papermill `parameters` cell — a misspelt key fails before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SHARED_KEYS = ("data", "seed", "device")
ROOT = Path(__file__).resolve().parents[1]  # the repository: parameter files name files relative to it


def repo_file(path: str | Path) -> Path:
    """A file named in a parameter set: absolute, or relative to the working directory if it is
    there, else to the repository (chapters execute in their run directory, not the repository)."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else ROOT / path


class ParamsError(ValueError):
    """A parameter file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class BookParams:
    name: str  # the file's stem; names the run directory
    chapters: list[str]  # book/<chapter>.py notebooks to execute, in order
    shared: dict = field(default_factory=dict)  # data / seed / device, passed to every chapter
    per_chapter: dict[str, dict] = field(default_factory=dict)

    def for_chapter(self, chapter: str) -> dict:
        """The papermill parameters of one chapter: shared keys, then the chapter's own."""
        return {**self.shared, **self.per_chapter.get(chapter, {})}


def read_mapping(path: str | Path) -> dict:
    """A YAML parameter file's top-level mapping, read safely (`yaml.safe_load`: no tags run)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"parameter file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return raw


def did_you_mean(key: object, valid: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `valid` to a misspelt `key`, else ''."""
    import difflib

    close = difflib.get_close_matches(str(key), list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_key(what: str, keys: Iterable, valid: Sequence[str]) -> str | None:
    """The one-line message for the first of `keys` not in `valid` (with the closest valid one),
    None when every key is known: every config and parameter check of the package says it so."""
    for key in keys:
        if key not in valid:
            return f"unknown {what} {key!r}{did_you_mean(key, valid)}; valid: {', '.join(valid)}"
    return None


def check_keys(path: str | Path, what: str, got: dict, valid: Sequence[str]) -> None:
    """ParamsError naming the file, the first unknown key of `got` and the closest valid one."""
    wrong = unknown_key(what, got, valid)
    if wrong:
        raise ParamsError(f"{path}: {wrong}")


def load_params(path: str | Path) -> BookParams:
    path = Path(path)
    raw = read_mapping(path)
    chapters = raw.pop("chapters", None)
    if not isinstance(chapters, list) or not chapters or not all(isinstance(c, str) for c in chapters):
        raise ParamsError(f"{path}: 'chapters' must be a non-empty list of chapter names")
    shared = {k: raw.pop(k) for k in SHARED_KEYS if k in raw}
    per_chapter = {}
    for key, value in raw.items():
        if key not in chapters:
            raise ParamsError(
                f"{path}: unknown key {key!r}; top-level keys are {list(SHARED_KEYS)}, "
                f"'chapters', or one of the chapters {chapters}"
            )
        if not isinstance(value, dict):
            raise ParamsError(f"{path}: '{key}' must be a mapping of that chapter's parameters")
        per_chapter[key] = value
    return BookParams(path.stem, chapters, shared, per_chapter)
