"""HBase shell commands creating every table pre-split, with its configured codec.

HBase's Thrift 1 ``createTable`` takes no split keys, so a table the push creates starts
as one region. To spread one night's writes over region servers from the first push,
create the tables beforehand in the HBase shell::

    python3 -m fink_ingest.store.hbase.shell --store 'hbase://thrift-host:9090?table_prefix=fink' \\
        --regions 64 --sample-night 2024-01-15 | hbase shell

Names carry the store's ``table_prefix`` as HBase sees them (``fink_ztf.time``); codecs are
the ones a push would choose (``codecs.resolve``: the URL, then ``[hbase.compression]``).
"""
from __future__ import annotations

import argparse
import sys

from fink_ingest import healpix, rowkeys


def split_keys(kind, survey, regions=16, sample=None):
    """Row keys at which to pre-split a table, following its key layout (the first role of
    its builder's ``key``), so that one night's writes spread over ``regions`` regions.

    - ``salt`` (``time``): the salt buckets spread evenly (``survey.time_buckets``).
    - ``pixel`` (``sky``): equal ranges of NESTED pixels (whole coarse pixels).
    - free text first (``object``: main, cutouts, upper, uppervalid; ``class``, ``ssnamenr``):
      quantiles of ``sample``, escaped as the keys are (``rowkeys.escape_text``). Without a
      sample: no split (the text's distribution is the survey's).
    - anything else (``statistics``: one row a night): no split.

    Parameters
    ----------
    kind : str or fink_ingest.tables.base.TableBuilder
        Table kind (``main``, ``time``, ``sky``, ...) or its builder.
    survey : fink_ingest.config.Survey
    regions : int
        Target number of regions (>= 1).
    sample : iterable of str, optional
        Values of the table's first key component (e.g. the object ids of a recent night).

    Returns
    -------
    list of bytes
        Sorted, distinct split keys (``regions - 1`` of them, or fewer where the key space or
        the sample is smaller).
    """
    from fink_ingest.tables import BUILDERS

    builder = BUILDERS[kind] if isinstance(kind, str) else kind
    first = builder.key[0]
    if first == "salt":
        step = max(1, survey.time_buckets // regions)
        return [f"{b:02x}".encode() for b in range(step, survey.time_buckets, step)][:regions - 1]
    if first == "pixel":
        top = 12 << 2 * survey.sky_order
        return [f"{top * i // regions:0{healpix.PIXEL_DIGITS}d}".encode() for i in range(1, regions)]
    if first in rowkeys.TEXT_ROLES and sample is not None:
        values = sorted({rowkeys.escape_text(v) for v in sample if v is not None})
        picks = {values[len(values) * i // regions] for i in range(1, regions)} if values else set()
        return sorted(v.encode() for v in picks if v != values[0])
    return []


def _ruby(text):
    """A single-quoted string of the HBase shell (JRuby)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def shell_create(name, families, splits, compression="GZ"):
    """HBase shell command creating a pre-split table with one version per cell, a ROW bloom
    filter and ``compression`` on every family.

    Parameters
    ----------
    name : str
        The table's full name on HBase (with the connection's table prefix,
        ``HBaseStore.full_name``).
    families : list of str
    splits : list of bytes
        UTF-8 split keys (``split_keys``).
    compression : str
        HBase codec name.

    Returns
    -------
    str
    """
    fams = ", ".join(f"{{NAME => {_ruby(f)}, VERSIONS => 1, BLOOMFILTER => 'ROW', "
                     f"COMPRESSION => {_ruby(compression.upper())}}}" for f in families)
    keys = ", ".join(_ruby(k.decode()) for k in splits)
    return f"create {_ruby(name)}, {fams}" + (f", SPLITS => [{keys}]" if keys else "")


def shell_script(store, config, regions=16, sample=None, kinds=None):
    """``shell_create`` of every table a push writes, as the push would create it.

    Parameters
    ----------
    store : HBaseStore
        Gives the table prefix and the URL's codecs (no connection is made).
    config : fink_ingest.config.Config
    regions : int
    sample : list of str, optional
        Object ids of a recent night (splits the tables keyed by object first).
    kinds : list of str, optional
        Table kinds; default every one.

    Returns
    -------
    list of str
    """
    from fink_ingest.store.hbase.codecs import resolve
    from fink_ingest.tables import BUILDERS

    out = []
    for kind in kinds or BUILDERS:
        b = BUILDERS[kind]
        by_object = b.key[0] == "object"
        out.append(shell_create(store.full_name(b.table_name(config.table_prefix)), b.families_for(config.survey),
                                split_keys(b, config.survey, regions, sample if by_object else None),
                                resolve(kind, store.url_codecs, config).codec))
    return out


def main(argv=None):
    """Print the HBase shell commands of ``shell_script`` (see the module docstring)."""
    from fink_ingest import paths
    from fink_ingest.config import load_config
    from fink_ingest.store import open_store

    p = argparse.ArgumentParser(prog="python3 -m fink_ingest.store.hbase.shell", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="hbase://host:port?table_prefix=... (default: the configuration's)")
    p.add_argument("--conf", help="configuration file (default conf/fink_ingest.toml)")
    p.add_argument("--regions", type=int, default=16, help="regions per table (default 16)")
    p.add_argument("--sample-night", help="a night of the datalake whose object ids place the splits "
                                          "of the tables keyed by object first")
    p.add_argument("--datalake", help="datalake root (default: the configuration's)")
    args = p.parse_args(argv)
    config = load_config(args.conf, store=args.store, datalake=args.datalake)
    if not config.store.startswith("hbase://"):
        p.error(f"--store {config.store}: expected an hbase:// URL")
    sample = None
    if args.sample_night:
        import pyarrow.parquet as pq

        directory = paths.night_dir(config.datalake, paths.parse_night(args.sample_night))
        sample = pq.read_table(directory, columns=[config.survey.object_id])[0].to_pylist()
    for line in shell_script(open_store(config.store), config, args.regions, sample):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
