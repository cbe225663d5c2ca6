"""Every real night of ../shared/datasim/ztf, laid out by datasim, pushed into one store.

The nights come from different Fink versions (and raw ZTF alerts with no Fink values), so
this is also the schema-drift test: columns come and go, types widen (roid int -> bigint,
Plx float -> double), timestamp becomes string, a column is all null.
"""
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import make_config
from datasim.layout import layout_datalake
from fink_ingest import cells, paths, schemarow
from fink_ingest.push import push_night
from fink_ingest.store import open_store


@pytest.fixture(scope="module")
def multinight(spark, datasim, tmp_path_factory):
    base = tmp_path_factory.mktemp("multinight")
    layout_datalake([datasim / "ztf"], base / "lake")
    nights = sorted(p for p in (base / "lake" / "science").glob("year=*/month=*/day=*"))
    config = make_config(base / "lake", base / "store", base / "work")
    store = open_store(config.store)
    summaries = {}
    for night_dir in nights:
        y, m, d = (part.split("=")[1] for part in night_dir.parts[-3:])
        night = paths.parse_night(f"{y}-{m}-{d}")
        summaries[night] = (night_dir, push_night(spark, config, store, night))
    return config, store, summaries


def test_every_night_pushed_with_one_row_per_candid(multinight):
    config, store, summaries = multinight
    assert len(summaries) >= 20
    total = 0
    for night, (night_dir, summary) in summaries.items():
        candids = pc.unique(pq.read_table(night_dir, columns=["candid"])["candid"])
        assert summary["ok"], summary
        assert summary["rows_written"]["ztf"] == len(candids), night
        total += len(candids)
    assert total == 1516  # 849 + 72 + 55 + 11 + 31 + 498 real alerts, all distinct
    assert store.table("ztf").count(prefix=b"ZTF") == total


def test_schema_row_follows_drift(multinight):
    config, store, _ = multinight
    types = schemarow.read(store.table("ztf"), config.survey.schema_version)
    assert types["d:roid"] == "bigint" and types["d:Plx"] == "double"     # widened
    assert types["d:timestamp"] == "string"                               # timestamp vs string
    assert types["d:tracklet"] == "string"                                # all-null int in one night
    assert types["d:finkclass"] == "string" and types["i:jd"] == "double"
    # an old cell (int roid of 2024-01-15) still decodes under the widened type
    key, row = next(store.table("ztf").scan(prefix=b"ZTF17aaaaitn_"))
    assert len(row[b"d:roid"]) == 4 and cells.decode(row[b"d:roid"], types["d:roid"]) == 0


def test_cutout_pointers_lead_to_the_stamps_of_their_own_candid(multinight, datasim):
    _, store, _ = multinight
    source = {}
    for path in (datasim / "ztf" / "alerts").glob("*.parquet"):
        t = pq.read_table(path, columns=["candid", "cutoutScience"])
        for candid, stamp in zip(t["candid"].to_pylist(), t["cutoutScience"].to_pylist()):
            source[candid] = stamp["stampData"]
    checked = 0
    for key, row in store.table("ztf.cutouts").scan(prefix=b"ZTF"):
        oid, _, candid = key.decode().split("_")
        candid = int(candid)
        uri = row[b"d:uri"].decode()
        group, within = cells.decode(row[b"d:row_group"], "int"), cells.decode(row[b"d:row"], "int")
        pf = pq.ParquetFile(uri.replace("file:", "", 1))
        stamp_row = pf.read_row_group(group, columns=["objectId", "candid", "cutoutScience"]).slice(within, 1).to_pylist()[0]
        assert (stamp_row["objectId"], stamp_row["candid"]) == (oid, candid), key
        if candid in source:
            assert stamp_row["cutoutScience"]["stampData"] == source[candid]
            checked += 1
    assert checked == 72 + 55 + 11
    assert store.table("ztf.cutouts").count(prefix=b"ZTF") == 1516 - 849  # the archive night has no stamps


def snapshot(store):
    return {name: list(store.table(name).scan()) for name in store.tables()}


