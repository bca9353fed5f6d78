"""API discovery documents, in the forms kubectl 1.32 and older clients ask for.

- ``/api`` and ``/apis``: aggregated discovery (``apidiscovery.k8s.io/v2`` APIGroupDiscoveryList)
  when the Accept header asks for it — kubectl 1.32 does, and then needs no per-group requests —
  else the legacy ``APIVersions`` / ``APIGroupList``.
- ``/apis/<group>``: ``APIGroup``; ``/api/v1`` and ``/apis/<group>/<version>``: ``APIResourceList``.

Documents are rebuilt only when the catalogue changes (a CRD came or went); each is cached as
bytes with an ETag, which clients send back to skip re-downloading.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kybernetes.api import gojson
from kybernetes.api.resources import Catalogue, Resource

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

# Subresource -> (group, version, kind of what it returns or takes, verbs).
_SUB: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "status": ("", "", None, ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "log": ("", "v1", "Pod", ("get",)),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "proxy": ("", "v1", None, ("create", "delete", "get", "patch", "update")),
    "ephemeralcontainers": ("", "", None, ("get", "patch", "update")),
    "finalize": ("", "", None, ("update",)),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
    "approval": ("", "", None, ("get", "patch", "update")),
}


def _sub_kind(r: Resource, sub: str) -> tuple[str, str, str]:
    g, v, k, _ = _SUB.get(sub, ("", "", None, ()))
    if k is None:
        if sub == "proxy":
            return "", "v1", f"{r.kind}ProxyOptions"
        return r.group, r.version, r.kind
    return g, v, k


def _storage_version_hash(r: Resource) -> str:
    h = hashlib.sha256(f"{r.group}/{r.version}/{r.kind}".encode()).digest()
    import base64

    return base64.b64encode(h[:8]).decode()


def resource_list(cat: Catalogue, group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for r in sorted(cat.in_group_version(group, version), key=lambda r: r.plural):
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular_name,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        if r.stored:
            entry["storageVersionHash"] = _storage_version_hash(r)
        resources.append(entry)
        for sub in r.subresources:
            g, v, k = _sub_kind(r, sub)
            se: dict[str, Any] = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                                  "kind": k, "verbs": list(_SUB.get(sub, ("", "", None, ("get",)))[3])}
            if g != r.group or v != r.version:
                se["group"], se["version"] = g, v
            resources.append(se)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _group(cat: Catalogue, name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list(cat: Catalogue) -> dict[str, Any]:
    groups = [_group(cat, g, vs) for g, vs in cat.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(cat: Catalogue, name: str) -> dict[str, Any] | None:
    vs = cat.groups().get(name)
    if not vs or not name:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(cat, name, vs)}


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular_name,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    subs = []
    for sub in r.subresources:
        g, v, k = _sub_kind(r, sub)
        subs.append({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k},
                     "verbs": list(_SUB.get(sub, ("", "", None, ("get",)))[3])})
    if subs:
        out["subresources"] = subs
    return out


def aggregated(cat: Catalogue, core: bool) -> dict[str, Any]:
    items = []
    for g, vs in cat.groups().items():
        if bool(g) == core:
            continue
        versions = []
        for v in vs:
            rs = sorted(cat.in_group_version(g, v), key=lambda r: r.plural)
            versions.append({"version": v, "resources": [_aggregated_resource(r) for r in rs], "freshness": "Current"})
        items.append({"metadata": {"name": g} if g else {}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


class DiscoveryCache:
    """Serialised discovery documents, rebuilt when the catalogue's generation moves."""

    def __init__(self, cat: Catalogue) -> None:
        self.cat = cat
        self._gen = -1
        self._docs: dict[str, tuple[bytes, str]] = {}

    def invalidate(self) -> None:
        """Forget every document (what is served changed outside the catalogue: aggregated APIs)."""
        self._docs.clear()

    def get(self, name: str, build: Any) -> tuple[bytes, str]:
        if self._gen != self.cat.generation:
            self._docs.clear()
            self._gen = self.cat.generation
        hit = self._docs.get(name)
        if hit is None:
            body = gojson.dumps(build())
            hit = (body, hashlib.sha256(body).hexdigest()[:32])
            self._docs[name] = hit
        return hit
