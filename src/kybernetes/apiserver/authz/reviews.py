"""``authorization.k8s.io/v1`` access reviews: asked of the authorizer on create, never stored.

- **SubjectAccessReview** (cluster-scoped): may ``spec.user`` (with ``groups``, ``uid``,
  ``extra``) do ``spec.resourceAttributes`` or ``spec.nonResourceAttributes``?
- **LocalSubjectAccessReview** (namespaced): the same, for resource attributes in the namespace
  of the request only.
- **SelfSubjectAccessReview**: may the requesting user do it (``kubectl auth can-i``)?
- **SelfSubjectRulesReview**: what may the requesting user do in ``spec.namespace``
  (``kubectl auth can-i --list``), from the authorizers' rule resolvers.

Each answers 201 with the review and its ``status`` filled as Kubernetes fills it: ``allowed``
(always present), ``denied`` (an authorizer said DENY), ``reason`` (the chain's reasons) and
``evaluationError``; or, for the rules review, ``resourceRules``, ``nonResourceRules``,
``incomplete`` and ``evaluationError`` (from the modes' rule resolvers, not ``system:masters``').
Decisions come from the server's authorizer chain; with
no chain (``--authorization-mode AlwaysAllow``) everything is allowed, as kube-apiserver's
AlwaysAllow authorizer answers. Bad input is Kubernetes' 422 (``pkg/apis/authorization/validation``)
or 400 (``pkg/registry/authorization/*/rest.go``), in their words.

The 1.32 ``fieldSelector`` / ``labelSelector`` of ``resourceAttributes`` are validated as Kubernetes
validates their shape and echoed back, but no authorizer here reads them: they never narrow or
widen a decision, and their parse errors are not reported in ``evaluationError``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kybernetes import errors
from kybernetes.api import validation as v
from kybernetes.api.obj import Obj
from kybernetes.api.validation import FieldError
from kybernetes.api.validation.govalues import GoValue, go_quote, go_string_map, go_strings
from kybernetes.apiserver.authz.authorizer import (
    AlwaysAllow,
    Attributes,
    Chain,
    Decision,
    PrivilegedGroups,
    RulesInfo,
)
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.registry.rest import Reply, ResourceREST, SubresourceCall, SubresourceREST

GROUP = "authorization.k8s.io"
GROUP_VERSION = f"{GROUP}/v1"

AuthorizerSource = Callable[[], "Chain | None"]
"""Returns the server's chain when a review is made (it is built after the REST objects are)."""

_RESOURCE_FIELDS = ("namespace", "verb", "group", "version", "resource", "subresource", "name",
                    "fieldSelector", "labelSelector")
_NON_RESOURCE_FIELDS = ("path", "verb")
_SELECTOR_FIELDS = ("rawSelector", "requirements")
_REQUIREMENT_FIELDS = ("key", "operator", "values")


# --- Go's rendering of a bad value in a field error ------------------------------------------

def _non_resource_value(attrs: Any) -> GoValue:
    attrs = attrs if isinstance(attrs, dict) else {}
    return GoValue(f"authorization.NonResourceAttributes{{Path:{go_quote(str(attrs.get('path') or ''))}, "
                    f"Verb:{go_quote(str(attrs.get('verb') or ''))}}}")


def _object_meta_value(meta: Obj) -> GoValue:
    """``metav1.ObjectMeta`` as ``%#v`` prints it (the value of ``metadata: must be empty``)."""
    def quoted(key: str) -> str:
        return go_quote(str(meta.get(key) or ""))

    generation = meta.get("generation") or 0
    return GoValue(
        f"v1.ObjectMeta{{Name:{quoted('name')}, GenerateName:{quoted('generateName')}, "
        f"Namespace:{quoted('namespace')}, SelfLink:{quoted('selfLink')}, UID:{quoted('uid')}, "
        f"ResourceVersion:{quoted('resourceVersion')}, "
        f"Generation:{generation}, CreationTimestamp:time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC), "
        f"DeletionTimestamp:<nil>, DeletionGracePeriodSeconds:(*int64)(nil), "
        f"Labels:{go_string_map(meta.get('labels'))}, Annotations:{go_string_map(meta.get('annotations'))}, "
        f"OwnerReferences:[]v1.OwnerReference(nil), Finalizers:{go_strings(meta.get('finalizers'))}, "
        "ManagedFields:[]v1.ManagedFieldsEntry(nil)}")


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    """``field.Invalid``: a nil pointer prints as ``"null"``, a struct as Go's ``%#v`` (a :class:`GoValue`)."""
    return v.invalid(path, "null" if value is None else value, detail)


