"""What an operator reads: the log's two destinations, the end-of-night summary, and one line
per failure saying what failed, where, and what to do.

The console (stderr) gets warnings and errors, one line each; ``--verbose`` adds the progress
lines and tracebacks. The run's ``push.log`` always gets everything, tracebacks included.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys

from fink_ingest.errors import FinkIngestError


class _Console(logging.Formatter):
    """A line per record, without the traceback (it goes to push.log only)."""

    def format(self, record):
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


def configure_logging(log_file, verbose=False):
    """Log everything (tracebacks included) to ``log_file``; to stderr, warnings and errors
    without tracebacks, or everything with ``verbose``."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for old in [h for h in root.handlers if getattr(h, "fink_push", False)]:  # a second run in-process
        root.removeHandler(old)
        old.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(fmt) if verbose else _Console("%(levelname)s %(message)s"))
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.addFilter(lambda record: verbose or not getattr(record, "file_only", False))
    file = logging.FileHandler(log_file)
    file.setFormatter(logging.Formatter(fmt))
    for handler in (console, file):
        handler.fink_push = True
        root.addHandler(handler)
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def jvm_output_to(log_file, verbose=False):
    """Send the output of a JVM started inside this block (Spark's start-up banner, log4j
    warnings) to ``log_file`` instead of the console, unless ``verbose``: the JVM inherits
    the process's standard error as it is when it starts, and keeps it."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_file, "ab") as fh:
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


# ``extra`` of a log record that goes to push.log only (the console gets its one line elsewhere)
FILE_ONLY = {"file_only": True}


def operator_error(exc, where=""):
    """One line for a failure: what failed, where (``where``: a night, a table), and the fix.

    Parameters
    ----------
    exc : BaseException
    where : str
        e.g. ``"night 2024-01-15"``; prefixed when the message does not say it already.

    Returns
    -------
    str
    """
    prefix = f"{where}: " if where and where not in str(exc) else ""
    text = " ".join(str(exc).split())
    if isinstance(exc, FinkIngestError):
        return f"{prefix}{text}"
    name = type(exc).__name__
    first = _first_line(exc)
    if "JAVA_GATEWAY_EXITED" in text or "Java gateway process exited" in text:
        return ("Spark could not start (its Java gateway exited): check that Java 17 runs (java -version) and "
                "JAVA_HOME; run with --verbose for Spark's own message")
    if name in ("Py4JJavaError", "Py4JError") or name.endswith("Exception") and "spark" in type(exc).__module__:
        return f"{prefix}Spark failed: {first}; run with --verbose for Spark's trace"
    if isinstance(exc, sqlite3.Error):
        return f"{prefix}store failure: {first}"
    if isinstance(exc, OSError):
        return f"{prefix}{exc.strerror or first}{f': {exc.filename}' if exc.filename else ''}"
    return f"{prefix}unexpected {name}: {first} (a defect: report it with the run's push.log); run with --verbose for the traceback"


def _first_line(exc):
    """The informative first line of an exception (Java stacks and blank lines left out)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "...", "Traceback")):
            return line[:400]
    return type(exc).__name__


def format_summary(summary):
    """Human-readable end-of-night summary (str)."""
    seconds = summary.get("seconds", {})
    lines = [f"night {summary['night']}: {'OK' if summary.get('ok') else 'INCOMPLETE'} in {seconds.get('total')} s",
             f"  files read {summary['files_read']}, files rejected {len(summary['files_rejected'])}",
             f"  alerts read {summary['alerts_read']}, duplicates dropped {summary['duplicates']}, "
             f"rows rejected {summary['rows_rejected']}"]
    for bad in summary["files_rejected"]:
        lines.append(f"  rejected file {bad['file']}: {bad['reason']}")
    if summary.get("rejects_file"):
        lines.append(f"  rejected rows (with a reason column): {summary['rejects_file']}")
    for table, n in summary["rows_written"].items():
        skipped = summary.get("rows_skipped", {}).get(table) or {}
        extra = "".join(f", {count} {'left as they were' if why.startswith('unchanged') else 'not placed'} ({why})"
                        for why, count in skipped.items())
        deleted = summary.get("rows_deleted", {}).get(table)
        extra += f", {deleted} old rows deleted first" if deleted is not None else ""
        expected = summary.get("rows_expected", {}).get(table)
        lines.append(f"  {table}: {n} rows written of {expected} expected in {seconds.get(table)} s{extra}")
    for table, notes in summary.get("schema", {}).items():
        if notes.get("new"):
            lines.append(f"  {table}: new columns, written and typed in the schema row: {', '.join(notes['new'])}")
        for column, what in {**notes.get("widened", {}), **notes.get("as_text", {})}.items():
            lines.append(f"  {table}: column {column}: {what}")
    history = summary.get("history")
    if history:
        lines.append(f"  history entries {history['entries']} in the alerts, {history.get('staged', 0)} for a "
                     f"history table (repeats included), rejected (no valid time) {history['rejected']}")
    for problem in summary.get("problems", []):
        lines.append(f"  INCOMPLETE: {problem}")
    lines.append(f"  summary: {summary['run_dir']}/summary.json")
    return "\n".join(lines)


class Progress:
    """What a push shows while it runs: each night's summary as it completes and, on a
    terminal, a progress bar over the nights and the alerts written (tqdm, on stderr).

    Parameters
    ----------
    nights : int or None
        Nights to push (None: unknown).
    verbose : bool
        Progress lines go to the log then; the bar stays off.
    """

    def __init__(self, nights, verbose=False):
        from tqdm import tqdm

        self._bar = tqdm(total=nights, unit="night", file=sys.stderr, dynamic_ncols=True, leave=False,
                         disable=verbose or not sys.stderr.isatty() or not nights or nights < 1)
        self._alerts = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._bar.close()

    def rows(self, n):
        """``n`` more staged alerts written."""
        self._alerts += n
        self._bar.set_postfix_str(f"{self._alerts:,} alerts written", refresh=True)

    def night_done(self, text):
        """A night completed: its summary printed above the bar."""
        self.write(text)
        self._bar.update(1)

    def write(self, text):
        """A line printed to stdout without breaking the bar."""
        self._bar.write(text, file=sys.stdout)
