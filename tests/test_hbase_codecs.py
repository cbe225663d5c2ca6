"""Each HBase table's codec: chosen in the configuration or the store URL, tried on the
server before a push reads its night. On the double (a stock HBase 1.x by default) and, with
``FINK_TEST_HBASE``, on that live server."""
import re

import pytest

from conftest import LIVE_HBASE, ROOT, hbase_server, make_config
from fink_ingest import paths
from fink_ingest.config import load_config
from fink_ingest.errors import ConfigError, StoreError
from fink_ingest.push import push_night
from fink_ingest.push.checks import open_tables
from fink_ingest.store import open_store
from fink_ingest.store.hbase import codecs
from fink_ingest.tables import BUILDERS

NIGHT = paths.parse_night("2024-01-15")


def with_options(url, options):
    return f"{url}{'&' if '?' in url else '?'}{options}"


def conf_with(tmp_path, lines):
    """The project's configuration file with lines added to its [hbase.compression]."""
    text = (ROOT / "conf" / "fink_ingest.toml").read_text().replace('default = "GZ"', "\n".join(lines))
    path = tmp_path / "c.toml"
    path.write_text(text.replace('datalake = "../../shared', f'datalake = "{ROOT.parent}/shared')
                    .replace('"../work', f'"{tmp_path}/work'))
    return path


@pytest.mark.parametrize("real_night_push", ["hbase"], indirect=True)
def test_a_default_push_creates_gz_tables_and_no_scratch_table_is_left(real_night_push):
    """Default options on a stock HBase 1.x: every table GZ, the night written."""
    config, store, summary = real_night_push
    assert summary["ok"] and summary["rows_written"]["ztf"] == 849
    assert store.tables() == sorted(b.table_name("ztf") for b in BUILDERS.values())
    for name in store.tables():
        assert {d["compression"] for d in store.descriptors(name).values()} == {b"GZ"}, name


def test_a_codec_the_server_lacks_stops_the_push_before_the_night_is_read(spark, tmp_path, hbase_url):
    """SNAPPY on a server without Hadoop's native library: refused by the probe, naming the
    codec, the tables and the setting, before the night is read (the datalake here does not
    exist: reading it would raise InputError) and before any table is created."""
    config = make_config(tmp_path / "no_lake", with_options(hbase_url, "compression=SNAPPY"), tmp_path / "w")
    store = open_store(config.store)
    main, time = (re.escape(store.full_name(n)) for n in ("ztf", "ztf.time"))
    with pytest.raises(StoreError, match=rf"cannot create tables compressed with SNAPPY \(tables '{main}', '{time}', .*"
                                         rf"codec set by the store URL's compression\): IOError: DoNotRetryIOException: "
                                         rf".*[Ss]nappy.*Nothing was created and no night was read.*GZ or NONE work on "
                                         rf"every HBase.*--store 'hbase://[^' ]*compression=GZ[^' ]*'$") as exc:
        push_night(spark, config, store, NIGHT)
    assert "\tat " not in str(exc.value)
    assert store.tables() == []


def test_a_codec_set_for_one_table_in_the_file_is_named(spark, tmp_path, hbase_url):
    """ZSTD for the upper-limit table on HBase 1.x (a name 1.x does not know): the message
    names that table, the file's key, and the per-table option that replaces it."""
    conf = conf_with(tmp_path, ['default = "GZ"', 'upper = "ZSTD"'])
    config = load_config(conf, store=hbase_url)
    assert config.hbase_compression == {"default": "GZ", "upper": "ZSTD"}
    store = open_store(config.store)
    upper = re.escape(store.full_name("ztf.upper"))
    with pytest.raises(StoreError, match=rf"compressed with ZSTD \(tables '{upper}'; codec set by \[hbase\.compression\] "
                                         rf"upper in {re.escape(str(conf))}\): IllegalArgument: IllegalArgumentException: "
                                         rf"Unsupported compression algorithm name: zstd\..*compression\.upper=GZ"):
        push_night(spark, config, store, NIGHT)
    assert store.tables() == []


