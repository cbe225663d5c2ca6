"""Command line of the data simulation tools: ``fink_datasim layout|scale``.

Exit codes: 0 all went through, 1 an input file was rejected (or nothing could be
read), 2 usage error (bad option or argument value).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from fink_ingest.errors import ConfigError, InputError

log = logging.getLogger("fink_datasim")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fink_datasim",
        description="Build datalakes from real ZTF alerts (layout) or scale a real night up (scale).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every file written")
    sub = parser.add_subparsers(dest="command", required=True)

    lay = sub.add_parser("layout", help="lay out parquet/Avro alert files as <prefix>/science/year=/month=/day=/")
    lay.add_argument("--prefix", required=True, help="datalake root directory to write")
    lay.add_argument("--overwrite", action="store_true",
                     help="also delete parquet files under <prefix>/science that this run did not write")
    lay.add_argument("inputs", nargs="+", metavar="INPUT", help="parquet/Avro file or directory (searched recursively)")

    sca = sub.add_parser("scale", help="clone a real night into a night of exactly N alerts")
    sca.add_argument("--source", required=True, action="append",
                     help="parquet file or directory of real alerts (repeatable)")
    sca.add_argument("--prefix", required=True, help="datalake root directory to write")
    sca.add_argument("--night", required=True, help="target night, YYYY-MM-DD or YYYYMMDD (UTC date)")
    sca.add_argument("--n", required=True, type=int, help="number of alerts to write")
    sca.add_argument("--seed", type=int, default=0, help="0..9999, fixes ids and jitters (default 0)")
    sca.add_argument("--rows-per-file", type=int, default=50_000, help="rows per parquet file (default 50000)")
    sca.add_argument("--drop-columns", default="", help="comma-separated columns not to write, e.g. cutoutScience,...")
    return parser


def _layout(args) -> int:
    from .layout import layout_datalake

    summary = layout_datalake(args.inputs, args.prefix, overwrite=args.overwrite)
    print(f"{summary['alerts']} alerts in {len(summary['nights'])} nights, {len(summary['files'])} files "
          f"under {args.prefix}/science")
    for night, count in summary["nights"].items():
        print(f"  {night}  {count:>8d}")
    for path, reason in summary["rejected"]:
        print(f"rejected {path}: {reason}")
    return 1 if summary["rejected"] else 0


def _scale(args) -> int:
    from .scale import scale_night

    drop = [c.strip() for c in args.drop_columns.split(",") if c.strip()]
    start = time.perf_counter()
    summary = scale_night(args.source if len(args.source) > 1 else args.source[0], args.prefix, args.night,
                          args.n, seed=args.seed, rows_per_file=args.rows_per_file, drop_columns=drop)
    print(f"{summary['night']}: {summary['alerts']} alerts ({summary['objects']} objects) cloned from "
          f"{summary['source_alerts']} real alerts into {len(summary['files'])} files "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    """Run ``fink_datasim``; returns the exit code (0 ok, 1 input rejected, 2 usage error).

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit code.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _layout(args) if args.command == "layout" else _scale(args)
    except ConfigError as exc:
        parser.print_usage(sys.stderr)
        print(f"fink_datasim: error: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
