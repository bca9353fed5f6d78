"""Go's ``encoding/json`` decode errors, in Go's words, for request bodies we refuse.

kube-apiserver decodes a JSON body with Go's ``encoding/json`` (or ``sigs.k8s.io/json``, a fork
with the same messages), and its Status errors quote Go's message; clients and tests match it.
orjson's messages differ, so on the error path (only there: it is Go's state machine stepped
byte by byte in Python, with regular expressions skipping what cannot fail) :func:`syntax_error`
rescans the body as Go's scanner (``encoding/json/scanner.go``) does and returns the message
``json.Unmarshal`` would return for the first error:

* ``invalid character <c> <context>`` with Go's contexts ("looking for beginning of value",
  "after object key", "in string literal", "in literal true (expecting 'r')", ...), where
  ``<c>`` is quoted as Go's ``quoteChar`` quotes it (:func:`quote_char`);
* ``unexpected end of JSON input`` when the input ends inside a value (or is empty). At the end
  Go feeds the scanner one space, so a value cut inside a number or a literal (``-``, ``1.``,
  ``tru``) reports ``invalid character ' ' ...`` as Go does;
* ``invalid character <c> exceeded max depth`` past 10000 nested arrays/objects.

It returns None for input Go's scanner accepts (orjson refuses some of it: nesting over 1024
levels, a number beyond a double's range). :func:`unmarshal_type_error` is Go's message for a
valid top-level value of the wrong JSON type.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

MAX_NESTING_DEPTH = 10000
"""``encoding/json``'s ``maxNestingDepth``."""

_SPACE = frozenset(b" \t\r\n")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_ESCAPES = frozenset(b'bfnrt\\/"')
_GO_QUOTE_ESCAPES = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t",
                     0x0B: "\\v", 0x5C: "\\\\"}

_OBJECT_KEY, _OBJECT_VALUE, _ARRAY_VALUE = "key", "value", "element"


