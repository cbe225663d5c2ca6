"""Puts on HBase's Thrift 1 gateway written straight from Arrow, and HBase's errors made short.

Why not happybase's ``Batch``: it builds one Python ``Mutation`` object per cell and sends a
Thrift call every ``batch_size`` *cells* (~7 main-table rows at its default of 1000). A night
of the main table is ~150 cells per alert, so that path spent nearly all its time building
objects and waiting on round trips. Here the ``mutateRows`` call is encoded in Thrift's
binary protocol (strict, as happybase's ``TBinaryProtocol`` writes it) with vectorised
Arrow kernels: one byte string per row, the rows of a call taken as one contiguous slice of
an Arrow buffer. The reply is read by happybase's own Thrift client (``TClient._recv``), so
HBase's exceptions arrive as the same ``IOError``/``IllegalArgument`` objects.

The wire layout (``Hbase.thrift`` of HBase 1.x/2.x, shipped with happybase)::

    mutateRows(1: Text tableName, 2: list<BatchMutation> rowBatches, 3: map<Text,Text> attributes)
    BatchMutation { 1: Text row, 2: list<Mutation> mutations }
    Mutation { 1: bool isDelete = 0, 2: Text column, 3: Text value, 4: bool writeToWAL = 1 }

A put writes fields 2 and 3 of each ``Mutation`` only: the server takes the declared
defaults for the others (not a delete, written to the WAL), as for happybase's puts.
"""
from __future__ import annotations

import re
import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.errors import StoreError

# Thrift binary protocol: field types, and the strict message header (version 1, CALL).
T_STOP, T_STRING, T_STRUCT, T_MAP, T_LIST = 0, 11, 12, 13, 15
VERSION_CALL = 0x80010001
METHOD = b"mutateRows"
_ROW_HEAD = bytes([T_STRING, 0, 1])                      # BatchMutation.row
_MUTATIONS_HEAD = bytes([T_LIST, 0, 2, T_STRUCT])         # BatchMutation.mutations, then count
_COLUMN_HEAD = bytes([T_STRING, 0, 2])                    # Mutation.column, then length
_VALUE_HEAD = bytes([T_STRING, 0, 3])                     # Mutation.value, then length
_STOP = bytes([T_STOP])
# mutateRows' third argument, an empty attribute map, then the end of the argument struct.
_TRAILER = bytes([T_MAP, 0, 3, T_STRING, T_STRING]) + struct.pack(">i", 0) + _STOP
# A call is cut at this many bytes even if it has fewer rows than the store's ``batch`` (a
# main-table row is ~6.5 KB on the wire: ~40 rows a call; index rows ~0.2 KB: 1000). Measured
# on HBase 1.1.2's gateway (G1, 512 MB heap), 10,000 main-table alerts: the gateway spent
# 0.8-0.9 s of CPU with calls of up to 128 or 256 KiB, 3.7-4.7 s with calls of 512 KiB to
# 8 MiB, and the writes took 1.7x as long (benchmarks/README.md). A buffer of >= 512 KiB is a
# "humongous" object for G1 with 1 MiB regions (heaps under 2 GB): the likely cause.
MAX_CALL_BYTES = 256 << 10


def _be32(lengths):
    """Big-endian 4-byte texts of non-negative lengths (numpy ints), as a binary Arrow array."""
    raw = np.ascontiguousarray(lengths, dtype=">u4")
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(raw), [None, pa.py_buffer(raw.tobytes())]) \
        .cast(pa.binary())


def _as_binary(array):
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return array if array.type == pa.binary() else pc.cast(array, pa.binary())


def check_column(name):
    """A column name must be ``family:qualifier``: HBase's Thrift gateway drops the
    connection on one without the colon, instead of answering with an error.

    Raises
    ------
    StoreError
        Naming the column.
    """
    if b":" not in name:
        raise StoreError(f"column {name!r} is not family:qualifier")


def encode_arrow(keys, columns):
    """Thrift ``BatchMutation`` bytes of a columnar batch of puts, one per row with a cell.

    Parameters
    ----------
    keys : pyarrow.Array of string or binary, shape (n,)
        Row keys.
    columns : dict of str or bytes to pyarrow.Array of binary, shape (n,)
        ``family:qualifier`` -> cells; a null is an absent cell.

    Returns
    -------
    (pyarrow.Array of binary, numpy.ndarray of bool)
        The rows that have at least one cell, encoded, in order; and which of the ``n`` rows
        they are.

    Raises
    ------
    StoreError
        If a column name is not ``family:qualifier``.
    """
    n = len(keys)
    keys = _as_binary(keys)
    pieces, counts = [], np.zeros(n, dtype=np.int64)
    for name, values in columns.items():
        name = name.encode() if isinstance(name, str) else bytes(name)
        check_column(name)
        values = _as_binary(values)
        lengths = pc.binary_length(values)
        head = pa.scalar(_COLUMN_HEAD + struct.pack(">i", len(name)) + name + _VALUE_HEAD, pa.binary())
        size = _be32(lengths.fill_null(0).to_numpy(zero_copy_only=False))
        counts += pc.is_valid(values).to_numpy(zero_copy_only=False) if values.null_count else 1
        # a null value makes the whole piece null: the cell is left out of its row
        pieces.append(pc.binary_join_element_wise(head, size, values, pa.scalar(_STOP, pa.binary()), b""))
    has_cells = counts > 0
    row_head = pc.binary_join_element_wise(
        pa.scalar(_ROW_HEAD, pa.binary()), _be32(pc.binary_length(keys).to_numpy(zero_copy_only=False)), keys,
        pa.scalar(_MUTATIONS_HEAD, pa.binary()), _be32(counts), b"")
    # the row head is never null: Arrow's "skip" join returns a shorter array when every
    # input of a row is null, which would shift the rows
    rows = pc.binary_join_element_wise(row_head, *pieces, pa.scalar(_STOP, pa.binary()), b"",
                                       null_handling="skip")
    if not has_cells.all():
        rows = pc.filter(rows, pa.array(has_cells))
    return rows, has_cells


