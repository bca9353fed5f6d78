"""Resource quantities (``resource.Quantity``) exactly as Kubernetes parses and prints them.

A quantity is a fixed-point number with a suffix: ``100m``, ``1.5Gi``, ``129e6``. Kubernetes keeps
three things about it, and so do we (:class:`Quantity`):

* the exact **value** - here a :class:`fractions.Fraction`, so no float ever rounds it;
* the **format** the suffix came in (``BinarySI`` for ``Ki``..``Ei``, ``DecimalSI`` for
  ``n u m "" k M G T P E``, ``DecimalExponent`` for ``e3``/``E-6``), which the printed form
  keeps: ``1024Mi`` prints as ``1Gi``, never ``1073741824``;
* sometimes the **original text**. Kubernetes' parser reuses the input string when a cheap test
  says it is already canonical (``123Mi``, ``129e6``, ``100m``), so the API server echoes those
  back byte for byte - including oddities such as ``+1`` or ``01`` that pass the test. We copy
  that test instead of "improving" on it, because clients compare what they sent with what they
  read back.

Parsing follows apimachinery's hand-written scanner rather than the regular expression its error
message quotes; the scanner is what the API server runs, and it is more lenient (``1.`` and
``.5`` are numbers, a bare ``-`` is zero). Values that are not a whole number of nano-units are
rounded *up* (away from zero) to the next nano-unit - "if you asked for some resource you get
some" - and ``BinarySI`` values are capped at 2^63-1, both only on the paths where Kubernetes
does it (they never apply to values that fit its fast int64 path, which are exact anyway).

Printing (:func:`format_quantity`) follows ``CanonicalizeBytes``: no fractional digits, the
largest suffix of the same family that keeps the mantissa an integer, decimal exponents in steps
of three, ``BinarySI`` values that are fractional or smaller than 1024 in magnitude printed as
``DecimalSI`` instead (``512`` stays ``512``, ``1.1Gi`` becomes ``1181116006400m``).

Values inside a core/v1 ``ResourceList`` are additionally rounded up to whole thousandths by the
API server (:func:`round_up_to_milli`, :func:`canonical_resource`).

Deliberate deviations, all at absurd magnitudes only: decimal exponents beyond ±10000 and
numbers of more than 4000 digits are refused (Python would build the huge integer; Go keeps a
scale), and binary values of 1024Ei or more print with an ``Ei`` mantissa instead of Go's
dropped suffix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from kybernetes.api.validation import FieldError, Path, invalid

DECIMAL_EXPONENT = "DecimalExponent"
BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"

# The messages apimachinery uses; callers put them in 400/422 answers.
_SPLIT_RE_TEXT = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG = f"quantities must match the regular expression '{_SPLIT_RE_TEXT}'"
ERR_SUFFIX = "unable to parse quantity's suffix"
ERR_NUMERIC = "unable to parse numeric part of quantity"

_MAX_INT64 = (1 << 63) - 1
_NANO = Fraction(1, 1_000_000_000)
# Beyond this the value would be a many-kilobyte integer; nothing real needs it (see docstring).
_MAX_ABS_EXPONENT = 10_000
# Python refuses str<->int conversions past 4300 digits; no quantity has that many.
_MAX_DIGITS = 4_000

_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}
_BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {0: "", 1: "Ki", 2: "Mi", 3: "Gi", 4: "Ti", 5: "Pi", 6: "Ei"}

# The scanner's shape: sign, integer digits, optional "." and fraction digits, then a suffix made
# of suffix letters, an optional sign and digits. Which suffixes are real is decided afterwards,
# so "1K" fails with the suffix error and "1.2.3" with the format error, as in Kubernetes.
_SCAN = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[-+]?[0-9]*)")
_STRICT_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, slots=True)
class Quantity:
    """A parsed quantity: exact ``value``, the suffix family ``format``, and the reused ``text``."""

    value: Fraction
    format: str = DECIMAL_SI
    text: str | None = None

    def __str__(self) -> str:
        return self.text if self.text is not None else format_quantity(self.value, self.format)

    @property
    def is_zero(self) -> bool:
        return self.value == 0


QuantityLike = str | int | float | Quantity


def _interpret_suffix(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix; ValueError if it is none Kubernetes knows."""
    exp = _DECIMAL_SUFFIXES.get(suffix)
    if exp is not None:
        return 10, exp, DECIMAL_SI
    exp = _BINARY_SUFFIXES.get(suffix)
    if exp is not None:
        return 2, exp, BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE" and _STRICT_INT.fullmatch(suffix[1:]):
        exp = int(suffix[1:])
        if abs(exp) > _MAX_ABS_EXPONENT:
            raise ValueError(ERR_NUMERIC)
        return 10, exp, DECIMAL_EXPONENT
    raise ValueError(ERR_SUFFIX)


