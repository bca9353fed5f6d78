"""``[]byte`` as Go reads and writes it in JSON: base64, exactly as kube-apiserver decodes it.

Every ``[]byte`` field of the API (Secret ``data``, ConfigMap ``binaryData``, ``caBundle`` of CRD
conversion webhooks, admission webhooks and APIServices, a CSR's ``request``, the ``format: byte``
strings of schemas) reaches kube-apiserver as JSON that Go's ``encoding/json`` decodes into a
``[]byte``. What that accepts, and what it says when it does not, is the contract here:

* a string is decoded with ``encoding/base64``'s ``StdEncoding`` (:func:`decode`): the standard
  alphabet with ``=`` padding to whole 4-character quanta; ``\\r`` and ``\\n`` are skipped
  anywhere (so ``base64``'s 76-column output is fine), every other character outside the
  alphabet, a missing or misplaced ``=`` and anything after the padding is an error
  ``illegal base64 data at input byte N`` (N counts the characters of the string as sent,
  newlines included). Padding bits that are not zero are ignored, as Go does when not strict;
* an array of numbers 0..255 is the bytes themselves (Go decodes a JSON array into any slice);
* ``null`` is no bytes.

The server then stores and returns the bytes, so they come back re-encoded canonically
(:func:`encode`: one line, padded). :func:`canonical` does that round trip for a decoded JSON
value and is what the typed decoder (:mod:`kybernetes.api.decode`) calls for every field whose
schema says ``format: byte``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from kybernetes.api.gojsonsyntax import json_type

STD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_PAD = "="
_NEWLINES = "\r\n"

# What StdEncoding accepts once CR/LF are gone, in a form binascii decodes identically.
_CANONICAL_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class CorruptInputError(ValueError):
    """``base64.CorruptInputError``: the offset of the first byte Go could not use."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")
        self.offset = offset


class JSONBytesError(ValueError):
    """A JSON value that Go's ``encoding/json`` cannot decode into ``[]byte``; the message is Go's
    (to be prefixed the way kube-apiserver reports a decoding error)."""


def encode(data: bytes) -> str:
    """``base64.StdEncoding.EncodeToString``: how Go's JSON encoder writes a ``[]byte``."""
    return base64.b64encode(data).decode("ascii")


def decode(text: str | bytes, *, alphabet: str = STD_ALPHABET, padded: bool = True) -> bytes:
    """Go's ``Encoding.DecodeString``: ``StdEncoding`` by default; ``alphabet=URL_ALPHABET`` with
    ``padded=False`` is ``RawURLEncoding``. Raises :class:`CorruptInputError` where Go does, with
    Go's offset."""
    s = text.decode("latin-1") if isinstance(text, bytes) else text
    if alphabet is STD_ALPHABET and padded:
        stripped = s.replace("\n", "").replace("\r", "") if ("\n" in s or "\r" in s) else s
        if len(stripped) % 4 == 0 and _CANONICAL_STD.fullmatch(stripped):
            return binascii.a2b_base64(stripped)
    return _decode_exactly(s, _decode_map(alphabet), padded)


def canonical(value: Any, field: str = "") -> Any:
    """The JSON value Go would write back for ``value`` decoded into a ``[]byte`` field ``field``
    (a dotted JSON path, for error messages): a canonical base64 string, ``""`` for ``null``.

    Raises :class:`JSONBytesError` with Go's message for anything ``encoding/json`` refuses.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        if _is_canonical(value):
            return value  # already what Go writes (the common case: nothing to re-encode)
        try:
            return encode(decode(value))
        except CorruptInputError as e:
            raise JSONBytesError(str(e)) from None
    if isinstance(value, list):
        return encode(bytes(_byte_of(x, field) for x in value))
    raise JSONBytesError(f"json: cannot unmarshal {json_type(value)} into Go struct field {field or '.'} "
                         f"of type []uint8")


def _is_canonical(value: str) -> bool:
    """``value`` is exactly what ``StdEncoding`` writes: one line, padded, padding bits zero."""
    if len(value) % 4 or not _CANONICAL_STD.fullmatch(value):
        return False
    if value.endswith("=="):
        return _STD_MAP[value[-3]] & 0x0F == 0
    if value.endswith("="):
        return _STD_MAP[value[-2]] & 0x03 == 0
    return True


def _byte_of(x: Any, field: str) -> int:
    """One element of a JSON array decoded into ``uint8`` (``null`` leaves it zero, as in Go)."""
    if x is None:
        return 0
    if isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 255:
        return x
    if isinstance(x, float | int) and not isinstance(x, bool):
        raise JSONBytesError(f"json: cannot unmarshal number {_go_number(x)} into Go struct field "
                             f"{field or '.'} of type uint8")
    raise JSONBytesError(f"json: cannot unmarshal {json_type(x)} into Go struct field {field or '.'} "
                         f"of type uint8")


def _go_number(x: float | int) -> str:
    """Go quotes the number as written; the parsed JSON keeps only its value (``1e2`` shows as
    ``100.0``), which is the only difference from Go's message."""
    return repr(x)


_MAPS: dict[str, dict[str, int]] = {}
_STD_MAP = {c: i for i, c in enumerate(STD_ALPHABET)}


def _decode_map(alphabet: str) -> dict[str, int]:
    m = _MAPS.get(alphabet)
    if m is None:
        m = _MAPS[alphabet] = {c: i for i, c in enumerate(alphabet)}
    return m


def _decode_exactly(s: str, dmap: dict[str, int], padded: bool) -> bytes:
    """Go's ``Encoding.Decode`` quantum by quantum (``decodeQuantum``), for its errors' offsets."""
    out = bytearray()
    si, n = 0, len(s)
    while si < n:
        digits: list[int] = []
        while len(digits) < 4:
            if si == n:
                if not digits:
                    return bytes(out)
                if len(digits) == 1 or padded:
                    raise CorruptInputError(si - len(digits))
                break
            c = s[si]
            si += 1
            d = dmap.get(c)
            if d is not None:
                digits.append(d)
                continue
            if c in _NEWLINES:
                continue
            if not padded or c != _PAD:
                raise CorruptInputError(si - 1)
            si = _check_padding(s, si, len(digits))
            break
        out += _quantum_bytes(digits)
    return bytes(out)


def _check_padding(s: str, si: int, ndigits: int) -> int:
    """After the first ``=`` (already consumed) of a quantum holding ``ndigits`` digits: the rest
    of the padding, then nothing but newlines to the end. Returns the end of the input."""
    n = len(s)
    if ndigits < 2:
        raise CorruptInputError(si - 1)
    if ndigits == 2:  # "==" is needed: skip newlines, then the second "="
        while si < n and s[si] in _NEWLINES:
            si += 1
        if si == n:
            raise CorruptInputError(n)
        if s[si] != _PAD:
            raise CorruptInputError(si - 1)
        si += 1
    while si < n and s[si] in _NEWLINES:
        si += 1
    if si < n:
        raise CorruptInputError(si)  # trailing garbage
    return si


def _quantum_bytes(digits: list[int]) -> bytes:
    val = 0
    for d in digits:
        val = (val << 6) | d
    val <<= 6 * (4 - len(digits))
    return val.to_bytes(3, "big")[: len(digits) - 1]
