"""A night's tables written by several processes at once (the embedded store).

Each table of the embedded store is a file of its own with one writer; one Python process
writing them all is bound by its interpreter lock (SQLite's inserts, the merge's and the
builders' Python code) and used 1.4 of two cores in the write phase. ``write_shared`` splits
the tables between the driver and ``processes - 1`` writer processes: each process reads the
staged files itself, only the columns its tables need (the main table the candidate fields,
the history tables the nested history: the two largest shares of the staged bytes are read
once), merges them into the same global key order and writes its tables in it. One writer per
table file and the key order per table are kept; the per-night state of a builder (the
cutouts' row groups, the statistics' counts) stays in the driver.
"""
from __future__ import annotations

import logging
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from fink_ingest.errors import StoreError
from fink_ingest.push.merge import staged_rows
from fink_ingest.tables.base import TableBuilder

log = logging.getLogger(__name__)

# Nights with fewer staged rows are written by the driver alone: a writer process costs ~1 s
# to start (its imports), more than it saves on a small night.
PARALLEL_MIN_ROWS = 50_000
# Directory holding the ``fink_ingest`` package (put first on a writer process's path).
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# What a writer process runs (this module imported as itself, so that what it pickles back
# names this module's classes).
WRITER_MAIN = "from fink_ingest.push.parallel import writer_main; writer_main()"
# Relative cost of writing a table, for splitting them between processes, in units of one
# index table (measured on a 400k-alert night, encode + write: main 24 s, upper 12 s and
# uppervalid 2 s plus the history's read and flattening, each other table 1-4 s).
WRITE_COST = {"main": 8, "upper": 6}
# What the history costs more when its process reads it from the datalake (``history_pass``).
# CPU seconds of each process, the two writing at once (``benchmarks/bench_write.py --tables
# all``, 400k alerts, 2026-12-06): history + four index tables 26-31 s against main + three
# 19-21 s, history + three 25-28 s against main + four 19-21 s: the history ~21 s, main ~14 s
# and an index table ~1.7 s, the history two units more than main as the nested column.
HISTORY_PASS_COST = 5


def pinned(builder):
    """True if a builder keeps per-night state set by the driver (``reset``, ``finish``):
    it is written by the driver."""
    cls = type(builder)
    return cls.reset is not TableBuilder.reset or cls.finish is not TableBuilder.finish


def split(builders, processes, history_pass=False):
    """Builders in ``processes`` shares of about equal cost (``WRITE_COST``, 1 if not named;
    ``HISTORY_PASS_COST`` more for the history tables if ``history_pass``: their process reads
    the history from the datalake), the driver's first: it holds every ``pinned`` builder. The
    history builders go together (each process that has one reads the whole history).
    Costliest first, each to the share that costs least so far. Empty shares are dropped (the
    driver's is always there).

    Returns
    -------
    list of list of TableBuilder
        Each share in the order of ``builders``.
    """
    def cost(units):
        return sum(WRITE_COST.get(b.kind, 1) for b in units) + \
            (HISTORY_PASS_COST if history_pass and any(b.source == "history" for b in units) else 0)

    free = [b for b in builders if not pinned(b)]
    history = [b for b in free if b.source == "history"]
    units = [[b] for b in free if b.source != "history"] + ([history] if history else [])
    shares = [[b for b in builders if pinned(b)]] + [[] for _ in range(max(processes, 1) - 1)]
    for unit in sorted(units, key=lambda u: -cost(u)):
        min(shares, key=cost).extend(unit)
    order = {id(b): i for i, b in enumerate(builders)}
    return [sorted(s, key=lambda b: order[id(b)]) for i, s in enumerate(shares) if s or i == 0]


class WriterResult:
    """What a writer process tells of one table (the attributes ``group_write.record``
    reads of a ``table_writer.TableWriter``)."""

    def __init__(self, w):
        self.name, self.expected, self.written = w.name, w.expected, w.written
        self.skipped, self.seconds, self.store_seconds = dict(w.skipped), w.seconds, w.store_seconds
        self.notes = w.notes


