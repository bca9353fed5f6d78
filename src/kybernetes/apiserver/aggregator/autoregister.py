"""Local APIServices: one per built-in group/version, as kube-apiserver's autoregister controller
makes them, Available as kube-aggregator's local availability controller says.

kube-apiserver registers an APIService for every group/version it serves itself that its
priority table knows (``pkg/controlplane/apiserver/aggregator.go``'s ``apiVersionPriorities`` and
``DefaultGenericAPIServicePriorities``; the table below is 1.32's, restricted to what kybernetes
serves). They are "sync on start" (``AddAPIServiceToSyncOnStart``, label
``kube-aggregator.kubernetes.io/automanaged: onstart``): at start each is created if missing and
its spec reset if changed, and an ``onstart`` APIService for a group/version the server no longer
serves is deleted (autoregister's cases 2B, 5B, 5A); while the server runs they are left to the
user, as there (a deleted one is back at the next start; discovery here does not depend on them).
Group priorities order the groups of ``/apis``; a group missing from the table gets no
APIService, as there. Local APIServices are ``Available`` with reason ``Local``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.aggregator.available import write_condition
from kybernetes.apiserver.registry.request import DeleteOptions, ListOptions, RequestContext
from kybernetes.apiserver.registry.store import Registry

GROUP = "apiregistration.k8s.io"
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
ON_START = "onstart"

# (group, version) -> (groupPriorityMinimum, versionPriority)
PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apiregistration.k8s.io", "v1"): (18000, 1),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("autoscaling", "v1"): (17500, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("batch", "v1"): (17400, 15),
    ("certificates.k8s.io", "v1"): (17300, 15),
    ("networking.k8s.io", "v1"): (17200, 15),
    ("policy", "v1"): (17100, 15),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("storage.k8s.io", "v1"): (16800, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("node.k8s.io", "v1"): (16300, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1"): (16100, 21),
}
CRD_GROUP_PRIORITY = 1000
"""A custom resource group's priority (kube-apiserver's crdregistration controller: 1000, 100)."""

LOCAL_CONDITION = {"type": "Available", "status": "True", "reason": "Local",
                   "message": "Local APIServices are always available"}


def local_apiservice(group: str, version: str) -> dict[str, Any]:
    """``makeAPIService``: the local APIService of a built-in group/version."""
    gpm, vp = PRIORITIES[(group, version)]
    return {"apiVersion": f"{GROUP}/v1", "kind": "APIService",
            "metadata": {"name": f"{version}.{group}", "labels": {AUTOMANAGED: ON_START}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": gpm, "versionPriority": vp}}


async def register_local(registry: Registry, catalogue: Catalogue, ctx: RequestContext) -> None:
    """Create (or reset the spec of) the local APIService of every built-in group/version, then
    mark each Available; delete the ``onstart`` ones of group/versions no longer served."""
    r = catalogue.get(GROUP, "v1", "apiservices")
    assert r is not None
    desired = {f"{v}.{g}" for g, versions in catalogue.groups().items() for v in versions if (g, v) in PRIORITIES}
    for obj in (await registry.list(r, "", ListOptions())).items:
        name = obj["metadata"]["name"]
        if (obj["metadata"].get("labels") or {}).get(AUTOMANAGED) == ON_START and name not in desired:
            with contextlib.suppress(errors.NotFound):
                await registry.delete(r, "", name, DeleteOptions(), ctx)
    for group, versions in catalogue.groups().items():
        for version in versions:
            if (group, version) not in PRIORITIES:
                continue
            want = local_apiservice(group, version)
            name = want["metadata"]["name"]
            try:
                current = await registry.get(r, "", name)
            except errors.NotFound:
                current = await registry.create(r, "", want, ctx)
            else:
                if current.get("spec") != want["spec"]:
                    want["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    current, _ = await registry.update(r, "", name, want, ctx)
            await write_condition(registry, catalogue, current, LOCAL_CONDITION, ctx)
