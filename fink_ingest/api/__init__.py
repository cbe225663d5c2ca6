"""HTTP API speaking Fink's ``/api/v1`` (Flask; waitress in production).

- ``routes``: every route, its parameters (Fink's names) and the read-layer call it makes;
- ``app``: the Flask application, errors and the access log;
- ``params``: request parameters checked against the route's;
- ``formats``: answers as json, csv, parquet or votable;
- ``openapi``: ``/api/v1/openapi.json``, built from the routes.
"""
from fink_ingest.api.app import ACCESS_LOG, MAX_BODY_BYTES, create_app
from fink_ingest.api.formats import render
from fink_ingest.api.openapi import openapi
from fink_ingest.api.routes import ROUTES

__all__ = ["create_app", "render", "openapi", "ROUTES", "ACCESS_LOG", "MAX_BODY_BYTES"]
