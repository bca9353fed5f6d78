"""Discovery with aggregated APIs: ``/apis`` in both forms and ``/apis/<group>``.

kube-aggregator's ``handler_apis.go`` and aggregated discovery manager, on top of the built-in
documents (:mod:`kybernetes.apiserver.transport.discovery`):

* groups are ordered by priority: a remote group's is the highest ``groupPriorityMinimum`` of
  its APIServices; built-in groups keep their order (which is their APIServices' priorities,
  :data:`autoregister.PRIORITIES`; custom resource groups 1000), and each remote group goes in
  before the first built-in group of lower priority; within a group, versions go by
  ``versionPriority`` (highest first), then Kubernetes' version order;
* the legacy ``APIGroupList`` and ``APIGroup`` name every remote group/version registered, and
  ``/`` lists the path of each remote group and group/version (:func:`root_paths`);
* aggregated discovery (``apidiscovery.k8s.io/v2``) has the resources of each remote
  group/version whose backend's ``APIResourceList`` was fetched (by the availability
  controller, on each check), ``freshness: Stale`` when the last check failed.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue, version_priority
from kybernetes.apiserver.aggregator.autoregister import CRD_GROUP_PRIORITY, PRIORITIES
from kybernetes.apiserver.transport import discovery as builtin


def _int(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else 0


def remote_groups(apiservices: dict[str, Obj]) -> dict[str, tuple[int, list[Obj]]]:
    """Group -> (its priority, its APIServices in version order), for APIServices with a service."""
    out: dict[str, tuple[int, list[Obj]]] = {}
    for obj in apiservices.values():
        spec = obj.get("spec") or {}
        if not spec.get("service") or not spec.get("group"):
            continue
        prio, members = out.get(spec["group"], (0, []))
        out[spec["group"]] = (max(prio, _int(spec.get("groupPriorityMinimum"))), [*members, obj])
    for group, (prio, members) in out.items():
        members.sort(key=lambda o: (-_int(o["spec"].get("versionPriority")), version_priority(o["spec"]["version"])))
        out[group] = (prio, members)
    return out


def _local_priority(group: str, versions: list[str]) -> int:
    return max((PRIORITIES.get((group, v), (CRD_GROUP_PRIORITY, 0))[0] for v in versions), default=CRD_GROUP_PRIORITY)


def ordered(cat: Catalogue, remote: dict[str, tuple[int, list[Obj]]]) -> list[tuple[str, list[str], list[Obj]]]:
    """Every named group in discovery order: (name, its local versions, its remote APIServices);
    a group served both ways keeps its local place and lists the remote versions after its own."""
    pending = sorted(((prio, g) for g, (prio, _) in remote.items() if g not in cat.groups()),
                     key=lambda pg: (-pg[0], pg[1]))
    out: list[tuple[str, list[str], list[Obj]]] = []
    for group, versions in cat.groups().items():
        if not group:
            continue
        prio = _local_priority(group, versions)
        while pending and pending[0][0] > prio:
            name = pending.pop(0)[1]
            out.append((name, [], remote[name][1]))
        members = [o for o in remote.get(group, (0, []))[1] if o["spec"]["version"] not in versions]
        out.append((group, versions, members))
    out += [(g, [], remote[g][1]) for _, g in pending]
    return out


def _group_doc(group: str, versions: list[str], members: list[Obj]) -> dict[str, Any]:
    names = versions + [o["spec"]["version"] for o in members]
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in names]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(cat: Catalogue, remote: dict[str, tuple[int, list[Obj]]]) -> dict[str, Any]:
    groups = [_group_doc(*entry) for entry in ordered(cat, remote)]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(cat: Catalogue, group: str, remote: dict[str, tuple[int, list[Obj]]]) -> dict[str, Any] | None:
    """``/apis/<group>`` of a group with remote versions (None if it has none)."""
    if group not in remote:
        return None
    entry = next(e for e in ordered(cat, remote) if e[0] == group)
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(*entry)}


def root_paths(remote: dict[str, tuple[int, list[Obj]]]) -> list[str]:
    """``/apis/<group>`` and ``/apis/<group>/<version>`` of every remote APIService."""
    paths = {f"/apis/{group}" for group in remote}
    paths |= {f"/apis/{group}/{o['spec']['version']}" for group, (_, members) in remote.items() for o in members}
    return sorted(paths)


def version_discovery(group: str, version: str, doc: Obj, fresh: bool) -> dict[str, Any]:
    """An ``APIResourceList`` as an aggregated ``APIVersionDiscovery``."""
    resources: dict[str, dict[str, Any]] = {}
    entries = [e for e in doc.get("resources") or [] if isinstance(e, dict) and e.get("name")]
    for e in entries:
        if "/" in e["name"]:
            continue
        out: dict[str, Any] = {
            "resource": e["name"],
            "responseKind": {"group": e.get("group", group), "version": e.get("version", version), "kind": e.get("kind")},
            "scope": "Namespaced" if e.get("namespaced") else "Cluster",
            "singularResource": e.get("singularName") or "", "verbs": list(e.get("verbs") or []),
        }
        for key in ("shortNames", "categories"):
            if e.get(key):
                out[key] = list(e[key])
        resources[e["name"]] = out
    for e in entries:
        parent, _, sub = e["name"].partition("/")
        if sub and parent in resources:
            kind = {"group": e.get("group", group), "version": e.get("version", version), "kind": e.get("kind")}
            resources[parent].setdefault("subresources", []).append(
                {"subresource": sub, "responseKind": kind, "verbs": list(e.get("verbs") or [])})
    return {"version": version, "resources": [resources[k] for k in sorted(resources)],
            "freshness": "Current" if fresh else "Stale"}


def aggregated(cat: Catalogue, remote: dict[str, tuple[int, list[Obj]]],
               docs: dict[str, tuple[Obj, bool]]) -> dict[str, Any]:
    """The named groups' aggregated discovery; ``docs``: APIService name -> (its fetched
    APIResourceList, whether the last check passed)."""
    local = {item["metadata"]["name"]: item for item in builtin.aggregated(cat, core=False)["items"]}
    items = []
    for group, versions, members in ordered(cat, remote):
        out = list(local[group]["versions"]) if versions else []
        for obj in members:
            fetched = docs.get(obj["metadata"]["name"])
            if fetched is not None:
                out.append(version_discovery(group, obj["spec"]["version"], *fetched))
        if out:
            items.append({"metadata": {"name": group}, "versions": out})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
