"""Print an object's alerts from the store: ``python -m fink_ingest.show [--store DIR] objectId``."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from fink_ingest import rowkeys
from fink_ingest.config import load_config
from fink_ingest.read import Reader
from fink_ingest.store import open_store
from fink_ingest.tables import BUILDERS

DEFAULT_COLUMNS = ["i:objectId", "i:candid", "i:jd", "i:fid", "i:magpsf", "i:sigmapsf",
                   "i:ra", "i:dec", "d:cdsxmatch", "d:roid"]


def main(argv=None):
    """Print the alerts of the given objects; exit code 1 if none is found."""
    p = argparse.ArgumentParser(prog="python -m fink_ingest.show", description=__doc__)
    p.add_argument("objectId", nargs="*", help="object ids; none: list a few stored ones")
    p.add_argument("--store", help="store URL or directory (default from the configuration)")
    p.add_argument("--conf", help="configuration file")
    p.add_argument("--columns", help="comma-separated columns, or 'all'")
    args = p.parse_args(argv)
    config = load_config(args.conf, store=args.store)
    store = open_store(config.store)
    reader = Reader(store, config)
    if not args.objectId:
        main = BUILDERS["main"]
        table = store.table(main.table_name(config.table_prefix))
        print(f"{table.count()} rows in {table.name} (a schema row included); first object ids:")
        shown = 0
        for key, _ in table.scan(limit=6, columns=[f"{config.survey.original_family}:{config.survey.leaf['object_id']}"]):
            if not rowkeys.is_schema_row(key) and shown < 5:
                print(" ", main.parse_key(key)["object"])
                shown += 1
        return 0
    columns = None if args.columns == "all" else (args.columns.split(",") if args.columns else DEFAULT_COLUMNS)
    frame = reader.objects(args.objectId, columns=columns)
    with pd.option_context("display.max_columns", 20, "display.width", 200):
        print(frame.to_string(index=False) if len(frame) else "no alert found")
    return 0 if len(frame) else 1


if __name__ == "__main__":
    sys.exit(main())
