"""How the embedded store keeps a row: its cells packed, compressed with its table's codec.

Packing: ``[u16 qualifier id][u16 length (0xFFFF then u32 for longer)][value]`` repeated;
qualifier ids map to ``family:qualifier`` in the table's ``qualifiers`` table.

Compression, per row, a flag byte first (every row says how it is stored, so tables written
with an older codec still read):

======  =====================================================================================
flag    stored value
======  =====================================================================================
0       raw packed bytes (rows shorter than the codec's minimum)
1       zstd level 1 (u32 raw length, then the frame): tables created with ``"zstd"``
2       LZ4 (u32 raw length, then the block): tables created with ``"lz4"``, and rows of a
        ``"dict"`` table written before it had enough rows to train its dictionary
3       zstd level 1 with the table's dictionary (u16 dictionary id, u32 raw length, frame)
======  =====================================================================================

Why a dictionary (the default, ``"dict"``): per-row compression cannot share anything
between rows, and rows of one table share most of their bytes (the same qualifiers and
lengths, the same layout of values). HBase compresses blocks of sorted rows for the same
reason; a block store must rewrite a block to merge a row into it, whereas a dictionary
keeps every row independent (a put, a merge, a point read touch one row). A 16 KiB
dictionary is trained per table with zstd (``zstandard.train_dictionary``) from the first
batch of at least ``DICT_MIN_ROWS`` rows written to it, kept in the table file's
``dictionaries`` table, and used for every later row: on the real night 2024-01-15 a main
row (2.99 KB packed) takes 0.81 KB (LZ4: 2.12 KB), compressed in 8.4 us and decompressed in
3.6 us (LZ4 5.2 us and 1.5 us); an index row 46 B (88 B raw). See benchmarks/README.md.
"""
from __future__ import annotations

import sqlite3
import struct
import threading

import numpy as np
import pyarrow as pa
import zstandard

RAW, ZSTD, LZ4, DICT = 0, 1, 2, 3
LONG = 0xFFFF   # a cell's u16 length field holding this announces a u32 length after it
_HEADER = struct.Struct(">BI")
_DICT_HEADER = struct.Struct(">BHI")
_CODECS = {LZ4: pa.Codec("lz4_raw")}
# zstd through python-zstandard (a fraction of pyarrow's per-call cost on rows of a few hundred
# bytes), frames as pyarrow writes them (content size included): rows of either read alike
_ZSTD = threading.local()


def _zstd():
    if not hasattr(_ZSTD, "c"):
        _ZSTD.c = zstandard.ZstdCompressor(level=1, write_checksum=False)
        _ZSTD.d = zstandard.ZstdDecompressor()
    return _ZSTD
# Table compression (``create_table(..., compression=)``) -> flag; None is the default (LZ4).
CODEC_NAMES = {None: LZ4, "lz4": LZ4, "zstd": ZSTD, "dict": DICT}
# Rows shorter than this stay raw (flag 0): compression would not pay for its header.
MIN_LENGTH = {LZ4: 256, ZSTD: 64, DICT: 32}
DICT_BYTES = 16384        # dictionary size (16 KiB compressed as well as 64 or 110 KiB on real rows)
DICT_MIN_ROWS = 200       # rows needed to train a dictionary (zstd needs enough samples)
DICT_SAMPLE_ROWS = 4000   # at most this many rows of the batch train it (spread over the batch)
# The dictionary's COVER parameters (segment and d-mer sizes), given instead of searched for:
# on the real night's main rows the search (k=0, d=0) took 0.47 s and chose k=1998, d=8 (801
# B a row); given, training takes 0.12 s for 811 B (+1.3%). The push waits for it.
DICT_K, DICT_D = 2000, 8
DICT_LEVEL = 1            # level 3 gave 1.5% fewer bytes for 30% more time


def pack_cells(cells):
    """Pack ``{qualifier_id: bytes}`` into the row layout (uncompressed)."""
    out = bytearray()
    for qid, value in cells.items():
        n = len(value)
        out += struct.pack(">HH", qid, n) if n < LONG else struct.pack(">HHI", qid, LONG, n)
        out += value
    return bytes(out)


def unpack_cells(packed):
    """Inverse of ``pack_cells``: dict of qualifier id to bytes."""
    cells, i, n = {}, 0, len(packed)
    while i < n:
        qid, length = struct.unpack_from(">HH", packed, i)
        i += 4
        if length == LONG:
            (length,) = struct.unpack_from(">I", packed, i)
            i += 4
        cells[qid] = packed[i:i + length]
        i += length
    return cells


