"""The routes of Fink's ``/api/v1``: each one's parameters (names, types, meaning) and the
read-layer call it makes. ``app`` serves them, ``openapi`` describes them, from this list.

A route only reads its parameters, calls one ``read.Reader`` method and says how to send
the answer; every rule about data lives in the read layer.
"""
from __future__ import annotations

import dataclasses

from flask import Response

from fink_ingest.api.formats import FORMATS, json_response, render
from fink_ingest.errors import QueryError
from fink_ingest.read.images import DEFAULT_PMAX, DEFAULT_PMIN, KERNELS, STRETCHES


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a route.

    Attributes
    ----------
    name : str
        Fink's name, e.g. ``objectId``, ``output-format``.
    kind : {'string', 'number', 'integer', 'boolean'}
        Its OpenAPI type.
    description : str
    required : bool
    enum : tuple of str
        Allowed values, if a fixed list.
    """

    name: str
    kind: str
    description: str
    required: bool = False
    enum: tuple = ()


@dataclasses.dataclass(frozen=True)
class Route:
    """One route: ``/api/v1/<path>``, its parameters and its handler ``(reader, args) ->
    Response``. With ``describe_empty``, a request without parameters answers the route's
    description (text), as Fink does."""

    path: str
    summary: str
    params: tuple
    handler: object
    describe_empty: bool = True

    def description(self):
        """Plain-text description: the summary and one line per parameter."""
        lines = [f"/api/v1/{self.path}: {self.summary}", "", "Parameters (GET query or POST JSON body):"]
        for p in self.params:
            extra = f"; one of {', '.join(p.enum)}" if p.enum else ""
            lines.append(f"  {p.name} ({p.kind}{', required' if p.required else ''}): {p.description}{extra}")
        return "\n".join(lines) + "\n"


OUTPUT = Param("output-format", "string", "json (default), csv, parquet or votable", enum=tuple(FORMATS))
COLUMNS = Param("columns", "string", "comma-separated family:qualifier columns (e.g. i:jd,i:magpsf,v:lastdate); "
                                     "default or * for every column")
CUTOUT_KIND = Param("cutout-kind", "string", "stamps added by withcutouts: Science, Template, Difference or All "
                                             "(default)", enum=("Science", "Template", "Difference", "All"))


def _table(reader, args, frame):
    return render(frame, str(args.text("output-format", "json")))


def objects(reader, args):
    frame = reader.objects(args.raw("objectId"), columns=args.raw("columns"),
                           with_upper_limits=args.flag("withupperlim"), with_cutouts=args.flag("withcutouts"),
                           cutout_kind=args.text("cutout-kind", "All"))
    return _table(reader, args, frame)


def conesearch(reader, args):
    frame = reader.conesearch(args.raw("ra"), args.raw("dec"), args.raw("radius"), start_date=args.raw("startdate"),
                              stop_date=args.raw("stopdate"), window_days=args.raw("window"),
                              n=args.raw("n", 1000), columns=args.raw("columns"))
    return _table(reader, args, frame)


def latests(reader, args):
    frame = reader.latests(args.text("class"), n=args.raw("n", 10), start_date=args.raw("startdate"),
                           stop_date=args.raw("stopdate"), columns=args.raw("columns"), trend=args.text("trend"),
                           color=args.flag("color"))
    return _table(reader, args, frame)


def sso(reader, args):
    for name, service in (("withEphem", "IMCCE's Miriade ephemerides"), ("withResiduals", "IMCCE's Miriade "
                                                                                          "ephemerides (sHG1G2 fit)")):
        if args.flag(name):
            raise QueryError(f"{name}: needs {service}, an external service this server does not call")
    if args.flag("withcutouts"):
        raise QueryError("withcutouts: stamps of Solar System alerts are served one alert at a time by "
                         "/api/v1/cutouts (objectId, candid)")
    return _table(reader, args, reader.sso(args.raw("n_or_d"), columns=args.raw("columns")))


def cutouts(reader, args):
    kind = args.text("kind", "Science")
    output = args.text("output-format", "PNG")
    output = "array" if output == "json" else output
    candid = args.raw("candid")
    out = reader.cutout(args.text("objectId"), candid=None if candid in (None, "") else candid, kind=kind,
                        output=output, stretch=args.text("stretch"), colormap=args.text("colormap"),
                        pmin=args.raw("pmin"), pmax=args.raw("pmax"), kernel=args.text("convolution_kernel"))
    if out is None:
        what = f"alert {candid} of {args.text('objectId')}" if candid not in (None, "") else args.text("objectId")
        return json_response({"status": "error", "error": f"no stamp stored for {what}"}, status=404)
    if output == "FITS":
        return Response(out, mimetype="application/fits")
    if output == "PNG":
        return Response(out, mimetype="image/png")
    arrays = out if isinstance(out, dict) else {kind: out}
    return json_response({f"b:cutout{k}_stampData": _rows(a) for k, a in arrays.items()})


def _rows(array):
    """A 2-D array as lists of rows, NaN and infinities as null (strict JSON)."""
    import numpy as np

    values = np.asarray(array, dtype=float)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    return np.where(finite, values, None).tolist()


def statistics(reader, args):
    return _table(reader, args, reader.statistics(args.text("date", ""), columns=args.raw("columns"),
                                                  schema=args.flag("schema")))


def schema(reader, args):
    return json_response(reader.schema(args.text("table", "main")))


def classes(reader, args):
    return json_response(reader.classes())


def tracklet(reader, args):
    return _table(reader, args, reader.tracklet(args.text("id"), args.text("date"), columns=args.raw("columns")))


def anomaly(reader, args):
    return _table(reader, args, reader.anomaly(n=args.raw("n", 10), start_date=args.raw("start_date"),
                                               stop_date=args.raw("stop_date"), columns=args.raw("columns")))


def resolver(reader, args):
    return _table(reader, args, reader.resolve(args.text("resolver"), args.text("name", ""),
                                               reverse=args.flag("reverse"), n=args.raw("nmax", 10)))


DATE = "UTC date (YYYY-MM-DD[ hh:mm:ss]), JD or MJD"
ROUTES = (
    Route("objects", "Every alert of object(s), newest first", (
        Param("objectId", "string", "object id, or ids comma-separated (at most 1000)", required=True),
        Param("withupperlim", "boolean", "add upper limits and bad-quality detections, tagged in d:tag "
                                         "(valid, upperlim, badquality)"),
        Param("withcutouts", "boolean", "add the stamps as 2-D arrays (b:cutout<Kind>_stampData)"),
        CUTOUT_KIND, COLUMNS, OUTPUT), objects),
    Route("conesearch", "Objects in a cone, nearest first, one row per object (its latest alert)", (
        Param("ra", "string", "right ascension: degrees, or sexagesimal (12h55m17.2s, 12:55:17.2, 12 55 17.2)",
              required=True),
        Param("dec", "string", "declination: degrees, or sexagesimal (+02d53m50s, 02:53:50)", required=True),
        Param("radius", "number", "arcseconds, 0.01 to 18000", required=True),
        Param("startdate", "string", f"{DATE}, inclusive"),
        Param("stopdate", "string", f"{DATE}, exclusive"),
        Param("window", "number", "days after startdate (instead of stopdate)"),
        Param("n", "integer", "at most n objects, the nearest (default 1000)"), COLUMNS, OUTPUT), conesearch),
    Route("latests", "Newest alerts of a class (see /api/v1/classes)", (
        Param("class", "string", "class of Fink's rule, SIMBAD label ((SIMBAD) X or X) or (TNS) type",
              required=True),
        Param("n", "integer", "at most n alerts (default 10)"),
        Param("startdate", "string", f"{DATE}, inclusive"),
        Param("stopdate", "string", f"{DATE}, exclusive"),
        Param("trend", "string", "keep rising (d:mag_rate < 0) or fading (d:mag_rate > 0) alerts among the n",
              enum=("rising", "fading")),
        Param("color", "boolean", "add v:rate, v:g-r and their errors"), COLUMNS, OUTPUT), latests),
    Route("sso", "Every alert of Solar System object(s), newest first", (
        Param("n_or_d", "string", "MPC number or designation as ZTF writes it (8467, 2009 VN118), "
                                  "comma-separated", required=True),
        Param("withEphem", "boolean", "ephemerides (IMCCE Miriade): not served here, false only"),
        Param("withResiduals", "boolean", "sHG1G2 residuals (needs Miriade): not served here, false only"),
        Param("withcutouts", "boolean", "stamps: use /api/v1/cutouts; false only"),
        CUTOUT_KIND, COLUMNS, OUTPUT), sso),
    Route("cutouts", "A stamp of an alert: PNG picture (default), FITS file or 2-D array", (
        Param("objectId", "string", "object id", required=True),
        Param("kind", "string", "Science (default), Template, Difference; All with output-format array",
              enum=("Science", "Template", "Difference", "All")),
        Param("candid", "string", "alert id (default: the object's latest alert with stamps)"),
        Param("output-format", "string", "PNG (default), FITS or array", enum=("PNG", "FITS", "array", "json")),
        Param("stretch", "string", "PNG: pixel scaling, sigmoid (default)", enum=STRETCHES),
        Param("colormap", "string", "PNG: matplotlib colormap (default: grey levels)"),
        Param("pmin", "number", f"PNG: lower percentile cut (default {DEFAULT_PMIN}; not for sigmoid)"),
        Param("pmax", "number", f"PNG: upper percentile cut (default {DEFAULT_PMAX}; not for sigmoid)"),
        Param("convolution_kernel", "string", "PNG: smoothing kernel", enum=KERNELS)), cutouts),
    Route("statistics", "Per-night statistics with Fink's column names", (
        Param("date", "string", "YYYY, YYYYMM, YYYYMMDD, or empty for every night", required=False),
        Param("schema", "boolean", "return the column names only"), COLUMNS, OUTPUT), statistics),
    Route("schema", "Columns served, by group: type and description", (
        Param("table", "string", "main (default: the alerts, as Fink) or another table of the store"),),
        schema, describe_empty=False),
    Route("classes", "Class names Fink knows: its rule's, TNS's and SIMBAD's", (), classes, describe_empty=False),
    Route("tracklet", "Alerts of a tracklet (fast mover), newest first", (
        Param("id", "string", "tracklet id TRCK_YYYYMMDD_hhmmss_NN"),
        Param("date", "string", "YYYY-MM-DD[ hh:mm:ss[ NN]]: every tracklet whose id starts with it"),
        COLUMNS, OUTPUT), tracklet),
    Route("anomaly", "Most anomalous alerts of a window (lowest d:anomaly_score first)", (
        Param("n", "integer", "at most n alerts (default 10)"),
        Param("start_date", "string", f"first day, {DATE}"),
        Param("stop_date", "string", f"last day, included, {DATE}"), COLUMNS, OUTPUT), anomaly),
    Route("resolver", "Names carried by alerts <-> objects (tns, simbad) and Solar System names (ssodnet)", (
        Param("resolver", "string", "tns, simbad or ssodnet", required=True, enum=("tns", "simbad", "ssodnet")),
        Param("name", "string", "name or start of a name (case-insensitive); an object id with reverse"),
        Param("reverse", "boolean", "object id -> its names"),
        Param("nmax", "integer", "at most nmax rows (default 10)"), OUTPUT), resolver),
)