@pytest.mark.skipif(LIVE_HBASE is not None, reason="needs a server with native codecs (the double's 2.x-native mode)")
def test_codecs_per_table_on_a_server_that_has_them(tmp_path):
    """HBase 2 with native codecs: the file's per-table codec, the URL's for the others."""
    config = load_config(conf_with(tmp_path, ['default = "GZ"', 'upper = "ZSTD"']))
    with hbase_server(tmp_path / "hbase", "native", codecs="2.x-native") as url:
        store = open_store(with_options(url, "compression=SNAPPY&compression.sky=LZ4"))
        tables = open_tables(store, list(BUILDERS.values()), config)
        got = {k: {d["compression"] for d in store.descriptors(t.name).values()} for k, t in tables.items()}
        assert got == {k: {b"ZSTD" if k == "upper" else b"LZ4" if k == "sky" else b"SNAPPY"} for k in BUILDERS}


def test_a_codec_is_tried_once_and_only_for_tables_to_create(tmp_path, monkeypatch):
    """Existing tables are not probed again; a store remembers the codecs it tried."""
    config = load_config()
    with hbase_server(tmp_path / "hbase", "tried_once") as url:
        store = open_store(url)
        tried = []
        real_probe = store._probe
        monkeypatch.setattr(store, "_probe", lambda codec: tried.append(codec) or real_probe(codec))
        open_tables(store, [BUILDERS["main"], BUILDERS["sky"]], config)
        open_tables(store, [BUILDERS["main"], BUILDERS["sky"], BUILDERS["class"]], config)
        assert tried == ["GZ"]
        fresh = open_store(url)
        monkeypatch.setattr(fresh, "_probe", lambda codec: tried.append(codec) or real_probe(codec))
        open_tables(fresh, [BUILDERS["main"], BUILDERS["sky"]], config)
        assert tried == ["GZ"]
        assert not [t for t in store.tables() if t.startswith(codecs.PROBE_PREFIX)]


def test_resolution_order():
    """URL per kind > file per kind > URL default > file default."""
    config = load_config()
    file_only = codecs.resolve("main", {}, config)
    assert file_only.codec == "GZ" and file_only.setting.startswith("[hbase.compression] default in ")
    assert codecs.resolve("main", {"default": "NONE"}, config).codec == "NONE"
    configured = type(config)(**{**config.__dict__, "hbase_compression": {"default": "GZ", "upper": "ZSTD"}})
    assert codecs.resolve("upper", {"default": "NONE"}, configured).codec == "ZSTD"
    assert codecs.resolve("upper", {"default": "NONE", "upper": "LZ4"}, configured) == \
        codecs.Choice("LZ4", "the store URL's compression.upper", True)


@pytest.mark.parametrize("lines, message", [
    (['default = "SNAPY"'], r"hbase\.compression\.default = 'SNAPY'; expected one of \['NONE', 'GZ'"),
    (['default = "GZ"', 'uper = "GZ"'], r"hbase\.compression\.\['uper'\] unknown; expected keys among \['anomaly', 'class'"),
])
def test_bad_codec_settings_are_refused_naming_the_key(tmp_path, lines, message):
    with pytest.raises(ConfigError, match=message):
        load_config(conf_with(tmp_path, lines))


def test_bad_codec_in_the_url_is_refused_quoted():
    with pytest.raises(ConfigError, match=r"store URL 'hbase://h:9090\?pool=2&compression=ZIP': compression='ZIP'"):
        open_store("hbase://h:9090?pool=2&compression=ZIP")
    with pytest.raises(ConfigError, match=r"options \['compresion'\] unknown"):
        open_store("hbase://h:9090?compresion=GZ")


def test_the_cli_prints_the_store_url_shell_quoted(spark, datasim, tmp_path, capsys, hbase_url):
    """The hint printed after a push pastes into a shell as it is (the URL holds '&')."""
    import shlex

    from fink_ingest.cli import main

    url = with_options(hbase_url, "batch=500&pool=2")
    code = main(lambda c: spark, ["--night", "2024-01-15", "--tables", "main", "--datalake",
                                  str(datasim / "ztf" / "archive"), "--store", url, "--work-dir", str(tmp_path / "w")])
    out = capsys.readouterr().out
    assert code == 0, out
    hint = next(line for line in out.splitlines() if line.startswith("look at an object: "))
    *_, flag, shown_url, object_id = shlex.split(hint)
    assert [flag, shown_url] == ["--store", url]
    assert object_id.startswith("ZTF") and object_id != "<objectId>"   # a real object of the night
