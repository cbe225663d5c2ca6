"""HTTP API speaking Fink's ``/api/v1``: parse parameters, call ``read.Reader``, format.

Routes and parameter names follow Fink's public API, so its scripts and clients can point
here: ``/api/v1/objects`` (objectId, withupperlim, columns), ``/api/v1/conesearch`` (ra, dec,
radius [arcsec], startdate, stopdate, n), ``/api/v1/latests`` (class, n, startdate,
stopdate), ``/api/v1/sso`` (n_or_d), ``/api/v1/cutouts`` (objectId, candid, kind),
``/api/v1/statistics`` (date), ``/api/v1/schema`` (table), each as a GET query or a POST JSON
body, with ``output-format`` = json (default), csv, parquet or votable. ``/api/v1/openapi.json``
describes them. A bad parameter gives 400 with a message naming it (one error handler).

64-bit integers (``candid``) are written as exact JSON integers, never through a float.
"""
from __future__ import annotations

import io
import json

import numpy as np
from flask import Flask, Response, jsonify, request

from fink_ingest.errors import FinkIngestError, LayoutError, QueryError

FORMATS = {"json": "application/json", "csv": "text/csv", "parquet": "application/octet-stream",
           "votable": "application/x-votable+xml"}
TRUE = {"true", "1", "yes", "on"}


def _params():
    """Parameters of the request: POST JSON body, else the GET query (str values)."""
    if request.method == "POST" and request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise QueryError("POST body: expected a JSON object of parameters")
        return {k: v for k, v in body.items()}
    return request.args.to_dict()


def _need(params, name):
    if params.get(name) in (None, ""):
        raise QueryError(f"{name}: required parameter missing")
    return params[name]


def _columns(params):
    value = params.get("columns")
    if value in (None, ""):
        return None
    return value if isinstance(value, list) else [c.strip() for c in str(value).split(",") if c.strip()]


