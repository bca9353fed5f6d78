"""CRD validation rules: ``x-kubernetes-validations`` in a structural schema.

apiextensions-apiserver's ``pkg/apiserver/schema/cel`` (``compilation.go``, ``validation.go``) as
of Kubernetes 1.32:

- :func:`compile_schema` compiles every rule (and messageExpression) of a schema once, into a
  :class:`RuleValidator` tree that mirrors the schema's nodes with rules below them; a CRD version
  keeps it for as long as its schema is unchanged.
- :func:`rule_errors` lists, for CRD validation, the rules that do not compile, in
  kube-apiserver's words (``...x-kubernetes-validations[0].rule: Invalid value:
  apiextensions.ValidationRule{...}: compilation failed: ERROR: <input>:1:9: ...``).
- :meth:`RuleValidator.validate` evaluates the rules on a value (create) or a value and its old
  value (update, status update). ``self`` is the value at the rule's node; a rule that uses
  ``oldSelf`` (a transition rule) runs only where an old value exists (the same field of the old
  object, the same key of a map, the item with the same keys of a ``map`` list), unless it sets
  ``optionalOldSelf``, when ``oldSelf`` is an optional (``oldSelf.hasValue()``). Null values are
  not validated. Failures are ratcheted (1.32's CRDValidationRatcheting): on update, a rule
  without ``oldSelf`` that fails on a value equal to its old value is let pass (Kubernetes
  returns it as a warning; the strategy has no way to warn, so it is dropped). A failed rule is a field error at the node (plus ``fieldPath``): ``Invalid
  value: "<schema type>": <message>``, or Forbidden/Required/Duplicate by ``reason``. Rule
  errors at the root name the field ``<nil>``, as kube-apiserver's nil path prints.
- Cost: every evaluation is bounded first (:mod:`.cost`); over the per-call limit the rule fails
  and no further rule runs; all rules of one request share :data:`~.cost.RUNTIME_COST_BUDGET`.
  When the CRD is written, each rule's (and messageExpression's) cost is estimated from the
  schema's bounds times how often it may run (:mod:`.estimate`); one over
  :data:`~.cost.STATIC_ESTIMATED_COST_LIMIT`, or all over
  :data:`~.cost.STATIC_ESTIMATED_CRD_COST_LIMIT`, refuses the CRD in apiextensions' words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.cel import cost, has_rules, schema_rules
from kybernetes.apiserver.cel.env import EvalError, Program, compile_expression
from kybernetes.apiserver.cel.estimate import TotalCost, cost_error_message, expression_cost, max_size
from kybernetes.apiserver.cel.schematypes import as_declared, has_typed
from kybernetes.cel.environment import CompileError, check, cross_numeric_only
from kybernetes.cel.schemaenv import SchemaTypes, go_issues

_SCALARS = {"integer": "int", "number": "double", "boolean": "bool", "string": "string"}
_STRING_FORMATS = {"date-time": "timestamp", "date": "timestamp", "duration": "duration", "byte": "bytes"}


def _type_of(schema: Any) -> str:
    """The CEL type of a schema node: its scalar type, a list or map of typed values, or ""
    (``dyn``) for objects with properties, int-or-string, unknown fields and nullable values."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-int-or-string") or schema.get("nullable") \
            or schema.get("x-kubernetes-preserve-unknown-fields"):
        return ""
    t = schema.get("type")
    if t == "string":
        return _STRING_FORMATS.get(str(schema.get("format")), "string")
    if t in _SCALARS:
        return _SCALARS[str(t)]
    inner = ""
    if t == "array":
        inner = _type_of(schema.get("items"))
        return f"list({inner})" if inner else ""
    if t == "object" and not schema.get("properties"):
        inner = _type_of(schema.get("additionalProperties"))
        return f"map({inner})" if inner else ""
    return ""


def _self_type(schema: dict[str, Any]) -> str:
    """``self``'s declared type at a node (so that ``self.startsWith('a')`` on an integer does not
    compile, as in Kubernetes): ``:<type>``, or "" for ``dyn``."""
    t = _type_of(schema)
    return f":{t}" if t else ""


VARIABLES = ("oldSelf", "self")
OPTIONAL_VARIABLES = ("__kybHasOld", "__kybOld", "self")


def _variables(schema: dict[str, Any], *, optional: bool = False) -> tuple[str, ...]:
    """The rule environment's variables; with ``optionalOldSelf`` the rule runs inside a binding
    of ``oldSelf`` to an optional of ``__kybOld``."""
    t = _self_type(schema)
    return ("__kybHasOld:bool", f"__kybOld{t}", f"self{t}") if optional else (f"oldSelf{t}", f"self{t}")
REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate")
ROOT = "<nil>"
NOT_CHECKED = ("some validation rules were not checked because the object was invalid; correct the existing "
               "errors to complete validation")


@dataclass(frozen=True, eq=False)
class CompiledRule:
    rule: dict[str, Any]
    program: Program
    message: Program | None
    uses_old_self: bool
    field_path: str


@dataclass(eq=False)
class RuleValidator:
    """The compiled rules of one schema node and of the nodes below it that have any."""

    type: str
    rules: list[CompiledRule] = field(default_factory=list)
    properties: dict[str, RuleValidator] = field(default_factory=dict)
    additional: RuleValidator | None = None
    items: RuleValidator | None = None
    map_keys: tuple[str, ...] = ()
    numbers: dict[str, Any] | None = None
    """The node's schema if values at or below it are typed beyond JSON (:func:`~.schematypes.as_declared`)."""

    def validate(self, obj: Any, old: Any, path: Path | None = None, *, has_old: bool = False) -> list[FieldError]:
        """The field errors of every rule on ``obj`` (with ``old`` when ``has_old``)."""
        budget = _Budget(cost.RUNTIME_COST_BUDGET, obj)
        errs: list[FieldError] = []
        _walk(self, obj, old, has_old, path, budget, errs)
        return errs


class _Budget:
    def __init__(self, remaining: int, data: Any) -> None:
        self.remaining = remaining
        self.data = data
        self.exhausted = False

    @cached_property
    def _width(self) -> int:
        return cost.width(self.data)

    def width_for(self, program: Program) -> int:
        """The data's width, measured only for a program with comprehensions (others cost the same on any data)."""
        return self._width if program.macro_depth else 1


def compile_schema(schema: Any) -> RuleValidator | None:
    """The rule tree of a CRD schema, or None if it has no rules (rules that do not compile are
    left out: the CRD was refused for them; see :func:`rule_errors`)."""
    return _compile_node(schema, SchemaTypes(schema)) if has_rules(schema) else None


def _compile_node(schema: Any, types: SchemaTypes) -> RuleValidator | None:
    if not isinstance(schema, dict):
        return None
    node = RuleValidator(type=str(schema.get("type") or ""))
    for rule in schema_rules(schema):
        compiled = _compile_rule(rule, schema, types)
        if isinstance(compiled, CompiledRule):
            node.rules.append(compiled)
    if node.rules and has_typed(schema):
        node.numbers = schema
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            child = _compile_node(sub, types)
            if child is not None:
                node.properties[name] = child
    node.additional = _compile_node(schema.get("additionalProperties"), types)
    node.items = _compile_node(schema.get("items"), types)
    if schema.get("x-kubernetes-list-type") == "map":
        node.map_keys = tuple(k for k in schema.get("x-kubernetes-list-map-keys") or () if isinstance(k, str))
    if node.rules or node.properties or node.additional or node.items:
        return node
    return None


def _type_check(source: str, schema: dict[str, Any], types: SchemaTypes) -> None:
    """CompileError if ``source`` does not check with ``self`` of the node's schema type."""
    env = types.environment(schema)
    if env is None:
        return
    try:
        check(env, source)
    except CompileError as e:
        issues = str(e)
        if not cross_numeric_only(issues):
            raise CompileError(go_issues(issues))


def _compile_typed(source: str, schema: dict[str, Any], types: SchemaTypes, *, check: bool = True) -> Program:
    """Type-check ``source`` against the schema, then compile it to run on JSON values (with
    ``self`` typed at scalar nodes; ``dyn`` where only cross-type numeric comparisons, which
    Kubernetes allows and cel-cpp's checker does not, keep it from checking)."""
    if check:
        _type_check(source, schema, types)
    try:
        return compile_expression(source, _variables(schema))
    except CompileError as e:
        if not cross_numeric_only(str(e)):
            raise
        return compile_expression(source, VARIABLES)


