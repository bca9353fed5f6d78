"""JSON values as CEL sees a CRD schema's types.

CEL types ``self`` by the schema; JSON carries less: ``1`` and ``1.0`` are one value, timestamps,
durations and bytes are strings. :func:`as_declared` gives a value the types Kubernetes' CEL
gives it: doubles for ``number`` nodes, protobuf Timestamps for strings of format ``date-time``
and ``date``, Durations for ``duration``, bytes for ``byte`` (what cel-expr-python takes for CEL's
timestamp, duration and bytes). :func:`has_typed` says whether a schema needs it at all, so that
most rules skip the walk.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from kybernetes.api.timeutil import parse_duration, parse_rfc3339

_TYPED_FORMATS = ("date-time", "date", "duration", "byte")


def has_typed(schema: Any) -> bool:
    """Whether a ``number`` node or a string with a typed format is at or below ``schema``."""
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "number" or (schema.get("type") == "string" and schema.get("format") in _TYPED_FORMATS):
        return True
    props = schema.get("properties")
    subs = list(props.values()) if isinstance(props, dict) else []
    return any(has_typed(x) for x in [*subs, schema.get("items"), schema.get("additionalProperties")])


def as_declared(value: Any, schema: Any) -> Any:
    """``value`` as CEL sees the schema's types: the integers of ``number`` nodes as doubles (JSON
    does not tell 1 from 1.0; ``self.ratio * 2.0`` must work for ``ratio: 1``), strings of format
    date-time and date as timestamps, duration as durations, byte as bytes."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value) if schema.get("type") == "number" else value
    if isinstance(value, str):
        fmt = schema.get("format")
        return _typed_string(value, fmt) if isinstance(fmt, str) and fmt in _TYPED_FORMATS else value
    if isinstance(value, dict):
        props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        extra = schema.get("additionalProperties")
        return {k: as_declared(x, props.get(k, extra)) for k, x in value.items()}
    if isinstance(value, list):
        return [as_declared(x, schema.get("items")) for x in value]
    return value


def _typed_string(value: str, fmt: str) -> Any:
    """The string as a protobuf Timestamp or Duration (what cel-expr-python takes for CEL's
    timestamp and duration) or bytes; unchanged if it does not parse."""
    try:
        if fmt in ("date-time", "date"):
            t = parse_rfc3339(value if fmt == "date-time" else value + "T00:00:00Z")
            if t is None:
                return value
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(t)
            return ts
        if fmt == "duration":
            seconds = parse_duration(value)
            return duration_pb2.Duration(seconds=int(seconds), nanos=round((seconds - int(seconds)) * 1e9))
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return value


__all__ = ["as_declared", "has_typed"]
