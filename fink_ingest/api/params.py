"""Request parameters: read from the query string and a POST JSON body, checked against the
route's declared parameters (``routes.Param``).

Every parameter is named and typed by its route; a name the route does not take is refused
(a misspelt ``output_format`` is never silently ignored). Values come as text (query
string) or JSON values (body): both are accepted where they mean the same.
"""
from __future__ import annotations

import json

from flask import request

from fink_ingest.errors import QueryError

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off", "")


def read_params():
    """Parameters of the request (dict): the query string, then the JSON body of a POST.

    Raises
    ------
    QueryError
        If the body is not JSON, not a JSON object, or nested too deeply to parse.
    """
    params = request.args.to_dict()
    if request.method == "POST":
        data = request.get_data(cache=False)   # bounded by MAX_CONTENT_LENGTH (413 above it)
        if data.strip():
            try:
                body = json.loads(data)
            except (ValueError, RecursionError):
                raise QueryError("POST body: not a JSON object of parameters (invalid or too deeply nested JSON)") \
                    from None
            if not isinstance(body, dict):
                raise QueryError(f"POST body: expected a JSON object of parameters, got a JSON {type(body).__name__}")
            params.update(body)
    return params


class Args:
    """The checked parameters of one request.

    Parameters
    ----------
    params : dict
        Raw parameters (``read_params``).
    route : fink_ingest.api.routes.Route

    Raises
    ------
    QueryError
        If a parameter is unknown to the route, or a required one is missing.
    """

    def __init__(self, params, route):
        known = {p.name: p for p in route.params}
        unknown = sorted(str(k) for k in params if k not in known)
        if unknown:
            raise QueryError(f"parameter(s) {unknown} unknown to /api/v1/{route.path}; expected among {sorted(known)}")
        for p in route.params:
            if p.required and params.get(p.name) in (None, ""):
                raise QueryError(f"{p.name}: required parameter missing")
        self.params = params
        self.known = known

    def raw(self, name, default=None):
        """The value as given (text or a JSON value), or ``default``."""
        value = self.params.get(name)
        return default if value is None else value

    def text(self, name, default=None):
        """The value as text (numbers are written as text), or ``default``.

        Raises
        ------
        QueryError
            If the value is a JSON list, object or boolean.
        """
        value = self.params.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise QueryError(f"{name} = {value!r}: expected text")
        return value if isinstance(value, str) else json.dumps(value)

    def flag(self, name, default=False):
        """A boolean: JSON true/false, or text true/false, 1/0, yes/no (any case).

        Raises
        ------
        QueryError
            If the value is none of these.
        """
        value = self.params.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise QueryError(f"{name} = {value!r}: expected true or false")
