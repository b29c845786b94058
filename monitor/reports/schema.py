"""The report as JSON: ``to_json`` / ``from_json`` and its JSON Schema (``JSON_SCHEMA``).

The document is the model (``monitor.reports.model``) field for field, under a ``"schema"`` key naming
the version, ``genstatus.weekly-report/v1``.  Within v1 fields are only ever added, never renamed,
removed or given another meaning; a consumer should ignore fields it does not know.

* datetimes are UTC, ISO 8601 with a ``Z`` (``"2026-11-16T23:00:00Z"``); local dates ``"2026-11-17"``;
* numbers that are not counts are rounded to 6 decimal places; a figure that cannot be computed is ``null``;
* lists keep the report's order (services and groups in config order, incidents by start).

The schema is derived from the dataclasses' annotations, so it cannot drift from the model; every
object lists all its fields as required and allows no others (consumers of v1 may relax that).
"""

from __future__ import annotations

import dataclasses
import types
from datetime import UTC, date, datetime
from typing import Any, Union, get_args, get_origin, get_type_hints

from monitor.reports.model import WeeklyReportData

SCHEMA_ID = "genstatus.weekly-report/v1"
DECIMALS = 6


def to_json(report: WeeklyReportData) -> dict[str, Any]:
    """The JSON document of a report (plain dicts, lists, str, int, float, bool, None)."""
    document = _encode(report)
    assert isinstance(document, dict)
    return {"schema": SCHEMA_ID, **document}


def from_json(document: dict[str, Any]) -> WeeklyReportData:
    """The report back from its JSON (e.g. an archived ``weekly_reports.data``); ValueError on another schema."""
    if document.get("schema") != SCHEMA_ID:
        raise ValueError(f"not a {SCHEMA_ID} document (schema: {document.get('schema')!r})")
    data = {k: v for k, v in document.items() if k != "schema"}
    report = _decode(WeeklyReportData, data)
    assert isinstance(report, WeeklyReportData)
    return report


# -- encoding -----------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return round(value, DECIMALS) + 0.0  # + 0.0: no "-0.0"
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    raise TypeError(f"cannot put {type(value).__name__} into the report JSON")


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime in a report")
    return moment.astimezone(UTC).isoformat(timespec="seconds" if not moment.microsecond else "microseconds") \
        .replace("+00:00", "Z")


# -- decoding -----------------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def _decode(annotation: Any, value: Any) -> Any:
    inner, nullable = _optional(annotation)
    if value is None:
        if not nullable:
            raise ValueError(f"null where {inner} is required")
        return None
    if dataclasses.is_dataclass(inner) and isinstance(inner, type):
        hints = _hints(inner)
        return inner(**{f.name: _decode(hints[f.name], value[f.name])
                        for f in dataclasses.fields(inner) if f.name in value})
    origin = get_origin(inner)
    if origin is list:
        (item,) = get_args(inner)
        return [_decode(item, v) for v in value]
    if origin is dict:
        _, item = get_args(inner)
        return {k: _decode(item, v) for k, v in value.items()}
    if inner is datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    if inner is date:
        return date.fromisoformat(value)
    if inner is float:
        return float(value)
    return value


# -- the JSON Schema ----------------------------------------------------------------------------


def _schema_of(annotation: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    inner, nullable = _optional(annotation)
    if dataclasses.is_dataclass(inner) and isinstance(inner, type):
        name = inner.__name__
        if name not in definitions:
            definitions[name] = {}  # reserve (no recursion in the model, but be safe)
            hints = _hints(inner)
            definitions[name] = {
                "type": "object",
                "description": " ".join((inner.__doc__ or name).split()),
                "properties": {f.name: _schema_of(hints[f.name], definitions) for f in dataclasses.fields(inner)},
                "required": [f.name for f in dataclasses.fields(inner)],
                "additionalProperties": False,
            }
        schema: dict[str, Any] = {"$ref": f"#/$defs/{name}"}
    else:
        origin = get_origin(inner)
        if origin is list:
            schema = {"type": "array", "items": _schema_of(get_args(inner)[0], definitions)}
        elif origin is dict:
            schema = {"type": "object", "additionalProperties": _schema_of(get_args(inner)[1], definitions)}
        elif inner is datetime:
            schema = {"type": "string", "format": "date-time", "pattern": r"Z$"}
        elif inner is date:
            schema = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
        elif inner is bool:
            schema = {"type": "boolean"}
        elif inner is int:
            schema = {"type": "integer"}
        elif inner is float:
            schema = {"type": "number"}
        elif inner is str:
            schema = {"type": "string"}
        else:  # pragma: no cover - a new field type must be taught here
            raise TypeError(f"no JSON Schema for {inner!r}")
    if nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``to_json``'s document."""
    definitions: dict[str, Any] = {}
    _schema_of(WeeklyReportData, definitions)
    top = dict(definitions.pop(WeeklyReportData.__name__))
    top["properties"] = {"schema": {"const": SCHEMA_ID}, **top["properties"]}
    top["required"] = ["schema", *top["required"]]
    top["properties"]["week"] = {"type": "string", "pattern": r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"}
    top["properties"]["previous_week"] = top["properties"]["week"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "genstatus weekly reliability report",
        **top,
        "$defs": definitions,
    }


JSON_SCHEMA: dict[str, Any] = json_schema()
