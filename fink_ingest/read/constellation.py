"""Constellation of sky positions: astropy's ``get_constellation``, in microseconds.

``astropy.coordinates.get_constellation`` costs ~6 ms per call whatever the number of
positions (frame machinery, then a loop over the 357 rows of its boundary table), more than
an object look-up's whole budget (5 ms). This module runs the same steps with the same data,
once set up: ICRS to GCRS at astropy's default epoch (J2000) with ERFA's ``atciqz`` and
the astrometry context astropy builds for that frame, precession to B1875 with astropy's
matrix (``erfa.pfw06`` + ``fw2m``), then the first row of the Delporte boundaries (Roman
1987, astropy's ``constellation_data_roman87.dat``) whose RA range holds the position and
whose lower declination is below it. The tests check equality with
``get_constellation`` on every sample alert and on random positions.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _setup():
    """(ERFA astrometry context, precession matrix, boundary table arrays, long names)."""
    with _LOCK:
        import erfa
        from astropy.coordinates import GCRS
        from astropy.coordinates.builtin_frames.utils import get_jd12
        from astropy.coordinates.erfa_astrom import erfa_astrom
        from astropy.io import ascii
        from astropy.time import Time
        from astropy.utils import data

        equinox = Time("B1875", scale="tt")
        frame = GCRS(obstime=Time("J2000", scale="tt"))   # PrecessedGeocentric's defaults
        astrom = erfa_astrom.get().apcs(frame)
        precession = erfa.fw2m(*erfa.pfw06(*get_jd12(equinox, "tt")))
        table = ascii.read(data.get_pkg_data_contents("data/constellation_data_roman87.dat",
                                                      package="astropy.coordinates"),
                           names=["ral", "rau", "decl", "name"])
        names = data.get_pkg_data_contents("data/constellation_names.dat", package="astropy.coordinates",
                                           encoding="UTF8")
        long = {line[:3]: line[4:] for line in names.split("\n") if line and not line.startswith("#")}
        return (astrom, precession, np.asarray(table["ral"], float), np.asarray(table["rau"], float),
                np.asarray(table["decl"], float), np.array([long[n] for n in table["name"]], dtype=object))


def constellation_names(ra, dec):
    """IAU constellation (full name) of each position.

    Parameters
    ----------
    ra, dec : numpy.ndarray of float, shape (n,)
        ICRS, degrees, finite.

    Returns
    -------
    numpy.ndarray of object (str), shape (n,)
    """
    import erfa

    astrom, precession, ral, rau, decl, names = _setup()
    gra, gdec = erfa.atciqz(np.radians(ra), np.radians(dec), astrom)
    xyz = np.stack([np.cos(gdec) * np.cos(gra), np.cos(gdec) * np.sin(gra), np.sin(gdec)])
    x, y, z = precession @ xyz
    rah = np.mod(np.degrees(np.arctan2(y, x)), 360.0) / 15.0
    decd = np.degrees(np.arctan2(z, np.hypot(x, y)))
    inside = (ral[:, None] < rah) & (rah < rau[:, None]) & (decd > decl[:, None])   # (rows, n)
    return names[np.argmax(inside, axis=0)]
