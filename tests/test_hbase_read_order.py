"""The read layer's columns come in one order on every backend, and in every output format.

HBase returns a row's cells sorted by family and qualifier, the embedded store in write
order; the read layer orders columns by the schema row (sorted by name: HBase's order), so
JSON, CSV, parquet and VOTable outputs list the same columns in the same order whichever
store answers.
"""
import io
import json

import pandas as pd
import pytest
from astropy.io.votable import parse

from fink_ingest.api import create_app
from fink_ingest.read import Reader, derived

QUERIES = {
    "objects": "/api/v1/objects?objectId=ZTF17aaaaitn",
    "objects_upper": "/api/v1/objects?objectId=ZTF17aaaaitn&withupperlim=true",
    "objects_columns": "/api/v1/objects?objectId=ZTF17aaaaitn&columns=i:magpsf,d:cdsxmatch,i:jd",
    "conesearch": "/api/v1/conesearch?ra=97.2307&dec=3.9413&radius=600",
    "latests": "/api/v1/latests?class=QSO&n=5",
    "sso": "/api/v1/sso?n_or_d=2009%20VN118",
    "statistics": "/api/v1/statistics?date=2024",
}
CELL_FAMILIES = ("i:", "d:", "c:")
# columns the read layer adds to the cells: from the index keys, and Fink's tag of upper limits
ADDED = ("i:objectId", "i:jd", "i:candid", "d:tag")
SEEN = {}   # backend -> {(query, format): columns}


def columns_of(output_format, data):
    if output_format == "json":
        return list(json.loads(data)[0])
    if output_format == "csv":
        return list(pd.read_csv(io.BytesIO(data)).columns)
    if output_format == "parquet":
        return list(pd.read_parquet(io.BytesIO(data)).columns)
    return [f.name for f in parse(io.BytesIO(data)).get_first_table().fields]


@pytest.mark.filterwarnings("ignore::astropy.io.votable.exceptions.VOWarning")
def test_outputs_list_the_same_columns_in_the_same_order_on_every_backend(real_night_push, request):
    config, store, _ = real_night_push
    backend = request.node.callspec.params["real_night_push"]
    client = create_app(Reader(store, config)).test_client()
    got = {}
    for name, url in QUERIES.items():
        per_format = {}
        for output_format in ("json", "csv", "parquet", "votable"):
            r = client.get(f"{url}&output-format={output_format}")
            assert r.status_code == 200, (url, output_format, r.data[:300])
            per_format[output_format] = columns_of(output_format, r.data)
            got[(name, output_format)] = per_format[output_format]
        assert all(cols == per_format["json"] for cols in per_format.values()), (name, per_format)
        cells = [c for c in per_format["json"] if c.startswith(CELL_FAMILIES) and c not in ADDED]
        if name != "objects_columns":   # the schema row's order: by name (HBase's cell order)
            assert cells == sorted(cells), name
    assert got[("objects_columns", "json")][:3] == ["i:magpsf", "d:cdsxmatch", "i:jd"]   # as asked
    # every cell of the object's rows is there (with every other column of the schema row, as
    # Fink's columns="*"), in name order, then Fink's v: columns
    key, row = next(store.table("ztf").scan(prefix=b"ZTF17aaaaitn_"))
    cells = [c for c in got[("objects", "json")] if not c.startswith("v:")]
    assert {q.decode() for q in row} <= set(cells) and cells == sorted(cells)
    assert got[("objects", "json")][-len(derived.ALL):] == list(derived.ALL)
    SEEN[backend] = got
    if len(SEEN) == 2:
        assert SEEN["sqlite"] == SEEN["hbase"]
