"""clusterrole-aggregation: ClusterRoles with an ``aggregationRule`` get the rules of the
ClusterRoles its selectors match, as kube-controller-manager's
``pkg/controller/clusterroleaggregation``.

Guarantees: for every ClusterRole with ``aggregationRule``, its ``rules`` become, in order, the
rules of the ClusterRoles each ``clusterRoleSelectors`` entry matches (in name order, itself
excluded), each distinct rule once (rules equal up to empty-vs-missing lists count as one). A
role whose rules already are that list is not written. Any ClusterRole change re-evaluates every
aggregated role (the dependency graph is not known, as in Kubernetes), so additions, changed
rules, label changes and deletions are reflected. Rules are written by server-side apply with
the field manager ``clusterrole-aggregation-controller``, forced.
"""

from __future__ import annotations

import logging
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.controllers.base import Controller, ControllerContext, split_key

log = logging.getLogger(__name__)

API = "rbac.authorization.k8s.io/v1"
PLURAL = "clusterroles"
FIELD_MANAGER = "clusterrole-aggregation-controller"
RULE_FIELDS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")


def normalized(rule: Any) -> dict[str, Any]:
    """A rule as ``equality.Semantic`` compares it: empty and missing lists are the same."""
    if not isinstance(rule, dict):
        return {}
    return {f: rule[f] for f in RULE_FIELDS if rule.get(f)}


def aggregated_rules(role: Obj, cluster_roles: list[Obj]) -> list[dict[str, Any]]:
    """The rules ``role``'s aggregationRule gathers from ``cluster_roles`` (its ``syncClusterRole``)."""
    name = role["metadata"]["name"]
    out: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    by_name = sorted(cluster_roles, key=lambda o: o["metadata"]["name"])
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or ():
        try:
            sel = from_label_selector_object(selector)
        except errors.StatusError:
            continue
        for other in by_name:
            if other["metadata"]["name"] == name or not sel.matches(other["metadata"].get("labels") or {}):
                continue
            for rule in other.get("rules") or ():
                if normalized(rule) not in seen:
                    seen.append(normalized(rule))
                    out.append(rule)
    return out


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation"
    queue_name = "ClusterRoleAggregator"
    service_account = "clusterrole-aggregation-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.roles = self.informer(API, PLURAL)
        self.roles.add_handler(on_add=self._enqueue_aggregated, on_update=lambda old, new: self._enqueue_aggregated(new),
                               on_delete=self._enqueue_aggregated)

    def _enqueue_aggregated(self, _changed: Obj) -> None:
        for role in self.roles.store.list():
            if role.get("aggregationRule") is not None:
                self.enqueue(role)

    async def sync(self, key: str) -> None:
        role = self.roles.store.get(key)
        if role is None or role.get("aggregationRule") is None:
            return
        rules = aggregated_rules(role, self.roles.store.list())
        if [normalized(r) for r in rules] == [normalized(r) for r in role.get("rules") or ()]:
            return
        _, name = split_key(key)
        patch = {"apiVersion": API, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}
        try:
            await self.client.patch(API, PLURAL, name, patch, patch_type="apply", field_manager=FIELD_MANAGER,
                                    force=True)
        except errors.NotFound:
            return
        log.info("aggregated %d rules into clusterrole %s", len(rules), name)


CONTROLLERS: list[type[Controller]] = [ClusterRoleAggregationController]

__all__ = ["CONTROLLERS", "ClusterRoleAggregationController", "aggregated_rules"]
