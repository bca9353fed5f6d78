"""Type checking of a ValidatingAdmissionPolicy against the kinds it matches, for its
``status.typeChecking`` (kube-controller-manager's validatingadmissionpolicy-status-controller,
``k8s.io/apiserver/pkg/admission/plugin/policy/validating/typechecking.go``).

When a policy is written, ``object``, ``oldObject`` and ``params`` are ``dyn``: anything that
parses and names declared variables is accepted. The status controller then checks each
validation's ``expression`` and ``messageExpression`` once per kind the ``matchConstraints``
name exactly (no wildcards, no subresources; at most 10 kinds, sorted by group, version, kind),
with ``object`` and ``oldObject`` typed by that kind's OpenAPI schema and ``params`` by the
``paramKind``'s, and reports what does not check: one warning per expression, a paragraph per
kind, ``<group>/<version>, Kind=<kind>: ERROR: <input>:1:8: undefined field 'x'`` and cel-go's
caret lines. Kinds whose schema is not known are skipped. Checking never changes what the policy
does. The schemas are the API server's published OpenAPI v3 (:func:`schema_from_openapi_v3`), as
Kubernetes' controller resolves them through discovery, so custom resources are checked too.

:func:`structural` turns a kind's OpenAPI definition (references resolved, ``["string", "null"]``
types, quantities and int-or-strings as ``oneOf``) into the structural form :mod:`.schemaenv`
builds protobuf types from; a type that refers to itself is left open past its first level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cel_expr_python.cel as ce

from kybernetes.api.schema import Schema
from kybernetes.cel.environment import CompileError, check, cross_numeric_only, new_environment
from kybernetes.cel.library_authz import authz_functions, cel_type
from kybernetes.cel.schemaenv import SchemaTypes, go_issues

MAX_TYPES_TO_CHECK = 10
_OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

GVK = tuple[str, str, str]
"""(group, version, kind)."""


def structural(s: Schema | None, _refs: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The structural schema of an OpenAPI node (for type checking: types, properties, items,
    additional properties, formats)."""
    if s is None:
        return dict(_OPEN)
    t, int_or_string, quantity_like, is_open, _is_bytes = s.shape()
    if int_or_string or quantity_like:
        return {"x-kubernetes-int-or-string": True}
    if s.time_kind:
        return {"type": "string", "format": "date-time"}

    def below(raw: Any, child: Schema | None) -> dict[str, Any]:
        ref = raw.get("$ref") if isinstance(raw, dict) else None
        if isinstance(ref, str) and ref in _refs:
            return dict(_OPEN)  # a type within itself (JSONSchemaProps): open from here on
        return structural(child, _refs | {ref} if isinstance(ref, str) else _refs)

    if t == "object":
        if s.properties:
            return {"type": "object", "properties": {name: below(raw, s.prop(name))
                                                     for name, raw in s.properties.items()}}
        if s.additional_properties is not None and not is_open:
            return {"type": "object",
                    "additionalProperties": below(s.raw.get("additionalProperties"), s.additional_properties)}
        return dict(_OPEN)
    if t == "array":
        return {"type": "array", "items": below(s.raw.get("items"), s.items)}
    if t in ("string", "integer", "number", "boolean"):
        fmt = s.raw.get("format")
        return {"type": t, **({"format": fmt} if t == "string" and isinstance(fmt, str) else {})}
    return dict(_OPEN)


_V3_REF = "#/components/schemas/"


def _as_defs(node: Any) -> Any:
    """An OpenAPI v3 node in the definitions' form :class:`~kybernetes.api.schema.Schema` reads:
    ``#/$defs/`` references, a property's ``allOf: [{$ref}]`` as the reference itself."""
    if isinstance(node, list):
        return [_as_defs(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _as_defs(v) for k, v in node.items() if k != "allOf"}
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) and "$ref" in all_of[0]:
        out.setdefault("$ref", all_of[0]["$ref"])
    elif all_of is not None:
        out["allOf"] = _as_defs(all_of)
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith(_V3_REF):
        out["$ref"] = "#/$defs/" + ref[len(_V3_REF):]
    return out


