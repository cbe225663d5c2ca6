"""HBase shell commands that create every table pre-split, named and compressed as a push would."""
import collections

import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR
from fink_ingest import rowkeys
from fink_ingest.config import load_config
from fink_ingest.store.hbase import HBaseStore, shell_create, shell_script, split_keys
from fink_ingest.store.hbase.shell import main
from fink_ingest.tables import BUILDERS


@pytest.fixture(scope="module")
def object_ids(datasim):
    """The object ids of the real night's 849 alerts (one per alert, as the keys are)."""
    return pq.read_table(NIGHT_DIR, columns=["objectId"])["objectId"].to_pylist()


def regions_of(keys, splits):
    """Keys per region between split keys."""
    out = collections.Counter()
    for key in keys:
        out[sum(key >= s for s in splits)] += 1
    return [out[i] for i in range(len(splits) + 1)]


def test_split_keys_follow_each_tables_key_layout(object_ids):
    survey = load_config().survey
    assert split_keys("time", survey, regions=4) == [b"04", b"08", b"0c"]      # salt buckets
    sky = split_keys("sky", survey, regions=4)
    assert sky == [f"{12 * 4 ** 29 * i // 4:019d}".encode() for i in (1, 2, 3)]  # whole order-0 pixels
    # tables keyed by object first: quantiles of a night's object ids, so its alerts spread
    distinct = len(set(object_ids))
    for kind in ("main", "cutouts", "upper", "uppervalid"):
        splits = split_keys(kind, survey, regions=4, sample=object_ids)
        assert len(splits) == 3 and splits == sorted(splits)
        per_region = regions_of([rowkeys.prefix(o) for o in set(object_ids)], splits)
        assert sum(per_region) == distinct and min(per_region) >= distinct // 4 - 1
    assert split_keys("main", survey, regions=4) == []                          # no sample: no guess
    assert split_keys("statistics", survey, regions=4, sample=object_ids) == []
    # free text is split as the keys write it: escaped
    assert split_keys("class", survey, regions=2, sample=["EB*_Candidate", "QSO", "A_B", "Z"]) == [b"QSO"]
    assert split_keys("sso", survey, regions=3, sample=["a_b", "c", "d%e", "f"]) == [b"c", b"d%25e"]


def test_shell_create_uses_the_prefix_and_each_tables_codec(object_ids):
    config = load_config()
    store = HBaseStore("thrift.example", 9090, table_prefix="fink", compression={"upper": "ZSTD", "default": "NONE"})
    lines = shell_script(store, config, regions=4, sample=object_ids)
    assert len(lines) == len(BUILDERS)
    by_name = {line.split("'")[1]: line for line in lines}
    assert sorted(by_name) == sorted(f"fink_{b.table_name('ztf')}" for b in BUILDERS.values())
    assert "COMPRESSION => 'ZSTD'" in by_name["fink_ztf.upper"]
    assert by_name["fink_ztf.time"] == ("create 'fink_ztf.time', {NAME => 'i', VERSIONS => 1, BLOOMFILTER => 'ROW', "
                                        "COMPRESSION => 'NONE'}, {NAME => 'd', VERSIONS => 1, BLOOMFILTER => 'ROW', "
                                        "COMPRESSION => 'NONE'}, SPLITS => ['04', '08', '0c']")
    main_splits = split_keys("main", config.survey, 4, object_ids)
    assert by_name["fink_ztf"].endswith(f"SPLITS => [{', '.join(repr(k.decode()) for k in main_splits)}]")
    assert "SPLITS" not in by_name["fink_ztf.statistics"]


def test_shell_strings_are_quoted_for_the_shell():
    line = shell_create("t", ["d"], [b"O'Brien\\x"], "gz")
    assert line == ("create 't', {NAME => 'd', VERSIONS => 1, BLOOMFILTER => 'ROW', COMPRESSION => 'GZ'}, "
                    "SPLITS => ['O\\'Brien\\\\x']")


def test_the_command_prints_one_create_per_table(capsys, datasim):
    assert main(["--store", "hbase://thrift.example:9090?table_prefix=fink&compression=NONE", "--regions", "4",
                 "--sample-night", "2024-01-15", "--datalake", str(datasim / "ztf" / "archive")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(BUILDERS) and all(line.startswith("create 'fink_ztf") for line in lines)
    assert sum("COMPRESSION => 'NONE'" in line for line in lines) == len(BUILDERS)
    assert sum("SPLITS" in line for line in lines) == 6   # main, cutouts, upper, uppervalid, time, sky
