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
    nnafc study inventory|build --params params/study.yaml [--data PATH] [--families F,..] [--windows K,..]
    nnafc protocol --stage selection|confirmation [--params params/protocol.yaml] [--data PATH]
    nnafc book --params params/X.yaml [--data PATH] [--out RUN_DIR] [--no-render] [--force]
    nnafc pagecheck RUN_DIR [--no-screenshots]
    nnafc apply [--zoo DIR [--keys K ...|--family F]] [--pk NAME ...] --data PATH --start D --end D --out FILE
    nnafc export FACTORS.parquet --out FILE.csv|FILE.parquet|QLIB_DIR [--prefix P] [--force]
    nnafc evaluate FACTORS.parquet --data PATH [--horizon 5] [--out report.html|DIR]

Where data is needed: `--data` (or PATH), else the parameter file's `data`, else the
`NNAFC_DATA` environment variable, else (book, construct) the simulated market.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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
    from nnafc.study_params import is_study_file

    if is_study_file(args.params):  # `nnafc construct --params params/study.yaml` builds the study
        if args.out is not None:
            raise ValueError(f"{args.params} is a study: it builds into its own `zoo`; drop --out")
        args.study_command, args.families, args.windows, args.max_minutes = "build", None, None, None
        return _study(args)
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


def _protocol(args: argparse.Namespace) -> int:
    from nnafc.evaluate import protocol

    params = protocol.load_protocol_params(args.params)
    tables = protocol.run_stage(params, args.stage, data=args.data)
    with _wide_print():
        for universe, table in tables.items():
            print(f"{args.stage} windows, {universe}:")
            print(protocol.selection_table(table).to_string(float_format=lambda v: f"{v:.3f}"), flush=True)
    return 0


def _study(args: argparse.Namespace) -> int:
    from nnafc.study import Study, format_inventory

    study = Study.load(args.params, data=args.data)
    print(study, flush=True)
    if args.study_command == "build":
        table = study.build(families=_csv(args.families), windows=_csv(args.windows, int),
                            max_minutes=args.max_minutes)
    else:
        table = study.inventory()
    print(format_inventory(table))
    return 0


