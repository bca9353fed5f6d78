"""ValidatingAdmissionPolicy (Kubernetes' ``k8s.io/apiserver/pkg/admission/plugin/policy/validating``,
on by default in 1.32; validating, every operation).

For each binding (by policy, then binding name) whose policy exists: the request must match the
policy's ``matchConstraints`` and the binding's ``matchResources`` (:mod:`.matching`); a policy
with ``paramKind`` is evaluated once per parameter object the binding's ``paramRef`` selects (by
name, or by label selector; in ``paramRef.namespace``, else the request's namespace for a
namespaced kind); none found is a failure under ``parameterNotFoundAction: Deny`` and a pass
under Allow. Each violation is acted on by the binding's ``validationActions``:

* Deny: the request is refused with the first denial, 422 (or the validation's ``reason``:
  Forbidden 403, Unauthorized 401, RequestEntityTooLarge 413), ``<resource> "<name>" is
  forbidden: ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request:
  <message>`` with that message as the one cause;
* Warn: a warning ``Validation failed for ValidatingAdmissionPolicy '<policy>' with binding
  '<binding>': <message>``;
* Audit: the audit annotation ``validation.policy.admission.k8s.io/validation_failure`` (a JSON
  list of {message, policy, binding, expressionIndex, validationActions}).

Failures (evaluation errors, missing params, a binding without the paramRef its policy needs)
follow the policy's ``failurePolicy``: Fail denies (through the actions), Ignore passes. Policies
and bindings are read from the watch caches, and each policy is compiled once per
resourceVersion (:mod:`.evaluate`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Resource
from kybernetes.apiserver.admission.chain import Attributes, Handler, PluginInit, forbidden
from kybernetes.apiserver.admission.validatingadmissionpolicy.evaluate import CompiledPolicy, Decision
from kybernetes.apiserver.admission.validatingadmissionpolicy.matching import EXEMPT, matches
from kybernetes.apiserver.authz.authorizer import Chain
from kybernetes.apiserver.registry.store import Registry

NAME = "ValidatingAdmissionPolicy"
GROUP = "admissionregistration.k8s.io"
AUDIT_KEY = "validation.policy.admission.k8s.io/validation_failure"
_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413, "Invalid": 422}


class _Denied(Exception):
    def __init__(self, policy: str, binding: str, decision: Decision) -> None:
        super().__init__(decision.message)
        self.policy, self.binding, self.decision = policy, binding, decision


class ValidatingAdmissionPolicy(Handler):
    def __init__(self, registry: Registry, authorizer: Callable[[], Chain | None] = lambda: None) -> None:
        self.registry = registry
        self.authorizer = authorizer
        cat = registry.catalogue
        self.policies = cat.get(GROUP, "v1", "validatingadmissionpolicies")
        self.bindings = cat.get(GROUP, "v1", "validatingadmissionpolicybindings")
        self.namespaces = cat.get("", "v1", "namespaces")
        self._compiled: dict[str, tuple[str, CompiledPolicy]] = {}

    async def validate(self, attrs: Attributes) -> None:
        if (attrs.group, attrs.resource) in EXEMPT or self.policies is None or self.bindings is None:
            return
        bindings = (await self.registry.cacher.cache_for(self.bindings.key_prefix)).objects
        if not bindings:
            return
        policies = (await self.registry.cacher.cache_for(self.policies.key_prefix)).objects
        if len(self._compiled) > len(policies):  # forget deleted policies
            self._compiled = {n: c for n, c in self._compiled.items() if self.policies.key("", n) in policies}
        request = _Request(self, attrs)
        denied: _Denied | None = None
        for binding in sorted(bindings.values(), key=_binding_order):
            policy_obj = policies.get(self.policies.key("", str((binding.get("spec") or {}).get("policyName"))))
            if policy_obj is None:
                continue
            try:
                await self._apply(self._policy(policy_obj), binding, request)
            except _Denied as d:
                denied = denied or d
        if denied is not None:
            raise _denial(attrs, denied)

    def _policy(self, obj: Obj) -> CompiledPolicy:
        name, rv = obj["metadata"]["name"], obj["metadata"].get("resourceVersion", "")
        cached = self._compiled.get(name)
        if cached is None or cached[0] != rv:
            cached = (rv, CompiledPolicy.of(obj))
            self._compiled[name] = cached
        return cached[1]

    async def _apply(self, policy: CompiledPolicy, binding: Obj, request: _Request) -> None:
        spec = binding.get("spec") or {}
        if not await request.matches(policy.spec.get("matchConstraints") or {}):
            return
        if spec.get("matchResources") and not await request.matches(spec["matchResources"]):
            return
        name = binding["metadata"]["name"]
        actions = [a for a in spec.get("validationActions") or () if isinstance(a, str)]
        try:
            params = await self._params(policy, spec, request.attrs)
        except _ConfigError as e:
            self._act(policy, name, actions, [Decision(f"failed to configure binding: {e}", failure=True)], request)
            return
        for param in params:
            outcome = policy.evaluate(await request.data(param))
            if outcome.skipped:
                continue
            for key, value in outcome.audit_annotations.items():
                request.attrs.add_annotation(key, value)
            self._act(policy, name, actions, outcome.decisions, request)

    def _act(self, policy: CompiledPolicy, binding: str, actions: list[str], decisions: list[Decision],
             request: _Request) -> None:
        deny: _Denied | None = None
        for d in decisions:
            if d.failure and policy.failure_policy == "Ignore":
                continue
            if "Warn" in actions:
                request.attrs.warnings.append(
                    f"Validation failed for ValidatingAdmissionPolicy '{policy.name}' with binding '{binding}': "
                    f"{d.message}")
            if "Audit" in actions:
                _audit(request.attrs, policy.name, binding, actions, d)
            if "Deny" in actions and deny is None:
                deny = _Denied(policy.name, binding, d)
        if deny is not None:
            raise deny

    async def _params(self, policy: CompiledPolicy, spec: Obj, attrs: Attributes) -> list[Any]:
        kind = policy.spec.get("paramKind")
        if not isinstance(kind, dict):
            return [None]
        ref = spec.get("paramRef")
        if not isinstance(ref, dict):
            raise _ConfigError(f"ValidatingAdmissionPolicy '{policy.name}' has a paramKind but its binding has "
                               "no paramRef")
        group, _, version = str(kind.get("apiVersion") or "").rpartition("/")
        r = self.registry.catalogue.by_kind(group, version, str(kind.get("kind") or ""))
        if r is None:
            raise _ConfigError(f"paramKind kind `{kind.get('kind')}` not known")
        found = await self._find_params(r, ref, attrs)
        if not found and ref.get("parameterNotFoundAction") == "Deny":
            raise _ConfigError("no params found for policy binding with `Deny` parameterNotFoundAction")
        return found

    async def _find_params(self, r: Resource, ref: Obj, attrs: Attributes) -> list[Any]:
        namespace = str(ref.get("namespace") or "")
        if r.namespaced and not namespace:
            if not attrs.namespace:
                raise _ConfigError("cannot use namespaced paramRef in policy binding that matches cluster-scoped "
                                   "resources")
            namespace = attrs.namespace
        cache = (await self.registry.cacher.cache_for(r.key_prefix)).objects
        if ref.get("name"):
            obj = cache.get(r.key(namespace, str(ref["name"])))
            return [obj] if obj is not None else []
        selector = from_label_selector_object(ref.get("selector"))
        prefix = r.namespace_prefix(namespace)
        return [o for key, o in sorted(cache.items()) if key.startswith(prefix)
                and selector.matches((o.get("metadata") or {}).get("labels") or {})]


class _ConfigError(Exception):
    pass


def _binding_order(binding: Obj) -> tuple[str, str]:
    return (str((binding.get("spec") or {}).get("policyName")), str(binding["metadata"]["name"]))


def _audit(attrs: Attributes, policy: str, binding: str, actions: list[str], d: Decision) -> None:
    """Add one failure to the request's list of them (one annotation for all policies), when the
    request is audited."""
    if attrs.audit_annotations is None:
        return
    failures = json.loads(attrs.audit_annotations.get(AUDIT_KEY) or "[]")
    failures.append({"message": d.message, "policy": policy, "binding": binding, "expressionIndex": d.index,
                     "validationActions": actions})
    attrs.audit_annotations[AUDIT_KEY] = json.dumps(failures, separators=(",", ":"))


def _denial(attrs: Attributes, d: _Denied) -> errors.StatusError:
    message = f"ValidatingAdmissionPolicy '{d.policy}' with binding '{d.binding}' denied request: {d.decision.message}"
    err = forbidden(attrs, message)
    reason = d.decision.reason if d.decision.reason in _CODES else "Invalid"
    err.reason, err.code = reason, _CODES[reason]
    err.details = {**(err.details or {}), "causes": [{"message": message}]}
    return err


class _Request:
    """What every binding's evaluation of one request shares: the namespace, the CEL ``request``."""

    def __init__(self, plugin: ValidatingAdmissionPolicy, attrs: Attributes) -> None:
        self.plugin, self.attrs = plugin, attrs
        self._namespace: Obj | None = None
        self._namespace_read = False
        self._request: Obj | None = None
        r = plugin.registry.catalogue.get(attrs.group, attrs.version, attrs.resource)
        self.namespaced = r.namespaced if r is not None else bool(attrs.namespace)

    async def namespace(self) -> Obj | None:
        if not self._namespace_read and self.attrs.namespace and self.plugin.namespaces is not None:
            ns = self.plugin.namespaces
            cache = await self.plugin.registry.cacher.cache_for(ns.key_prefix)
            self._namespace = cache.objects.get(ns.key("", self.attrs.namespace))
        self._namespace_read = True
        return self._namespace

    async def matches(self, match: Obj) -> bool:
        ns = await self.namespace()
        labels = ((ns.get("metadata") or {}).get("labels") or {}) if ns is not None else None
        return matches(match, self.attrs, namespaced=self.namespaced, other_versions=self._other_versions,
                       namespace_labels=lambda: labels)

    def _other_versions(self) -> list[str]:
        a = self.attrs
        return [x.version for x in self.plugin.registry.catalogue.all()
                if x.group == a.group and x.plural == a.resource and x.version != a.version]

    async def data(self, params: Any) -> dict[str, Any]:
        from kybernetes.apiserver.cel import library_authz  # CEL: loaded with the first policy evaluated

        a = self.attrs
        if self._request is None:
            self._request = _request_object(a)
        authz = library_authz.variables(self.plugin.authorizer(), a.user, a.group, a.resource, a.subresource,
                                        a.namespace, a.name)
        return {"object": a.object, "oldObject": a.old_object, "request": self._request, "params": params,
                "namespaceObject": await self.namespace(), **authz}


def _request_object(a: Attributes) -> Obj:
    kind = {"group": a.group, "version": a.version, "kind": a.kind}
    resource = {"group": a.group, "version": a.version, "resource": a.resource}
    user = a.user
    return {
        "uid": str(uuid.uuid4()), "kind": kind, "resource": resource, "subResource": a.subresource,
        "requestKind": kind, "requestResource": resource, "requestSubResource": a.subresource,
        "name": a.name, "namespace": a.namespace, "operation": a.operation,
        "userInfo": {"username": user.name, "uid": user.uid, "groups": list(user.groups),
                     "extra": {k: list(v) for k, v in user.extra.items()}},
        "dryRun": a.dry_run,
    }


def new(init: PluginInit) -> ValidatingAdmissionPolicy:
    return ValidatingAdmissionPolicy(init.registry, init.authorizer)