def _plain(value):
    """A cell value as strict JSON wants it: numpy scalars unwrapped, NaN and infinities as
    null, also inside nested values (Fink's light-curve features hold NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render(frame, output_format):
    """A DataFrame in the requested format (flask Response).

    Raises
    ------
    QueryError
        If the format is unknown.
    """
    if output_format not in FORMATS:
        raise QueryError(f"output-format {output_format!r}: expected one of {sorted(FORMATS)}")
    if output_format == "json":
        records = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
        return Response(json.dumps(records, allow_nan=False), mimetype=FORMATS["json"])
    flat = frame.copy()
    for name in flat.columns:  # nested values (dicts, lists) as JSON text outside JSON output
        if flat[name].map(lambda v: isinstance(v, (dict, list))).any():
            flat[name] = flat[name].map(lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v)
    if output_format == "csv":
        return Response(flat.to_csv(index=False), mimetype=FORMATS["csv"])
    buf = io.BytesIO()
    if output_format == "parquet":
        flat.to_parquet(buf, index=False)
    else:
        from astropy.table import Table

        Table.from_pandas(flat.astype({c: str for c in flat.columns if flat[c].dtype == object})) \
            .write(buf, format="votable")
    return Response(buf.getvalue(), mimetype=FORMATS[output_format])


def create_app(reader):
    """The Flask application over a ``read.Reader``.

    Parameters
    ----------
    reader : fink_ingest.read.Reader

    Returns
    -------
    flask.Flask
    """
    app = Flask("fink_ingest")

    @app.errorhandler(FinkIngestError)
    def bad_request(exc):
        # a bad parameter: 400; a table that must be upgraded first: 503 (service unavailable)
        status = 400 if isinstance(exc, (QueryError, ValueError)) else 503 if isinstance(exc, LayoutError) else 500
        return jsonify({"status": "error", "error": str(exc)}), status

    def route(path, **kw):
        return app.route(f"/api/v1/{path}", methods=["GET", "POST"], **kw)

    def fmt(params):
        return str(params.get("output-format", "json"))

    @route("objects")
    def objects():
        p = _params()
        frame = reader.objects(str(_need(p, "objectId")), columns=_columns(p),
                               with_upper_limits=str(p.get("withupperlim", "false")).lower() in TRUE)
        return render(frame, fmt(p))

    @route("conesearch")
    def conesearch():
        p = _params()
        frame = reader.conesearch(_need(p, "ra"), _need(p, "dec"), _need(p, "radius"),
                                  start_date=p.get("startdate") or None, stop_date=p.get("stopdate") or None,
                                  n=p.get("n", 1000), columns=_columns(p))
        return render(frame, fmt(p))

    @route("latests")
    def latests():
        p = _params()
        frame = reader.latests(str(_need(p, "class")), n=p.get("n", 10), start_date=p.get("startdate") or None,
                               stop_date=p.get("stopdate") or None, columns=_columns(p))
        return render(frame, fmt(p))

    @route("sso")
    def sso():
        p = _params()
        return render(reader.sso(_need(p, "n_or_d"), columns=_columns(p)), fmt(p))

    @route("cutouts")
    def cutouts():
        p = _params()
        kind = str(p.get("kind", "Science"))
        output = fmt(p) if fmt(p) != "json" else "array"
        if output not in ("array", "FITS"):
            raise QueryError(f"output-format {output!r}: expected 'array' (json) or 'FITS' for cutouts")
        if kind == "All" and output == "FITS":
            raise QueryError("kind 'All' goes with output-format json (arrays)")
        candid = p.get("candid")
        if candid not in (None, ""):
            try:
                candid = int(candid)
            except (TypeError, ValueError):
                raise QueryError(f"candid = {candid!r}: expected an integer") from None
        out = reader.cutout(str(_need(p, "objectId")), candid=candid or None, kind=kind, output=output)
        if out is None:
            return jsonify([])
        if output == "FITS":
            return Response(out, mimetype="application/fits")
        arrays = out if isinstance(out, dict) else {kind: out}
        body = [{f"b:cutout{k}_stampData": np.where(np.isfinite(a), a, None).tolist()} for k, a in arrays.items()]
        return Response(json.dumps(body), mimetype=FORMATS["json"])

    @route("statistics")
    def statistics():
        p = _params()
        return render(reader.statistics(str(p.get("date", "")), columns=_columns(p)), fmt(p))

    @route("schema")
    def schema():
        p = _params()
        return render(reader.schema(str(p.get("table", "main"))), fmt(p))

    @app.route("/api/v1/openapi.json")
    def openapi():
        return jsonify(OPENAPI)

    return app


def _op(summary, params, required=()):
    return {"get": {"summary": summary, "parameters": [
        {"name": n, "in": "query", "required": n in required, "description": d, "schema": {"type": t}}
        for n, t, d in params + [("output-format", "string", "json (default), csv, parquet or votable")]],
        "responses": {"200": {"description": "rows"}, "400": {"description": "bad parameter, named in 'error'"}}}}


OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "fink-ingest API (Fink /api/v1 compatible)", "version": "1"},
    "paths": {
        "/api/v1/objects": _op("Every alert of object(s), sorted by jd", [
            ("objectId", "string", "object id(s), comma-separated"),
            ("withupperlim", "boolean", "add upper limits and bad-quality detections, tagged in d:tag"),
            ("columns", "string", "comma-separated family:qualifier columns")], ("objectId",)),
        "/api/v1/conesearch": _op("Objects in a cone, nearest first, one row per object", [
            ("ra", "number", "degrees"), ("dec", "number", "degrees"), ("radius", "number", "arcseconds, <= 36000"),
            ("startdate", "string", "UTC date or JD, inclusive"), ("stopdate", "string", "UTC date or JD, exclusive"),
            ("n", "integer", "at most n objects (default 1000)"), ("columns", "string", "summary columns")],
            ("ra", "dec", "radius")),
        "/api/v1/latests": _op("Newest alerts of a class", [
            ("class", "string", "class of Fink's rule or SIMBAD label"), ("n", "integer", "default 10"),
            ("startdate", "string", "UTC date or JD"), ("stopdate", "string", "UTC date or JD"),
            ("columns", "string", "summary columns")], ("class",)),
        "/api/v1/sso": _op("Every alert of Solar System object(s)", [
            ("n_or_d", "string", "MPC number or designation, comma-separated"),
            ("columns", "string", "main-table columns")], ("n_or_d",)),
        "/api/v1/cutouts": _op("A stamp of an alert", [
            ("objectId", "string", "object id"), ("candid", "integer", "alert id (default: latest)"),
            ("kind", "string", "Science, Template, Difference or All")], ("objectId",)),
        "/api/v1/statistics": _op("Per-night statistics", [("date", "string", "prefix of YYYYMMDD")]),
        "/api/v1/schema": _op("Columns of a table and their types", [("table", "string", "main, sky, ...")]),
    },
}