def _csv(text: str | None, kind: type = str) -> list | None:
    if text is None:
        return None
    try:
        return [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of {kind.__name__}s, got {text!r}") from None


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


def _apply(args: argparse.Namespace) -> int:
    from nnafc.apply import apply_factors, select_factors
    from nnafc.export import TABLE_SUFFIXES, write_table

    if Path(args.out).suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"--out must end in .parquet or .csv, got {args.out!r}")
    factors = select_factors(args.zoo, keys=args.keys, family=args.family, pk=args.pk, device=args.device)
    frame = apply_factors(factors, args.data, args.start, args.end, universe=args.universe,
                          progress=not args.quiet)
    write_table(frame, args.out)
    days = frame.index.get_level_values("datetime")
    span = f"{days.min().date()}..{days.max().date()}" if len(frame) else "no days"
    print(f"wrote {len(frame)} rows x {frame.shape[1]} factors ({span}) to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from nnafc.export import TABLE_SUFFIXES, read_factors, to_qlib, write_table

    out = Path(args.out)
    if out.suffix.lower() not in TABLE_SUFFIXES and not (out / "calendars" / "day.txt").is_file():
        raise ValueError(f"--out must be a .parquet / .csv file or an existing qlib directory "
                         f"(with calendars/day.txt), got {args.out!r}")
    frame = read_factors(args.factors)
    if out.suffix.lower() in TABLE_SUFFIXES:
        write_table(frame, out)
        print(f"wrote {len(frame)} rows x {frame.shape[1]} factors to {out}")
        return 0
    written = to_qlib(frame, out, prefix=args.prefix, overwrite=args.force)
    for row in written.itertuples():
        print(f"${row.field}: {row.instruments} instruments in {out / 'features'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from nnafc.evaluate.tearsheet import tearsheet
    from nnafc.export import read_factors
    from nnafc.report import check_out, write_report

    check_out(args.out)
    sheet = tearsheet(read_factors(args.factors), args.data, horizon=args.horizon,
                      quantiles=args.quantiles, universe=args.universe)
    if args.out:
        print(f"report in {write_report(sheet, args.out)}")
    with _wide_print():
        print(sheet.summary.to_string(float_format=lambda x: f"{x:.4f}"))
    return 0


def _pagecheck(args: argparse.Namespace) -> int:
    from nnafc.pagecheck import check_book, format_report

    report = check_book(args.run_dir, screenshots=not args.no_screenshots)
    print(format_report(report))
    return RUN_FAILED if report.problems else 0


def _wide_print():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 20)


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

    study = commands.add_parser("study", help="the book's factor study: inventory, or build what is missing")
    study_commands = study.add_subparsers(dest="study_command", required=True, metavar="ACTION")
    for action, text in (("inventory", "factors per family and window: present, missing, cost"),
                         ("build", "construct what is missing (resumable; GP sets first)")):
        sub = study_commands.add_parser(action, help=text)
        sub.add_argument("--params", default="params/study.yaml", help="study parameter file (YAML)")
        sub.add_argument("--data", default=None,
                         help="data directory (default: the file's data, else NNAFC_DATA)")
        if action == "build":
            sub.add_argument("--families", default=None, help="comma-separated families (default: all)")
            sub.add_argument("--windows", default=None, help="comma-separated window numbers (default: all)")
            sub.add_argument("--max-minutes", type=float, default=None,
                             help="start no new work after this many minutes (run again to continue)")
        sub.set_defaults(handler=_study)

    protocol = commands.add_parser("protocol", help="the construction protocol study: select, then confirm")
    protocol.add_argument("--params", default="params/protocol.yaml", help="protocol parameter file (YAML)")
    protocol.add_argument("--stage", required=True, choices=["selection", "confirmation"],
                          help="selection: candidates on 2012-2015 windows; confirmation: the chosen one "
                               "vs the defaults on 2016-2019, read once")
    protocol.add_argument("--data", default=None,
                          help="data directory (default: the file's data, else NNAFC_DATA)")
    protocol.set_defaults(handler=_protocol)

    book = commands.add_parser("book", help="execute every chapter (papermill), then render the book")
    book.add_argument("--params", required=True, help="book parameter file (YAML)")
    book.add_argument("--data", default=None, help=data_help)
    book.add_argument("--out", default=None, help="run directory (default: runs/<params>)")
    book.add_argument("--no-render", action="store_true", help="execute only, do not render HTML")
    book.add_argument("--force", action="store_true", help="re-execute chapters that are up to date")
    book.set_defaults(handler=_book)
    pagecheck = commands.add_parser("pagecheck", help="open every page of a rendered book in headless "
                                    "Chromium: load errors, error outputs, missing images, empty tables, "
                                    "build-machine paths, broken links; screenshots")
    pagecheck.add_argument("run_dir", help="a book's run directory (with _build/html), e.g. runs/smoke")
    pagecheck.add_argument("--no-screenshots", action="store_true", help="do not save page screenshots")
    pagecheck.set_defaults(handler=_pagecheck)
    _add_factor_commands(commands)
    return parser


def _add_factor_commands(commands) -> None:
    """apply, export, evaluate: stored factors on any data, in the formats qlib and alphalens read."""
    data_help = "parquet / CSV file, qlib directory or data directory (default: NNAFC_DATA)"
    apply = commands.add_parser("apply", help="compute stored factors on any data -> long parquet / CSV",
                                description="Compute zoo (or prior-knowledge) factors on the trading days "
                                            "[start, end] of any data; the warm-up history each factor "
                                            "needs is read automatically.")
    apply.add_argument("--zoo", default=None, help="zoo directory (e.g. study/zoo)")
    chosen = apply.add_mutually_exclusive_group()
    chosen.add_argument("--keys", nargs="+", default=None, metavar="K", help="zoo keys (default: all)")
    chosen.add_argument("--family", default=None, metavar="F", help="zoo factors of one network, e.g. fcn")
    apply.add_argument("--pk", nargs="+", default=None, metavar="NAME", help="prior-knowledge factors too")
    apply.add_argument("--data", default=None, help=data_help)
    apply.add_argument("--start", required=True, help="first output date (YYYY-MM-DD)")
    apply.add_argument("--end", required=True, help="last output date (YYYY-MM-DD)")
    apply.add_argument("--universe", default="all", help="'all', 'csi300' or 'top<N>' (default: all)")
    apply.add_argument("--device", default="cpu", help="cpu or cuda[:N] for the networks (default: cpu)")
    apply.add_argument("--out", required=True, help="output file, .parquet or .csv")
    apply.add_argument("--quiet", action="store_true", help="no progress bar")
    apply.set_defaults(handler=_apply)

    export = commands.add_parser("export", help="factor table -> CSV / parquet or qlib binary features",
                                 description="Write a factor table (from nnafc apply) as long CSV / parquet "
                                             "(datetime, instrument, one column per factor: alphalens' "
                                             "format) or as qlib features/<code>/<prefix><factor>.day.bin "
                                             "aligned to an existing qlib directory's calendar.")
    export.add_argument("factors", help="factor table (.parquet or .csv)")
    export.add_argument("--out", required=True, help="a .parquet / .csv file, or a qlib directory")
    export.add_argument("--prefix", default="nnafc_", help="qlib field name prefix (default: nnafc_)")
    export.add_argument("--force", action="store_true", help="replace existing qlib field files")
    export.set_defaults(handler=_export)

    evaluate = commands.add_parser("evaluate", help="IC, decay, quantile returns, turnover: a tear sheet",
                                   description="Daily IC / rank IC, IC decay, quantile forward returns and "
                                               "long-short spread, turnover, autocorrelation and factor "
                                               "correlations of a factor table against forward returns of "
                                               "the data; tables on stdout, a one-page HTML or a PNG set.")
    evaluate.add_argument("factors", help="factor table (.parquet or .csv)")
    evaluate.add_argument("--data", default=None, help=data_help)
    evaluate.add_argument("--horizon", type=int, default=5, help="forward-return horizon in days (default 5)")
    evaluate.add_argument("--quantiles", type=int, default=5, help="quantile groups (default 5)")
    evaluate.add_argument("--universe", default="all", help="which data file serves the prices: all, csi300")
    evaluate.add_argument("--out", default=None, help="report.html, or a directory for PNGs + CSVs")
    evaluate.set_defaults(handler=_evaluate)


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
