"""resource.Quantity parsing, canonical printing and arithmetic against Kubernetes' own answers.

The expected strings come from apimachinery's behaviour (its quantity tests and what a real API
server echoes back), including the cases where it keeps the caller's text.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kybernetes.api import quantity as q

CANONICAL = [
    # (input, what the API server serializes)
    ("100m", "100m"),
    ("0.5", "500m"),
    ("0.1", "100m"),
    ("1000m", "1"),
    ("1Gi", "1Gi"),
    ("1024Mi", "1Gi"),
    ("1.5Gi", "1536Mi"),
    ("0.5Gi", "512Mi"),
    ("128974848", "128974848"),
    ("129e6", "129e6"),
    ("123Mi", "123Mi"),
    ("1k", "1k"),
    ("1000", "1k"),
    ("1000M", "1G"),
    ("5G", "5G"),
    ("0", "0"),
    ("00", "0"),
    ("0m", "0"),
    ("-1", "-1"),
    ("-1Ki", "-1Ki"),
    ("2048Ki", "2Mi"),
    ("1000Ki", "1000Ki"),
    ("1025Ki", "1025Ki"),
    ("1.08", "1080m"),
    ("10800e-4", "1080e-3"),
    (".001Ki", "1024m"),
    (".000001Ki", "1024u"),
    (".000000001Ki", "1024n"),
    (".000000000001Ki", "2n"),
    ("1.1Gi", "1181116006400m"),
    ("0.9Gi", "966367641600m"),
    ("0.30000000000000004", "300000001n"),
    ("3.001n", "4n"),
    ("0.0000000001", "1n"),
    ("0.00000012345", "124n"),
    ("1.1E-9", "2e-9"),
    ("12E", "12E"),
    ("1000E", "1e21"),
    ("9Ei", "9223372036854775807"),
    ("9223372036854775807Ki", "9223372036854775807"),
    ("1e3", "1e3"),  # the format is kept: a decimal exponent stays an exponent
    ("1E6", "1E6"),
    ("1e1", "10"),
    ("1.5e3", "1500"),
    ("1.3E+6", "1300e3"),
    (".001e12", "1e9"),
    ("1.0", "1"),
    ("100.035Ki", "102435840m"),
    # Text Kubernetes reuses because its canonical-form test passes
    ("+1", "+1"),
    ("01", "01"),
    ("1.", "1."),
    ("1.500", "1.500"),
]


@pytest.mark.parametrize(("text", "expected"), CANONICAL)
def test_canonical_matches_kubernetes(text: str, expected: str) -> None:
    assert q.canonical(text) == expected


VALUES = [
    ("100m", Fraction(1, 10)),
    ("1Ki", 1024),
    ("7Mi", 7 * 2**20),
    ("5n", Fraction(5, 10**9)),
    ("1.5Gi", 1610612736),
    ("1e3", 1000),
    ("1.2e3", 1200),
    ("0.5e-1", Fraction(1, 20)),
    ("-3.01", Fraction(-301, 100)),
    ("0.0005k", Fraction(1, 2)),
    ("1.G", 10**9),
    ("-0", 0),
    (".", 0),
    ("-", 0),  # the scanner reads a bare sign as zero
    (" 2 ", 2),  # JSON decoding trims whitespace
    (2, 2),
    (0.25, Fraction(1, 4)),
    (1e-05, Fraction(1, 100000)),
]


@pytest.mark.parametrize(("text", "value"), VALUES)
def test_parse_value(text: str | int | float, value: Fraction | int) -> None:
    assert q.parse_quantity(text) == value


def test_formats() -> None:
    assert q.parse("1Mi").format == q.BINARY_SI
    assert q.parse("1M").format == q.DECIMAL_SI
    assert q.parse("1e6").format == q.DECIMAL_EXPONENT
    # Fractional binary values under one switch to DecimalSI, as Kubernetes does.
    assert q.parse("0.0001Ki").format == q.DECIMAL_SI


INVALID = ["", "aoeu", "1.1.M", "1+1.0M", "0.1mi", "0.1am", ".5i", "1i", "-3.01i", "-3.01e-", "1K",
           "1 Gi", "1e", "1ee3", "--1", "Gi1", "1e99999", None, True, [], {}]


@pytest.mark.parametrize("text", INVALID)
def test_invalid(text: object) -> None:
    with pytest.raises(ValueError):
        q.parse(text)  # type: ignore[arg-type]
    assert not q.is_valid_quantity(text)


def test_error_messages() -> None:
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        q.parse("1.1.M")
    with pytest.raises(ValueError, match="unable to parse quantity's suffix"):
        q.parse("1K")


def test_float_infinity_rejected() -> None:
    assert not q.is_valid_quantity(float("inf"))
    assert not q.is_valid_quantity(float("nan"))


def test_format_quantity() -> None:
    assert q.format_quantity(Fraction(3, 2)) == "1500m"
    assert q.format_quantity(1536 * 2**20, q.BINARY_SI) == "1536Mi"
    assert q.format_quantity(5, q.BINARY_SI) == "5"
    assert q.format_quantity(Fraction(1, 2), q.BINARY_SI) == "500m"
    assert q.format_quantity(1025, q.BINARY_SI) == "1025"
    assert q.format_quantity(1000, q.DECIMAL_EXPONENT) == "1e3"
    assert q.format_quantity(300 * 10**6, q.DECIMAL_EXPONENT) == "300e6"
    assert q.format_quantity(Fraction(8, 100), q.DECIMAL_EXPONENT) == "80e-3"
    assert q.format_quantity(1234567 * 10**6) == "1234567M"
    assert q.format_quantity(0, q.BINARY_SI) == "0"
    assert q.format_quantity(-2 * 2**30, q.BINARY_SI) == "-2Gi"
    assert q.format_quantity(2**70, q.BINARY_SI) == "1024Ei"
    # Not a finite decimal: rounded up to a nano-unit as the parser would have.
    assert q.format_quantity(Fraction(1, 3)) == "333333334n"


def test_resource_list_rounding() -> None:
    assert q.canonical_resource("0.30000000000000004") == "301m"
    assert q.canonical_resource("1n") == "1m"
    assert q.canonical_resource("1500u") == "2m"
    assert q.canonical_resource("-1500u") == "-2m"
    assert q.canonical_resource("100m") == "100m"
    assert q.canonical_resource("+100m") == "+100m"  # whole thousandths keep their text
    assert q.canonical_resource("1.5Gi") == "1536Mi"


def test_unit_helpers() -> None:
    assert q.cpu_millis("100m") == 100
    assert q.cpu_millis("1") == 1000
    assert q.cpu_millis("0.5") == 500
    assert q.cpu_millis("1n") == 1  # rounded up
    assert q.cpu_millis(2) == 2000
    assert q.to_bytes("1Ki") == 1024
    assert q.to_bytes("1.5Gi") == 1610612736
    assert q.to_bytes("500m") == 1
    assert q.to_bytes("129e6") == 129_000_000
    assert q.format_millicores(1500) == "1500m"
    assert q.format_millicores(2000) == "2"
    assert q.format_millicores(0) == "0"
    assert q.format_millicores(100) == "100m"


def test_arithmetic() -> None:
    assert q.add("1Gi", "512Mi") == "1536Mi"
    assert q.add("100m", "900m") == "1"
    assert q.add("0", "1Ki") == "1Ki"  # a zero receiver takes the operand's format
    assert q.add("1", "1Ki") == "1025"
    assert q.sub("1", "250m") == "750m"
    assert q.sub("1Gi", "1Gi") == "0"
    assert q.sub("1Gi", "2Gi") == "-1Gi"
    assert q.sub("0", "1") == "-1"
    assert q.compare("1Gi", "1024Mi") == 0
    assert q.compare("1G", "1Gi") == -1
    assert q.compare("1001m", "1") == 1
    assert q.compare(q.parse("2"), 1.5) == 1


def test_validate_quantity() -> None:
    assert q.validate_quantity("100m", "spec.x") == []
    errs = q.validate_quantity("-1", "spec.x", non_negative=True)
    assert [str(e) for e in errs] == ['spec.x: Invalid value: "-1": must be greater than or equal to 0']
    errs = q.validate_quantity("0", "spec.x", positive=True)
    assert [str(e) for e in errs] == ['spec.x: Invalid value: "0": must be greater than zero']
    errs = q.validate_quantity("abc", "spec.x")
    assert len(errs) == 1 and errs[0].type == "FieldValueInvalid"
    assert "quantities must match" in errs[0].detail


# --- properties ------------------------------------------------------------------------------

_SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
             "e0", "e3", "e-3", "E6", "e-9", "e+2", "e7", "e-12", "e20"]


@st.composite
def quantity_texts(draw: st.DrawFn) -> str:
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    whole = draw(st.from_regex(r"[0-9]{0,20}", fullmatch=True))
    frac = draw(st.one_of(st.none(), st.from_regex(r"[0-9]{0,12}", fullmatch=True)))
    if not whole and frac is None:
        whole = "1"
    number = whole + ("" if frac is None else "." + frac)
    return sign + number + draw(st.sampled_from(_SUFFIXES))


@given(quantity_texts())
def test_canonical_round_trips(text: str) -> None:
    first = q.parse(text)
    printed = q.canonical(text)
    again = q.parse(printed)
    assert again.value == first.value
    # Printing is a fixed point: the canonical text prints as itself.
    assert q.canonical(printed) == printed


@given(quantity_texts())
def test_value_is_exact_or_rounded_up_to_nano(text: str) -> None:
    value = q.parse_quantity(text)
    assert (value * 10**9).denominator == 1
    assert value.denominator < 10**10


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from([q.DECIMAL_SI, q.BINARY_SI, q.DECIMAL_EXPONENT]))
def test_format_then_parse_is_identity_for_millis(millis: int, fmt: str) -> None:
    value = Fraction(millis, 1000)
    assert q.parse_quantity(q.format_quantity(value, fmt)) == value


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**12))
def test_add_sub_inverse(a: int, b: int) -> None:
    x, y = q.format_millicores(a), q.format_millicores(b)
    assert q.cpu_millis(q.add(x, y)) == a + b
    assert q.parse_quantity(q.sub(q.add(x, y), y)) == Fraction(a, 1000)
