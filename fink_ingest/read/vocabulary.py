"""The class names Fink knows, as its ``/api/v1/classes`` lists them: the labels of its rule,
TNS object types and SIMBAD object types (old and new labels).

SIMBAD's labels come from the SIMBAD object-type table (``otypes.labels.txt``) that
fink-utils ships (``fink_utils/xmatch/otypes.txt``), read with fink-utils' own parser, so
no network is needed and the list follows Fink's upgrades.
"""
from __future__ import annotations

import functools

from fink_ingest.classification import RULE_LABELS

TNS_PREFIX, SIMBAD_PREFIX = "(TNS) ", "(SIMBAD) "
# TNS object types (Transient Name Server classification), as Fink lists them
# (fink-object-api assets/tns_types.csv).
TNS_TYPES = (
    "AGN", "Afterglow", "CV", "FRB", "Galaxy", "ILRT", "Impostor-SN", "Kilonova", "LBV", "LRN", "Light-Echo",
    "M dwarf", "Nova", "Other", "QSO", "SLSN-I", "SLSN-II", "SN", "SN I", "SN II", "SN II-pec", "SN IIL", "SN IIP",
    "SN IIb", "SN IIn", "SN IIn-pec", "SN Ia", "SN Ia-91T-like", "SN Ia-91bg-like", "SN Ia-CSM", "SN Ia-pec",
    "SN Iax[02cx-like]", "SN Ib", "SN Ib-Ca-rich", "SN Ib-pec", "SN Ib/c", "SN Ibn", "SN Ic", "SN Ic-BL",
    "SN Ic-pec", "SN Icn", "TDE", "Varstar",
)
FINK_GROUP = "Fink classifiers"
TNS_GROUP = "Cross-match with TNS"
SIMBAD_GROUP = "Cross-match with SIMBAD (see http://simbad.u-strasbg.fr/simbad/sim-display?data=otypes)"


@functools.lru_cache(maxsize=1)
def simbad_labels():
    """SIMBAD object-type labels, old and new taxonomy, without ``Unknown`` (tuple of str).

    Raises
    ------
    ImportError
        If fink-utils is not installed (``pip install '.[api]'``).
    """
    from importlib.resources import files

    import numpy as np
    from fink_utils.xmatch.simbad import get_conversion_dic

    table = get_conversion_dic(path=str(files("fink_utils.xmatch") / "otypes.txt"), remove_unknown=True)
    return tuple(np.unique(np.concatenate([table["old_label"].to_numpy(), table["new_label"].to_numpy()])))


def _sorted(names):
    return sorted(names, key=lambda s: s.lower())


def classes():
    """Fink's groups of class names (dict of group to list of str), as ``/api/v1/classes``."""
    return {FINK_GROUP: _sorted(RULE_LABELS),
            TNS_GROUP: [TNS_PREFIX + x for x in _sorted(TNS_TYPES)],
            SIMBAD_GROUP: [SIMBAD_PREFIX + x for x in _sorted(simbad_labels())]}


def is_known(name):
    """True if a class name is one Fink knows (a rule label, ``(TNS) x``, ``(SIMBAD) x`` or a
    bare SIMBAD label)."""
    if name in RULE_LABELS:
        return True
    if name.startswith(TNS_PREFIX):
        return name[len(TNS_PREFIX):] in TNS_TYPES
    label = name[len(SIMBAD_PREFIX):] if name.startswith(SIMBAD_PREFIX) else name
    return label in simbad_labels()


def index_names(name):
    """Class-index names a requested class is looked up under (list of str): a SIMBAD label
    is stored bare (``QSO``) or, in some Fink versions, prefixed (``(SIMBAD) QSO``); both
    spellings of a request find both."""
    if name.startswith(SIMBAD_PREFIX):
        return [name[len(SIMBAD_PREFIX):], name]
    if name in RULE_LABELS or name.startswith(TNS_PREFIX):
        return [name]
    return [name, SIMBAD_PREFIX + name]
