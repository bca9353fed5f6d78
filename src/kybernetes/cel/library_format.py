"""Kubernetes' format and semver CEL libraries (``k8s.io/apiserver/pkg/cel/library``:
``format.go``, ``semverlib.go``), as custom functions.

- **format**: ``format.dns1123Label()``, ``dns1123Subdomain``, ``dns1035Label``, ``qualifiedName``,
  ``dns1123LabelPrefix``, ``dns1123SubdomainPrefix``, ``dns1035LabelPrefix``, ``labelValue``,
  ``uri``, ``uuid``, ``byte``, ``date``, ``datetime`` (each ``format.<name>()``), ``format.named(name)``
  (an optional: none for an unknown name), and ``<format>.validate(string)``: ``optional.none()``
  if the string is valid, else an optional of the list of Kubernetes' messages. The checks are the
  project's own (:mod:`kybernetes.api.validation`, strfmt's in :mod:`kybernetes.api.structural.values`).
- **semver**: ``semver(string)`` and ``semver(string, normalize)``, ``isSemver`` likewise, and the
  members ``major``, ``minor``, ``patch``, ``compareTo``, ``isGreaterThan``, ``isLessThan``
  (blang/semver's parsing and ordering; normalize drops a leading ``v``, fills a missing minor and
  patch with 0 and drops leading zeros, as Kubernetes' ``normalizeAndParse``).

Values: a format is ``{true: "<name>"}`` and a version ``[{0: "<version>"}]``, of types no other
library uses, so that the checker tells them from each other and from quantities
(``semver('1.0.0').isLessThan(quantity('1'))`` does not compile); the checker prints those types
where cel-go prints ``kubernetes.NamedFormat`` or ``kubernetes.Semver``. A version is a list, not
a map: cel-expr-python's runtime dispatches overloads on the kind of value only (map, list...),
so the quantity's ``isLessThan(map, map)`` leaves no room for a second overload on maps.

Optionals: a cel-expr-python function cannot return an optional (its optional types are not
declarable from Python: the checker sees an opaque type of that name, and the runtime cannot build
one). So ``validate`` and ``format.named`` are declared to return a list of at most one element,
and :func:`rewrite` turns each call into an optional index of that list, ``call(...)[?0]``, which
is CEL's own ``optional.none()`` when the list is empty and ``optional.of(element)`` otherwise:
the expression's type and value are exactly Kubernetes'. Columns in compile errors are mapped
back to the text as written (:func:`remap_issues`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import cel_expr_python.cel as ce

from kybernetes.api import validation as v
from kybernetes.api.structural.values import format_ok
from kybernetes.cel.library import member

_S, _B, _I = ce.Type.STRING, ce.Type.BOOL, ce.Type.INT
FORMAT = ce.Type.Map(ce.Type.BOOL, ce.Type.STRING)
SEMVER = ce.Type.List(ce.Type.Map(ce.Type.INT, ce.Type.STRING))


# --- format ------------------------------------------------------------------------------------


def _mask_trailing_dash(name: str) -> str:
    """apimachinery's maskTrailingDash: a prefix may end with '-' (a name is generated after it)."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def _request_uri(s: str) -> list[str]:
    """Go's url.ParseRequestURI: an absolute URI or an absolute path."""
    parts = urlsplit(s) if s else None
    if parts is None or not ((parts.scheme and (parts.netloc or parts.path)) or s.startswith("/")):
        return [f'parse "{s}": invalid URI for request']
    return []


def _strfmt(name: str, message: str) -> Callable[[str], list[str]]:
    return lambda s: [] if format_ok(name, s) else [message]


FORMATS: dict[str, Callable[[str], list[str]]] = {
    "dns1123Label": v.is_dns1123_label,
    "dns1123Subdomain": v.is_dns1123_subdomain,
    "dns1035Label": v.is_dns1035_label,
    "qualifiedName": v.is_qualified_name,
    "dns1123LabelPrefix": lambda s: v.is_dns1123_label(_mask_trailing_dash(s)),
    "dns1123SubdomainPrefix": lambda s: v.is_dns1123_subdomain(_mask_trailing_dash(s)),
    "dns1035LabelPrefix": lambda s: v.is_dns1035_label(_mask_trailing_dash(s)),
    "labelValue": v.is_label_value,
    "uri": _request_uri,
    "uuid": _strfmt("uuid", "does not match the UUID format"),
    "byte": _strfmt("byte", "invalid base64"),
    "date": _strfmt("date", "invalid date"),
    "datetime": _strfmt("date-time", "invalid datetime"),
}


def _validate(f: Any, s: str) -> list[list[str]]:
    if not isinstance(f, dict) or set(f) != {True} or f[True] not in FORMATS:
        raise ValueError("no such overload")
    errors = FORMATS[f[True]](s)
    return [errors] if errors else []