def schema_from_openapi_v3(document: dict[str, Any], gvk: GVK) -> Schema | None:
    """The schema of a kind in a group-version's OpenAPI v3 document (``/openapi/v3/apis/<g>/<v>``),
    as the API server publishes it for built-in and custom resources; None if it has none."""
    schemas = (document.get("components") or {}).get("schemas") or {}
    defs = {name: _as_defs(raw) for name, raw in schemas.items() if isinstance(raw, dict)}
    for raw in defs.values():
        for tag in raw.get("x-kubernetes-group-version-kind") or ():
            if isinstance(tag, dict) and (tag.get("group", ""), tag.get("version"), tag.get("kind")) == gvk:
                return Schema(raw, defs)
    return None


def gvk_string(gvk: GVK) -> str:
    """Go's GroupVersionKind.String(): ``apps/v1, Kind=Deployment``, ``/v1, Kind=Pod``."""
    return f"{gvk[0]}/{gvk[1]}, Kind={gvk[2]}"


def kinds_to_check(policy: dict[str, Any], kinds_for: Callable[[str, str, str], list[GVK]]) -> list[GVK]:
    """The kinds the policy's resource rules name exactly (``kinds_for(group, version, resource)``
    resolves a resource), sorted, at most :data:`MAX_TYPES_TO_CHECK`."""
    rules = ((policy.get("spec") or {}).get("matchConstraints") or {}).get("resourceRules") or []
    found: set[GVK] = set()
    count = 0
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        groups = [str(g) for g in rule.get("apiGroups") or ()]
        versions = [str(v) for v in rule.get("apiVersions") or ()]
        if any("*" in g for g in groups) or any("*" in v for v in versions):
            continue
        resources = sorted(str(r) for r in rule.get("resources") or () if "*" not in str(r) and "/" not in str(r))
        for group in sorted(groups):
            for version in sorted(versions):
                for resource in resources:
                    for gvk in kinds_for(group, version, resource):
                        found.add(gvk)
                        count += 1
                        if count == MAX_TYPES_TO_CHECK:
                            return sorted(found)
    return sorted(found)


def _environment(types: SchemaTypes, object_schema: dict[str, Any], params_schema: dict[str, Any] | None) -> Any:
    obj = types.cel_type(object_schema)
    variables = {"object": obj, "oldObject": obj, "request": ce.Type.DYN, "namespaceObject": ce.Type.DYN,
                 "variables": ce.Type.DYN, "authorizer": cel_type("Authorizer", False),
                 "authorizer.requestResource": cel_type("ResourceCheck", False),
                 "params": types.cel_type(params_schema) if params_schema is not None else ce.Type.DYN}
    return new_environment(variables, types.pool, authz=authz_functions(False))


def _issues(env: Any, source: str) -> str:
    try:
        check(env, source)
    except CompileError as e:
        issues = go_issues(str(e))
        return "" if cross_numeric_only(issues) else issues
    return ""


def expression_warnings(policy: dict[str, Any], kinds: list[tuple[GVK, Schema | None]],
                        params: Schema | None) -> list[dict[str, str]]:
    """The policy's ``status.typeChecking.expressionWarnings``: ``kinds`` are the kinds to check
    (:func:`kinds_to_check`) with their OpenAPI schemas (None: unknown, skipped), ``params`` the
    paramKind's schema (None: ``params`` stays ``dyn``)."""
    params_schema = structural(params) if params is not None else None
    envs: list[tuple[GVK, Any]] = []
    for gvk, schema in kinds:
        if schema is None:
            continue
        object_schema = structural(schema)
        roots = [object_schema] + ([params_schema] if params_schema is not None else [])
        types = SchemaTypes(*roots, kubernetes_root=False)
        envs.append((gvk, _environment(types, object_schema, params_schema)))
    warnings: list[dict[str, str]] = []
    validations = (policy.get("spec") or {}).get("validations") or []
    for i, validation in enumerate(validations):
        if not isinstance(validation, dict):
            continue
        for key in ("expression", "messageExpression"):
            source = validation.get(key)
            if not isinstance(source, str) or not source:
                continue
            found = [f"{gvk_string(gvk)}: {issues}\n" for gvk, env in envs if (issues := _issues(env, source))]
            if found:
                warnings.append({"fieldRef": f"spec.validations[{i}].{key}", "warning": "\n".join(found)})
    return warnings


__all__ = ["GVK", "MAX_TYPES_TO_CHECK", "expression_warnings", "gvk_string", "kinds_to_check",
           "schema_from_openapi_v3", "structural"]