def test_backfill_equals_nights_pushed_one_by_one(multinight, spark, tmp_path, capsys, monkeypatch):
    """The backfill reads the range in one Spark job per group of nights sharing a schema (six
    here: the nights come from six Fink layouts), accounts each night on its own, makes no
    directory for a night that does not exist, lists those as ranges in one line, and stores
    exactly what the nights pushed one by one stored."""
    from fink_ingest.cli import main
    from fink_ingest.push import night as night_module

    config, store, summaries = multinight
    groups = []
    group_steps = night_module._group_steps
    monkeypatch.setattr(night_module, "_group_steps", lambda spark, config, store, members, *a, **k:
                        groups.append([m.night for m in members]) or group_steps(spark, config, store, members, *a, **k))
    first, last = min(summaries), max(summaries)
    code = main(lambda c: spark, ["--from", f"{first:%Y-%m-%d}", "--to", f"{last:%Y-%m-%d}",
                                  "--datalake", config.datalake, "--store", str(tmp_path / "s"),
                                  "--work-dir", str(tmp_path / "w")])
    out = capsys.readouterr().out
    assert code == 0
    assert snapshot(open_store(str(tmp_path / "s"))) == snapshot(store)
    assert len(groups) == 6 and sorted(n for g in groups for n in g) == sorted(summaries)
    assert max(len(g) for g in groups) == 12                        # the hostless sample's nights together
    days = (last - first).days + 1
    assert f"{days} nights: 21 complete, 0 incomplete, {days - 21} without a partition (2018-11-30.." in out
    assert out.count("night 20") == 21 and out.count("\n") < 21 * 30   # a summary per night, one closing line
    night_dirs = sorted(p.name for p in (tmp_path / "w").glob("runs/*/2*"))
    assert night_dirs == sorted(f"{n:%Y%m%d}" for n in summaries)    # no directory for a missing night
    assert all((tmp_path / "w").glob(f"runs/*/{n:%Y%m%d}/summary.json") for n in summaries)


def test_rebuild_one_table_leaves_the_others_byte_for_byte(multinight, spark):
    import hashlib

    from fink_ingest.push import rebuild

    config, store, summaries = multinight
    digest = {name: hashlib.md5(store.path_of(name).read_bytes()).hexdigest() for name in store.tables()}
    before = list(store.table("ztf.sky").scan())
    night = paths.parse_night("2024-01-15")
    out = rebuild(spark, config, store, "sky", [night], store.directory.parent / "rebuild")
    assert out[0]["rows_deleted"] == {"ztf.sky": 849} and out[0]["rows_written"] == {"ztf.sky": 849}
    assert list(store.table("ztf.sky").scan()) == before
    after = {name: hashlib.md5(store.path_of(name).read_bytes()).hexdigest() for name in store.tables()}
    assert {n: d for n, d in after.items() if n != "ztf.sky"} == {n: d for n, d in digest.items() if n != "ztf.sky"}


def test_history_entries_stored_once_whatever_the_order_of_nights(multinight, spark, tmp_path):
    """The SLSN sample: 15 objects with alerts on several nights, each alert carrying the
    object's 30-day history again. In night order, or in reverse order into a fresh store,
    the history tables end up identical, holding every entry once."""
    config, store, summaries = multinight
    nights = sorted(n for n, (d, _) in summaries.items() if n.year == 2025)
    assert len(nights) >= 3
    alerts = pa.concat_tables([pq.ParquetFile(p).read(columns=["objectId", "prv_candidates"])
                               for n in nights for p in summaries[n][0].glob("*.parquet")])
    prv = alerts["prv_candidates"].combine_chunks()
    flat = pc.list_flatten(prv)
    owner = pc.take(alerts["objectId"], pc.list_parent_indices(prv)).to_pylist()
    upper = {(o, jd) for o, jd, mag in zip(owner, flat.field("jd").to_pylist(), flat.field("magpsf").to_pylist())
             if mag is None}
    objects = set(alerts["objectId"].to_pylist())
    assert len(objects) == 15 and len(upper) < pc.sum(pc.is_null(flat.field("magpsf")).cast("int64")).as_py()

    def history(s, table):
        return [(k, r) for k, r in s.table(table).scan(prefix=b"ZTF") if k.decode().split("_")[0] in objects]

    reverse = open_store(str(tmp_path / "reverse"))
    reverse_config = make_config(config.datalake, tmp_path / "reverse", tmp_path / "w")
    for night in reversed(nights):
        assert push_night(spark, reverse_config, reverse, night, ["upper", "uppervalid"])["ok"]
    for table in ("ztf.upper", "ztf.uppervalid"):
        assert history(reverse, table) == history(store, table)
    stored = {(k.decode().split("_")[0], jd) for k, r in history(store, "ztf.upper")
              for jd in json.loads(r[b"i:jd"])}
    count = sum(len(json.loads(r[b"i:jd"])) for _, r in history(store, "ztf.upper"))
    assert stored == upper and count == len(upper)


def test_rebuilding_a_history_table_for_a_night_changes_nothing(multinight, spark):
    """A packed history row holds entries of many nights: a rebuild for one night deletes
    nothing and merges that night's entries again, which are all there already."""
    from fink_ingest.push import rebuild
    from fink_ingest.tables.history import UNCHANGED

    config, store, summaries = multinight
    before = list(store.table("ztf.upper").scan())
    night = min(n for n in summaries if n.year == 2025)
    out = rebuild(spark, config, store, "upper", [night], store.directory.parent / "rebuild_upper")
    assert out[0]["ok"] and out[0]["rows_deleted"] == {"ztf.upper": 0}
    assert out[0]["rows_written"]["ztf.upper"] == 0 and out[0]["rows_skipped"]["ztf.upper"][UNCHANGED] > 0
    assert list(store.table("ztf.upper").scan()) == before
