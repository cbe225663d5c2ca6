"""Table builders, found by name in ``BUILDERS`` (the order is the push order)."""
from fink_ingest.tables.main import MainTable

BUILDERS = {
    "main": MainTable(),
}
