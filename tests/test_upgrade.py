"""A store written by the code before the key-layout change (layout ``fink_ingest_v1``, keys
``objectId_jd``) is refused by readers and pushes with the upgrade command, and
``fink_push --upgrade`` brings it to the same tables as a fresh push, lost alerts included.

The old store is written by the old code itself: the commit is taken from this repository's
history (``git archive``) and its ``jobs/fink_push.py`` run in a subprocess, over the real
night 2024-01-15 and the real SSO night with the twin of an alert (see ``test_keys``),
which the old layout loses.
"""
import shutil
import subprocess
import sys
import tarfile
import io

import pytest

from conftest import NIGHT_DIR, ROOT, make_config
from fink_ingest.errors import LayoutError
from fink_ingest.read import Reader
from fink_ingest.store import open_store
from test_keys import add_exposure_twin

V1_COMMIT = "fcbe09bb7d602a8039bfd9163d54bdd4f5f5f498"   # main before the key-layout change
NIGHTS = ("2022-08-04", "2024-01-15")


def old_code(target):
    """The v1 code extracted from git history into ``target``, or a skip with the reason."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", V1_COMMIT],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"commit {V1_COMMIT[:8]} (layout v1) not in this checkout's git history: {exc}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def snapshot(store):
    return {name: list(store.table(name).scan()) for name in store.tables()}


@pytest.fixture(scope="module")
def stores(spark, datasim, tmp_path_factory):
    """(config of the v1 store, config of a fresh v2 push): the same two real nights."""
    from datasim.layout import layout_datalake
    from fink_ingest.cli import main

    base = tmp_path_factory.mktemp("upgrade")
    code = old_code(base / "v1")
    lake = base / "lake"
    layout_datalake([datasim / "ztf" / "alerts" / "sso_2022-08-04_11alerts.parquet"], lake)
    add_exposure_twin(next((lake / "science").glob("year=2022/month=*/day=*")))
    shutil.copytree(NIGHT_DIR, lake / "science" / "year=2024" / "month=01" / "day=15")
    old = subprocess.run([sys.executable, str(code / "jobs" / "fink_push.py"), "--from", NIGHTS[0], "--to", NIGHTS[1],
                          "--datalake", str(lake), "--store", str(base / "v1store"), "--work-dir", str(base / "w1")],
                         capture_output=True, text=True, cwd=code)
    assert old.returncode == 1, old.stderr[-3000:]          # v1 loses the twin: its night is INCOMPLETE
    assert "ztf: 11 rows written" in old.stdout
    fresh = make_config(lake, base / "fresh", base / "w2")
    assert main(lambda c: spark, ["--from", NIGHTS[0], "--to", NIGHTS[1], "--datalake", str(lake),
                                  "--store", fresh.store, "--work-dir", str(base / "w2")]) == 0
    return make_config(lake, base / "v1store", base / "w3"), fresh


def test_reader_refuses_a_v1_store_naming_the_upgrade(stores):
    v1, _ = stores
    reader = Reader(open_store(v1.store), v1)
    with pytest.raises(LayoutError, match=r"table ztf: written with row-key schema version 'fink_ingest_v1'.*"
                                          r"bin/fink_push --upgrade"):
        reader.objects("ZTF17aaaaitn")
    with pytest.raises(LayoutError, match=r"table ztf.class: .*--rebuild class --all-nights"):
        reader.latests("QSO")


def test_api_answers_503_naming_the_upgrade(stores):
    from fink_ingest.api import create_app

    v1, _ = stores
    client = create_app(Reader(open_store(v1.store), v1)).test_client()
    r = client.get("/api/v1/latests?class=QSO")
    assert r.status_code == 503 and "--upgrade" in r.get_json()["error"]


def test_push_refuses_a_v1_store_before_spark_starts(stores, capsys):
    from fink_ingest.cli import main

    v1, _ = stores

    def no_spark(config):
        raise AssertionError("Spark started although the store must be refused first")

    code = main(no_spark, ["--night", NIGHTS[1], "--datalake", v1.datalake, "--store", v1.store,
                           "--work-dir", v1.work_dir])
    err = capsys.readouterr().err
    assert code == 1 and "9 tables written with an older row-key layout" in err and "ztf.class" in err
    errors = [line for line in err.splitlines() if line.startswith("fink_push: error:")]
    assert len(errors) == 1 and "bin/fink_push --upgrade" in errors[0]
    assert main(no_spark, ["--rebuild", "sky", "--night", NIGHTS[1], "--datalake", v1.datalake,
                           "--store", v1.store, "--work-dir", v1.work_dir]) == 1
    assert "table ztf.sky:" in capsys.readouterr().err


def test_upgrade_refuses_when_a_night_of_the_store_left_the_datalake(stores, spark, tmp_path):
    from fink_ingest.cli import main

    v1, _ = stores
    partial = tmp_path / "lake"
    shutil.copytree(v1.datalake, partial)
    shutil.rmtree(partial / "science" / "year=2024")
    before = snapshot(open_store(v1.store))
    assert main(lambda c: spark, ["--upgrade", "--datalake", str(partial), "--store", v1.store,
                                  "--work-dir", str(tmp_path / "w")]) == 1
    assert snapshot(open_store(v1.store)) == before      # nothing dropped


def test_upgrade_gives_the_tables_of_a_fresh_push(stores, spark, capsys):
    from fink_ingest.cli import main

    v1, fresh = stores
    store = open_store(v1.store)
    assert store.table("ztf").count() == 11 + 849 + 1    # the twin lost, a v1 schema row
    assert main(lambda c: spark, ["--upgrade", "--datalake", v1.datalake, "--store", v1.store,
                                  "--work-dir", v1.work_dir]) == 0
    out = capsys.readouterr().out
    # every table of the v1 store, and those added since (tracklet, anomaly, resolver)
    assert ("upgrade: main, time, sky, class, sso, tracklet, anomaly, resolver, cutouts, statistics, upper, "
            "uppervalid") in out
    assert snapshot(open_store(v1.store)) == snapshot(open_store(fresh.store))
    assert Reader(open_store(v1.store), v1).objects("ZTF17aaaaitn")["i:candid"].tolist() == [2570218142115015056]
    # a second upgrade has nothing to do
    assert main(lambda c: spark, ["--upgrade", "--datalake", v1.datalake, "--store", v1.store,
                                  "--work-dir", v1.work_dir]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_an_upgrade_cut_short_is_refused_then_completed_by_the_same_command(stores, spark, tmp_path):
    """Tables being rebuilt whole are marked until the rebuild ends: a push or a reader meets
    the mark (an upgrade killed half-way is never taken as complete), and ``--upgrade`` run
    again rebuilds them."""
    from fink_ingest.cli import main
    from fink_ingest.push.rebuild import _recreate

    _, fresh = stores
    shutil.copytree(fresh.store, tmp_path / "store")
    config = make_config(fresh.datalake, tmp_path / "store", tmp_path / "w")
    before = snapshot(open_store(fresh.store))
    _recreate(open_store(config.store), config, ["sky", "upper"], "bin/fink_push --upgrade")  # then killed
    with pytest.raises(LayoutError, match=r"table ztf.sky: being rebuilt whole.*`bin/fink_push --upgrade`"):
        Reader(open_store(config.store), config).conesearch(97.2307, 3.9413, 5)
    assert main(lambda c: spark, ["--night", NIGHTS[1], "--datalake", config.datalake, "--store", config.store,
                                  "--work-dir", config.work_dir]) == 1
    assert main(lambda c: spark, ["--upgrade", "--datalake", config.datalake, "--store", config.store,
                                  "--work-dir", config.work_dir]) == 0
    assert snapshot(open_store(config.store)) == before
