"""Kubernetes' CEL libraries that cel-expr-python lacks, as custom functions.

``k8s.io/apiserver/pkg/cel/library``: what is here is built on the project's own helpers (quantities
on :mod:`kybernetes.api.quantity`); what is not is listed in :mod:`kybernetes.cel`.

- **quantity** (``library.Quantity``): ``quantity(string)``, ``isQuantity(string)`` and the members
  ``isLessThan``, ``isGreaterThan``, ``compareTo``, ``add``/``sub`` (quantity or int),
  ``asInteger``, ``asApproximateFloat``, ``sign``, ``isInteger``. cel-expr-python cannot return an
  opaque Python value of an abstract type, so a quantity is a one-key map
  ``{"__kyb_quantity__": "<canonical>"}``: the functions are typed on that map, so type checking
  still refuses ``quantity('1').isLessThan(1)``.
- **lists** (``library.Lists``): ``isSorted``, ``sum``, ``min``, ``max``, ``indexOf`` and
  ``lastIndexOf`` on lists. The strings extension declares ``indexOf``/``lastIndexOf`` too, and
  cel-expr-python refuses a second declaration of a name among an environment's ``functions``;
  an extension's declarations are merged instead, so the list overloads come as an extension
  (:func:`kubernetes_extensions`). They are typed ``list(dyn).indexOf(dyn)``: cel-go's
  ``list(A).indexOf(A)`` needs a type parameter, which cel-expr-python's runtime cannot dispatch
  on, so ``[1].indexOf('a')`` compiles here (and is -1) where cel-go refuses it.
- **regex** (``library.Regex``): ``find`` and ``findAll`` (with an optional limit) on strings, with
  RE2 (google-re2) as cel-go has: linear time, so a pattern cannot stall the server.

A function that fails raises; cel-expr-python turns the exception into a CEL error value carrying
its message (``quantities must match the regular expression ...``), as cel-go's ``types.NewErr``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import cel_expr_python.cel as ce
import re2

from kybernetes.api import quantity as q

QUANTITY_KEY = "__kyb_quantity__"
_D = ce.Type.DYN
_S = ce.Type.STRING
_I = ce.Type.INT
_B = ce.Type.BOOL
_F = ce.Type.DOUBLE
_Q = ce.Type.Map(ce.Type.STRING, ce.Type.STRING)
_L = ce.Type.List(ce.Type.DYN)
_LS = ce.Type.List(ce.Type.STRING)


def _quantity(text: str) -> dict[str, str]:
    return {QUANTITY_KEY: str(q.parse(text))}


def _is_quantity(text: str) -> bool:
    return q.is_valid_quantity(text) and isinstance(text, str)


def _value(x: Any) -> Any:
    if isinstance(x, dict) and QUANTITY_KEY in x:
        return q.parse(x[QUANTITY_KEY]).value
    raise ValueError("no such overload")


def _arith(a: Any, b: Any, sign: int) -> dict[str, str]:
    other = b[QUANTITY_KEY] if isinstance(b, dict) else str(b)
    return {QUANTITY_KEY: q.add(a[QUANTITY_KEY], other) if sign > 0 else q.sub(a[QUANTITY_KEY], other)}


def _as_integer(a: Any) -> int:
    v = _value(a)
    if v.denominator != 1 or not -(2**63) <= v <= 2**63 - 1:
        raise ValueError("cannot convert value to integer")
    return int(v)


def member(oid: str, ret: Any, params: list[Any], impl: Callable[..., Any]) -> ce.Overload:
    """A method overload (``receiver.name(args)``), the receiver's type first in ``params``."""
    return ce.Overload(oid, ret, params, is_member=True, impl=impl)


def _quantity_functions(shared: dict[str, ce.Overload]) -> list[ce.FunctionDecl]:
    """``shared``: other libraries' overloads of the comparison names (one declaration per name)."""
    cmp = lambda a, b: (_value(a) > _value(b)) - (_value(a) < _value(b))  # noqa: E731
    extra = lambda name: [shared[name]] if name in shared else []  # noqa: E731
    return [
        ce.FunctionDecl("quantity", [ce.Overload("string_to_quantity", _Q, [_S], impl=_quantity)]),
        ce.FunctionDecl("isQuantity", [ce.Overload("is_quantity_string", _B, [_S], impl=_is_quantity)]),
        ce.FunctionDecl("isLessThan", [member("quantity_is_less_than", _B, [_Q, _Q],
                                               lambda a, b: cmp(a, b) < 0), *extra("isLessThan")]),
        ce.FunctionDecl("isGreaterThan", [member("quantity_is_greater_than", _B, [_Q, _Q],
                                                  lambda a, b: cmp(a, b) > 0), *extra("isGreaterThan")]),
        ce.FunctionDecl("compareTo", [member("quantity_compare_to", _I, [_Q, _Q], cmp), *extra("compareTo")]),
        ce.FunctionDecl("add", [
            member("quantity_add", _Q, [_Q, _Q], lambda a, b: _arith(a, b, 1)),
            member("quantity_add_int", _Q, [_Q, _I], lambda a, b: _arith(a, b, 1))]),
        ce.FunctionDecl("sub", [
            member("quantity_sub", _Q, [_Q, _Q], lambda a, b: _arith(a, b, -1)),
            member("quantity_sub_int", _Q, [_Q, _I], lambda a, b: _arith(a, b, -1))]),
        ce.FunctionDecl("asInteger", [member("quantity_as_integer", _I, [_Q], _as_integer)]),
        ce.FunctionDecl("asApproximateFloat", [member("quantity_as_float", _F, [_Q],
                                                       lambda a: float(_value(a)))]),
        ce.FunctionDecl("sign", [member("quantity_sign", _I, [_Q],
                                         lambda a: (_value(a) > 0) - (_value(a) < 0))]),
        ce.FunctionDecl("isInteger", [member("quantity_is_integer", _B, [_Q],
                                              lambda a: _value(a).denominator == 1)]),
    ]


