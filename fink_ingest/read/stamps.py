"""Stamps (cutouts) fetched from the datalake through a cutout pointer."""
from __future__ import annotations

import gzip
import io

import numpy as np

from fink_ingest import cells as cellcodec
from fink_ingest.errors import QueryError


def read_stamps(cells, stamp_columns):
    """Stamp FITS bytes (gunzipped) from one row of one row group of the pointed file.

    Parameters
    ----------
    cells : dict of bytes to bytes
        A row of the cutout-pointer table (``d:uri``, ``d:row_group``, ``d:row``, ``d:file_row``).
    stamp_columns : list of str
        Stamp columns to read, e.g. ``["cutoutScience"]``.

    Returns
    -------
    dict of str to bytes or None
        FITS bytes per column; None where the alert has no stamp.

    Raises
    ------
    QueryError
        If the pointed file cannot be reached from this process.
    """
    import pyarrow.parquet as pq

    from fink_ingest.datalake import open_uri

    uri = cells[b"d:uri"].decode()
    handle = open_uri(uri)
    if handle is None:
        raise QueryError(f"cutout file {uri} is not reachable from this process")
    group = cellcodec.decode(cells.get(b"d:row_group"), "int")
    row = cellcodec.decode(cells.get(b"d:row"), "int")
    with handle as fh:
        pf = pq.ParquetFile(fh)
        if group is None:  # the footer was not readable at push time: locate by file row
            file_row = cellcodec.decode(cells[b"d:file_row"], "bigint")
            starts = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
            group = int(np.searchsorted(starts, file_row, side="right") - 1)
            row = int(file_row - starts[group])
        table = pf.read_row_group(group, columns=stamp_columns)
    out = {}
    for name in stamp_columns:
        stamp = table.column(name)[row].as_py()
        data = stamp["stampData"] if stamp else None
        out[name] = gzip.decompress(data) if data and data[:2] == b"\x1f\x8b" else data
    return out


def fits_array(fits_bytes):
    """2-D image of a FITS file's primary HDU (numpy array), or None.

    ZTF stamps write their SIMPLE card off the FITS standard's columns; astropy reads them
    the same and is told not to check it (no ``VerifyWarning`` per stamp).
    """
    if fits_bytes is None:
        return None
    from astropy.io import fits

    with fits.open(io.BytesIO(fits_bytes), ignore_missing_simple=True) as hdul:
        return np.array(hdul[0].data)