def _round_up_to_nano(value: Fraction) -> Fraction:
    """Round away from zero to a whole number of nano-units (inf.RoundUp at scale 9)."""
    scaled = value / _NANO
    if scaled.denominator == 1:
        return value
    whole = math.ceil(abs(scaled))
    return Fraction(whole if value > 0 else -whole, 1_000_000_000)


@lru_cache(maxsize=8192)
def _parse_text(text: str) -> Quantity:
    # Cached: the same few strings ("100m", "128Mi") arrive on every pod, and Quantity is immutable.
    if not text:
        raise ValueError(ERR_FORMAT_WRONG)
    if text == "0":
        return Quantity(Fraction(0), DECIMAL_SI, "0")
    m = _SCAN.fullmatch(text)
    if m is None:
        raise ValueError(ERR_FORMAT_WRONG)
    sign, num, denom, suffix = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    negative = sign == "-"
    # The scanner drops leading zeros before measuring precision and testing canonical form.
    num = num.lstrip("0") or "0"
    base, exponent, fmt = _interpret_suffix(suffix)
    shifted = num + denom
    if len(shifted) > _MAX_DIGITS:
        raise ValueError(ERR_NUMERIC)
    digits = int(shifted)

    # Kubernetes' int64 fast path: exact, and the only path that may keep the input text.
    if fmt == BINARY_SI:
        fast = not denom and 14 - len(num) - exponent * 3 // 10 >= 0
        if fast:
            value = Fraction(-digits if negative else digits) * (1 << exponent)
            reuse = digits & 0x07 != 0
            return Quantity(value, fmt, text if reuse else None)
    else:
        scale = exponent - len(denom)
        if 18 - len(shifted) >= 0 and scale >= -9:
            signed = -digits if negative else digits
            value = Fraction(signed) * (Fraction(10) ** scale)
            reuse = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
            return Quantity(value, fmt, text if reuse else None)

    # The arbitrary-precision path: exact value, rounded up to nano, BinarySI capped at int64.
    magnitude = Fraction(digits, 10 ** len(denom))
    magnitude = magnitude * (Fraction(10) ** exponent if base == 10 else (1 << exponent))
    if magnitude != 0:
        magnitude = _round_up_to_nano(magnitude)
    if fmt == BINARY_SI:
        magnitude = min(magnitude, Fraction(_MAX_INT64))
        if 0 < magnitude < 1:
            fmt = DECIMAL_SI
    return Quantity(-magnitude if negative else magnitude, fmt)


def parse(value: QuantityLike) -> Quantity:
    """Parse a quantity as the API server decodes one from JSON; ValueError if it is invalid.

    Numbers are accepted because JSON may carry ``cpu: 2`` or ``cpu: 0.5``; surrounding
    whitespace is ignored as ``Quantity.UnmarshalJSON`` ignores it.
    """
    if type(value) is str:  # the common case first
        return _parse_text(value.strip())
    if isinstance(value, Quantity):
        return value
    if isinstance(value, bool):
        raise ValueError(ERR_FORMAT_WRONG)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(ERR_FORMAT_WRONG)
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(ERR_FORMAT_WRONG)
    return _parse_text(text)


