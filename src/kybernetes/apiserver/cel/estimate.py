"""Static cost estimates of CRD validation rules, from the schema's bounds, as apiextensions
checks them when a CRD is written (``estimated rule cost exceeds budget by factor of ...``).

cel-go estimates an expression's worst-case cost from its checked AST and the largest sizes the
schema allows; Kubernetes multiplies it by how many times the rule may run for one object (its
node's *cardinality*: the product of ``maxItems``/``maxProperties`` of the lists and maps above it)
and refuses a rule over :data:`~.cost.STATIC_ESTIMATED_COST_LIMIT` and a schema whose rules
together exceed :data:`~.cost.STATIC_ESTIMATED_CRD_COST_LIMIT`. Here the same, on the AST of
:mod:`kybernetes.cel.ast`, with cel-go's costs for what rules commonly do: 1 per identifier,
selection and call, 0 per constant, 10 per list literal, 30 per map literal; a comprehension
(``all``, ``exists``, ``exists_one``, ``map``, ``filter``) costs its range, its initial value and
its result plus, per element of the range, its condition and step; string functions (``contains``,
``startsWith``, ``matches``, ``lowerAscii``, ``split``...) and equality traverse their strings at
0.1 per character (``matches`` times 0.25 per character of the pattern); list functions
(``isSorted``, ``sum``, ``in``...) their lists. Sizes come from ``maxLength``, ``maxItems`` and
``maxProperties``, else from the largest request (3 MiB) as Kubernetes estimates them: a string
up to 3 MiB - 2 characters (less for date, date-time and duration formats), a list up to
(3 MiB - 2) / (its item's smallest JSON + 1) items. Functions this does not model cost 1 plus their
arguments. Each choice errs low where cel-go's exact figure was not at hand (``contains`` traverses
only its receiver; ``join`` yields as many characters as its list has items), so that a CRD
Kubernetes accepts is not refused here; one it refuses only for a cost a little over the limit
may be accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.cel import cost
from kybernetes.apiserver.cel.env import Program
from kybernetes.apiserver.transport.requests import MAX_BODY
from kybernetes.cel.ast import Node, parse

MAX_REQUEST_SIZE_BYTES = MAX_BODY
"""celconfig.MaxRequestSizeBytes: the largest object a rule can see bounds what the schema leaves open."""
_STRING_TRAVERSAL = 0.1
_REGEX_LENGTH = 0.25
_FORMAT_LENGTHS = {"date": 12, "date-time": 64, "duration": 32}
_ROOT_METADATA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 253},
                                                   "generateName": {"type": "string", "maxLength": 253}}}
_STRING_FUNCTIONS = frozenset({"contains", "startsWith", "endsWith", "lowerAscii", "upperAscii", "trim", "replace",
                               "split", "substring", "indexOf", "lastIndexOf", "charAt", "find", "findAll",
                               "reverse", "quote", "validate", "isSemver", "semver", "url", "isURL", "ip", "isIP",
                               "cidr", "isCIDR", "quantity", "isQuantity"})
_LIST_FUNCTIONS = frozenset({"isSorted", "sum", "min", "max", "indexOf", "lastIndexOf", "join", "@in"})
"""Functions that traverse a list (or, for ``in``, a map's keys): cost 1 per element."""


def min_json_size(schema: Any) -> int:
    """The fewest bytes a value of this schema takes in JSON (``""``, ``0``, ``true``, ``[]``, ``{}``
    with its required properties)."""
    if not isinstance(schema, dict):
        return 1
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string") or t in ("integer", "number"):
        return 1
    if t == "boolean":
        return 4
    if t in ("string", "array"):
        return 2
    if t == "object":  # required properties without a default (the server fills those in), each "k":v,
        props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        required = [k for k in schema.get("required") or () if isinstance(k, str) and isinstance(props.get(k), dict)
                    and "default" not in props[k]]
        return 2 + sum(len(k) + 4 + min_json_size(props[k]) for k in required)
    return 1


def max_size(schema: Any) -> int:
    """The most characters (string), items (list) or properties (map) a value of this schema has."""
    if not isinstance(schema, dict):
        return MAX_REQUEST_SIZE_BYTES - 2
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return MAX_REQUEST_SIZE_BYTES - 2
    if t == "string":
        if isinstance(schema.get("maxLength"), int):
            return int(schema["maxLength"])
        enum = schema.get("enum")
        if isinstance(enum, list) and enum and all(isinstance(x, str) for x in enum):
            return max(len(x) for x in enum)
        return _FORMAT_LENGTHS.get(str(schema.get("format")), MAX_REQUEST_SIZE_BYTES - 2)
    if t == "array":
        if isinstance(schema.get("maxItems"), int):
            return int(schema["maxItems"])
        return (MAX_REQUEST_SIZE_BYTES - 2) // (min_json_size(schema.get("items")) + 1)
    if t == "object" and (isinstance(schema.get("additionalProperties"), dict)
                          or schema.get("x-kubernetes-preserve-unknown-fields")):
        if isinstance(schema.get("maxProperties"), int):
            return int(schema["maxProperties"])
        return (MAX_REQUEST_SIZE_BYTES - 2) // (min_json_size(schema.get("additionalProperties")) + 6)
    return 1


def element_schema(schema: Any) -> Any:
    """The schema of what iterating a value of ``schema`` yields (list items, map keys)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "array":
        return schema.get("items")
    if schema.get("type") == "object":
        return {"type": "string"}  # map keys: property names (bounded only by the request)
    return None


def child_schema(schema: Any, name: str, *, root: bool = False) -> Any:
    if not isinstance(schema, dict):
        return None
    if root and name == "metadata":
        return _ROOT_METADATA
    props = schema.get("properties")
    if isinstance(props, dict) and name in props:
        return props[name]
    return schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None


@dataclass(frozen=True)
class _Est:
    cost: int
    size: int = 1
    """For a string, list or map: the most characters, items or entries it may have."""
    kind: str = ""
    """string, list, map, or "" (a scalar, or not known)."""
    schema: Any = None
    """The schema of the value, where known (selections from ``self``, iteration variables)."""


def _of_schema(cost_so_far: int, schema: Any) -> _Est:
    kind = _kind(schema)
    return _Est(cost_so_far, max_size(schema) if kind else 1, kind, schema)


def _kind(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    t = schema.get("type")
    if t == "string" or schema.get("x-kubernetes-int-or-string"):
        return "string"
    if t == "array":
        return "list"
    if t == "object" and (isinstance(schema.get("additionalProperties"), dict)
                          or schema.get("x-kubernetes-preserve-unknown-fields")):
        return "map"
    return ""


_RETURNS_STRING = frozenset({"lowerAscii", "upperAscii", "trim", "replace", "substring", "charAt", "find", "reverse",
                             "quote", "join", "format"})
_RETURNS_LIST = frozenset({"split", "findAll"})


class _Estimator:
    def __init__(self, schema: Any, root: bool) -> None:
        self.scope: dict[str, Any] = {"self": schema, "oldSelf": schema, "__kybOld": schema}
        self.root = root

    def visit(self, n: Node) -> _Est:
        method = getattr(self, "_" + n.kind)
        result: _Est = method(n)
        return result

    def _const(self, n: Node) -> _Est:
        if isinstance(n.value, (str, bytes)):
            return _Est(0, len(n.value), "string")
        return _Est(0)

    def _ident(self, n: Node) -> _Est:
        return _of_schema(1, self.scope.get(n.name))

    def _select(self, n: Node) -> _Est:
        operand = self.visit(n.target) if n.target is not None else _Est(0)
        if n.test_only:
            return _Est(operand.cost + 1)
        root = self.root and n.target is not None and n.target.kind == "ident" and n.target.name in self.scope
        return _of_schema(operand.cost + 1, child_schema(operand.schema, n.name, root=root))

    def _list(self, n: Node) -> _Est:
        items = [self.visit(x) for x in n.args]
        return _Est(10 + sum(x.cost for x in items), len(items), "list")

    def _map(self, n: Node) -> _Est:
        entries = [self.visit(x) for x in n.args]
        return _Est(30 + sum(x.cost for x in entries), len(entries) // 2, "map")

    def _comprehension(self, n: Node) -> _Est:
        rng = self.visit(n.loop["range"])
        init = self.visit(n.loop["init"])
        saved = {k: self.scope.get(k) for k in (n.name, n.accu)}
        size = rng.size if rng.kind else 1
        self.scope[n.name] = element_schema(rng.schema)
        # The accumulator: a bool or count (all, exists...), or a list of at most one item per element (map, filter).
        self.scope[n.accu] = {"type": "array", "maxItems": size}
        try:
            per_item = self.visit(n.loop["condition"]).cost + self.visit(n.loop["step"]).cost
            result = self.visit(n.loop["result"])
        finally:
            for k, v in saved.items():
                if v is None:
                    self.scope.pop(k, None)
                else:
                    self.scope[k] = v
        return _Est(rng.cost + init.cost + size * per_item + result.cost, result.size, result.kind)

    def _call(self, n: Node) -> _Est:
        target = self.visit(n.target) if n.target is not None else None
        args = [self.visit(a) for a in n.args]
        spent = sum(a.cost for a in args) + (target.cost if target is not None else 0)
        name = n.name
        if name in ("_&&_", "_||_"):
            return _Est(spent)
        if name == "_?_:_":
            pick = max(args[1:], key=lambda a: a.cost)
            return _Est(args[0].cost + pick.cost, max(args[1].size, args[2].size), pick.kind, pick.schema)
        if name == "_[_]":
            container = args[0].schema
            item = container.get("items") if _kind(container) == "list" else child_schema(container, "")
            return _of_schema(spent + 1, item)
        receiver = target if target is not None else (args[0] if args else _Est(0))
        if name in ("_==_", "_!=_") and len(args) == 2 and args[0].kind and args[1].kind:
            return _Est(spent + 1 + _traverse(min(args[0].size, args[1].size)))
        if name == "_+_" and len(args) == 2 and "string" in (args[0].kind, args[1].kind):
            return _Est(spent + 1 + _traverse(args[0].size + args[1].size), args[0].size + args[1].size, "string")
        if name == "_+_" and len(args) == 2 and "list" in (args[0].kind, args[1].kind):
            return _Est(spent + 1, args[0].size + args[1].size, "list")  # cel-go appends lists at constant cost
        if name == "matches":
            pattern = args[-1].size if args else 1
            return _Est(spent + 1 + _traverse(receiver.size) * math.ceil(_REGEX_LENGTH * pattern))
        if name in _LIST_FUNCTIONS and (args[1] if name == "@in" else receiver).kind in ("list", "map"):
            container = args[1] if name == "@in" else receiver
            return _Est(spent + 1 + container.size, receiver.size if name == "join" else 1,
                        "string" if name == "join" else "")
        if name in _STRING_FUNCTIONS and receiver.kind == "string":
            kind = "string" if name in _RETURNS_STRING else "list" if name in _RETURNS_LIST else ""
            return _Est(spent + 1 + _traverse(receiver.size), receiver.size if kind else 1, kind)
        if name.startswith("sets.") and len(args) == 2:
            return _Est(spent + 1 + args[0].size * args[1].size)
        if name == "size":
            return _Est(spent + 1)
        return _Est(spent + 1)


def _is_list(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "array"


def _traverse(size: int) -> int:
    return math.ceil(_STRING_TRAVERSAL * size)


def expression_cost(program: Program, schema: Any, *, root: bool = False) -> int:
    """The worst-case cost of one evaluation of ``program`` with ``self`` at a node of ``schema``
    (``root``: the schema's root, where ``metadata`` is Kubernetes' own)."""
    return _Estimator(schema, root).visit(parse(program.expression.serialize())).cost


def cost_error_message(cost_name: str, cost: int, limit: int) -> str:
    """apiextensions' getCostErrorMessage."""
    factor = cost / limit
    if factor > 100.0:
        text = "more than 100x"
    elif factor < 1.5:
        text = f"{factor:f}x"
    else:
        text = f"{factor:.1f}x"
    return (f"{cost_name} exceeds budget by factor of {text} (try simplifying the rule, or adding maxItems, "
            "maxProperties, and maxLength where arrays, maps, and strings are declared)")


class TotalCost:
    """apiextensions' TotalCost: the estimated costs of all rules of one schema, and the (at most
    four) most expensive of those costing at least 1% of the schema's limit."""

    def __init__(self) -> None:
        self.total = 0
        self.most_expensive: list[tuple[int, Path]] = []

    def observe(self, path: Path, expression_cost: int) -> None:
        self.total += expression_cost
        if expression_cost < cost.STATIC_ESTIMATED_CRD_COST_LIMIT // 100:
            return
        self.most_expensive.append((expression_cost, path))
        self.most_expensive.sort(key=lambda x: -x[0])
        del self.most_expensive[4:]

    def errors(self, schema_path: Path) -> list[FieldError]:
        """Nothing, or the most expensive rules and the schema's total, if the total is over the limit."""
        if self.total <= cost.STATIC_ESTIMATED_CRD_COST_LIMIT:
            return []
        errs = [v.forbidden(p, "contributed to estimated rule cost total exceeding cost limit for entire "
                               "OpenAPIv3 schema") for _c, p in self.most_expensive]
        return errs + [v.forbidden(schema_path, cost_error_message(
            "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema", self.total,
            cost.STATIC_ESTIMATED_CRD_COST_LIMIT))]


__all__ = ["MAX_REQUEST_SIZE_BYTES", "TotalCost", "cost_error_message", "element_schema", "expression_cost", "max_size",
           "min_json_size"]