def encode_rows(rows):
    """``encode_arrow`` of ``(key, {column: value})`` rows (bytes); rows without cells left
    out. Returns the encoded rows (pyarrow binary array) and the keys of those rows (list)."""
    out, kept = [], []
    for key, cells in rows:
        if not cells:
            continue
        parts = [_ROW_HEAD, struct.pack(">i", len(key)), key, _MUTATIONS_HEAD, struct.pack(">i", len(cells))]
        for name, value in cells.items():
            check_column(name)
            parts += [_COLUMN_HEAD, struct.pack(">i", len(name)), name, _VALUE_HEAD,
                      struct.pack(">i", len(value)), value, _STOP]
        parts.append(_STOP)
        out.append(b"".join(parts))
        kept.append(key)
    return pa.array(out, pa.binary()), kept


def calls(rows, batch_rows, max_bytes=None):
    """Cut encoded rows into calls of at most ``batch_rows`` rows and ``max_bytes`` bytes
    (a single larger row goes alone).

    Yields
    ------
    (int, int, memoryview)
        First and last+1 row index, and the rows' bytes (a slice of the Arrow buffer).
    """
    rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    max_bytes = max_bytes or MAX_CALL_BYTES
    n = len(rows)
    if n == 0:
        return
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=n + 1, offset=rows.offset * 4)
    data = memoryview(rows.buffers()[2])
    start = 0
    while start < n:
        stop = min(start + batch_rows, n)
        limit = int(np.searchsorted(offsets, offsets[start] + max_bytes, side="right")) - 1
        stop = max(start + 1, min(stop, limit))
        yield start, stop, data[offsets[start]:offsets[stop]]
        start = stop


def call_bytes(table_name, count, body):
    """The whole ``mutateRows`` call: message header, table name, ``count`` encoded rows
    (``body``), empty attributes (bytes)."""
    name = table_name.encode() if isinstance(table_name, str) else table_name
    head = b"".join([struct.pack(">I", VERSION_CALL), struct.pack(">i", len(METHOD)), METHOD, struct.pack(">i", 0),
                     _ROW_HEAD, struct.pack(">i", len(name)), name,
                     bytes([T_LIST, 0, 2, T_STRUCT]), struct.pack(">i", count)])
    return b"".join([head, body, _TRAILER])


def send_call(connection, table_name, count, body):
    """Send one ``mutateRows`` call on a happybase connection and wait for its reply.

    Raises
    ------
    thriftpy2 exceptions
        HBase's ``IOError``/``IllegalArgument`` as happybase would raise them; socket and
        transport errors as they come (the caller retries those).
    """
    connection.transport.sock.sendall(call_bytes(table_name, count, body))
    connection.client._recv("mutateRows")


# A Java class name in HBase's messages, e.g. org.apache.hadoop.hbase.DoNotRetryIOException
_JAVA_CLASS = re.compile(r"\b(?:[a-z_$][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error))\b")
_DESCRIPTOR = re.compile(r",? ?\{NAME => [^}]*\}")


def hbase_error(exc):
    """HBase's exception class and the first line of its message, without the Java stack.

    The Thrift 1 gateway sends a Java stack trace as the message of ``IOError`` and
    ``IllegalArgument``; this keeps its first line, with Java class names shortened
    (``org.apache.hadoop.hbase.DoNotRetryIOException`` -> ``DoNotRetryIOException``), a
    class repeated by the wrapping left once, and family descriptors left out.

    Parameters
    ----------
    exc : Exception

    Returns
    -------
    str
        e.g. ``IOError: RetriesExhaustedWithDetailsException: Failed 1 action:
        NoSuchColumnFamilyException: Column family x does not exist in region ...``.
    """
    message = getattr(exc, "message", None)
    if message is None:
        message = str(exc)
    if isinstance(message, (bytes, bytearray)):
        message = bytes(message).decode(errors="replace")
    lines = [line for line in str(message).splitlines() if line.strip()]
    first = lines[0].strip() if lines else ""
    first = _DESCRIPTOR.sub("", _JAVA_CLASS.sub(r"\1", first))
    first = re.sub(r"\b(\w+): (?:\1: )+", r"\1: ", first).rstrip(" ,;")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
