"""The one exception hierarchy of fink-ingest.

Each subclass also inherits the built-in exception a caller would expect, as astropy
does, so ``except ValueError`` still catches a bad argument.
"""


class FinkIngestError(Exception):
    """Base class of every error raised by fink-ingest."""


class ConfigError(FinkIngestError, ValueError):
    """A configuration file or command-line option is wrong; the message names the key."""


class SchemaError(FinkIngestError, ValueError):
    """Data does not match the schema a table or survey expects."""


class InputError(FinkIngestError, OSError):
    """Input data (a datalake night, an alert file) is missing or unreadable."""


class QueryError(FinkIngestError, ValueError):
    """A read-layer query has a bad argument; the message names the argument."""


class StoreError(FinkIngestError):
    """The store refused or failed an operation; the message names the table."""


class LayoutError(StoreError):
    """A table was written with another row-key layout; the message names the table and the
    command that upgrades the store."""
