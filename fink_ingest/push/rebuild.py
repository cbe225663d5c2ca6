"""Whole tables: rebuilding one for some nights or all, and upgrading tables of an older key
layout. A whole rebuild is recorded in the journal (``fink_ingest.journal``) until it ends, so
one cut short is refused, naming the command that completes it."""
from __future__ import annotations

import logging

from fink_ingest import datalake, journal, schemarow
from fink_ingest.errors import FinkIngestError, LayoutError
from fink_ingest.push.night import push_nights
from fink_ingest.push.checks import open_tables
from fink_ingest.tables import BUILDERS

log = logging.getLogger(__name__)


def rebuild(spark, config, store, table_kind, nights, run_dir, all_nights=False, on_night=None):
    """Rebuild one table for some nights, touching no other table.

    For each night, the table's rows of that night (``TableBuilder.night_keys``) are
    deleted, then the night is pushed for this table only. With ``all_nights`` the table is
    dropped and recreated first (what an operator does after changing its layout).

    Parameters
    ----------
    spark, config, store
        As ``push_night``.
    table_kind : str
        A key of ``BUILDERS``.
    nights : list of datetime.date
    run_dir : Path or fink_ingest.workdir.RunDir
    all_nights : bool
    on_night : callable, optional
        ``on_night(summary)`` as each night completes (``push_nights``).

    Returns
    -------
    list of dict
        One summary per night, each with ``rows_deleted``.

    Raises
    ------
    LayoutError
        Without ``all_nights``, if the table was written with another key layout.
    """
    builder = BUILDERS[table_kind]
    name = builder.table_name(config.table_prefix)
    if all_nights:
        tables = _recreate(store, config, [table_kind], f"bin/fink_push --rebuild {table_kind} --all-nights")
        table = tables[table_kind]
    else:
        table = open_tables(store, [builder], config)[table_kind]
    deleted = {}
    for night in nights:
        keys = builder.night_keys(table, night, config.survey)
        for key in keys:
            table.delete(key)
        deleted[f"{night:%Y-%m-%d}"] = len(keys)
    summaries, _ = push_nights(spark, config, store, nights, run_dir, [table_kind], rebuilding=all_nights,
                               on_night=on_night)
    for summary in summaries:
        summary["rows_deleted"] = {name: deleted.get(summary["night"], 0)}
    if all_nights:
        _complete(tables, config, store)
    return summaries


def _recreate(store, config, kinds, command):
    """Drop and recreate tables for a whole rebuild, recorded in the journal until
    ``_complete`` (a rebuild cut short leaves them refused, naming ``command``, never
    half-filled and taken as whole). Returns kind -> table."""
    journal.begin(store, config, kinds, command)
    for kind in kinds:
        name = BUILDERS[kind].table_name(config.table_prefix)
        if name in store.tables():
            store.drop_table(name)
            log.info("%s dropped, to be rebuilt from every night (%s)", name, command)
    return open_tables(store, [BUILDERS[k] for k in kinds], config, rebuilding=True)


def _complete(tables, config, store):
    """Remove the journal rows of ``_recreate``: the tables are whole again."""
    journal.end(store, config, list(tables))


def stale_tables(store, config, kinds=None):
    """Tables of the store written with another key layout than this version's (among
    ``kinds``, builder names; default every table).

    Returns
    -------
    dict of str to str
        Builder kind -> the ``LayoutError`` message naming the table and the upgrade.
    """
    survey, present = config.survey, set(store.tables())
    pending = journal.pending(store, config)
    out = {}
    for kind in BUILDERS if kinds is None else kinds:
        b = BUILDERS[kind]
        name = b.table_name(config.table_prefix)
        if kind in pending:
            out[kind] = (f"table {name}: being rebuilt whole, or its rebuild was cut short; run "
                         f"`{pending[kind]}` (again) to complete it")
            continue
        if name not in present:
            continue
        try:
            schemarow.check_layout(store.table(name), survey.schema_version, b.families_for(survey)[0],
                                   b.key_layout(survey), kind)
        except LayoutError as exc:
            out[kind] = str(exc)
    return out


def upgrade(spark, config, store, run_dir, nights=None, on_night=None):
    """Bring the store to this version's tables, from the datalake: every table written with
    another key layout, and every table this version writes that the store lacks (a store
    with nights: its statistics table exists), e.g. an index added since.

    The stale tables are dropped, then every night of the datalake is pushed for them and for
    the missing ones (one pass for all of them); tables already on this layout are not
    touched. Before
    anything is dropped, the nights the store has statistics for must all be in the
    datalake: an upgrade never drops alerts it cannot write again.

    Parameters
    ----------
    spark, config, store
        As ``push_night``.
    run_dir : Path or fink_ingest.workdir.RunDir
    nights : list of datetime.date, optional
        Nights to push; default every night present in the datalake.

    Returns
    -------
    (list of str, list of dict)
        Kinds of the tables upgraded, and one summary per night.

    Raises
    ------
    FinkIngestError
        If the store holds nights whose partitions are missing from the datalake; the
        message names them (nothing is dropped).
    """
    stale = stale_tables(store, config)
    stats = BUILDERS["statistics"]
    stats_name = stats.table_name(config.table_prefix)
    present = set(store.tables())
    absent = [k for k, b in BUILDERS.items() if b.table_name(config.table_prefix) not in present] \
        if stats_name in present else []
    if not stale and not absent:
        return [], []
    if nights is None:
        nights = datalake.list_nights(spark, config.datalake)
    known = stats.nights(store.table(stats_name)) if stats_name in store.tables() else []
    missing = sorted(set(known) - set(nights))
    if missing:
        listed = ", ".join(f"{n:%Y-%m-%d}" for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise FinkIngestError(
            f"upgrade refused: the store holds {len(missing)} night(s) missing from the datalake "
            f"{config.datalake} ({listed}); an upgrade rebuilds tables from the datalake and would lose them. "
            "Restore those partitions, or rebuild table by table with --rebuild TABLE --all-nights")
    kinds = [k for k in BUILDERS if k in stale or k in absent]
    tables = _recreate(store, config, kinds, "bin/fink_push --upgrade")
    summaries, _ = push_nights(spark, config, store, nights, run_dir, kinds, rebuilding=True, on_night=on_night)
    _complete(tables, config, store)
    return kinds, summaries