# --- validation (pkg/apis/authorization/validation) ------------------------------------------

def _spec_attributes_errors(spec: Obj) -> list[FieldError]:
    """Exactly one of resourceAttributes and nonResourceAttributes."""
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    errs: list[FieldError] = []
    if resource is not None and non_resource is not None:
        errs.append(_invalid("spec.nonResourceAttributes", _non_resource_value(non_resource),
                             "cannot be specified in combination with resourceAttributes"))
    if resource is None and non_resource is None:
        errs.append(_invalid("spec.resourceAttributes", None,
                             "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
    return errs


def _selector_errors(selector: Any, path: str) -> list[FieldError]:
    """``validateFieldSelectorAttributes`` / ``validateLabelSelectorAttributes``: the shape only."""
    if not isinstance(selector, dict):
        return []
    raw, requirements = selector.get("rawSelector") or "", selector.get("requirements") or []
    errs: list[FieldError] = []
    if raw and requirements:
        errs.append(v.invalid(f"{path}.rawSelector", raw, "may not specified at the same time as requirements"))
    if not raw and not requirements:
        errs.append(v.required(f"{path}.requirements",
                               f"when {path} is specified, requirements or rawSelector is required"))
    for i, req in enumerate(requirements if isinstance(requirements, list) else []):
        req = req if isinstance(req, dict) else {}
        if not req.get("key"):
            errs.append(v.required(f"{path}.requirements[{i}].key", "must be specified"))
    return errs


def _resource_attributes_errors(spec: Obj) -> list[FieldError]:
    attrs = spec.get("resourceAttributes")
    if not isinstance(attrs, dict):
        return []
    base = "spec.resourceAttributes"
    return (_selector_errors(attrs.get("fieldSelector"), f"{base}.fieldSelector")
            + _selector_errors(attrs.get("labelSelector"), f"{base}.labelSelector"))


def validate_subject_access_review(obj: Obj) -> list[FieldError]:
    """``ValidateSubjectAccessReview``: one kind of attributes, a user or a group, empty metadata."""
    spec = _dict(obj.get("spec"))
    errs = _spec_attributes_errors(spec)
    if not spec.get("user") and not spec.get("groups"):
        errs.append(v.invalid("spec.user", spec.get("user") or "", "at least one of user or group must be specified"))
    errs += _resource_attributes_errors(spec)
    meta = _dict(obj.get("metadata"))
    if _meaningful(meta, ignore=("managedFields",)):
        errs.append(_invalid("metadata", _object_meta_value(meta), "must be empty"))
    return errs


def validate_self_subject_access_review(obj: Obj) -> list[FieldError]:
    """``ValidateSelfSubjectAccessReview``: one kind of attributes, empty metadata."""
    spec = _dict(obj.get("spec"))
    errs = _spec_attributes_errors(spec) + _resource_attributes_errors(spec)
    meta = _dict(obj.get("metadata"))
    if _meaningful(meta, ignore=("managedFields",)):
        errs.append(_invalid("metadata", _object_meta_value(meta), "must be empty"))
    return errs


def validate_local_subject_access_review(obj: Obj) -> list[FieldError]:
    """``ValidateLocalSubjectAccessReview``: a subject access review whose metadata holds only its
    namespace, which ``spec.resourceAttributes.namespace`` must equal; no non-resource attributes."""
    errs = validate_subject_access_review({"spec": obj.get("spec")})
    meta = _dict(obj.get("metadata"))
    if _meaningful(meta, ignore=("managedFields", "namespace")):
        errs.append(_invalid("metadata", _object_meta_value(meta), "must be empty except for namespace"))
    spec = _dict(obj.get("spec"))
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    namespace = meta.get("namespace") or ""
    if resource is not None and (_dict(resource).get("namespace") or "") != namespace:
        errs.append(v.invalid("spec.resourceAttributes.namespace", _dict(resource).get("namespace") or "",
                              "must match metadata.namespace"))
    if non_resource is not None:
        errs.append(_invalid("spec.nonResourceAttributes", _non_resource_value(non_resource),
                             "disallowed on this kind of request"))
    return errs


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _meaningful(meta: Obj, ignore: tuple[str, ...]) -> bool:
    """Whether ObjectMeta differs from the zero value (a null creationTimestamp is the zero time)."""
    return any(value not in (None, "", [], {}, 0) for key, value in meta.items() if key not in ignore)


# --- attributes and decisions (pkg/registry/authorization/util) ------------------------------

def attributes_of(user: User, spec: Obj) -> Attributes:
    """``ResourceAttributesFrom`` / ``NonResourceAttributesFrom``: an empty version means every version."""
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        field = {k: str(resource.get(k) or "") for k in _RESOURCE_FIELDS[:7]}
        return Attributes(user, field["verb"], True, field["group"], field["version"] or "*", field["namespace"],
                          field["resource"], field["subresource"], field["name"])
    non_resource = _dict(spec.get("nonResourceAttributes"))
    return Attributes(user, str(non_resource.get("verb") or ""), False, path=str(non_resource.get("path") or ""))


def user_of(spec: Obj) -> User:
    """The user a SubjectAccessReview asks about (as given: no ``system:authenticated`` added)."""
    extra = {str(k): [str(x) for x in (vals or [])] for k, vals in _dict(spec.get("extra")).items()}
    return User(str(spec.get("user") or ""), tuple(str(g) for g in spec.get("groups") or ()),
                str(spec.get("uid") or ""), extra)


def decide(chain: Chain | None, attrs: Attributes) -> Obj:
    """A review's status: ``allowed`` always, ``denied`` and ``reason`` only when set."""
    decision, reason = (Decision.ALLOW, "") if chain is None else chain.authorize(attrs)
    status: Obj = {"allowed": decision is Decision.ALLOW}
    if decision is Decision.DENY:
        status["denied"] = True
    if reason:
        status["reason"] = reason
    return status


# --- the REST objects ----------------------------------------------------------------------

def _ordered(value: Any, fields: tuple[str, ...]) -> Obj:
    """A struct as Go writes it back: its fields in declaration order, empty ones left out."""
    src = _dict(value)
    return {k: src[k] for k in fields if src.get(k) not in (None, "", [], {})}


def _echo_spec(spec: Obj, subject: bool) -> Obj:
    out: Obj = {}
    if isinstance(spec.get("resourceAttributes"), dict):
        attrs = _ordered(spec["resourceAttributes"], _RESOURCE_FIELDS)
        for key in ("fieldSelector", "labelSelector"):
            if key in attrs:
                sel = _ordered(attrs[key], _SELECTOR_FIELDS)
                if "requirements" in sel:
                    sel["requirements"] = [_ordered(r, _REQUIREMENT_FIELDS) for r in sel["requirements"]]
                attrs[key] = sel
        out["resourceAttributes"] = attrs
    if isinstance(spec.get("nonResourceAttributes"), dict):
        out["nonResourceAttributes"] = _ordered(spec["nonResourceAttributes"], _NON_RESOURCE_FIELDS)
    if subject:
        out.update(_ordered(spec, ("user", "groups", "extra", "uid")))
    return out


async def _read(rest: ResourceREST, call: SubresourceCall, kind: str) -> Obj:
    """The body decoded as Go decodes it into the review's type (400 for a wrong kind or type)."""
    body = await call.read_body(kind)
    if not isinstance(body, dict) or body.get("kind", kind) != kind:
        raise errors.BadRequest(f"not a {kind}: {body!r}")
    body = copy.deepcopy(body)
    rest.registry.decode_typed(rest.resource, body, call.ctx)
    return body


def _review(kind: str, spec: Obj, status: Obj, namespace: str = "") -> Obj:
    meta: Obj = {"namespace": namespace} if namespace else {}
    meta["creationTimestamp"] = None
    return {"kind": kind, "apiVersion": GROUP_VERSION, "metadata": meta, "spec": spec, "status": status}


class SubjectAccessReviewREST(SubresourceREST):
    """``subjectaccessreviews``' create: may ``spec.user`` do it?"""

    methods = frozenset(("POST",))

    def __init__(self, authorizer: AuthorizerSource) -> None:
        self.authorizer = authorizer

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        obj = await _read(rest, call, "SubjectAccessReview")
        v.raise_if_errors("SubjectAccessReview", "", validate_subject_access_review(obj), GROUP)
        spec = _dict(obj.get("spec"))
        status = decide(self.authorizer(), attributes_of(user_of(spec), spec))
        return Reply(_review("SubjectAccessReview", _echo_spec(spec, True), status), 201)


class LocalSubjectAccessReviewREST(SubresourceREST):
    """``localsubjectaccessreviews``' create: a subject access review within one namespace."""

    methods = frozenset(("POST",))

    def __init__(self, authorizer: AuthorizerSource) -> None:
        self.authorizer = authorizer

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        obj = await _read(rest, call, "LocalSubjectAccessReview")
        namespace = call.namespace
        if not namespace:
            raise errors.BadRequest(f"namespace is required on this type: {namespace}")
        meta = obj["metadata"] = dict(_dict(obj.get("metadata")))
        if meta.get("namespace") and meta["namespace"] != namespace:
            # The generic create handler's check, before the REST object sees the review.
            raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on "
                                    "the request")
        meta["namespace"] = namespace
        v.raise_if_errors("LocalSubjectAccessReview", "", validate_local_subject_access_review(obj), GROUP)
        spec = _dict(obj.get("spec"))
        status = decide(self.authorizer(), attributes_of(user_of(spec), spec))
        return Reply(_review("LocalSubjectAccessReview", _echo_spec(spec, True), status, namespace), 201)


class SelfSubjectAccessReviewREST(SubresourceREST):
    """``selfsubjectaccessreviews``' create: may the requesting user do it (``kubectl auth can-i``)?"""

    methods = frozenset(("POST",))

    def __init__(self, authorizer: AuthorizerSource) -> None:
        self.authorizer = authorizer

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        obj = await _read(rest, call, "SelfSubjectAccessReview")
        v.raise_if_errors("SelfSubjectAccessReview", "", validate_self_subject_access_review(obj), GROUP)
        spec = _dict(obj.get("spec"))
        status = decide(self.authorizer(), attributes_of(call.ctx.user, spec))
        return Reply(_review("SelfSubjectAccessReview", _echo_spec(spec, False), status), 201)


def rules_status(info: RulesInfo) -> Obj:
    """``SubjectRulesReviewStatus``: both rule lists always present, ``incomplete`` always."""
    status: Obj = {
        "resourceRules": [_ordered(r, ("verbs", "apiGroups", "resources", "resourceNames")) | {"verbs": r.get("verbs") or []}
                          for r in info.resource_rules],
        "nonResourceRules": [_ordered(r, ("verbs", "nonResourceURLs")) | {"verbs": r.get("verbs") or []}
                             for r in info.non_resource_rules],
        "incomplete": info.incomplete,
    }
    if info.evaluation_error:
        status["evaluationError"] = info.evaluation_error
    return status


class SelfSubjectRulesReviewREST(SubresourceREST):
    """``selfsubjectrulesreviews``' create: what the requesting user may do in ``spec.namespace``.
    As Kubernetes, the answer is a new review: its spec is empty."""

    methods = frozenset(("POST",))

    def __init__(self, authorizer: AuthorizerSource) -> None:
        self.authorizer = authorizer

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        obj = await _read(rest, call, "SelfSubjectRulesReview")
        namespace = str(_dict(obj.get("spec")).get("namespace") or "")
        if not namespace:
            raise errors.BadRequest("no namespace on request")
        return Reply(_review("SelfSubjectRulesReview", {}, rules_status(rules_for(self.authorizer(), call.ctx.user,
                                                                                    namespace))), 201)


def rules_for(chain: Chain | None, user: User, namespace: str) -> RulesInfo:
    """The chain's rules, without the privileged groups' (kube-apiserver resolves rules with the
    modes' resolvers only, so ``system:masters`` lists what RBAC grants it, not a second ``*``)."""
    if chain is None:
        return AlwaysAllow().rules_for(user, namespace)
    return Chain([a for a in chain.authorizers if not isinstance(a, PrivilegedGroups)]).rules_for(user, namespace)
