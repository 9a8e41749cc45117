"""The `nnafc` command: get and inspect data, construct factors, build the book.

Only argument parsing and error reporting live here; each subcommand calls one library
function. Errors a user can fix (bad data, a bad parameter file, any other `ValueError`
from the arguments) print one line, `error: <message>`, on stderr and exit with status 2 — no
traceback; set `NNAFC_DEBUG=1` to get the traceback instead. Anything else is a bug and keeps
its traceback. Ctrl-C prints `interrupted` and exits with 130.

    nnafc data download [--dir PATH] [--url URL] [--sha256 HEX] [--force]
    nnafc data info [PATH] [--json]
    nnafc data check [PATH]
    nnafc construct --params params/construct-X.yaml [--data PATH] [--out RUN_DIR]
    nnafc book --params params/X.yaml [--data PATH] [--out RUN_DIR] [--no-render] [--force]

Where data is needed: `--data` (or PATH), else the parameter file's `data`, else the
`NNAFC_DATA` environment variable, else (book, construct) the simulated market.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

USAGE_ERROR = 2  # bad data, parameters or arguments (argparse uses 2 as well)
RUN_FAILED = 1  # construction jobs failed after their retries, or book chapters failed


def _error(message: object) -> None:
    text = " ".join(str(message).split()) or "unknown error"  # one line, whatever the message
    print(f"error: {text}", file=sys.stderr)


# --- handlers --------------------------------------------------------------------------------

def _data_download(args: argparse.Namespace) -> int:
    from nnafc.download import DEFAULT_DIR, download_qlib_data

    target = download_qlib_data(args.dir or DEFAULT_DIR, url=args.url, sha256=args.sha256,
                                force=args.force, progress=not args.quiet)
    print(f"installed {target}\nuse it with: export NNAFC_DATA={target}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from nnafc.download import data_info, format_info

    info = data_info(args.path)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from nnafc.download import data_check

    ok, message = data_check(args.path)
    if not ok:
        _error(message)
        return USAGE_ERROR
    print(message)
    return 0


def _construct(args: argparse.Namespace) -> int:
    try:
        from nnafc.construct_cli import run
    except ImportError as exc:  # e.g. an optional dependency of construction is missing
        _error(f"nnafc construct cannot be imported in this installation: {exc}")
        return USAGE_ERROR
    try:
        from nnafc.runner import RunError
    except ImportError:
        RunError = ()  # noqa: N806 (an empty tuple catches nothing)
    try:
        run(args.params, data=args.data, out=args.out)
    except RunError as exc:
        _error(exc)
        return RUN_FAILED
    return 0


def _book(args: argparse.Namespace) -> int:
    from nnafc.book import BookFailed, build_book

    try:
        run_dir = build_book(args.params, data=args.data, out=args.out, render_html=not args.no_render,
                             force=args.force)
    except BookFailed as exc:  # the other chapters ran (and were rendered): one line per failure
        for failure in exc.failures:
            _error(failure)
        print(f"book run in {exc.run_dir} ({len(exc.failures)} chapter(s) failed)", file=sys.stderr)
        return RUN_FAILED
    print(f"book run in {run_dir}")
    return 0


# --- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from nnafc.download import DEFAULT_DIR, DEFAULT_URL

    parser = argparse.ArgumentParser(prog="nnafc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="download, describe and check market data")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    download = data_commands.add_parser("download", help="download a qlib A-share data archive")
    download.add_argument("--dir", default=None, help=f"install directory (default: {DEFAULT_DIR})")
    download.add_argument("--url", default=DEFAULT_URL, help="archive URL (https:// or file://)")
    download.add_argument("--sha256", default=None, metavar="HEX", help="expected SHA-256 of the archive")
    download.add_argument("--force", action="store_true", help="replace an existing directory")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(handler=_data_download)
    source_help = "parquet / CSV file, qlib directory or data directory (default: NNAFC_DATA)"
    info = data_commands.add_parser("info", help="dates, instruments per year, missing rows, fields")
    info.add_argument("path", nargs="?", default=None, help=source_help)
    info.add_argument("--json", action="store_true", help="print the info as JSON")
    info.set_defaults(handler=_data_info)
    check = data_commands.add_parser("check", help="validate a source the way the loader does")
    check.add_argument("path", nargs="?", default=None, help=source_help)
    check.set_defaults(handler=_data_check)

    data_help = "data file or directory (default: the params file's data, else NNAFC_DATA, else simulated)"
    construct = commands.add_parser("construct", help="construct a zoo of factors from a params file")
    construct.add_argument("--params", required=True, help="construction parameter file (YAML)")
    construct.add_argument("--data", default=None, help=data_help)
    construct.add_argument("--out", default=None, help="run directory (default: runs/construct-<params>)")
    construct.set_defaults(handler=_construct)

    book = commands.add_parser("book", help="execute every chapter (papermill), then render the book")
    book.add_argument("--params", required=True, help="book parameter file (YAML)")
    book.add_argument("--data", default=None, help=data_help)
    book.add_argument("--out", default=None, help="run directory (default: runs/<params>)")
    book.add_argument("--no-render", action="store_true", help="execute only, do not render HTML")
    book.add_argument("--force", action="store_true", help="re-execute chapters that are up to date")
    book.set_defaults(handler=_book)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nnafc")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `nnafc` command; returns the exit status (argparse's own errors included)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        return args.handler(args)
    except ValueError as exc:  # DataError, ParamsError and bad values: the user's to fix
        if os.environ.get("NNAFC_DEBUG"):
            raise
        _error(exc)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
