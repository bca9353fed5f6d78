"""``[]byte`` fields decode exactly as Go's encoding/json + encoding/base64 (StdEncoding) do.

The expected values are what Go 1.23's ``base64.StdEncoding.DecodeString`` returns for each
input (worked through its ``decodeQuantum``: newlines skipped anywhere, the offset of the first
unusable byte in the error, padding bits ignored), and what ``json.Unmarshal`` into a ``[]byte``
does with arrays and other JSON types.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kybernetes.api import decode as typed
from kybernetes.api import gobytes
from kybernetes.api import schema as schemas

ACCEPTED: list[tuple[str, bytes]] = [
    ("", b""),
    ("YQ==", b"a"),
    ("YWI=", b"ab"),
    ("YWJj", b"abc"),
    ("YWJjZGVmZ2g=", b"abcdefgh"),
    ("YW\nJj", b"abc"),  # a line break anywhere
    ("YWJj\r\n", b"abc"),
    ("\nYWJj", b"abc"),
    ("\r\n", b""),
    ("YQ=\n=", b"a"),  # even between the two padding characters
    ("YQ==\n\n", b"a"),
    ("YR==", b"a"),  # padding bits that are not zero are ignored (Go is not strict)
    ("YWJ=", b"ab"),
]

REJECTED: list[tuple[str, int]] = [
    ("Y", 0),  # input ends after one digit of a quantum
    ("YQ", 0),  # unpadded: StdEncoding needs whole quanta
    ("YWJjZA", 4),
    ("YW\nJ", 1),  # Go reports len(input) - digits read, newlines and all
    ("YQ=", 3),  # not enough padding
    ("YQ===", 4),  # trailing garbage after the padding
    ("YWI==", 4),
    ("YQ==YQ==", 4),  # two padded strings concatenated
    ("=YWJ", 0),
    ("Y===", 1),
    ("YQ=x", 2),
    ("YQ=\nx", 3),
    ("YW J", 2),  # other whitespace is not skipped
    ("YW\tJj", 2),
    ("YWJj-_", 4),  # the URL alphabet is not the standard one
    ("YWJjé", 4),
    ("dGVzdA==\n ", 9),
]


@pytest.mark.parametrize(("text", "want"), ACCEPTED)
def test_accepts_what_go_accepts(text: str, want: bytes) -> None:
    assert gobytes.decode(text) == want
    assert gobytes.canonical(text) == base64.b64encode(want).decode()


@pytest.mark.parametrize(("text", "offset"), REJECTED)
def test_rejects_what_go_rejects_at_the_same_byte(text: str, offset: int) -> None:
    with pytest.raises(gobytes.CorruptInputError) as e:
        gobytes.decode(text)
    assert str(e.value) == f"illegal base64 data at input byte {offset}"
    with pytest.raises(gobytes.JSONBytesError, match=f"^illegal base64 data at input byte {offset}$"):
        gobytes.canonical(text)


def test_base64_output_wrapped_at_76_columns_decodes() -> None:
    data = bytes(range(256)) * 3
    wrapped = base64.encodebytes(data).decode()  # what `base64` prints: 76 columns, trailing \n
    assert "\n" in wrapped.rstrip("\n")
    assert gobytes.decode(wrapped) == data
    assert gobytes.canonical(wrapped) == base64.b64encode(data).decode()
    assert gobytes.decode(wrapped.replace("\n", "\r\n")) == data


@pytest.mark.parametrize(("value", "want"), [
    ([104, 105], "aGk="),  # a JSON array is the bytes themselves
    ([], ""),
    ([None, 255], "AP8="),  # null leaves the element zero
    (None, ""),
])
def test_json_values_go_decodes_into_bytes(value: Any, want: str) -> None:
    assert gobytes.canonical(value, "data.k") == want


@pytest.mark.parametrize(("value", "message"), [
    ([256], "json: cannot unmarshal number 256 into Go struct field data.k of type uint8"),
    ([-1], "json: cannot unmarshal number -1 into Go struct field data.k of type uint8"),
    ([1.5], "json: cannot unmarshal number 1.5 into Go struct field data.k of type uint8"),
    (["a"], "json: cannot unmarshal string into Go struct field data.k of type uint8"),
    ([[1]], "json: cannot unmarshal array into Go struct field data.k of type uint8"),
    (True, "json: cannot unmarshal bool into Go struct field data.k of type []uint8"),
    (5, "json: cannot unmarshal number into Go struct field data.k of type []uint8"),
    ({}, "json: cannot unmarshal object into Go struct field data.k of type []uint8"),
])
def test_json_values_go_refuses(value: Any, message: str) -> None:
    with pytest.raises(gobytes.JSONBytesError) as e:
        gobytes.canonical(value, "data.k")
    assert str(e.value) == message


def test_raw_url_encoding() -> None:
    assert gobytes.decode("-_8", alphabet=gobytes.URL_ALPHABET, padded=False) == b"\xfb\xff"
    with pytest.raises(gobytes.CorruptInputError, match="input byte 3"):
        gobytes.decode("-_8=", alphabet=gobytes.URL_ALPHABET, padded=False)
    with pytest.raises(gobytes.CorruptInputError, match="input byte 0"):
        gobytes.decode("A", alphabet=gobytes.URL_ALPHABET, padded=False)


def test_typed_decode_canonicalises_every_byte_field() -> None:
    """The typed decoder finds []byte fields by their schema (``format: byte``), in maps and
    in nested objects alike, and rewrites them as Go writes them back."""
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                              "data": {"a": "YW\nJj", "b": [104, 105], "c": None}}
    res = typed.check(secret, schemas.for_kind("", "v1", "Secret"))  # type: ignore[arg-type]
    assert res.type_errors == []
    assert secret["data"] == {"a": "YWJj", "b": "aGk=", "c": ""}

    hook: dict[str, Any] = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                            "metadata": {"name": "w"},
                            "webhooks": [{"name": "a.b.c", "clientConfig": {"caBundle": "YWJj\nZGVm"}}]}
    sch = schemas.for_kind("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration")
    assert sch is not None
    assert typed.check(hook, sch).type_errors == []
    assert hook["webhooks"][0]["clientConfig"]["caBundle"] == "YWJjZGVm"

    bad: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                           "binaryData": {"x": "YQ=", "y": "!"}}
    res = typed.check(bad, schemas.for_kind("", "v1", "ConfigMap"))  # type: ignore[arg-type]
    assert res.type_errors[0] == "illegal base64 data at input byte 3"  # Go reports the first
