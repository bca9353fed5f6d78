"""Go's encoding/json syntax errors, word for word (issue 20): the messages kube-apiserver quotes
when a request body is not JSON. Expected strings are Go's (``encoding/json/scanner.go`` states,
``decode_test.go`` and ``scanner_test.go`` examples)."""

from __future__ import annotations

import random
import re

import pytest

from kybernetes.api import gojsonsyntax
from kybernetes.api.gojsonsyntax import quote_char, syntax_error, unmarshal_type_error

GO_SYNTAX_ERRORS = [
    # decode_test.go's unmarshalTests
    (b'{"X": "foo", "Y"}', "invalid character '}' after object key"),
    (b"[1, 2, 3+]", "invalid character '+' after array element"),
    (b'{"X":12x}', "invalid character 'x' after object key:value pair"),
    (b"[2, 3", "unexpected end of JSON input"),
    (b'{"F3": -}', "invalid character '}' in numeric literal"),
    # scanner_test.go's indentErrorTests
    (b'{"X": "foo" "Y": "bar"}', "invalid character '\"' after object key:value pair"),
    # one input per state's error
    (b"", "unexpected end of JSON input"),
    (b" \n\t ", "unexpected end of JSON input"),
    (b'{"a": "unterminated', "unexpected end of JSON input"),
    (b"{bad", "invalid character 'b' looking for beginning of object key string"),
    (b"{'a': 1}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"a": 1,}', "invalid character '}' looking for beginning of object key string"),
    (b"x", "invalid character 'x' looking for beginning of value"),
    (b"[1,]", "invalid character ']' looking for beginning of value"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a": 1 "b"}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b'{"a": 1}}', "invalid character '}' after top-level value"),
    (b"\x01 42", "invalid character '\\x01' looking for beginning of value"),
    (b" 42 \x01", "invalid character '\\x01' after top-level value"),
    (b'"a\nb"', "invalid character '\\n' in string literal"),
    (b'"a\tb"', "invalid character '\\t' in string literal"),
    (b'"\\q"', "invalid character 'q' in string escape code"),
    (b'"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
    (b'"\\u"', "invalid character '\"' in \\u hexadecimal character escape"),
    (b"-x", "invalid character 'x' in numeric literal"),
    (b"1.x", "invalid character 'x' after decimal point in numeric literal"),
    (b"1ex", "invalid character 'x' in exponent of numeric literal"),
    (b"[1e]", "invalid character ']' in exponent of numeric literal"),
    (b"01", "invalid character '1' after top-level value"),
    (b"tx", "invalid character 'x' in literal true (expecting 'r')"),
    (b"trx", "invalid character 'x' in literal true (expecting 'u')"),
    (b"trux", "invalid character 'x' in literal true (expecting 'e')"),
    (b"fx", "invalid character 'x' in literal false (expecting 'a')"),
    (b"falsy", "invalid character 'y' in literal false (expecting 'e')"),
    (b"nil", "invalid character 'i' in literal null (expecting 'u')"),
    (b"nulx", "invalid character 'x' in literal null (expecting 'l')"),
    # at the end Go's scanner.eof steps one space: a number or literal cut short says so
    (b"-", "invalid character ' ' in numeric literal"),
    (b"1.", "invalid character ' ' after decimal point in numeric literal"),
    (b"tru", "invalid character ' ' in literal true (expecting 'e')"),
    (b"[" * 10001, "invalid character '[' exceeded max depth"),
    (b"[" * 10000 + b"[]", "invalid character '[' exceeded max depth"),
    (b"{\"a\":" * 10000 + b"{}", "invalid character '{' exceeded max depth"),
    # bytes Go reads as runes U+0080-U+00FF (a BOM is not skipped)
    (b"\xef\xbb\xbf{}", "invalid character '\u00ef' looking for beginning of value"),
    (b"\x80", "invalid character '\\u0080' looking for beginning of value"),
    (b"\\", "invalid character '\\\\' looking for beginning of value"),
]


@pytest.mark.parametrize(("data", "message"), GO_SYNTAX_ERRORS)
def test_syntax_errors_are_gos(data: bytes, message: str) -> None:
    assert syntax_error(data) == message


@pytest.mark.parametrize("data", [
    b"{}", b" [ ] ", b"0", b"-0.5e+10", b'"\\u00e9\\n\\""', b"true", b"null ",
    b'{"a": [1, {"b": null}], "c": "\xff"}',  # invalid UTF-8 in a string is Go's U+FFFD, not an error
    b"[" * 1100 + b"]" * 1100,  # deeper than orjson reads, within Go's 10000
    b"[" * 9999 + b"[]" + b"]" * 9999,
])
def test_what_go_accepts_is_none(data: bytes) -> None:
    assert syntax_error(data) is None


@pytest.mark.parametrize(("byte", "quoted"), [
    (ord("'"), "'\\''"), (ord('"'), "'\"'"), (ord("x"), "'x'"), (ord(" "), "' '"), (ord("\\"), "'\\\\'"),
    (0x00, "'\\x00'"), (0x07, "'\\a'"), (0x0A, "'\\n'"), (0x1F, "'\\x1f'"), (0x7F, "'\\x7f'"),
    (0x80, "'\\u0080'"), (0xA0, "'\\u00a0'"), (0xAD, "'\\u00ad'"), (0xE9, "'\u00e9'"), (0xFF, "'\u00ff'"),
])
def test_quote_char_is_gos(byte: int, quoted: str) -> None:
    assert quote_char(byte) == quoted


@pytest.mark.parametrize(("value", "kind"), [
    ([], "array"), ("x", "string"), (1, "number"), (1.5, "number"), (True, "bool"), ({}, "object"),
])
def test_unmarshal_type_error(value: object, kind: str) -> None:
    assert unmarshal_type_error(value, "map[string]interface {}") == \
        f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"


def test_the_fast_path_says_what_the_byte_scanner_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """The regex skips are only speed: on mutated documents they give the byte-at-a-time answer."""
    docs = [b'{"a": [1, -2.5e+3, 0, true, false, null, "x\\u00e9\\n"], "b": {"c": {}}, "d": [], "e": "f"}',
            b'[0.5, -0, 1E9, "q\\"", {"k": "v", "l": [ ]}, [1,2], 3]', b'{"metadata":{"name":"t"}}']
    alphabet = b'{}[]:,"\\ \n0123456789.eE+-truefalsnul\x01\xffx'
    rng = random.Random(20)
    cases = []
    for _ in range(3000):
        d = bytearray(rng.choice(docs))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(d) + 1)
            if rng.random() < 0.5 and at < len(d):
                d[at] = rng.choice(alphabet)
            else:
                d.insert(at, rng.choice(alphabet))
        cases.append(bytes(d[:rng.randrange(len(d) + 1)] if rng.random() < 0.3 else d))
    fast = [syntax_error(c) for c in cases]
    never = re.compile(rb"(?!)")
    for name in ("_VALUE", "_KEY", "_ELEMENTS", "_MEMBERS"):
        monkeypatch.setattr(gojsonsyntax, name, never)
    assert [syntax_error(c) for c in cases] == fast
    assert sum(f is not None for f in fast) > 1000


def test_a_rescan_past_its_step_budget_gives_up() -> None:
    crafted = b"[" + b"[1]," * 1000 + b"x]"
    assert syntax_error(crafted) == "invalid character 'x' looking for beginning of value"
    assert syntax_error(crafted, max_steps=100) is None