def _compile_rule(rule: dict[str, Any], schema: dict[str, Any], types: SchemaTypes) -> CompiledRule | tuple[str, str]:
    """The compiled rule (at a node of ``schema``), or (which field, why) it does not compile."""
    source = rule.get("rule")
    if not isinstance(source, str) or not source.strip():
        return ("rule", "")
    optional = rule.get("optionalOldSelf") is True
    try:
        # With optionalOldSelf, oldSelf is an optional, which the checking environment does not declare.
        program = _compile_typed(source, schema, types, check=not optional)
    except CompileError as e:
        return ("rule", f"compilation failed: {e}")
    uses_old_self = "oldSelf" in program.uses
    if optional:
        # Compiled as written first (so errors point into the rule), then run with oldSelf optional.
        wrapped = f"cel.bind(oldSelf, __kybHasOld ? optional.of(__kybOld) : optional.none(), ({source}))"
        try:
            program = compile_expression(wrapped, _variables(schema, optional=True))
        except CompileError:
            program = compile_expression(wrapped, OPTIONAL_VARIABLES)
    message = None
    msg_source = rule.get("messageExpression")
    if isinstance(msg_source, str) and msg_source.strip():
        try:
            message = _compile_typed(msg_source, schema, types)
        except CompileError as e:
            return ("messageExpression", f"messageExpression compilation failed: {e}")
    field_path = rule.get("fieldPath")
    return CompiledRule(rule, program, message, uses_old_self,
                        _normalize_field_path(field_path) if isinstance(field_path, str) else "")


# --- evaluation --------------------------------------------------------------------------------


def _child_path(path: Path | None, name: str) -> Path:
    return Path(name) if path is None else path.child(name)


def _walk(node: RuleValidator, obj: Any, old: Any, has_old: bool, path: Path | None, budget: _Budget,
          errs: list[FieldError], inherited: bool = False) -> None:
    """Rules of ``node`` and below on ``obj``. ``inherited`` is whether the nearest correlated
    ancestor is unchanged, for a value with no old value of its own (an item of a list that does
    not correlate)."""
    if obj is None or budget.exhausted:
        return
    if old is None:
        has_old = False
    # Ratcheting (CRDValidationRatcheting, on in 1.32): a value equal to its old value keeps
    # passing rules it already failed, unless the rule compares with oldSelf.
    unchanged = obj == old if has_old else inherited
    if node.rules:
        _run_rules(node, obj, old, has_old, path, budget, errs, unchanged)
    if isinstance(obj, dict):
        old_map = old if has_old and isinstance(old, dict) else {}
        for name, value in obj.items():
            child = node.properties.get(name) or node.additional
            if child is not None:
                _walk(child, value, old_map.get(name), name in old_map, _child_path(path, name), budget, errs)
    elif isinstance(obj, list) and node.items is not None:
        old_items = _correlate(node, old if has_old else None)
        for i, item in enumerate(obj):
            key = _list_key(node, item)
            found = key is not None and key in old_items
            item_path = Path(f"[{i}]") if path is None else path.index(i)
            _walk(node.items, item, old_items.get(key) if found else None, found, item_path, budget, errs,
                  inherited=unchanged and not node.map_keys)


def _list_key(node: RuleValidator, item: Any) -> str | None:
    if not node.map_keys or not isinstance(item, dict):
        return None
    return repr(tuple(item.get(k) for k in node.map_keys))


def _correlate(node: RuleValidator, old: Any) -> dict[str | None, Any]:
    """Old items of a ``map`` list by their keys (other lists do not correlate)."""
    if not node.map_keys or not isinstance(old, list):
        return {}
    return {_list_key(node, item): item for item in old if isinstance(item, dict)}


def _run_rules(node: RuleValidator, obj: Any, old: Any, has_old: bool, path: Path | None, budget: _Budget,
               errs: list[FieldError], unchanged: bool) -> None:
    where = str(path) if path is not None else ROOT
    if node.numbers is not None:
        obj, old = as_declared(obj, node.numbers), as_declared(old, node.numbers)
    for compiled in node.rules:
        optional = compiled.rule.get("optionalOldSelf") is True
        if compiled.uses_old_self and not has_old and not optional:
            continue
        if optional:
            data = {"self": obj, "__kybOld": old, "__kybHasOld": has_old}
        else:
            data = {"self": obj, "oldSelf": old if has_old else None}
        width = budget.width_for(compiled.program)
        bound = compiled.program.cost_bound(width)
        if cost.PER_CALL_LIMIT >= bound > budget.remaining:
            errs.append(v.invalid(where, node.type, cost.BUDGET_EXCEEDED))
            budget.exhausted = True
            return
        budget.remaining -= bound
        try:
            ok = compiled.program.evaluate(data, width)
        except EvalError as e:
            errs.append(_evaluation_error(where, node.type, compiled, str(e)))
            if str(e) == cost.PER_CALL_EXCEEDED:
                budget.exhausted = True
                return
            continue
        if ok is True or (unchanged and not compiled.uses_old_self):
            continue
        target = where if not compiled.field_path else _child_path(path, compiled.field_path)
        errs.append(_rule_error(str(target), node.type, compiled, _message(compiled, data, budget)))


