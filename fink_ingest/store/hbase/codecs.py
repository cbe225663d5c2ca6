"""Which HBase codec each table is created with, and whether the server can use it.

A stock HBase has only some codecs: 1.x knows NONE, GZ, LZO, SNAPPY and LZ4, and SNAPPY/LZ4
work only where Hadoop's native library is on every region server (else the master refuses
the table: ``Compression algorithm 'snappy' previously failed test``, or its 1.1 form
``UnsatisfiedLinkError ... buildSupportsSnappy()``); ZSTD and BZIP2 exist from 2.0 on, ZSTD
with native zstd only. NONE and GZ (Java's zlib) work everywhere; GZ is the default.

A table's codec is the first of (``resolve``):

1. the store URL's ``compression.<kind>`` (``hbase://host:9090?compression.upper=ZSTD``);
2. ``[hbase.compression] <kind>`` of the configuration file;
3. the store URL's ``compression`` (every table);
4. ``[hbase.compression] default`` (``GZ`` unless changed).

Before a push reads its night, every codec of a table it must create is tried on a scratch
table (``probe``): created with that codec, one cell put and read back, dropped. A refusal
stops the push there, naming the codec, the tables, the setting that chose it and the fix.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import uuid

from fink_ingest.config import HBASE_CODECS, HBASE_DEFAULT_CODEC
from fink_ingest.errors import ConfigError, StoreError

DEFAULT = "default"
# Codecs every HBase can use, without native libraries (named in the advice of a refusal).
PORTABLE = ("GZ", "NONE")
# Scratch tables of the probe: <PROBE_PREFIX><codec>_<random>, dropped after use.
PROBE_PREFIX = "fink_ingest_codec_probe_"
# Seconds the probe waits for HBase's answer: a table whose regions cannot open (a codec the
# region servers lack, with the master's sanity checks turned off) never takes the put.
PROBE_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class Choice:
    """A table's codec and the setting it came from (for messages)."""

    codec: str
    setting: str
    per_kind: bool = False   # set for this table's kind (only a per-kind option replaces it)


def parse_url_options(options, url):
    """Codec options of a store URL: ``compression`` and ``compression.<kind>``.

    Parameters
    ----------
    options : dict of str to str
        The URL's query options.
    url : str
        For messages.

    Returns
    -------
    dict of str to str
        ``"default"`` or a kind -> upper-case codec.

    Raises
    ------
    ConfigError
        If a codec is not one of HBase's names.
    """
    out = {}
    for key, value in options.items():
        if key != "compression" and not key.startswith("compression."):
            continue
        if value.upper() not in HBASE_CODECS:
            raise ConfigError(f"store URL {shlex.quote(url)}: {key}={value!r}; expected one of {list(HBASE_CODECS)}")
        out[DEFAULT if key == "compression" else key.split(".", 1)[1]] = value.upper()
    return out


def resolve(kind, url_codecs, config=None):
    """The codec of a table of ``kind`` and where it was set (see the module docstring).

    Parameters
    ----------
    kind : str
        Table builder name (``main``, ``upper``, ...).
    url_codecs : dict of str to str
        ``parse_url_options`` of the store URL.
    config : fink_ingest.config.Config, optional
        Gives ``hbase_compression`` and the file it was read from.

    Returns
    -------
    Choice
    """
    configured = dict(config.hbase_compression) if config is not None else {}
    source = config.source if config is not None else "the configuration"
    if kind in url_codecs:
        return Choice(url_codecs[kind], f"the store URL's compression.{kind}", True)
    if kind in configured:
        return Choice(configured[kind], f"[hbase.compression] {kind} in {source}", True)
    if DEFAULT in url_codecs:
        return Choice(url_codecs[DEFAULT], "the store URL's compression")
    return Choice(configured.get(DEFAULT, HBASE_DEFAULT_CODEC), f"[hbase.compression] default in {source}")


def probe_name(codec):
    """Name of a scratch table for trying ``codec`` (unique to this process and call)."""
    return f"{PROBE_PREFIX}{codec.lower()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def refusal(store, choice, tables, reason, kinds):
    """The ``StoreError`` of a codec the server refused.

    Parameters
    ----------
    store : HBaseStore
    choice : Choice
    tables : list of str
        Full names (with the connection's table prefix) of the tables that would use it.
    reason : str
        HBase's exception class and first line (``wire.hbase_error``).
    kinds : list of str
        Their table kinds (for the URL suggested).
    """
    portable = [c for c in PORTABLE if c != choice.codec]
    if choice.per_kind:
        fixed = store.url_with({f"compression.{k}": portable[0] for k in kinds})
    else:
        fixed = store.url_with({"compression": portable[0]})
    return StoreError(
        f"HBase at {store.host}:{store.port} cannot create tables compressed with {choice.codec} "
        f"(tables {', '.join(repr(t) for t in tables)}; codec set by {choice.setting}): {reason}. "
        f"Nothing was created and no night was read. Choose a codec the region servers have: "
        f"{' or '.join(portable)} work on every HBase (SNAPPY and LZ4 need Hadoop's native library, "
        f"ZSTD HBase 2 with native zstd), e.g. --store {shlex.quote(fixed)}")