def _comparable(xs: list[Any]) -> list[Any]:
    return [_value(x) if isinstance(x, dict) else x for x in xs]


def _extreme(xs: list[Any], pick: Callable[..., Any]) -> Any:
    if not xs:
        raise ValueError("min/max on empty list" if pick is min else "max of empty list")
    values = _comparable(xs)
    return xs[values.index(pick(values))]


def _list_functions() -> list[ce.FunctionDecl]:
    return [
        ce.FunctionDecl("isSorted", [member("list_is_sorted", _B, [_L],
                                             lambda xs: _comparable(xs) == sorted(_comparable(xs)))]),
        ce.FunctionDecl("sum", [member("list_sum", _D, [_L], lambda xs: sum(xs) if xs else 0)]),
        ce.FunctionDecl("min", [member("list_min", _D, [_L], lambda xs: _extreme(xs, min))]),
        ce.FunctionDecl("max", [member("list_max", _D, [_L], lambda xs: _extreme(xs, max))]),
    ]


def cel_equal(a: Any, b: Any) -> bool:
    """CEL's heterogeneous equality on plain values: numbers of any kind compare by value, a bool
    is never a number, lists and maps compare element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(cel_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(cel_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, (int, float)) != isinstance(b, (int, float)):
        return False
    return bool(a == b)


def _index_of(xs: list[Any], item: Any) -> int:
    return next((i for i, x in enumerate(xs) if cel_equal(x, item)), -1)


def _last_index_of(xs: list[Any], item: Any) -> int:
    return next((i for i in range(len(xs) - 1, -1, -1) if cel_equal(xs[i], item)), -1)


def kubernetes_extensions() -> list[ce.CelExtensionBase]:
    """Kubernetes' functions that share a name with a CEL extension's (the lists ``indexOf`` and
    ``lastIndexOf``), for an environment's ``extensions`` after the strings extension."""
    return [ce.CelExtension("kubernetes.lists.index", [
        ce.FunctionDecl("indexOf", [member("list_a_index_of_int", _I, [_L, _D], _index_of)]),
        ce.FunctionDecl("lastIndexOf", [member("list_a_last_index_of_int", _I, [_L, _D], _last_index_of)]),
    ])]


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    """RE2, as cel-go's regexes: linear time whatever the pattern, so no rule can backtrack forever."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as e:
        why = e.args[0] if e.args else ""
        raise ValueError(f"given regex is invalid: {why.decode() if isinstance(why, bytes) else why}")


def _find(s: str, pattern: str) -> str:
    m = _regex(pattern).search(s)
    return m.group(0) if m else ""


def _find_all(s: str, pattern: str, limit: int = -1) -> list[str]:
    found = [m.group(0) for m in _regex(pattern).finditer(s)]
    return found if limit < 0 else found[:limit]


def _regex_functions() -> list[ce.FunctionDecl]:
    return [
        ce.FunctionDecl("find", [member("string_find_string", _S, [_S, _S], _find)]),
        ce.FunctionDecl("findAll", [
            member("string_find_all_string", _LS, [_S, _S], _find_all),
            member("string_find_all_string_int", _LS, [_S, _S, _I], _find_all)]),
    ]


def kubernetes_functions(shared: dict[str, ce.Overload] | None = None) -> list[ce.FunctionDecl]:
    """Every function of the libraries above, for an environment's ``functions``; ``shared``:
    other libraries' overloads of ``isLessThan``, ``isGreaterThan``, ``compareTo``."""
    return _quantity_functions(shared or {}) + _list_functions() + _regex_functions()


__all__ = ["QUANTITY_KEY", "cel_equal", "kubernetes_extensions", "kubernetes_functions", "member"]
