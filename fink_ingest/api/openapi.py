"""OpenAPI 3 description of the routes (``/api/v1/openapi.json``), built from ``routes.ROUTES``."""
from __future__ import annotations

from fink_ingest.api.routes import ROUTES

RESPONSES = {"200": {"description": "the answer (a table in output-format, a picture, or a JSON object)"},
             "400": {"description": "a bad parameter, named in 'error'"},
             "404": {"description": "no stamp stored (cutouts)"},
             "413": {"description": "request body above the size limit"},
             "503": {"description": "a table must be upgraded, or the store failed"}}


def _schema(p):
    schema = {"type": p.kind}
    if p.enum:
        schema["enum"] = list(p.enum)
    return schema


def openapi():
    """The OpenAPI document (dict): one path per route, GET with query parameters and POST
    with the same parameters as a JSON object."""
    paths = {}
    for route in ROUTES:
        body = {"type": "object", "properties": {p.name: {**_schema(p), "description": p.description}
                                                 for p in route.params},
                "required": [p.name for p in route.params if p.required], "additionalProperties": False}
        if not body["required"]:
            del body["required"]
        paths[f"/api/v1/{route.path}"] = {
            "get": {"summary": route.summary, "responses": RESPONSES, "parameters": [
                {"name": p.name, "in": "query", "required": p.required, "description": p.description,
                 "schema": _schema(p)} for p in route.params]},
            "post": {"summary": route.summary, "responses": RESPONSES,
                     "requestBody": {"content": {"application/json": {"schema": body}}}},
        }
    return {"openapi": "3.0.3", "info": {"title": "fink-ingest API (Fink /api/v1)", "version": "1"}, "paths": paths}
