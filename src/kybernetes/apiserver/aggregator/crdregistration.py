"""Local APIServices for custom resource group/versions: kube-apiserver's crdregistration controller.

Every group/version a CRD serves gets a local APIService ``<version>.<group>`` with
``groupPriorityMinimum: 1000`` and ``versionPriority: 100`` (labelled
``kube-aggregator.kubernetes.io/automanaged: "true"``), Available with reason Local; when no CRD
serves it any more, the APIService is deleted. As kube-aggregator's autoregister controller does
for these "sync always" APIServices, one a user deletes is created again and one whose spec a user
changes gets its spec back (the sync runs on those events too). The catalogue is where served CRD
versions appear (the CRD controller puts them there), so the sync runs whenever its generation moves.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.aggregator.autoregister import (
    AUTOMANAGED,
    CRD_GROUP_PRIORITY,
    GROUP,
    LOCAL_CONDITION,
    PRIORITIES,
)
from kybernetes.apiserver.aggregator.available import write_condition
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext
from kybernetes.apiserver.registry.store import Registry

CRD_VERSION_PRIORITY = 100


def crd_apiservice(group: str, version: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "APIService",
            "metadata": {"name": f"{version}.{group}", "labels": {AUTOMANAGED: "true"}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": CRD_GROUP_PRIORITY,
                     "versionPriority": CRD_VERSION_PRIORITY}}


def is_managed(obj: Any) -> bool:
    """Whether the APIService is one this sync keeps (labelled automanaged ``"true"``)."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(AUTOMANAGED) == "true"


def served_custom(catalogue: Catalogue) -> set[tuple[str, str]]:
    """The group/versions only custom resources serve."""
    return {(r.group, r.version) for r in catalogue.all() if not r.builtin and (r.group, r.version) not in PRIORITIES}


async def sync(registry: Registry, catalogue: Catalogue, apiservices: dict[str, Any], ctx: RequestContext) -> None:
    """Create the missing CRD APIServices, reset the spec of changed ones and delete those no CRD
    serves any more."""
    r = catalogue.get(GROUP, "v1", "apiservices")
    assert r is not None
    want = served_custom(catalogue)
    for group, version in sorted(want):
        name = f"{version}.{group}"
        current = apiservices.get(name)
        desired = crd_apiservice(group, version)
        if current is None:
            with contextlib.suppress(errors.AlreadyExists):
                current = await registry.create(r, "", desired, ctx)
        elif is_managed(current) and current.get("spec") != desired["spec"]:
            body = {**current, "spec": desired["spec"]}
            with contextlib.suppress(errors.NotFound, errors.Conflict):  # a later event syncs again
                current, _ = await registry.update(r, "", name, body, ctx)
        if current is not None and not (current.get("spec") or {}).get("service"):
            await write_condition(registry, catalogue, current, LOCAL_CONDITION, ctx)
    for name, obj in apiservices.items():
        spec = obj.get("spec") or {}
        if is_managed(obj) and (spec.get("group"), spec.get("version")) not in want:
            with contextlib.suppress(errors.NotFound):
                await registry.delete(r, "", name, DeleteOptions(), ctx)