def compress(packed, codec=LZ4):
    """Stored value of a packed row with a codec that needs no dictionary (``LZ4``, ``ZSTD``;
    rows shorter than its minimum stay raw)."""
    if len(packed) < MIN_LENGTH[codec]:
        return b"\x00" + packed
    block = _zstd().c.compress(packed) if codec == ZSTD else _CODECS[codec].compress(packed, asbytes=True)
    return _HEADER.pack(codec, len(packed)) + block


def decompress(value):
    """Inverse of ``compress`` (flags 0, 1, 2; dictionary rows need ``RowCodec.decompress``)."""
    if value[0] == RAW:
        return value[1:]
    flag, length = _HEADER.unpack_from(value, 0)
    if flag == ZSTD:
        return _zstd().d.decompress(value[5:], max_output_size=length)
    return _CODECS[flag].decompress(value[5:], length, asbytes=True)


def _slices(packed):
    """(data memoryview, list of (start, stop) or None per value) of a binary Arrow array,
    sliced from its buffers without copying the values out."""
    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks()
    width = 8 if pa.types.is_large_binary(packed.type) else 4
    offsets = np.frombuffer(packed.buffers()[1], dtype=np.int64 if width == 8 else np.int32,
                            count=len(packed) + 1, offset=packed.offset * width).tolist()
    data = memoryview(packed.buffers()[2] or b"")
    valid = packed.is_valid().to_pylist() if packed.null_count else None
    spans = [None if (valid is not None and not valid[i]) or stop == start else (start, stop)
             for i, (start, stop) in enumerate(zip(offsets, offsets[1:]))]
    return data, spans


def _multi_column(compressor, packed, minimum, fields, flag):
    """Stored values of packed rows (binary Arrow array) compressed with zstd (``compressor``):
    one ``multi_compress_to_buffer`` call compresses every row long enough, in C, without the
    GIL (a Python call a row held it for most of the row's time while other tables' threads
    waited); each value is prefixed with its header (``flag``, the ``fields`` of the codec's
    header: name -> (numpy type, value), then the packed length). Shorter rows are stored raw
    (flag 0), empty ones as None."""
    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks()
    if pa.types.is_large_binary(packed.type):
        packed = packed.cast(pa.binary())
    n = len(packed)
    if n == 0:
        return []
    offsets = np.frombuffer(packed.buffers()[1], dtype=np.int32, count=n + 1, offset=packed.offset * 4).astype(np.int64)
    lengths = np.diff(offsets)
    stored = lengths > 0
    if packed.null_count:
        stored &= packed.is_valid().to_numpy(zero_copy_only=False)
    long = stored & (lengths >= minimum)
    out = [None] * n
    data = packed.buffers()[2]
    which = np.flatnonzero(long)
    if which.size:
        segments = np.empty((which.size, 2), dtype="<u8")
        segments[:, 0] = offsets[which]
        segments[:, 1] = lengths[which]
        done = compressor.multi_compress_to_buffer(zstandard.BufferWithSegments(data, segments.tobytes()))
        headers = np.empty(which.size, dtype=[("flag", "u1")] + [(k, t) for k, (t, _) in fields.items()] +
                           [("length", ">u4")])
        headers["flag"], headers["length"] = flag, lengths[which]
        for k, (_, v) in fields.items():
            headers[k] = v
        heads, size = headers.tobytes(), headers.dtype.itemsize
        for j, i in enumerate(which.tolist()):
            out[i] = heads[j * size:(j + 1) * size] + done[j].tobytes()
    view = memoryview(data) if data is not None else None
    for i in np.flatnonzero(stored & ~long).tolist():
        out[i] = b"\x00" + view[offsets[i]:offsets[i + 1]].tobytes()
    return out


def compress_column(packed, codec=LZ4):
    """``compress`` of every value of a binary Arrow array (packed rows), empty ones as None.

    The values are sliced from the array's data buffer, not copied out first (~2 us and one
    copy less a row than ``compress`` of ``to_pylist()``).
    """
    if codec == ZSTD:  # in one call, without the GIL
        return _multi_column(_zstd().c, packed, MIN_LENGTH[ZSTD], {}, ZSTD)
    data, spans = _slices(packed)
    minimum, header = MIN_LENGTH[codec], _HEADER.pack
    codec_block = _CODECS[codec].compress
    block = lambda view: codec_block(view, asbytes=True)  # noqa: E731
    out = []
    for span in spans:
        if span is None:
            out.append(None)
            continue
        start, stop = span
        n = stop - start
        out.append(b"\x00" + data[start:stop].tobytes() if n < minimum else header(codec, n) + block(data[start:stop]))
    return out


