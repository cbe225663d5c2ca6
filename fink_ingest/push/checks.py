"""Checks of a night: before it is read (every table it writes exists with the key layout
it writes, ``open_tables``; the disk can hold it), and after it is written (counts reconcile,
per table, and every reason a night is incomplete says what to do)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from fink_ingest import journal, schemarow, workdir
from fink_ingest.errors import StoreError
from fink_ingest.push.table_writer import LOSSES


# Free space a night needs, per byte of its input columns (compressed, stamps left out, as
# the footers give them): the store grew by 1.15 of them on the real night 2024-01-15 (every
# table) and by 1.46 on a scaled 1M-alert night (alert tables); the staged files, written
# uncompressed and removed after the night, take about 2. Both with a margin.
STORE_BYTES_PER_INPUT_BYTE = 2.0
STAGING_BYTES_PER_INPUT_BYTE = 3.0


def check_space(store, config, files, run, night):
    """Refuse a night the free disk cannot hold (store and staging), before reading it.

    Raises
    ------
    StoreError
        Naming the night, the directories, the space needed and free, and what to do.
    """
    input_bytes = files.input_bytes(leave_out=set(config.survey.cutout_columns))
    store_dir = store.local_directory()
    if input_bytes is None or store_dir is None:
        return  # a remote store (HBase) or footers pyarrow cannot read: nothing to estimate
    staging = workdir.local_path(run.shared) if run.shared_is_local else run.local  # or its local copy
    staging.mkdir(parents=True, exist_ok=True)
    needs = {Path(store_dir): input_bytes * STORE_BYTES_PER_INPUT_BYTE,
             staging: input_bytes * STAGING_BYTES_PER_INPUT_BYTE}
    by_device = {}
    for path, need in needs.items():
        device = os.stat(path).st_dev
        by_device.setdefault(device, [path, 0.0])[1] += need
    for path, need in by_device.values():
        free = shutil.disk_usage(path).free
        if free < need:
            raise StoreError(
                f"night {night:%Y-%m-%d}: about {_size(need)} must be free on the disk of {path} (store "
                f"{store_dir}, staging {staging}), estimated from {_size(input_bytes)} of input; "
                f"{_size(free)} free: free space, or give --store/--work-dir on another disk")


def _size(n):
    """Bytes as text an operator reads at a glance (``3.4 MB``, ``1.20 GB``)."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def reconcile(summary, footer_rows=None):
    """What makes a night incomplete, each with what to do (list of str; empty: complete).

    Checks: no file or row set aside; rows read = rows in the file footers; main rows
    written = distinct alerts; for every table, rows expected = rows written + rows not
    placed (any reason), and no row lost (``table_writer.LOSSES``); every history entry has a time.

    Parameters
    ----------
    summary : dict
        A night's summary (``push_night``).
    footer_rows : int, optional
        Rows the good files' footers hold, if known.
    """
    problems = []
    if summary["files_rejected"]:
        problems.append(f"{len(summary['files_rejected'])} file(s) set aside "
                        f"({', '.join(f['file'].rsplit('/', 1)[-1] for f in summary['files_rejected'])}): "
                        "repair or replace them in the datalake, then push the night again")
    if summary["rows_rejected"]:
        problems.append(f"{summary['rows_rejected']} row(s) rejected, each with its reason in "
                        f"{summary.get('rejects_file')}: correct them upstream and push the night again")
    if footer_rows is not None and summary["alerts_read"] != footer_rows:
        problems.append(f"read {summary['alerts_read']} rows but the file footers hold {footer_rows}: "
                        "rows were lost while reading; push the night again")
    main = summary["main_table"]
    if main in summary["rows_written"] and summary["rows_written"][main] != summary["distinct_alerts"]:
        problems.append(f"{main}: {summary['rows_written'][main]} rows written for "
                        f"{summary['distinct_alerts']} distinct alerts")
    for table, expected in summary["rows_expected"].items():
        written = summary["rows_written"].get(table, 0)
        skipped = summary["rows_skipped"].get(table, {})
        unaccounted = expected - written - sum(skipped.values())
        if unaccounted:
            problems.append(f"{table}: {expected} rows expected, {written} written and "
                            f"{sum(skipped.values())} not placed: {unaccounted} unaccounted for (a defect: "
                            "report it with the run's push.log)")
        for reason in LOSSES:
            if skipped.get(reason):
                problems.append(f"{table}: {skipped[reason]} row(s) {reason} (a defect: report it with the "
                                "run's push.log)")
    for uri, columns in summary.get("columns_not_read", {}).items():
        problems.append(f"{uri.rsplit('/', 1)[-1]}: columns {columns} are in the file but Spark did not read them "
                        "(its Spark schema metadata, org.apache.spark.sql.parquet.row.metadata, omits them): "
                        "rewrite the file without that metadata, then push the night again")
    for table, notes in summary.get("schema", {}).items():
        for column, why in notes.get("set_aside", {}).items():
            problems.append(f"{table}: column {column} set aside: {why}")
    history = summary.get("history", {})
    if history.get("rejected"):
        problems.append(f"{history['rejected']} history entries without a valid time set aside in "
                        f"{history.get('rejects_file')}: correct them upstream and push the night again")
    return problems


def open_tables(store, builders, config, rebuilding=False):
    """Create or check every table a push will write, before the night is read.

    Each table is created if missing, with the codec the store chooses for it
    (``store.check_codecs``: on HBase the configured codecs, each tried first on a scratch
    table), and its key layout checked and recorded in its schema row
    (``schemarow.check_layout``): a codec the store refuses, a table written with another
    layout, or one whose whole rebuild has not finished (``journal``) stops the push here, in
    seconds, naming the setting or the command to run.

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    builders : list of fink_ingest.tables.base.TableBuilder
    config : fink_ingest.config.Config
    rebuilding : bool
        The push is part of a whole rebuild (its tables are in the journal, on purpose).

    Returns
    -------
    dict of str to fink_ingest.store.base.Table
        Builder kind -> table.

    Raises
    ------
    LayoutError
        If a table holds rows of another key layout, or is being rebuilt whole.
    StoreError
        If the store cannot use a table's codec (nothing is created).
    """
    survey = config.survey
    pending = {} if rebuilding else journal.pending(store, config)
    names = {b.table_name(config.table_prefix): b for b in builders}
    # every codec tried first (HBase: on a scratch table), before any table is created
    codecs = store.check_codecs(names, config)
    out = {}
    for name, b in names.items():
        if b.kind in pending:
            journal.check(store, config, b.kind, name)
        families = b.families_for(survey)
        table = store.ensure_table(name, families, codecs[name])
        schemarow.check_layout(table, survey.schema_version, families[0], b.key_layout(survey), b.kind, write=True)
        out[b.kind] = table
    return out