def _evaluation_error(where: str, type_: str, compiled: CompiledRule, err: str) -> FieldError:
    rule = _rule_string(compiled.rule)
    if err == cost.PER_CALL_EXCEEDED:
        return v.invalid(where, type_, f"'{err}': no further validation rules will be run due to call cost "
                                       f"exceeds limit for rule: {rule}")
    if err.startswith("no such overload"):
        return v.invalid(where, type_, f"'{err}': call arguments did not match a supported operator, function "
                                       f"or macro signature for rule: {rule}")
    return v.invalid(where, type_, f"{err} evaluating rule: {rule}")


def _rule_string(rule: dict[str, Any]) -> str:
    message = rule.get("message")
    if isinstance(message, str) and message:
        return message.strip()
    return str(rule.get("rule") or "").strip()


def _message(compiled: CompiledRule, data: dict[str, Any], budget: _Budget) -> str:
    """messageExpression's result if it gives a usable one, else message, else ``failed rule: <rule>``."""
    if compiled.message is not None:
        try:
            text = compiled.message.evaluate(data, budget.width_for(compiled.message))
        except EvalError:
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text.strip():
            return text.strip()
    message = compiled.rule.get("message")
    if isinstance(message, str) and message:
        return message.strip()
    return f"failed rule: {_rule_string(compiled.rule)}"


def _rule_error(where: str, type_: str, compiled: CompiledRule, detail: str) -> FieldError:
    reason = compiled.rule.get("reason")
    if reason == "FieldValueForbidden":
        return v.forbidden(where, detail)
    if reason == "FieldValueRequired":
        return v.required(where, detail)
    if reason == "FieldValueDuplicate":
        return v.duplicate(where, type_)
    return v.invalid(where, type_, detail)


# --- fieldPath ---------------------------------------------------------------------------------

_SEGMENT = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\['((?:[^'\\]|\\.)*)'\]")


def _parse_field_path(text: str) -> list[tuple[bool, str]] | None:
    """``.a.b['c']`` as (is_field, name) segments; None if it is not such a path."""
    out: list[tuple[bool, str]] = []
    i = 0
    while i < len(text):
        m = _SEGMENT.match(text, i)
        if not m:
            return None
        out.append((m.group(1) is not None, m.group(1) if m.group(1) is not None else m.group(2)))
        i = m.end()
    return out or None


def _normalize_field_path(text: str) -> str:
    segments = _parse_field_path(text.strip()) or []
    p = ""
    for is_field, name in segments:
        p = (f"{p}.{name}" if p else name) if is_field else f"{p}[{name}]"
    return p


def _field_path_error(text: str, schema: dict[str, Any]) -> str | None:
    """Why ``fieldPath`` does not name a field of the rule's schema node (None: it does)."""
    segments = _parse_field_path(text.strip())
    if segments is None:
        return "fieldPath must be a valid path"
    node: Any = schema
    for _is_field, name in segments:
        props = node.get("properties") if isinstance(node, dict) else None
        if isinstance(props, dict) and name in props:
            node = props[name]
        elif isinstance(node, dict) and isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return "fieldPath must be a valid path: does not refer to a valid field"
    return None


# --- CRD validation ----------------------------------------------------------------------------


class GoRule:
    """A rule as kube-apiserver prints it as a bad value (Go's ``%#v`` of ``apiextensions.ValidationRule``)."""

    def __init__(self, rule: dict[str, Any]) -> None:
        self.rule = rule

    def __str__(self) -> str:
        r = self.rule

        def q(name: str) -> str:
            value = r.get(name)
            text = value if isinstance(value, str) else ""
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

        reason = "(*apiextensions.FieldValueErrorReason)(nil)" if r.get("reason") is None else \
            f"(*apiextensions.FieldValueErrorReason)({q('reason')})"
        old = "(*bool)(nil)" if r.get("optionalOldSelf") is None else f"(*bool)({str(r.get('optionalOldSelf')).lower()})"
        return (f"apiextensions.ValidationRule{{Rule:{q('rule')}, Message:{q('message')}, "
                f"MessageExpression:{q('messageExpression')}, Reason:{reason}, FieldPath:{q('fieldPath')}, "
                f"OptionalOldSelf:{old}}}")


