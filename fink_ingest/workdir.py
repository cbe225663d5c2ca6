"""The work directory: where Spark stages a night and sets aside rejected rows, on any file
system Spark can write (``hdfs://``, ``s3a://``, ``file://``, a plain path), and where the
driver keeps its log and summaries.

On a cluster the executors write the staged night and the rejects; the driver must reach
them through the same file system, never through ``pathlib`` on a URI (which turns
``hdfs://host/x`` into ``hdfs:/host/x``). Every file-system call on a URI goes through Spark's
own Hadoop ``FileSystem`` (the JVM the driver already runs, with the cluster's settings), here:

- ``RunDir``: one run's two places: ``local`` (a directory of the driver: log, summaries,
  local copies of staged files) and ``shared`` (the path or URI Spark writes to);
- ``probe``: the work directory reachable and writable, or a clear error within seconds;
- ``copy_to_local``, ``delete``, ``upload``: what the driver does with what Spark wrote.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from fink_ingest.errors import InputError

PROBE_SECONDS = 20   # an unreachable work directory is reported within this time


def is_local(location):
    """True if a path or URI is on this machine's file system (no scheme, or ``file:``)."""
    return urlparse(str(location)).scheme in ("", "file")


def local_path(location):
    """The local Path of a plain path or ``file:`` URI."""
    text = str(location)
    return Path(urlparse(text).path) if text.startswith("file:") else Path(text)


def join(location, *parts):
    """``location/part/...`` for a path or a URI (str); never through ``pathlib`` on a URI."""
    return "/".join([str(location).rstrip("/")] + [str(p).strip("/") for p in parts])


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The two places of a run (or of one night of it).

    Attributes
    ----------
    local : Path
        A directory of the driver: ``push.log``, ``summary.json``, local copies of staged files.
    shared : str
        The path or URI Spark writes the staging and rejects to (``<work_dir>/runs/<run>``);
        the same directory as ``local`` when the work directory is local.
    """

    local: Path
    shared: str

    @classmethod
    def of(cls, location):
        """A RunDir from a local directory (Path or str), both places in it, or a RunDir."""
        if isinstance(location, RunDir):
            return location
        return cls(Path(location), str(location))

    @property
    def shared_is_local(self):
        """True if what Spark writes is in a directory of the driver's."""
        return is_local(self.shared)

    def child(self, name):
        """The RunDir of a part of the run (e.g. a night, ``YYYYMMDD``); local part created."""
        out = RunDir(self.local / name, join(self.shared, name))
        out.local.mkdir(parents=True, exist_ok=True)
        return out

    def spark(self, *parts):
        """Where Spark writes ``parts`` (str: a path or URI)."""
        return join(self.shared, *parts)


def run_dirs(work_dir, name):
    """The RunDir of a run named ``name`` under ``work_dir`` (a path or URI): the local part
    is ``<work_dir>/runs/<name>`` for a local work directory, else a directory of the system's
    temporary space (copied to the shared one at the end, ``upload``)."""
    shared = join(work_dir, "runs", name)
    local = local_path(shared) if is_local(work_dir) else Path(tempfile.gettempdir()) / "fink_push" / "runs" / name
    return RunDir(local, shared)


def _fs(spark, uri, quick=False):
    """Spark's Hadoop FileSystem of a URI and the Hadoop Path; ``quick``: a new instance
    that gives up connecting after one attempt (for ``probe``)."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(uri)
    if quick:
        conf = jvm.org.apache.hadoop.conf.Configuration(conf)
        for key in ("ipc.client.connect.max.retries", "ipc.client.connect.max.retries.on.timeouts",
                    "fs.s3a.attempts.maximum", "fs.s3a.retry.limit"):
            conf.set(key, "1")
        conf.set("ipc.client.connect.timeout", "5000")
        return jvm.org.apache.hadoop.fs.FileSystem.newInstance(path.toUri(), conf), path
    return path.getFileSystem(conf), path


def probe(spark, work_dir, timeout=PROBE_SECONDS):
    """Check that the work directory is reachable and writable from the driver.

    Raises
    ------
    InputError
        Within ``timeout`` seconds, naming the work directory, what failed, and the fix.
    """
    if is_local(work_dir):
        return
    probe_file = join(work_dir, "runs", ".write-check")

    def check():
        fs, path = _fs(spark, probe_file, quick=True)
        try:
            fs.mkdirs(path.getParent())
            fs.create(path, True).close()
            fs.delete(path, False)
        finally:
            fs.close()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(check).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise InputError(f"work directory {work_dir}: no answer within {timeout} s: check that its file system "
                         "is up and reachable from this machine, or give another --work-dir") from None
    except Exception as exc:  # noqa: BLE001 - a Java exception through py4j
        first = next((line.strip() for line in str(exc).splitlines() if "Exception" in line or "Error" in line),
                     str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise InputError(f"work directory {work_dir} cannot be written: {first[:300]}: check the URI, the file "
                         "system and the permissions, or give another --work-dir") from None
    finally:
        pool.shutdown(wait=False)


def copy_to_local(spark, uri, local_dir, suffix=".parquet"):
    """Copy the files of a directory Spark wrote (``uri``) into ``local_dir``.

    Returns
    -------
    list of str
        The local copies, sorted by name.
    """
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    fs, path = _fs(spark, uri)
    if not fs.exists(path):
        return []
    out = []
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if status.isFile() and name.endswith(suffix) and not name.startswith(("_", ".")):
            target = local_dir / name
            fs.copyToLocalFile(False, status.getPath(), spark._jvm.org.apache.hadoop.fs.Path(f"file://{target}"), True)
            out.append(str(target))
    return sorted(out)


def delete(spark, location):
    """Remove a directory Spark wrote (recursively), through its own file system."""
    if is_local(location):
        import shutil

        shutil.rmtree(local_path(location), ignore_errors=True)
        return
    fs, path = _fs(spark, location)
    fs.delete(path, True)


def upload(spark, local_file, uri):
    """Copy a local file (a log, a summary) to a URI of the work directory."""
    fs, path = _fs(spark, uri)
    fs.copyFromLocalFile(False, True, spark._jvm.org.apache.hadoop.fs.Path(f"file://{Path(local_file).resolve()}"),
                         path)
