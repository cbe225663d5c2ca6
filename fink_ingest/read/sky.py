"""The sky side of a cone search: angular separation, and the key ranges covering a cone."""
from __future__ import annotations

import math

import numpy as np

from fink_ingest import healpix
from fink_ingest.errors import QueryError

PIXEL_DEG_ORDER0 = 58.6              # HEALPix pixel size at order 0, degrees (sqrt(4 pi / 12) rad)
# Finest order used to cover a cone: healpy's query_disc aborts the process (C++ PlanckError,
# uncatchable) on a sub-milliarcsecond disc at order 29; order 26 pixels are ~3 mas, and a
# coarser cover only adds rows that the exact separation then drops.
MAX_COVER_ORDER = 26


def separation_deg(ra1, dec1, ra2, dec2):
    """Angular separation (degrees) on the sphere, Vincenty's formula (stable at 0 and 180).

    Parameters
    ----------
    ra1, dec1 : float
        Degrees.
    ra2, dec2 : numpy.ndarray, shape (n,)
        Degrees.

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    l1, b1, l2, b2 = map(np.radians, (ra1, dec1, np.asarray(ra2, float), np.asarray(dec2, float)))
    dl = l2 - l1
    num = np.hypot(np.cos(b2) * np.sin(dl), np.cos(b1) * np.sin(b2) - np.sin(b1) * np.cos(b2) * np.cos(dl))
    den = np.sin(b1) * np.sin(b2) + np.cos(b1) * np.cos(b2) * np.cos(dl)
    return np.degrees(np.arctan2(num, den))


def cone_ranges(ra, dec, radius_arcsec, fine_order):
    """NESTED pixel ranges at ``fine_order`` covering a cone (the coarse step of a cone search).

    The disc is covered at an order whose pixels are about a quarter of the radius
    (``healpy.query_disc``, inclusive), each pixel is turned into its contiguous range of
    fine pixels, and touching ranges are merged.

    Parameters
    ----------
    ra, dec : float
        Cone centre, ICRS, degrees.
    radius_arcsec : float
        Radius in arcseconds.
    fine_order : int
        Order of the sky index keys.

    Returns
    -------
    list of (int, int)
        Sorted, disjoint half-open ranges ``[start, stop)``.
    """
    import healpy as hp

    radius_deg = radius_arcsec / 3600.0
    if not radius_deg > 0:
        raise QueryError(f"radius = {radius_arcsec!r}: expected a positive number of arcseconds")
    order = int(np.clip(math.floor(math.log2(PIXEL_DEG_ORDER0 / radius_deg)) + 2, 0, min(fine_order, MAX_COVER_ORDER)))
    pixels = hp.query_disc(healpix.nside(order), hp.ang2vec(ra, dec, lonlat=True),
                           math.radians(radius_deg), inclusive=True, nest=True)
    ranges = []
    for p in sorted(int(x) for x in pixels):
        start, stop = healpix.fine_range(p, order, fine_order)
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges
