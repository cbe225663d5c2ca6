"""Cutouts: an alert's stamps fetched through the cutout-pointer table, as arrays, FITS or
PNG pictures (``images``)."""
from __future__ import annotations

from fink_ingest import rowkeys
from fink_ingest.errors import QueryError
from fink_ingest.read import images
from fink_ingest.read.base import ReaderBase
from fink_ingest.read.stamps import fits_array, read_stamps
from fink_ingest.tables import BUILDERS

CUTOUT_KINDS = ("Science", "Template", "Difference")
OUTPUTS = ("array", "FITS", "PNG")


def stamp_arrays(cells, kinds):
    """2-D arrays of an alert's stamps from its pointer row: dict of kind to array or None."""
    stamps = read_stamps(cells, [f"cutout{k}" for k in kinds])
    return {k: fits_array(stamps[f"cutout{k}"]) for k in kinds}


class CutoutQueries(ReaderBase):
    """``cutout``: stamps of an alert."""

    def cutout(self, object_id, candid=None, kind="Science", output="array", stretch="sigmoid", colormap=None,
               pmin=images.DEFAULT_PMIN, pmax=images.DEFAULT_PMAX, kernel=None):
        """A stamp of an alert, fetched through the cutout-pointer table.

        Parameters
        ----------
        object_id : str
        candid : int, optional
            The alert; default the object's latest alert that has stamps.
        kind : {'Science', 'Template', 'Difference', 'All'}
            ``All`` (arrays only) gives the three.
        output : {'array', 'FITS', 'PNG'}
        stretch, colormap, pmin, pmax, kernel
            PNG display options (``images``; checked for every output).

        Returns
        -------
        numpy.ndarray of shape (63, 63) for ZTF, FITS bytes or PNG bytes; for ``kind='All'``
        a dict of the three arrays; None if the object or alert has no stamp.

        Raises
        ------
        QueryError
            If an argument is not one of the allowed values, naming it.
        """
        self._check_oid(object_id)
        if kind not in CUTOUT_KINDS + ("All",):
            raise QueryError(f"kind {kind!r}: expected one of {list(CUTOUT_KINDS) + ['All']}")
        if output not in OUTPUTS:
            raise QueryError(f"output-format {output!r}: expected one of {list(OUTPUTS)} for cutouts")
        if kind == "All" and output != "array":
            raise QueryError("kind 'All' is only served with output-format 'array'")
        display = images.check_display(stretch, colormap, pmin, pmax, kernel)
        if candid is not None:
            candid = self._candid(candid)
        table = self._table("cutouts")
        if table is None:
            return None
        pointers = self._scan(table, prefix=rowkeys.prefix(object_id))
        if candid is not None:
            pointers = [p for p in pointers if BUILDERS["cutouts"].parse_key(p[0])["alert"] == candid]
        if not pointers:
            return None
        _, cells = pointers[-1]  # keys sort in time order: the last is the latest
        kinds = CUTOUT_KINDS if kind == "All" else (kind,)
        if output == "FITS":
            return read_stamps(cells, [f"cutout{kind}"])[f"cutout{kind}"]
        arrays = stamp_arrays(cells, kinds)
        if output == "PNG":
            return None if arrays[kind] is None else images.png(arrays[kind], *display)
        return arrays if kind == "All" else arrays[kind]

    @staticmethod
    def _candid(value):
        """An alert id (int) from an int or its decimal text (exact, never through a float)."""
        text = str(value).strip() if not isinstance(value, bool) else ""
        if isinstance(value, float) or not text.lstrip("-").isdigit() or len(text) > rowkeys.ALERT_ID_DIGITS + 1:
            raise QueryError(f"candid = {value!r}: expected an integer alert id")
        return int(text)
