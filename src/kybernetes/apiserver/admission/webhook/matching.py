"""Whether a webhook is called for a request, and for which resource and kind.

``k8s.io/apiserver/pkg/admission/plugin/webhook/generic/webhook.go`` (``ShouldCallHook``) with the
namespace and object matchers:

* namespaceSelector: a cluster-scoped request (other than for a Namespace) always matches; a
  Namespace being created or updated is matched by its own labels; otherwise the namespace's
  stored labels (a missing namespace is the 404 Kubernetes returns, if a rule matches);
* objectSelector: the object's or the old object's labels match;
* rules: the first rule that matches the request itself; failing that, under ``matchPolicy:
  Equivalent``, the first rule (in order) that matches an equivalent resource (the same objects
  served in another version, from the catalogue), which the webhook is then called for, with the
  object converted to that version;
* matchConditions are evaluated by the dispatcher on the request it built (:mod:`.conditions`).

Writes of admission configuration never call webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.admission.chain import CREATE, UPDATE, Attributes
from kybernetes.apiserver.admission.webhook.review import Target
from kybernetes.apiserver.admission.webhook.rules import is_exempt, rule_matches
from kybernetes.apiserver.admission.webhook.source import Webhook
from kybernetes.apiserver.registry.store import Registry


@dataclass(frozen=True)
class Invocation:
    """A webhook to call and what to call it for (``WebhookInvocation``)."""

    webhook: Webhook
    target: Target


def _labels(obj: Obj | None) -> dict[str, str] | None:
    if not isinstance(obj, dict):
        return None
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def equivalents(catalogue: Catalogue, group: str, version: str, resource: str) -> list[Resource]:
    """The resources serving the same objects as ``group/version/resource`` in other versions
    (``EquivalentResourcesFor``), in the catalogue's order."""
    this = catalogue.get(group, version, resource)
    if this is None:
        return []
    stored_in = (this.storage_group if this.storage_group is not None else this.group, this.plural)
    return [r for r in catalogue.all()
            if r is not this and (r.storage_group if r.storage_group is not None else r.group, r.plural) == stored_in]


class Matcher:
    """Decides which webhooks a request calls; reads namespaces from the registry's cache."""

    def __init__(self, registry: Registry, catalogue: Catalogue) -> None:
        self.registry = registry
        self.catalogue = catalogue

    async def should_call(self, hook: Webhook, attrs: Attributes) -> Invocation | None:
        """The invocation of ``hook`` for ``attrs``, or None; raises the namespace's 404 when a
        rule matches and the namespace selector needed a namespace that does not exist."""
        if is_exempt(attrs.group, attrs.resource):
            return None
        ns_error: errors.StatusError | None = None
        try:
            if not await self._namespace_matches(hook, attrs):
                return None
        except errors.StatusError as e:
            ns_error = e
        if not hook.object_selector.empty and not (
                _matches(hook, attrs.object) or _matches(hook, attrs.old_object)):
            return None
        invocation = self._by_rules(hook, attrs)
        if invocation is not None and ns_error is not None:
            raise ns_error
        return invocation

    def _by_rules(self, hook: Webhook, attrs: Attributes) -> Invocation | None:
        rules = [r for r in hook.spec.get("rules") or [] if isinstance(r, dict)]
        for rule in rules:
            if rule_matches(rule, attrs.operation, attrs.group, attrs.version, attrs.resource, attrs.subresource,
                            attrs.namespace):
                return Invocation(hook, Target(attrs.group, attrs.version, attrs.resource, attrs.kind))
        if hook.spec.get("matchPolicy") != "Equivalent":
            return None
        others = equivalents(self.catalogue, attrs.group, attrs.version, attrs.resource)
        for rule in rules:
            for r in others:
                if rule_matches(rule, attrs.operation, r.group, r.version, r.plural, attrs.subresource,
                                attrs.namespace):
                    return Invocation(hook, Target(r.group, r.version, r.plural, r.kind))
        return None

    async def _namespace_matches(self, hook: Webhook, attrs: Attributes) -> bool:
        is_namespace = attrs.group == "" and attrs.resource == "namespaces"
        if hook.namespace_selector.empty or (not attrs.namespace and not is_namespace):
            return True
        if is_namespace and not attrs.subresource and attrs.operation in (CREATE, UPDATE):
            return hook.namespace_selector.matches(_labels(attrs.object))
        return hook.namespace_selector.matches(await self._namespace_labels(attrs.namespace or attrs.name))

    async def _namespace_labels(self, name: str) -> dict[str, str]:
        namespaces = self.catalogue.get("", "v1", "namespaces")
        assert namespaces is not None
        try:
            ns = await self.registry.get(namespaces, "", name, "0")
        except errors.NotFound:
            # The cache may lag a namespace just made: ask the store before calling it missing.
            ns = await self.registry.get(namespaces, "", name)
        return _labels(ns) or {}


def _matches(hook: Webhook, obj: Obj | None) -> bool:
    labels = _labels(obj)
    return labels is not None and hook.object_selector.matches(labels)