def parse_quantity(value: QuantityLike) -> Fraction:
    """The exact value of a quantity (after Kubernetes' rounding); ValueError if invalid."""
    return parse(value).value


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with value == mantissa * 10**exponent, exponent a multiple of 3,
    and the exponent as large as possible - Kubernetes' AsCanonicalBytes."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        # Not a finite decimal (only reachable from callers' own Fractions): Kubernetes could
        # not hold it either, so round it up to nano as the parser would have.
        return _decimal_parts(_round_up_to_nano(value))
    k = max(twos, fives)
    mantissa = value.numerator * (10**k // value.denominator)
    exponent = -k
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3  # Python's % is a floor modulo: this moves down to a multiple of 3
    return mantissa * 10**shift, exponent - shift


def format_quantity(value: Fraction | int, fmt: str = DECIMAL_SI) -> str:
    """The canonical text of ``value`` in suffix family ``fmt`` (``CanonicalizeBytes``)."""
    value = Fraction(value)
    if value == 0:
        return "0"
    if fmt == BINARY_SI:
        if -1024 < value < 1024 or value.denominator != 1:
            fmt = DECIMAL_SI  # small or fractional binary values would otherwise lose digits
        else:
            mantissa = value.numerator
            power = 0
            while abs(mantissa) >= 1024 and mantissa % 1024 == 0:
                mantissa //= 1024
                power += 1
            if power > 6:
                mantissa *= 1024 ** (power - 6)
                power = 6
            return f"{mantissa}{_BINARY_BY_POWER[power]}"
    elif fmt != DECIMAL_SI:
        fmt = DECIMAL_EXPONENT
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_SI:
        suffix = _DECIMAL_BY_EXPONENT.get(exponent)
        if suffix is not None:
            return f"{mantissa}{suffix}"
        # No SI letter past E (or below n): Kubernetes falls back to exponent notation.
    return f"{mantissa}e{exponent}" if exponent else str(mantissa)


def canonical(value: QuantityLike) -> str:
    """What the API server serializes for this input (``ParseQuantity(s).String()``).

    ``1000m`` -> ``1``, ``0.5`` -> ``500m``, ``1.5Gi`` -> ``1536Mi``, ``1024Mi`` -> ``1Gi``;
    already-canonical inputs (``129e6``, ``123Mi``) are returned unchanged.
    """
    if isinstance(value, str):
        return _canonical_text(value.strip())
    return str(parse(value))


@lru_cache(maxsize=8192)
def _canonical_text(text: str) -> str:
    # Printing costs more than parsing; the API server canonicalizes the same strings all day.
    return str(_parse_text(text))


def round_up_to_milli(q: Quantity) -> Quantity:
    """``Quantity.RoundUp(-3)``: whole thousandths, rounding away from zero.

    The API server applies it to every value of a core/v1 ``ResourceList`` (container requests
    and limits, node capacity, quotas, limit ranges) while decoding, so ``1n`` of CPU becomes
    ``1m``. A value that is already whole thousandths keeps its text.
    """
    scaled = q.value * 1000
    if scaled.denominator == 1:
        return q
    return Quantity(Fraction(_away_from_zero(scaled), 1000), q.format)


def canonical_resource(value: QuantityLike) -> str:
    """:func:`canonical` for a value inside a ``ResourceList``: ``0.30000000000000004`` -> ``301m``."""
    return str(round_up_to_milli(parse(value)))


def is_valid_quantity(value: Any) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def validate_quantity(
    value: Any,
    path: Path | str,
    *,
    non_negative: bool = False,
    positive: bool = False,
) -> list[FieldError]:
    """Field errors for one quantity field (``ValidateNonnegativeQuantity`` and friends)."""
    try:
        q = parse(value)
    except ValueError as e:
        return [invalid(path, value, str(e))]
    if non_negative and q.value < 0:
        return [invalid(path, str(q), "must be greater than or equal to 0")]
    if positive and q.value <= 0:
        return [invalid(path, str(q), "must be greater than zero")]
    return []


# --- arithmetic and unit helpers -------------------------------------------------------------


def _away_from_zero(value: Fraction) -> int:
    """Round to an integer away from zero, as Quantity.Value/MilliValue do."""
    if value.denominator == 1:
        return value.numerator
    return math.ceil(value) if value > 0 else math.floor(value)


def cpu_millis(value: QuantityLike) -> int:
    """The quantity in thousandths, rounded up (``MilliValue``): ``"0.1"`` -> 100, ``"1"`` -> 1000."""
    return _away_from_zero(parse(value).value * 1000)


def to_bytes(value: QuantityLike) -> int:
    """The quantity as a whole number, rounded up (``Value``): ``"1Ki"`` -> 1024."""
    return _away_from_zero(parse(value).value)


def compare(a: QuantityLike, b: QuantityLike) -> int:
    """-1, 0 or 1 as ``a`` is less than, equal to or greater than ``b``."""
    x, y = parse(a).value, parse(b).value
    return (x > y) - (x < y)


def _combine(a: QuantityLike, b: QuantityLike, sign: int) -> str:
    qa, qb = parse(a), parse(b)
    # Quantity.Add/Sub keep the receiver's format unless it is zero, then take the operand's.
    fmt = qb.format if qa.value == 0 else qa.format
    return format_quantity(qa.value + sign * qb.value, fmt)


def add(a: QuantityLike, b: QuantityLike) -> str:
    """``a + b`` in canonical form: ``add("1Gi", "512Mi")`` -> ``"1536Mi"``."""
    return _combine(a, b, 1)


def sub(a: QuantityLike, b: QuantityLike) -> str:
    """``a - b`` in canonical form: ``sub("1", "250m")`` -> ``"750m"``."""
    return _combine(a, b, -1)


def format_millicores(millis: int) -> str:
    """A CPU amount in thousandths as Kubernetes prints it: 1500 -> ``1500m``, 2000 -> ``2``."""
    return format_quantity(Fraction(millis, 1000), DECIMAL_SI)


__all__ = [
    "BINARY_SI",
    "DECIMAL_EXPONENT",
    "DECIMAL_SI",
    "ERR_FORMAT_WRONG",
    "ERR_NUMERIC",
    "ERR_SUFFIX",
    "Quantity",
    "QuantityLike",
    "add",
    "canonical",
    "canonical_resource",
    "compare",
    "cpu_millis",
    "format_millicores",
    "format_quantity",
    "is_valid_quantity",
    "parse",
    "parse_quantity",
    "round_up_to_milli",
    "sub",
    "to_bytes",
    "validate_quantity",
]
