"""HEALPix pixels of the sky index (healpy; NESTED order throughout). The cone search's
discs are in ``read.sky``.

healpy is imported where it is first used, here and there: importing it imports
matplotlib and astropy (0.6 s), which a writer process that writes no sky index, or a
reader that answers no cone, never needs.

The sky index keys alerts by their pixel at a fine order (``sky_order``, 29 by default, as
HATS' ``_healpix_29``). In NESTED numbering the pixel at a coarser order k is
``pixel >> 2 * (order - k)``, so every coarser pixel is one contiguous range of fine pixels,
and, written fixed-width, one contiguous range of row keys.
"""
from __future__ import annotations

import numpy as np

from fink_ingest.errors import QueryError

MAX_ORDER = 29          # healpy's largest nside is 2**29
PIXEL_DIGITS = 19       # 12 * 4**29 - 1 = 3458764513820540927 has 19 digits


def nside(order):
    """``nside = 2**order`` (the one place it is derived)."""
    if not 0 <= int(order) <= MAX_ORDER:
        raise QueryError(f"order {order}: expected 0 <= order <= {MAX_ORDER}")
    return 1 << int(order)


def pixels(ra, dec, order):
    """NESTED pixel numbers of positions.

    Parameters
    ----------
    ra, dec : array_like of float, shape (n,)
        ICRS, degrees.
    order : int
        HEALPix order, 0..29.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
    """
    import healpy as hp

    return hp.ang2pix(nside(order), np.asarray(ra, dtype=float), np.asarray(dec, dtype=float),
                      nest=True, lonlat=True).astype(np.int64)


def format_pixels(pix):
    """Fixed-width (19 digits, zero-padded) text of pixel numbers: list of str."""
    return [f"{int(p):0{PIXEL_DIGITS}d}" for p in pix]


def fine_range(pixel, order, fine_order=MAX_ORDER):
    """Range ``[start, stop)`` of ``fine_order`` pixels inside a NESTED ``order`` pixel.

    Returns
    -------
    (int, int)
    """
    shift = 2 * (fine_order - order)
    return int(pixel) << shift, (int(pixel) + 1) << shift
