"""Decoding Kubernetes protobuf request bodies into the objects' JSON form.

kubectl's typed clients (``kubectl create configmap|deployment|...``, ``kubectl drain``'s
Eviction, ``kubectl create token``) send bodies as ``application/vnd.kubernetes.protobuf``.
The server works on JSON-shaped dicts, so this module turns such a body into exactly the dict
the same object would have been as JSON; responses stay JSON, which client-go accepts.

Wire format. A body is the magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message:
1 ``typeMeta`` {1 apiVersion, 2 kind}, 2 ``raw`` (the object's own message), 3 contentEncoding,
4 contentType. The object's message is plain proto2 as produced by go-to-protobuf.

Design. There is no generated code and no protobuf dependency: a hand-written wire reader
(:func:`_scan`) splits a message into (field number, wire type, value) triples, and a table
(:mod:`kybernetes.apiserver.transport.protobuf_types`, compiled once into :class:`Field` records) says
what each field number means: its JSON name, its type, whether it repeats, is a map, or is a Go
struct inlined into its parent. Field numbers unknown to the table are skipped, as protobuf
readers do; kinds unknown to it are refused with 415 so the client can fall back to JSON.

Zero values. go-to-protobuf writes every non-pointer scalar, even zero, while Go's JSON encoder
omits zero ``omitempty`` fields. So a decoded zero scalar is dropped unless the table marks the
field as one whose zero matters (a pointer such as ``replicas``, or a field without omitempty
such as a PriorityClass ``value``). Messages are kept even when empty, as in JSON (``"status":
{}``), except an empty ``Time``, which is Go's zero time (``null`` in JSON) and is dropped.

The apimachinery value types get their JSON spellings: ``Time`` RFC 3339 seconds, ``MicroTime``
with six fractional digits, ``Duration`` Go's ``1h2m3s``, ``Quantity`` its string,
``IntOrString`` an int or a string, ``bytes`` base64, ``FieldsV1``/``RawExtension`` the JSON
they carry.

An encoder (:func:`encode_k8s_protobuf`) mirrors the decoder; the server does not need it, but
tests use it for round trips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from kybernetes import errors
from kybernetes.api import gobytes
from kybernetes.api.timeutil import format_duration
from kybernetes.apiserver.transport.protobuf_types import GROUP_VERSIONS, PACKAGES

PROTOBUF_MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# Value types the decoder converts itself rather than through the table.
_SPECIAL = frozenset({"Time", "MicroTime", "Duration", "Quantity", "IntOrString", "FieldsV1", "RawExtension"})
_SCALARS = frozenset({"s", "i", "b", "y"})
# Kinds from meta/v1 that clients send under any group's apiVersion (client-go encodes
# DeleteOptions with the group version of the typed client that sends it).
_META_OPTION_KINDS = frozenset({"DeleteOptions", "CreateOptions", "PatchOptions"})

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_GO_ZERO_TIME_SECONDS = -62135596800  # time.Time{}.Unix(): Go's zero time, null in JSON


def is_protobuf(content_type: str) -> bool:
    """Whether a Content-Type header names Kubernetes protobuf (parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() == PROTOBUF_MEDIA_TYPE


# ---------------------------------------------------------------------------------------------
# The table, compiled


@dataclass(frozen=True)
class Field:
    number: int
    name: str
    type: str
    """``s``/``i``/``b``/``y``, a special type name, or a qualified ``package.Message``."""
    repeated: bool = False
    map: bool = False
    inline: bool = False
    keep_zero: bool = False


@dataclass(frozen=True)
class Message:
    name: str
    fields: tuple[Field, ...]
    by_number: dict[int, Field]
    list_wrapper: bool = False
    """A ``+protobuf.nullable`` wrapper (ExtraValue): field 1 is the JSON list itself."""


def _parse_tables() -> dict[str, dict[str, str]]:
    """Package -> message name -> its raw field spec (aliases and ``+`` extensions applied)."""
    raw: dict[str, dict[str, str]] = {}
    for pkg, text in PACKAGES.items():
        msgs: dict[str, str] = {}
        for line in text.strip().splitlines():
            name, _, spec = line.partition(":")
            name, spec = name.strip(), spec.strip()
            if name.endswith("+"):
                msgs[name[:-1]] += " " + spec
            else:
                msgs[name] = spec
        raw[pkg] = msgs
    for msgs in raw.values():
        for name, spec in list(msgs.items()):
            if spec.startswith("=") and spec != "=list":
                msgs[name] = msgs[spec[1:]]
    return raw


_RAW = _parse_tables()


def _resolve(pkg: str, type_name: str) -> str:
    """Qualify a message type name: same package, then core, then meta."""
    if type_name in _SCALARS or type_name in _SPECIAL:
        return type_name
    for candidate in (pkg, "core", "meta"):
        if type_name in _RAW.get(candidate, {}):
            return f"{candidate}.{type_name}"
    raise KeyError(f"protobuf table: unknown message {type_name!r} referenced from package {pkg!r}")


def _parse_field(pkg: str, token: str) -> Field:
    number, _, rest = token.partition(":")
    name, _, type_spec = rest.partition(":")
    keep_zero = type_spec.endswith("!")
    type_spec = type_spec.rstrip("!") or "s"
    repeated = is_map = inline = False
    if name.startswith("^"):  # "1:^LocalObjectReference": inlined, takes its name from the type
        inline, type_spec, name = True, name[1:], ""
    elif type_spec.startswith("*"):
        repeated, type_spec = True, type_spec[1:]
    elif type_spec.startswith("{"):
        is_map, type_spec = True, type_spec[1:-1]
    return Field(int(number), name, _resolve(pkg, type_spec), repeated, is_map, inline, keep_zero)


@cache
def message(qualified: str) -> Message:
    """The compiled description of ``package.Message``."""
    pkg, _, name = qualified.partition(".")
    spec = _RAW[pkg][name]
    if spec == "=list":
        item = Field(1, "items", "s", repeated=True)
        return Message(qualified, (item,), {1: item}, list_wrapper=True)
    fields = tuple(_parse_field(pkg, tok) for tok in spec.split())
    return Message(qualified, fields, {f.number: f for f in fields})


def lookup_kind(api_version: str, kind: str) -> str | None:
    """The qualified message for an envelope's apiVersion and kind, None if not in the table."""
    pkg = GROUP_VERSIONS.get(api_version)
    if pkg is not None and kind in _RAW[pkg]:
        return f"{pkg}.{kind}"
    if kind in _META_OPTION_KINDS:
        return f"meta.{kind}"
    return None


# ---------------------------------------------------------------------------------------------
# Wire reading


def _bad(message_: str) -> errors.BadRequest:
    return errors.BadRequest(f"the body of the request could not be decoded as protobuf: {message_}")


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _bad("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _bad("varint too long")


def _scan(data: bytes | memoryview) -> list[tuple[int, int, Any]]:
    """Split a message into (field number, wire type, value); LEN values are memoryviews."""
    out: list[tuple[int, int, Any]] = []
    view = memoryview(data)
    pos, end = 0, len(view)
    while pos < end:
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _bad("field number 0")
        value: Any
        if wire == _VARINT:
            value, pos = _varint(view, pos)
        elif wire == _LEN:
            length, pos = _varint(view, pos)
            if pos + length > end:
                raise _bad("length-delimited field runs past the end of its message")
            value, pos = view[pos:pos + length], pos + length
        elif wire == _I64:
            if pos + 8 > end:
                raise _bad("truncated fixed64")
            value, pos = int.from_bytes(view[pos:pos + 8], "little"), pos + 8
        elif wire == _I32:
            if pos + 4 > end:
                raise _bad("truncated fixed32")
            value, pos = int.from_bytes(view[pos:pos + 4], "little"), pos + 4
        else:  # groups (3, 4) are proto1 relics that Kubernetes never emits
            raise _bad(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    # int32 and int64 negatives are both sent as 64-bit two's complement varints.
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_k8s_protobuf(data: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf body into its JSON-form object, apiVersion and kind set.

    Malformed bodies raise :class:`errors.BadRequest`; kinds the table does not describe raise
    :class:`errors.UnsupportedMediaType`.
    """
    if not data.startswith(MAGIC):
        raise _bad("missing the k8s\\x00 prefix")
    api_version, kind, raw, content_encoding = _envelope(data)
    if content_encoding:
        raise errors.UnsupportedMediaType(f"protobuf content encoding {content_encoding!r} is not supported")
    if not kind or not api_version:
        raise _bad("the envelope has no apiVersion or kind")
    qualified = lookup_kind(api_version, kind)
    if qualified is None:
        raise errors.UnsupportedMediaType(
            f"protobuf is not supported for {api_version}, Kind={kind}; send application/json instead")
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(_decode_message(message(qualified), raw if raw is not None else memoryview(b"")))
    return obj


def envelope_type(data: bytes) -> tuple[str, str]:
    """The apiVersion and kind a protobuf body's ``runtime.Unknown`` envelope names ("" where it
    names none), as the protobuf serializer reads them before it decodes anything into a type.
    The serializer's own refusals of what is no envelope are ValueErrors in its words
    (``serializer/protobuf/protobuf.go`` ``Decode``); an envelope that does not parse is our
    decoder's 400."""
    if not data:
        raise ValueError("empty data")
    if not data.startswith(MAGIC):
        raise ValueError("provided data does not appear to be a protobuf message, expected prefix "
                         "[" + " ".join(str(b) for b in MAGIC) + "]")
    if len(data) == len(MAGIC):
        raise ValueError("empty body")
    api_version, kind, _, _ = _envelope(data)
    return api_version, kind


def _envelope(data: bytes) -> tuple[str, str, memoryview | None, str]:
    """The fields of the ``runtime.Unknown`` after the magic: apiVersion and kind of its TypeMeta,
    the raw message, the content encoding ("" or None where absent)."""
    api_version = kind = content_encoding = ""
    raw: memoryview | None = None
    for number, wire, value in _scan(memoryview(data)[len(MAGIC):]):
        if number == 1 and wire == _LEN:
            for sub_number, sub_wire, sub_value in _scan(value):
                if sub_wire == _LEN and sub_number == 1:
                    api_version = _text(sub_value)
                elif sub_wire == _LEN and sub_number == 2:
                    kind = _text(sub_value)
        elif number == 2 and wire == _LEN:
            raw = value
        elif number == 3 and wire == _LEN:
            content_encoding = _text(value)
    return api_version, kind, raw, content_encoding


def _text(value: memoryview) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("a string field is not valid UTF-8")


def _decode_message(msg: Message, data: memoryview) -> dict[str, Any]:
    scanned = _scan(data)
    if msg.list_wrapper:  # only reached through _decode_value; kept for completeness
        return {"items": [_text(v) for n, w, v in scanned if n == 1 and w == _LEN]}
    grouped: dict[int, list[tuple[int, Any]]] = {}
    for number, wire, value in scanned:
        if number in msg.by_number:
            grouped.setdefault(number, []).append((wire, value))
    out: dict[str, Any] = {}
    # Emit in table order (the Go struct order), which is also the order of Kubernetes' JSON.
    for field in msg.fields:
        occurrences = grouped.get(field.number)
        if not occurrences:
            continue
        where = f"{msg.name}.{field.name or field.type}"
        if field.inline:
            for wire, value in occurrences:
                _expect(wire, _LEN, where)
                out.update(_decode_message(message(field.type), value))
        elif field.map:
            out[field.name] = _decode_map(field, occurrences, where)
        elif field.repeated:
            out[field.name] = _decode_repeated(field, occurrences, where)
        else:
            wire, value = occurrences[-1]  # proto: the last occurrence of a singular field wins
            decoded = _decode_value(field.type, wire, value, where)
            if decoded is _ABSENT or (not field.keep_zero and _is_zero_scalar(field.type, decoded)):
                continue
            out[field.name] = decoded
    return out


_ABSENT = object()
"""_decode_value's answer for a value JSON would render as null (Go's zero Time)."""


def _is_zero_scalar(type_name: str, value: Any) -> bool:
    return type_name in _SCALARS and value in ("", 0, False)


def _expect(wire: int, expected: int, where: str) -> None:
    if wire != expected:
        raise _bad(f"field {where} has wire type {wire}, expected {expected}")


def _decode_value(type_name: str, wire: int, value: Any, where: str) -> Any:
    if type_name == "i":
        _expect(wire, _VARINT, where)
        return _signed(value)
    if type_name == "b":
        _expect(wire, _VARINT, where)
        return value != 0
    _expect(wire, _LEN, where)
    if type_name == "s":
        return _text(value)
    if type_name == "y":
        return gobytes.encode(value)
    if type_name in _SPECIAL:
        return _decode_special(type_name, value, where)
    msg = message(type_name)
    if msg.list_wrapper:
        return [_text(v) for n, w, v in _scan(value) if n == 1 and w == _LEN]
    return _decode_message(msg, value)


def _decode_repeated(field: Field, occurrences: list[tuple[int, Any]], where: str) -> list[Any]:
    items: list[Any] = []
    for wire, value in occurrences:
        if field.type in ("i", "b") and wire == _LEN:  # a packed run of varints
            view, pos = value, 0
            while pos < len(view):
                number, pos = _varint(view, pos)
                items.append(_signed(number) if field.type == "i" else number != 0)
            continue
        decoded = _decode_value(field.type, wire, value, where)
        items.append(None if decoded is _ABSENT else decoded)
    return items


def _decode_map(field: Field, occurrences: list[tuple[int, Any]], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for wire, entry in occurrences:
        _expect(wire, _LEN, where)
        key, value = "", _default_map_value(field.type)
        for number, entry_wire, entry_value in _scan(entry):
            if number == 1:
                _expect(entry_wire, _LEN, where + " key")
                key = _text(entry_value)
            elif number == 2:
                decoded = _decode_value(field.type, entry_wire, entry_value, where + " value")
                value = None if decoded is _ABSENT else decoded
        out[key] = value
    return out


def _default_map_value(type_name: str) -> Any:
    # A map entry whose value is the zero value may leave field 2 out entirely.
    return {"s": "", "y": "", "i": 0, "b": False, "Quantity": "0"}.get(type_name)


def _decode_special(type_name: str, data: memoryview, where: str) -> Any:
    fields = {n: (w, v) for n, w, v in _scan(data)}

    def scalar(number: int) -> int:
        wire, value = fields.get(number, (_VARINT, 0))
        _expect(wire, _VARINT, f"{where}.{number}")
        return _signed(value)

    def string(number: int) -> str:
        wire, value = fields.get(number, (_LEN, memoryview(b"")))
        _expect(wire, _LEN, f"{where}.{number}")
        return _text(value)

    if type_name in ("Time", "MicroTime"):
        seconds, nanos = scalar(1), scalar(2)
        if not fields or seconds == _GO_ZERO_TIME_SECONDS:
            return _ABSENT
        return _format_time(seconds, nanos, micro=type_name == "MicroTime")
    if type_name == "Duration":
        return format_duration(scalar(1))
    if type_name == "Quantity":
        return string(1)
    if type_name == "IntOrString":
        return string(3) if scalar(1) == 1 else scalar(2)
    # FieldsV1 (Raw = 1) and RawExtension (raw = 1) both carry serialized JSON.
    raw = bytes(fields.get(1, (_LEN, memoryview(b"")))[1])
    if not raw:
        return {} if type_name == "FieldsV1" else None
    if raw.startswith(MAGIC):
        return decode_k8s_protobuf(raw)
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad(f"field {where} does not hold JSON")


def _format_time(seconds: int, nanos: int, *, micro: bool) -> str:
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _bad(f"timestamp {seconds} is out of range")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if micro:
        text += f".{nanos // 1000:06d}"
    return text + "Z"


# ---------------------------------------------------------------------------------------------
# Encoding (the mirror image; used by tests and by anything that wants to produce protobuf)


def encode_k8s_protobuf(obj: dict[str, Any]) -> bytes:
    """Encode a JSON-form object (apiVersion and kind set) as a Kubernetes protobuf body."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    qualified = lookup_kind(api_version, kind)
    if qualified is None:
        raise errors.UnsupportedMediaType(f"protobuf is not supported for {api_version}, Kind={kind}")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    type_meta = _len_field(1, api_version.encode()) + _len_field(2, kind.encode())
    envelope = (_len_field(1, type_meta) + _len_field(2, _encode_message(message(qualified), body))
                + _len_field(3, b"") + _len_field(4, b""))
    return MAGIC + envelope


def _put_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _put_varint(number << 3 | _LEN) + _put_varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _put_varint(number << 3 | _VARINT) + _put_varint(value)


def _encode_message(msg: Message, obj: dict[str, Any]) -> bytes:
    out = bytearray()
    for field in sorted(msg.fields, key=lambda f: f.number):
        if field.inline:
            out += _len_field(field.number, _encode_message(message(field.type), obj))
            continue
        if field.name not in obj or obj[field.name] is None:
            continue
        value = obj[field.name]
        if field.map:
            for key, item in value.items():
                entry = _len_field(1, key.encode()) + _encode_value(2, field.type, item)
                out += _len_field(field.number, entry)
        elif field.repeated:
            for item in value:
                out += _encode_value(field.number, field.type, item)
        else:
            out += _encode_value(field.number, field.type, value)
    return bytes(out)


def _encode_value(number: int, type_name: str, value: Any) -> bytes:
    if type_name == "i":
        return _varint_field(number, int(value))
    if type_name == "b":
        return _varint_field(number, 1 if value else 0)
    if type_name == "s":
        return _len_field(number, str(value).encode())
    if type_name == "y":
        try:
            return _len_field(number, gobytes.decode(value))
        except (gobytes.CorruptInputError, TypeError):
            raise errors.BadRequest(f"field {number}: not base64")
    if type_name in ("Time", "MicroTime"):
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        seconds = int(moment.timestamp())
        nanos = moment.microsecond * 1000
        return _len_field(number, _varint_field(1, seconds) + (_varint_field(2, nanos) if nanos else b""))
    if type_name == "Duration":
        raise errors.BadRequest("encoding Duration is not supported")
    if type_name == "Quantity":
        return _len_field(number, _len_field(1, str(value).encode()))
    if type_name == "IntOrString":
        if isinstance(value, str):
            payload = _varint_field(1, 1) + _varint_field(2, 0) + _len_field(3, value.encode())
        else:
            payload = _varint_field(1, 0) + _varint_field(2, int(value)) + _len_field(3, b"")
        return _len_field(number, payload)
    if type_name in ("FieldsV1", "RawExtension"):
        raw = json.dumps(value, separators=(",", ":")).encode()
        return _len_field(number, _len_field(1, raw))
    msg = message(type_name)
    if msg.list_wrapper:
        return _len_field(number, b"".join(_len_field(1, str(v).encode()) for v in value))
    return _len_field(number, _encode_message(msg, value))
