import pytest

from fink_ingest.config import load_config
from fink_ingest.errors import ConfigError


def test_defaults_and_overrides(tmp_path):
    config = load_config(None, store=str(tmp_path / "s"), table_prefix="ztf_test", put_rows=10,
                         spark_options=["spark.driver.memory=4g"])
    assert config.store == str(tmp_path / "s") and config.table_prefix == "ztf_test"
    assert config.put_rows == 10 and config.spark_overrides["spark.driver.memory"] == "4g"
    assert config.spark_options["spark.driver.memory"] == "2g"  # the file's, which the command line overrides
    assert config.spark_options["spark.sql.session.timeZone"] == "UTC"
    assert config.survey.object_id == "objectId" and config.survey.time == "candidate.jd"
    assert config.datalake.endswith("shared/datasim/ztf/archive")


def test_unknown_key_names_the_file_and_key(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('datalake = "x"\nstroe = "y"\n')
    with pytest.raises(ConfigError, match=r"c.toml: \['stroe'\] unknown"):
        load_config(conf)


@pytest.mark.parametrize("override, message", [
    ({"put_rows": 0}, "batch.put_rows = 0"),
    ({"survey": "lsst"}, "survey 'lsst'"),
    ({"spark_options": ["novalue"]}, "expected KEY=VALUE"),
])
def test_bad_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, **override)
