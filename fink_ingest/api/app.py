"""The Flask application: routes of ``routes.ROUTES`` under ``/api/v1``, one error handler,
one access-log line per request.

Errors: a bad parameter is 400 with ``{"status": "error", "error": "<what was wrong>"}``;
an unknown path 404; a method other than GET/POST 405; a body above the size limit 413; a
table of another key layout, or a store that fails, 503 naming the table. Anything else is
a defect: 500 with the same JSON shape, the traceback in the server's log, and the server
goes on. Werkzeug's interactive debugger is never served.
"""
from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from fink_ingest.api.formats import json_response
from fink_ingest.api.openapi import openapi
from fink_ingest.api.params import Args, read_params
from fink_ingest.api.routes import ROUTES
from fink_ingest.errors import FinkIngestError, QueryError, StoreError

ACCESS_LOG = "fink_ingest.api.access"
MAX_BODY_BYTES = 1 << 20      # 1 MiB: ~50,000 object ids fit; a larger body is refused (413)
log = logging.getLogger(__name__)


def create_app(reader, max_body_bytes=MAX_BODY_BYTES):
    """The Flask application over a ``read.Reader``.

    Parameters
    ----------
    reader : fink_ingest.read.Reader
    max_body_bytes : int
        Largest request body accepted; above it, 413.

    Returns
    -------
    flask.Flask
    """
    app = Flask("fink_ingest")
    app.config["MAX_CONTENT_LENGTH"] = int(max_body_bytes)
    app.config["PROPAGATE_EXCEPTIONS"] = False   # never re-raise into the server (or a debugger)
    access = logging.getLogger(ACCESS_LOG)

    @app.before_request
    def start_clock():
        g.t0 = time.perf_counter()

    @app.after_request
    def access_line(response):
        elapsed = (time.perf_counter() - g.get("t0", time.perf_counter())) * 1000
        access.info("%s %s %d %.1f ms", request.method, request.path, response.status_code, elapsed)
        return response

    def error(message, status):
        return json_response({"status": "error", "error": message}, status=status)

    @app.errorhandler(FinkIngestError)
    def fink_error(exc):
        if isinstance(exc, (QueryError, ValueError)):
            return error(str(exc), 400)
        if isinstance(exc, StoreError):
            return error(str(exc), 503)
        log.error("defect on %s: %s", request.path, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return error(str(exc), 500)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return error(f"{exc.name}: {exc.description}", exc.code or 500)

    @app.errorhandler(Exception)
    def defect(exc):
        log.error("defect on %s %s: %s: %s", request.method, request.path, type(exc).__name__, exc,
                  exc_info=log.isEnabledFor(logging.DEBUG))
        return error(f"internal error ({type(exc).__name__}); the server's log has the details", 500)

    for route in ROUTES:
        app.add_url_rule(f"/api/v1/{route.path}", endpoint=route.path, view_func=_view(reader, route),
                         methods=["GET", "POST"])

    @app.route("/api/v1/openapi.json")
    def openapi_json():
        return json_response(openapi())

    return app


def _view(reader, route):
    def view():
        params = read_params()
        if not params and route.describe_empty:
            return Response(route.description(), mimetype="text/plain")
        return route.handler(reader, Args(params, route))
    return view