def _format_functions() -> list[ce.FunctionDecl]:
    constants = [ce.FunctionDecl(f"format.{name}", [ce.Overload(f"format_{name}", FORMAT, [],
                                                                impl=lambda n=name: {True: n})])
                 for name in FORMATS]
    return [*constants,
            ce.FunctionDecl("format.named", [ce.Overload("format_named", ce.Type.List(FORMAT), [_S],
                                                         impl=lambda n: [{True: n}] if n in FORMATS else [])]),
            ce.FunctionDecl("validate", [member("format_validate", ce.Type.List(ce.Type.List(_S)), [FORMAT, _S],
                                                _validate)])]


# --- semver ------------------------------------------------------------------------------------

_NUMERIC = re.compile(r"^[0-9]+$")
_IDENT = re.compile(r"^[0-9A-Za-z-]+$")


@lru_cache(maxsize=256)
def parse_semver(s: str) -> tuple[int, int, int, tuple[str, ...], tuple[str, ...]]:
    """blang/semver's Parse: (major, minor, patch, pre-release parts, build parts); ValueError in its words."""
    if not s:
        raise ValueError("Version string empty")
    core, _, build = s.partition("+")
    core, dash, pre = core.partition("-")
    parts = core.split(".")
    if len(parts) != 3:
        raise ValueError("No Major.Minor.Patch elements found")
    numbers = []
    for label, p in zip(("Major", "Minor", "Patch"), parts, strict=True):
        if not _NUMERIC.match(p):
            raise ValueError(f"Invalid character(s) found in {label.lower()} number {p!r}".replace("'", '"'))
        if len(p) > 1 and p.startswith("0"):
            raise ValueError(f'{label} number must not contain leading zeroes "{p}"')
        numbers.append(int(p))
    pres = tuple(pre.split(".")) if dash else ()
    for p in pres:
        if not p:
            raise ValueError("Prerelease is empty")
        if not _IDENT.match(p):
            raise ValueError(f'Invalid character(s) found in prerelease "{p}"')
        if _NUMERIC.match(p) and len(p) > 1 and p.startswith("0"):
            raise ValueError(f'Numeric PreRelease version must not contain leading zeroes "{p}"')
    builds = tuple(build.split(".")) if "+" in s else ()
    for b in builds:
        if not b:
            raise ValueError("Build meta data is empty")
        if not _IDENT.match(b):
            raise ValueError(f'Invalid character(s) found in build meta data "{b}"')
    return numbers[0], numbers[1], numbers[2], pres, builds


def normalize_semver(s: str) -> str:
    """Kubernetes' normalizeAndParse before parsing: no leading ``v``, no leading zeros, 0 for a
    missing minor or patch (a short version with pre-release or build data is an error)."""
    s = s.removeprefix("v")
    parts = s.split(".", 2)
    for i, p in enumerate(parts):
        if len(p) > 1:
            p = p.lstrip("0")
            if not p or not p[0].isdigit():
                p = "0" + p
            parts[i] = p
    if len(parts) < 3:
        if any(c in parts[-1] for c in "+-"):
            raise ValueError("short version cannot contain PreRelease/Build meta data")
        parts += ["0"] * (3 - len(parts))
    return ".".join(parts)


def _semver(s: str, normalize: bool = False) -> list[dict[int, str]]:
    text = normalize_semver(s) if normalize else s
    parse_semver(text)
    return [{0: text}]


def _is_semver(s: str, normalize: bool = False) -> bool:
    try:
        _semver(s, normalize)
    except ValueError:
        return False
    return True


def _version(x: Any) -> tuple[int, int, int, tuple[str, ...], tuple[str, ...]]:
    if isinstance(x, list) and len(x) == 1 and isinstance(x[0], dict) and set(x[0]) == {0}:
        return parse_semver(x[0][0])
    raise ValueError("no such overload")


def _pre_key(part: str) -> tuple[int, int, str]:
    return (0, int(part), "") if _NUMERIC.match(part) else (1, 0, part)


def compare_semver(a: Any, b: Any) -> int:
    """blang/semver's Compare: by numbers, then a release above its pre-releases, then the
    pre-release parts (numeric below alphanumeric; a longer list above its prefix); build ignored."""
    x, y = _version(a), _version(b)
    if x[:3] != y[:3]:
        return -1 if x[:3] < y[:3] else 1
    if not x[3] or not y[3]:
        return (not x[3]) - (not y[3])
    kx, ky = [_pre_key(p) for p in x[3]], [_pre_key(p) for p in y[3]]
    return (kx > ky) - (kx < ky)


def semver_functions() -> list[ce.FunctionDecl]:
    """semver's functions but its comparisons, whose names quantities share (:func:`semver_comparisons`)."""
    return [
        ce.FunctionDecl("semver", [ce.Overload("string_to_semver", SEMVER, [_S], impl=_semver),
                                   ce.Overload("string_bool_to_semver", SEMVER, [_S, _B], impl=_semver)]),
        ce.FunctionDecl("isSemver", [ce.Overload("is_semver_string", _B, [_S], impl=_is_semver),
                                     ce.Overload("is_semver_string_bool", _B, [_S, _B], impl=_is_semver)]),
        ce.FunctionDecl("major", [member("semver_major", _I, [SEMVER], lambda x: _version(x)[0])]),
        ce.FunctionDecl("minor", [member("semver_minor", _I, [SEMVER], lambda x: _version(x)[1])]),
        ce.FunctionDecl("patch", [member("semver_patch", _I, [SEMVER], lambda x: _version(x)[2])]),
    ]