def quote_char(c: int) -> str:
    """Go's ``quoteChar``: the byte as a quoted character, ``'\\''`` for a quote and ``'"'``
    for a double quote, otherwise ``strconv.Quote(string(rune(c)))`` between single quotes (the
    byte read as the code point U+0000-U+00FF; unprintable ones as ``\\xNN`` below 0x80 and
    ``\\u00NN`` above)."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c in _GO_QUOTE_ESCAPES:
        return f"'{_GO_QUOTE_ESCAPES[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    char = chr(c)
    # strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    if c == 0x20 or unicodedata.category(char)[0] in "LMNPS":
        return f"'{char}'"
    return f"'\\u{c:04x}'"


class _Scanner:
    """Go's scanner: ``step`` is the state function for the next byte; ``stack`` the open
    arrays and objects (what the next token ends or separates)."""

    def __init__(self) -> None:
        self.step: Callable[[int], None] = self.begin_value
        self.stack: list[str] = []
        self.end_top = False
        self.error: str | None = None

    def fail(self, c: int, context: str) -> None:
        self.error = f"invalid character {quote_char(c)} {context}"

    def push(self, c: int, state: str) -> bool:
        self.stack.append(state)
        if len(self.stack) > MAX_NESTING_DEPTH:
            self.fail(c, "exceeded max depth")
            return False
        return True

    # --- values ---------------------------------------------------------------------------

    def begin_value_or_empty(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == ord("]"):
            self.end_value(c)
            return
        self.begin_value(c)

    def begin_value(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == ord("{"):
            if self.push(c, _OBJECT_KEY):
                self.step = self.begin_string_or_empty
        elif c == ord("["):
            if self.push(c, _ARRAY_VALUE):
                self.step = self.begin_value_or_empty
        elif c == ord('"'):
            self.step = self.in_string
        elif c == ord("-"):
            self.step = self.neg
        elif c == ord("0"):
            self.step = self.zero
        elif c in _DIGITS:
            self.step = self.digits
        elif c in b"tfn":
            word = {ord("t"): "true", ord("f"): "false", ord("n"): "null"}[c]
            self.step = self.literal(word, 1)
        else:
            self.fail(c, "looking for beginning of value")

    def begin_string_or_empty(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == ord("}"):
            self.stack[-1] = _OBJECT_VALUE
            self.end_value(c)
            return
        self.begin_string(c)

    def begin_string(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == ord('"'):
            self.step = self.in_string
            return
        self.fail(c, "looking for beginning of object key string")

    def pop(self) -> None:
        self.stack.pop()
        if not self.stack:
            self.step = self.end_top_value
            self.end_top = True

    def end_value(self, c: int) -> None:
        """After a complete value: what may follow it where it stands."""
        if not self.stack:
            self.step = self.end_top_value
            self.end_top = True
            self.end_top_value(c)
            return
        self.step = self.end_value
        if c in _SPACE:
            return
        where = self.stack[-1]
        if where == _OBJECT_KEY:
            if c == ord(":"):
                self.stack[-1] = _OBJECT_VALUE
                self.step = self.begin_value
                return
            self.fail(c, "after object key")
        elif where == _OBJECT_VALUE:
            if c == ord(","):
                self.stack[-1] = _OBJECT_KEY
                self.step = self.begin_string
                return
            if c == ord("}"):
                self.pop()
                return
            self.fail(c, "after object key:value pair")
        else:
            if c == ord(","):
                self.step = self.begin_value
                return
            if c == ord("]"):
                self.pop()
                return
            self.fail(c, "after array element")

    def end_top_value(self, c: int) -> None:
        if c not in _SPACE:
            self.fail(c, "after top-level value")

    # --- strings --------------------------------------------------------------------------

    def in_string(self, c: int) -> None:
        if c == ord('"'):
            self.step = self.end_value
        elif c == ord("\\"):
            self.step = self.in_string_escape
        elif c < 0x20:
            self.fail(c, "in string literal")

    def in_string_escape(self, c: int) -> None:
        if c in _ESCAPES:
            self.step = self.in_string
        elif c == ord("u"):
            self.step = self.unicode_escape(4)
        else:
            self.fail(c, "in string escape code")

    def unicode_escape(self, left: int) -> Callable[[int], None]:
        def state(c: int) -> None:
            if c not in _HEX:
                self.fail(c, "in \\u hexadecimal character escape")
            else:
                self.step = self.in_string if left == 1 else self.unicode_escape(left - 1)

        return state

    # --- numbers and literals -------------------------------------------------------------

    def neg(self, c: int) -> None:
        if c == ord("0"):
            self.step = self.zero
        elif c in _DIGITS:
            self.step = self.digits
        else:
            self.fail(c, "in numeric literal")

    def digits(self, c: int) -> None:
        if c in _DIGITS:
            return
        self.zero(c)

    def zero(self, c: int) -> None:
        if c == ord("."):
            self.step = self.dot
        elif c in b"eE":
            self.step = self.exponent
        else:
            self.end_value(c)

    def dot(self, c: int) -> None:
        if c in _DIGITS:
            self.step = self.fraction
        else:
            self.fail(c, "after decimal point in numeric literal")

    def fraction(self, c: int) -> None:
        if c in _DIGITS:
            return
        if c in b"eE":
            self.step = self.exponent
        else:
            self.end_value(c)

    def exponent(self, c: int) -> None:
        if c in b"+-":
            self.step = self.exponent_sign
        else:
            self.exponent_sign(c)

    def exponent_sign(self, c: int) -> None:
        if c in _DIGITS:
            self.step = self.exponent_digits
        else:
            self.fail(c, "in exponent of numeric literal")

    def exponent_digits(self, c: int) -> None:
        if c not in _DIGITS:
            self.end_value(c)

    def literal(self, word: str, at: int) -> Callable[[int], None]:
        """The state after ``word[:at]`` of ``true``, ``false`` or ``null``."""

        def state(c: int) -> None:
            want = word[at]
            if c != ord(want):
                self.fail(c, f"in literal {word} (expecting {quote_char(ord(want))})")
            elif at + 1 == len(word):
                self.step = self.end_value
            else:
                self.step = self.literal(word, at + 1)

        return state


_STRING = rb'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+"'
_KEY = re.compile(rb"[ \t\r\n]*+" + _STRING)
_SCALAR = (rb"[ \t\r\n]*+(?:" + _STRING + rb"|true|false|null|\[[ \t\r\n]*+\]|\{[ \t\r\n]*+\}"
           rb"|-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?[0-9]++)?+(?![0-9.eE+-]))")
_VALUE = re.compile(_SCALAR)
_ELEMENTS = re.compile(rb"(?:" + _SCALAR + rb"[ \t\r\n]*+,)++")
_MEMBERS = re.compile(rb"(?:" + _KEY.pattern + rb"[ \t\r\n]*+:" + _SCALAR + rb"[ \t\r\n]*+,)++")
"""Whole, valid scalars (and empty arrays and objects) where a value or an object key may
begin, and runs of them with their commas: the scanner would step through them without error
and stand after them, so :func:`syntax_error` skips them in one match (a number only where
nothing that could continue it follows). Only speed: a 3 MiB body costs a few matches per
array or object rather than a step per byte."""


def syntax_error(data: bytes, max_steps: int | None = None) -> str | None:
    """The message of Go's ``json.SyntaxError`` for the first syntax error in ``data`` (what
    ``json.Unmarshal`` and ``json.Valid`` see); None if Go's scanner accepts ``data``, or if
    finding out took more than ``max_steps`` steps (a byte stepped or a run skipped: a caller on
    an event loop bounds the time a crafted body can take)."""
    scan = _Scanner()
    at, end = 0, len(data)
    steps = 0
    value_starts = (scan.begin_value, scan.begin_value_or_empty)
    key_starts = (scan.begin_string, scan.begin_string_or_empty)
    while at < end:
        steps += 1
        if max_steps is not None and steps > max_steps:
            return None
        if len(scan.stack) >= MAX_NESTING_DEPTH:  # an empty [] or {} here is one level too deep
            whole = None
        elif scan.step in value_starts:
            if scan.stack and scan.stack[-1] == _ARRAY_VALUE and (run := _ELEMENTS.match(data, at)):
                at, scan.step = run.end(), scan.begin_value
                continue
            whole = _VALUE.match(data, at)
        elif scan.step in key_starts:
            if run := _MEMBERS.match(data, at):
                at, scan.step = run.end(), scan.begin_string
                continue
            whole = _KEY.match(data, at)
        else:
            whole = None
        if whole is not None:
            at, scan.step = whole.end(), scan.end_value
            continue
        scan.step(data[at])
        at += 1
        if scan.error is not None:
            return scan.error
    if scan.end_top:
        return None
    scan.step(ord(" "))  # Go's scanner.eof: a space ends a number or literal that may be whole
    if scan.error is not None:
        return scan.error
    return None if scan.end_top else "unexpected end of JSON input"


def json_type(value: object) -> str:
    """How Go's ``UnmarshalTypeError`` names a JSON value's type."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def unmarshal_type_error(value: object, go_type: str) -> str:
    """Go's message for a top-level JSON ``value`` that cannot be decoded into ``go_type``
    (``reflect.Type.String()`` of the target, e.g. ``map[string]interface {}``)."""
    return f"json: cannot unmarshal {json_type(value)} into Go value of type {go_type}"