def rule_errors(schema: Any, path: Path, *, per_expression_cost: bool = True) -> list[FieldError]:
    """The field errors of every ``x-kubernetes-validations`` entry of a CRD schema that is not
    valid: not compiling, an unknown reason, a bad fieldPath, a transition rule where old values
    cannot be correlated, an estimated cost over the limit (per rule unless not
    ``per_expression_cost``; for the whole schema)."""
    errs: list[FieldError] = []
    if has_rules(schema):
        ctx = _Check(SchemaTypes(schema), TotalCost(), schema, per_expression_cost)
        _check_node(schema, path, errs, ctx, correlatable=True, cardinality=1)
        errs.extend(ctx.total.errors(path))
    return errs


@dataclass(frozen=True)
class _Check:
    types: SchemaTypes
    total: TotalCost
    root: Any
    per_expression_cost: bool


def _check_node(schema: Any, path: Path, errs: list[FieldError], ctx: _Check, *, correlatable: bool,
                cardinality: int) -> None:
    """``cardinality``: how many times a rule here may run for one object (the product of the
    sizes of the lists and maps above)."""
    if not isinstance(schema, dict):
        return
    for i, rule in enumerate(schema_rules(schema)):
        _check_rule(rule, schema, path.child("x-kubernetes-validations").index(i), errs, ctx, correlatable,
                    cardinality)
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            _check_node(sub, path.child("properties").key(name), errs, ctx, correlatable=correlatable,
                        cardinality=cardinality)
    _check_node(schema.get("additionalProperties"), path.child("additionalProperties"), errs, ctx,
                correlatable=correlatable, cardinality=cardinality * max_size(schema))
    keyed = schema.get("x-kubernetes-list-type") == "map"
    _check_node(schema.get("items"), path.child("items"), errs, ctx, correlatable=correlatable and keyed,
                cardinality=cardinality * max_size(schema))


def _check_cost(program: Program, schema: dict[str, Any], p: Path, name: str, ctx: _Check, cardinality: int,
                errs: list[FieldError]) -> None:
    """The rule's (or messageExpression's) estimated cost, times its cardinality, against the limit."""
    estimated = expression_cost(program, schema, root=schema is ctx.root) * cardinality
    if ctx.per_expression_cost and estimated > cost.STATIC_ESTIMATED_COST_LIMIT:
        errs.append(v.forbidden(p, cost_error_message(f"estimated {name} cost", estimated,
                                                      cost.STATIC_ESTIMATED_COST_LIMIT)))
    ctx.total.observe(p, estimated)


def _check_rule(rule: dict[str, Any], schema: dict[str, Any], p: Path, errs: list[FieldError], ctx: _Check,
                correlatable: bool, cardinality: int) -> None:
    errs.extend(_message_errors(rule, p))
    compiled = _compile_rule(rule, schema, ctx.types)
    if isinstance(compiled, tuple):
        where, why = compiled
        if not why:
            errs.append(v.required(p.child("rule"), "rule is not specified"))
        else:
            errs.append(v.invalid(p.child(where), GoRule(rule), why))
        return
    _check_cost(compiled.program, schema, p.child("rule"), "rule", ctx, cardinality, errs)
    if compiled.message is not None:
        _check_cost(compiled.message, schema, p.child("messageExpression"), "messageExpression", ctx, cardinality,
                    errs)
    reason = rule.get("reason")
    if reason is not None and reason not in REASONS:
        errs.append(v.not_supported(p.child("reason"), reason, REASONS))
    field_path = rule.get("fieldPath")
    if isinstance(field_path, str) and field_path:
        path_error = _field_path_error(field_path, schema)
        if path_error:
            errs.append(v.invalid(p.child("fieldPath"), field_path, path_error))
    if compiled.uses_old_self and not correlatable:
        errs.append(v.invalid(p.child("rule"), rule.get("rule"),
                              "oldSelf cannot be used on the uncorrelatable portion of the schema"))


def _message_errors(rule: dict[str, Any], p: Path) -> list[FieldError]:
    """``message`` and ``messageExpression`` as apiextensions validation wants them."""
    errs: list[FieldError] = []
    message, source = rule.get("message"), rule.get("rule")
    if isinstance(message, str) and message:
        if not message.strip():
            errs.append(v.invalid(p.child("message"), message, "message must be non-empty if specified"))
        elif "\n" in message or "\r" in message:
            errs.append(v.invalid(p.child("message"), message, "message must not contain line breaks"))
    elif isinstance(source, str) and ("\n" in source.strip() or "\r" in source.strip()):
        errs.append(v.required(p.child("message"), "message must be specified if rule contains line breaks"))
    expression = rule.get("messageExpression")
    if isinstance(expression, str) and expression and not expression.strip():
        errs.append(v.required(p.child("messageExpression"), "messageExpression must be non-empty if specified"))
    return errs
