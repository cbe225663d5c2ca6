"""Where a group of nights is staged, and the checks that the driver sees what the executors
staged or set aside (on a cluster, a work directory the nodes do not share would scatter it
over the executors' disks: a silent empty night)."""
from __future__ import annotations

import dataclasses
import logging
import shutil

import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_ingest import datalake, workdir
from fink_ingest.errors import InputError
from fink_ingest.push.stage import NIGHT

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Staging:
    """Where a group is staged: ``<run>/staging/<group>/alerts/__night=<YYYYMMDD>``
    (a local copy under the run's local directory when the work directory is not local)."""

    run: workdir.RunDir
    group: str

    @property
    def shared(self):
        return self.run.shared

    @property
    def shared_is_local(self):
        return self.run.shared_is_local

    def spark(self, name):
        return self.run.spark("staging", self.group, name)

    def local(self, name):
        return self.run.local / "staging-copy" / self.group / name

    def remove(self, spark):
        """Remove the group's staging (and the run's staging directory once empty)."""
        shutil.rmtree(self.run.local / "staging-copy" / self.group, ignore_errors=True)
        try:
            workdir.delete(spark, self.run.spark("staging", self.group))
        except Exception as exc:  # noqa: BLE001 - a cleanup failure must not hide the night's outcome
            log.warning("staging %s not removed: %s", self.run.spark("staging", self.group), datalake.first_line(exc))
        for empty in ([workdir.local_path(self.run.spark("staging"))] if self.shared_is_local else []) + \
                [self.run.local / "staging-copy"]:
            try:
                empty.rmdir()
            except OSError:
                pass


def set_aside(spark, rows, location, expected, what, run):
    """Write rows set aside (with their reason) where the night keeps them, and check the
    driver sees them all there (on a cluster, a work directory the nodes do not share would
    scatter them over the executors' disks). Returns the location."""
    rows.write.mode("overwrite").parquet(location)
    seen = spark.read.parquet(location).count()
    if seen != expected:
        raise InputError(not_shared(run, f"{expected} rejected {what}", seen))
    log.warning("%d %s set aside with a reason in %s", expected, what, location)
    return location


def not_shared(run, what, seen):
    return (f"the executors wrote {what} under the work directory ({run.shared}) but the driver sees {seen}: "
            "on a cluster the work directory must be one every node shares (hdfs://..., s3a://..., or a mount "
            "common to all nodes): give --work-dir such a URI; nothing was written for this night")


def staged_files(spark, run, name, members, expected_total, expected=None):
    """Local files of what Spark staged as ``name`` for each night (copied from the work
    directory's file system when it is not local), checked to hold what the executors wrote
    before anything is written: a silent empty night is impossible.

    Returns
    -------
    dict of str to list of str
        Night tag -> its staged files.

    Raises
    ------
    InputError
        If the driver sees other rows than the executors wrote; nothing is written.
    """
    location = run.spark(name)
    files, seen = {}, 0
    for m in members:
        part = workdir.join(location, f"{NIGHT}={m.tag}")
        if run.shared_is_local:
            found = sorted(str(p) for p in workdir.local_path(part).glob("*.parquet"))
        else:
            found = workdir.copy_to_local(spark, part, run.local(name) / m.tag)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in found)
        if expected is not None and rows != expected[m.tag]:
            raise InputError(f"night {m.night:%Y-%m-%d}: "
                             + not_shared(run, f"{expected[m.tag]} staged rows ({name})", rows))
        files[m.tag] = found
        seen += rows
    if seen != expected_total:
        where = ", ".join(f"{m.night:%Y-%m-%d}" for m in members)
        raise InputError(f"night {where}: " + not_shared(run, f"{expected_total} staged rows ({name})", seen))
    return files


def staged_totals(files, columns):
    """Sums of integer columns of staged files (dict of name to int; 0 for a column absent):
    only those column chunks are read."""
    totals = dict.fromkeys(columns, 0)
    for path in files:
        present = [c for c in columns if c in pq.ParquetFile(path).schema_arrow.names]
        if present:
            table = pq.read_table(path, columns=present)
            for c in present:
                totals[c] += int(pc.sum(table[c]).as_py() or 0)
    return totals