def semver_comparisons() -> dict[str, ce.Overload]:
    """The overloads of ``isLessThan``, ``isGreaterThan`` and ``compareTo`` on versions, to declare
    with the quantity overloads of the same names (one declaration per name)."""
    return {
        "isLessThan": member("semver_is_less_than", _B, [SEMVER, SEMVER], lambda a, b: compare_semver(a, b) < 0),
        "isGreaterThan": member("semver_is_greater_than", _B, [SEMVER, SEMVER],
                                lambda a, b: compare_semver(a, b) > 0),
        "compareTo": member("semver_compare_to", _I, [SEMVER, SEMVER], compare_semver),
    }


def format_functions() -> list[ce.FunctionDecl]:
    return _format_functions()


# --- the optional rewrite ----------------------------------------------------------------------

_OPTIONAL_CALL = re.compile(r"(?<![A-Za-z0-9_.])format\s*\.\s*named\s*\(|\.\s*validate\s*\(")
_QUOTE = re.compile(r"[rRbB]{0,2}('''|\"\"\"|'|\")")


def _skip_string(text: str, i: int) -> int:
    """The index after the string literal starting at ``i`` (prefixes r/b, single or triple quotes)."""
    m = _QUOTE.match(text, i)
    assert m is not None
    quote, raw = m.group(1), "r" in m.group(0).lower()[: m.start(1) - i]
    j = m.end()
    while j < len(text):
        if not raw and text[j] == "\\":
            j += 2
            continue
        if text.startswith(quote, j):
            return j + len(quote)
        j += 1
    return len(text)


def _closing_paren(text: str, i: int) -> int:
    """The index of the ``)`` closing the call whose ``(`` is just before ``i``; -1 if none."""
    depth = 1
    while i < len(text):
        c = text[i]
        if c in "'\"" or (c in "rRbB" and _QUOTE.match(text, i) and (i == 0 or not (text[i - 1].isalnum()
                                                                                    or text[i - 1] == "_"))):
            i = _skip_string(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _string_spans(text: str) -> list[tuple[int, int]]:
    spans, i = [], 0
    while i < len(text):
        c = text[i]
        if c in "'\"" or (c in "rRbB" and _QUOTE.match(text, i) and (i == 0 or not (text[i - 1].isalnum()
                                                                                    or text[i - 1] == "_"))):
            end = _skip_string(text, i)
            spans.append((i, end))
            i = end
            continue
        i += 1
    return spans


def rewrite(source: str) -> tuple[str, tuple[int, ...]]:
    """``source`` with ``[?0]`` after every ``format.named(...)`` and ``<x>.validate(...)`` call
    (outside string literals), and where (in ``source``) each was inserted."""
    if "validate" not in source and "named" not in source:
        return source, ()
    spans = _string_spans(source)
    at: list[int] = []
    for m in _OPTIONAL_CALL.finditer(source):
        if any(a <= m.start() < b for a, b in spans):
            continue
        end = _closing_paren(source, m.end())
        if end >= 0:
            at.append(end + 1)
    out, last = [], 0
    for pos in sorted(at):
        out.append(source[last:pos] + "[?0]")
        last = pos
    out.append(source[last:])
    return "".join(out), tuple(sorted(at))


_ISSUE = re.compile(r"^ERROR: <input>:(\d+):(\d+): ")


def remap_issues(issues: str, source: str, inserted: tuple[int, ...]) -> str:
    """cel-cpp's issue text about the rewritten source, with its positions and the quoted source
    line put back on ``source`` as written."""
    if not inserted:
        return issues
    lines = source.split("\n")
    starts = [0]
    for text in lines[:-1]:
        starts.append(starts[-1] + len(text) + 1)
    out: list[str] = []
    snippet = line = col = 0
    for text in issues.split("\n"):
        m = _ISSUE.match(text)
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            # The offset in the rewritten text, back to the original: undo the insertions before it.
            rewritten = starts[line - 1] + sum(4 for p in inserted if p < starts[line - 1]) + col - 1
            original = rewritten - 4 * sum(1 for k, p in enumerate(inserted) if p + 4 * k < rewritten)
            line = next(i for i in range(len(starts), 0, -1) if starts[i - 1] <= original)
            col = original - starts[line - 1] + 1
            out.append(f"ERROR: <input>:{line}:{col}: " + text[m.end():])
            snippet = 2
            continue
        if snippet == 2 and text.startswith(" | "):
            out.append(" | " + lines[line - 1])
            snippet = 1
            continue
        if snippet == 1 and text.startswith(" | "):
            out.append(" | " + "." * (col - 1) + "^")
            snippet = 0
            continue
        out.append(text)
    return "\n".join(out)


__all__ = ["FORMAT", "FORMATS", "SEMVER", "compare_semver", "format_functions", "normalize_semver", "parse_semver",
           "remap_issues", "rewrite", "semver_comparisons", "semver_functions"]