def _peak_mb():
    """Peak resident memory of this process, MB (``ru_maxrss``: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_share(out, store_url, kinds, files, staged_types, config, night, sort_by, history_types,
                 history_source=None):
    """A writer process: its share of the tables (``kinds``) from the staged files; writes
    ``("ok", [WriterResult], counts, peak MB)`` or ``("error", exception)`` to ``out`` (a
    binary file), pickled."""
    from fink_ingest.push.write import write_staged
    from fink_ingest.store import open_store
    from fink_ingest.tables import BUILDERS

    try:
        store = open_store(store_url)
        try:
            counts = {}
            done = write_staged(store, [BUILDERS[k] for k in kinds], files, staged_types, config, night,
                                sort_by, history_types=history_types, counts=counts, processes=1,
                                history_source=history_source)
            message = ("ok", [WriterResult(w) for w in done], counts, _peak_mb())
        finally:
            store.close()
    except BaseException as exc:  # noqa: BLE001 - handed to the driver, which raises it
        message = ("error", exc)
    try:
        data = pickle.dumps(message)
    except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
        data = pickle.dumps(("error", StoreError(f"{type(message[1]).__name__}: {message[1]}")))
    out.write(data)
    out.flush()


class Share:
    """A writer process started on a share of the tables of the embedded store in
    ``directory``, joined by ``result``.

    A new interpreter (``WRITER_MAIN``), not a fork of the driver (a
    JVM gateway and threads) nor multiprocessing's spawn (which imports the driver's main
    script again): its arguments come pickled on its standard input, its result goes back
    through a pipe of its own; its log lines go to the driver's standard error.
    """

    def __init__(self, directory, builders, files, staged_types, config, night, sort_by, history_types,
                 history_source=None):
        self.names = [b.table_name(config.table_prefix) for b in builders]
        read, write = os.pipe()
        env = dict(os.environ)  # this package where the driver found it, installed or not
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        try:
            self._process = subprocess.Popen([sys.executable, "-c", WRITER_MAIN, str(write), str(os.getpid())],
                                             stdin=subprocess.PIPE, pass_fds=(write,), env=env)
        finally:
            os.close(write)
        self._result = os.fdopen(read, "rb")
        args = (f"sqlite://{Path(directory).resolve()}", [b.kind for b in builders],
                files, staged_types, config, night, sort_by, history_types, history_source)
        try:
            self._process.stdin.write(pickle.dumps(args))
            self._process.stdin.close()
        except OSError:  # ended at once: ``result`` tells
            pass
        self.peak_mb = None

    def result(self):
        """The share's ``WriterResult`` per table and its counts (dict), once it ends.

        Raises
        ------
        Exception
            What the writer process raised; ``StoreError`` if it died without a word (killed,
            out of memory), naming its tables.
        """
        data = self._result.read()  # until the process ends (or closes the pipe)
        self._result.close()
        code = self._process.wait()
        if not data:
            raise StoreError(f"the writer process of {', '.join(self.names)} ended (exit code {code}) before it "
                             "reported: these tables are incomplete for the night; run the same command again "
                             "(rows already written are written again, identically)")
        message = pickle.loads(data)
        if message[0] == "error":
            raise message[1]
        _, results, counts, self.peak_mb = message
        return results, counts

    def stop(self):
        """End the process now (the driver failed: the night is reported incomplete)."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._result.close()


def write_shared(store, builders, files, staged_types, config, night, write_here, sort_by=None,
                 history_types=None, counts=None, history_source=None):
    """Write a night's tables from ``config.write_processes`` processes: the driver runs
    ``write_here(its builders)`` (``write.write_staged`` on its share) while writer processes
    write theirs. Falls back to the driver alone for a store that is not a local directory,
    an unsorted staging, one builder, or a night under ``PARALLEL_MIN_ROWS`` staged rows.

    Returns
    -------
    list
        ``table_writer.TableWriter`` of the driver's tables and ``WriterResult`` of the others', in
        the order of ``builders``.
        ``counts`` (dict) receives the night's counts: ``history_entries`` from the process that
        flattened the history (every process reads the whole night), ``objects`` and
        ``duplicates`` from the driver; ``write_processes``; ``write_seconds`` (``all``, and the
        ``driver``'s share); ``writer_peak_mb``, the largest peak resident memory of a writer
        process.

    Raises
    ------
    Exception
        The driver's own failure (the writer processes are stopped), else the first writer
        process's.
    """
    processes = config.write_processes
    local = store.local_directory()
    if processes <= 1 or local is None or not sort_by or len(builders) < 2 or \
            staged_rows(files) < PARALLEL_MIN_ROWS:
        return write_here(builders)
    shares = split(builders, min(processes, len(builders)), history_pass=history_source is not None)
    t0 = time.time()
    others = [Share(str(local), s, files, staged_types, config, night, sort_by,
                    history_types, history_source) for s in shares[1:]]
    try:
        here = write_here(shares[0])
    except BaseException:
        for share in others:
            share.stop()
        raise
    driver_s = time.time() - t0
    done = list(here)
    for share in others:
        results, share_counts = share.result()
        done += results
        if counts is not None:
            for key, value in share_counts.items():  # every process reads the whole night: the
                if key not in ("objects", "duplicates"):  # driver's counts of its order are the same
                    counts[key] = max(counts.get(key, 0), value)  # history entries: whoever flattened them
            peaks = [p for p in (counts.get("writer_peak_mb"), share.peak_mb) if p is not None]
            if peaks:
                counts["writer_peak_mb"] = max(peaks)
    order = {b.table_name(config.table_prefix): i for i, b in enumerate(builders)}
    done.sort(key=lambda w: order[w.name])  # the push's order of tables, whoever wrote them
    total_s = time.time() - t0
    log.info("%d tables written by %d processes in %.1f s (the driver's share: %s, %.1f s)", len(builders),
             len(shares), total_s, ", ".join(b.kind for b in shares[0]), driver_s)
    if counts is not None:
        counts["write_processes"] = len(shares)
        counts["write_seconds"] = {"all": round(total_s, 2), "driver": round(driver_s, 2)}
    return done


def writer_main():
    """A writer process (``Share``): arguments pickled on standard input, the result pipe's
    file descriptor and the driver's pid as its arguments."""
    _end_with(int(sys.argv[2]))
    with os.fdopen(int(sys.argv[1]), "wb") as result:
        _write_share(result, *pickle.loads(sys.stdin.buffer.read()))


def _end_with(driver_pid):
    """Have this process ended (SIGTERM) when the driver ends, killed or not: a writer left
    behind would go on writing tables that a new push may be writing (Linux's
    ``PR_SET_PDEATHSIG``; elsewhere the writer ends when it next reports)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != driver_pid:  # the driver ended before the call above
        os._exit(1)