class RowCodec:
    """The codec of one table file: compresses and decompresses its rows, and trains and
    keeps its zstd dictionary (``dict`` tables). Thread-safe; it holds the file's path, never
    the table (SQLite functions of a connection refer to it: no reference cycle).

    Parameters
    ----------
    path : str or Path
        The table file.
    flag : int
        ``CODEC_NAMES`` value of the table's compression.
    """

    def __init__(self, path, flag):
        self.path, self.flag = str(path), flag
        self._dicts = {}                 # id -> zstandard.ZstdCompressionDict
        self._local = threading.local()  # per thread: compressors and decompressors by dictionary id
        self._lock = threading.Lock()
        self._load()

    def _load(self):
        """Read the dictionaries stored in the table file (new ones written by another process)."""
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                found = conn.execute("SELECT id, data FROM dictionaries").fetchall()
            finally:
                conn.close()
        except sqlite3.OperationalError:  # no dictionary yet (the table is made on the first one)
            return
        with self._lock:
            for did, data in found:
                if did not in self._dicts:
                    self._dicts[did] = zstandard.ZstdCompressionDict(bytes(data))

    @property
    def dictionary_id(self):
        """Id of the dictionary new rows use (the newest), or None."""
        return max(self._dicts) if self._dicts else None

    def _compressor(self, did):
        cache = self._local.__dict__.setdefault("compressors", {})
        if did not in cache:
            cache[did] = zstandard.ZstdCompressor(level=DICT_LEVEL, dict_data=self._dicts[did], write_checksum=False,
                                                  write_content_size=False, write_dict_id=False)
        return cache[did]

    def _decompressor(self, did):
        cache = self._local.__dict__.setdefault("decompressors", {})
        if did not in cache:
            if did not in self._dicts:
                self._load()
            cache[did] = zstandard.ZstdDecompressor(dict_data=self._dicts[did])
        return cache[did]

    def train(self, samples, conn):
        """Train the table's dictionary from packed rows and store it (once: a table that has
        one keeps it). Returns True if the table has a dictionary afterwards."""
        with self._lock:
            if self._dicts:
                return True
            if len(samples) < DICT_MIN_ROWS:
                return False
            step = max(1, len(samples) // DICT_SAMPLE_ROWS)
            try:
                trained = zstandard.train_dictionary(DICT_BYTES, samples[::step], level=DICT_LEVEL, k=DICT_K, d=DICT_D)
            except zstandard.ZstdError:  # too little to learn from (e.g. identical tiny rows)
                return False
            with conn:
                conn.execute("CREATE TABLE IF NOT EXISTS dictionaries (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
                conn.execute("INSERT OR IGNORE INTO dictionaries VALUES (1, ?)", (trained.as_bytes(),))
                did, data = conn.execute("SELECT id, data FROM dictionaries ORDER BY id DESC LIMIT 1").fetchone()
            self._dicts[did] = zstandard.ZstdCompressionDict(bytes(data))  # another writer's, if it won
            return True

    def compress(self, packed):
        """Stored value of one packed row (bytes)."""
        if self.flag != DICT:
            return compress(packed, self.flag)
        did = self.dictionary_id
        if did is None:
            return compress(packed, LZ4)
        if len(packed) < MIN_LENGTH[DICT]:
            return b"\x00" + packed
        return _DICT_HEADER.pack(DICT, did, len(packed)) + self._compressor(did).compress(packed)

    def compress_column(self, packed, conn=None):
        """Stored values of a binary Arrow array of packed rows (empty ones as None); trains
        the dictionary first on these rows if the table has none yet (``conn`` writes it)."""
        if self.flag != DICT:
            return compress_column(packed, self.flag)
        if self.dictionary_id is None and conn is not None:
            data, spans = _slices(packed)
            self.train([data[a:b].tobytes() for a, b in (s for s in spans if s)], conn)
        did = self.dictionary_id
        if did is None:
            return compress_column(packed, LZ4)
        return _multi_column(self._compressor(did), packed, MIN_LENGTH[DICT], {"did": (">u2", did)}, DICT)

    def decompress(self, value):
        """Packed row of a stored value (any flag)."""
        if value[0] != DICT:
            return decompress(value)
        _, did, length = _DICT_HEADER.unpack_from(value, 0)
        return self._decompressor(did).decompress(value[7:], max_output_size=length)

    def merge(self, old, new):
        """SQLite function ``merge_cells``: the cells of ``new`` over those of ``old``."""
        cells = unpack_cells(self.decompress(old))
        cells.update(unpack_cells(self.decompress(new)))
        return self.compress(pack_cells(cells))
