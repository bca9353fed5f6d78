"""The abstract syntax tree of a compiled expression, read from cel-cpp's checked expression.

cel-expr-python gives no AST, but :meth:`Expression.serialize` gives the checked expression as
a ``google.protobuf.Any`` holding a ``cel.expr.CheckedExpr`` (macros already expanded into
comprehensions, as cel-go's checked AST). :func:`parse` decodes the protobuf wire format of the
parts of ``cel.expr.Expr`` an analysis needs (``syntax.proto``: constants, identifiers,
selections, calls, list and map literals, comprehensions) into :class:`Node` trees, without
generated protobuf classes (the ``cel.expr`` protos are not shipped with cel-expr-python).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    """One expression node: ``kind`` is const, ident, select, call, list, map or comprehension."""

    kind: str
    name: str = ""
    """An identifier's name, a selected field, a called function, a comprehension's iteration variable."""
    value: Any = None
    """A constant's value."""
    target: Node | None = None
    """A selection's operand, a method call's receiver."""
    args: list[Node] = field(default_factory=list)
    """A call's arguments, a list's elements, a map's keys and values (alternating)."""
    test_only: bool = False
    """A selection that is ``has(x.f)``."""
    loop: dict[str, Node] = field(default_factory=dict)
    """A comprehension's ``range``, ``init``, ``condition``, ``step`` and ``result``."""
    accu: str = ""
    """A comprehension's accumulator variable."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs: ints for varints and fixed fields, bytes for length-delimited ones."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _constant(buf: bytes) -> Any:
    for number, value in _fields(buf):
        if number == 1:
            return None
        if number == 2:
            return bool(value)
        if number in (3, 4):
            return value - (1 << 64) if number == 3 and value >= 1 << 63 else value
        if number == 5:
            return struct.unpack("<d", value)[0]
        if number == 6:
            return value.decode()
        if number == 7:
            return bytes(value)
    return None


def _expr(buf: bytes) -> Node:
    for number, value in _fields(buf):
        if number == 3:
            return Node("const", value=_constant(value))
        if number == 4:
            return Node("ident", name=next((v.decode() for n, v in _fields(value) if n == 1), ""))
        if number == 5:
            node = Node("select")
            for n, v in _fields(value):
                if n == 1:
                    node.target = _expr(v)
                elif n == 2:
                    node.name = v.decode()
                elif n == 3:
                    node.test_only = bool(v)
            return node
        if number == 6:
            node = Node("call")
            for n, v in _fields(value):
                if n == 1:
                    node.target = _expr(v)
                elif n == 2:
                    node.name = v.decode()
                elif n == 3:
                    node.args.append(_expr(v))
            return node
        if number == 7:
            return Node("list", args=[_expr(v) for n, v in _fields(value) if n == 1])
        if number == 8:
            node = Node("map")
            for n, v in _fields(value):
                if n == 2:
                    parts = dict(_fields(v))
                    key = _expr(parts[3]) if 3 in parts else Node("const", value=parts.get(2, b"").decode())
                    node.args += [key, _expr(parts[4]) if 4 in parts else Node("const")]
            return node
        if number == 9:
            node = Node("comprehension")
            names = {1: "name", 3: "accu"}
            parts = {2: "range", 4: "init", 5: "condition", 6: "step", 7: "result"}
            for n, v in _fields(value):
                if n in names:
                    setattr(node, names[n], v.decode())
                elif n in parts:
                    node.loop[parts[n]] = _expr(v)
            return node
    return Node("const")


def parse(serialized: bytes) -> Node:
    """The expression tree of :meth:`Expression.serialize`'s output (an Any of a CheckedExpr or ParsedExpr)."""
    any_fields = dict(_fields(serialized))
    checked = any_fields.get(2, serialized)
    expr = dict(_fields(checked)).get(4)
    if expr is None:
        raise ValueError("no expression in the serialized form")
    return _expr(expr)


__all__ = ["Node", "parse"]
