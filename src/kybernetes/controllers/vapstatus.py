"""validatingadmissionpolicy-status-controller: writes a ValidatingAdmissionPolicy's
``status.typeChecking`` and ``status.observedGeneration``, as kube-controller-manager's
``pkg/controller/validatingadmissionpolicystatus``.

Each new generation of a policy is type-checked (:mod:`kybernetes.cel.typecheck`) against the
kinds its ``matchConstraints`` name, with ``object`` typed by each kind's schema and ``params`` by
the ``paramKind``'s; what does not check becomes ``typeChecking.expressionWarnings`` (none:
``typeChecking: {}``). Kinds are resolved as Kubernetes' controller resolves them: resources to
kinds through discovery (``/api/v1``, ``/apis/<group>/<version>``), kinds to schemas through the
server's OpenAPI v3 (``/openapi/v3/...``), so built-in and custom resources alike; what cannot be
resolved is not checked. The checking itself (CPU-bound) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api.schema import Schema
from kybernetes.controllers.base import Controller, ControllerContext, split_key

if TYPE_CHECKING:
    from kybernetes.cel.typecheck import GVK

log = logging.getLogger(__name__)

API = "admissionregistration.k8s.io/v1"
PLURAL = "validatingadmissionpolicies"


def _group_version_path(prefix: str, group: str, version: str) -> str:
    return f"{prefix}/api/{version}" if not group else f"{prefix}/apis/{group}/{version}"


class _Resolver:
    """Discovery and OpenAPI v3 documents of the group-versions one policy names, fetched once per check."""

    def __init__(self, controller: ValidatingAdmissionPolicyStatusController) -> None:
        self.client = controller.client
        self.resources: dict[tuple[str, str], dict[str, str]] = {}
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}

    async def _get(self, path: str) -> dict[str, Any]:
        try:
            out = await self.client.request("GET", path)
        except errors.StatusError:  # not served (yet): its kinds are not checked
            return {}
        return out if isinstance(out, dict) else {}

    async def load(self, group: str, version: str) -> None:
        if (group, version) in self.resources:
            return
        listing = await self._get(_group_version_path("", group, version))
        self.resources[(group, version)] = {str(r.get("name")): str(r.get("kind")) for r in listing.get("resources") or ()
                                            if isinstance(r, dict) and "/" not in str(r.get("name"))}

    def kinds_for(self, group: str, version: str, resource: str) -> list[GVK]:
        kind = self.resources.get((group, version), {}).get(resource)
        return [(group, version, kind)] if kind else []

    async def schema(self, gvk: GVK) -> Schema | None:
        from kybernetes.cel.typecheck import schema_from_openapi_v3

        key = (gvk[0], gvk[1])
        if key not in self.documents:
            self.documents[key] = await self._get(_group_version_path("/openapi/v3", *key))
        return schema_from_openapi_v3(self.documents[key], gvk)


class ValidatingAdmissionPolicyStatusController(Controller):
    name = "validatingadmissionpolicy-status-controller"
    service_account = "validatingadmissionpolicy-status-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.policies = self.informer(API, PLURAL)
        self.policies.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))

    async def sync(self, key: str) -> None:
        policy = self.policies.store.get(key)
        if policy is None:
            return
        generation = (policy.get("metadata") or {}).get("generation")
        status = policy.get("status") or {}
        if status.get("observedGeneration") == generation and "typeChecking" in status:
            return
        warnings = await self._warnings(policy)
        _, name = split_key(key)
        try:
            await self.client.patch(API, PLURAL, name, {"status": {
                "observedGeneration": generation, "typeChecking": {"expressionWarnings": warnings or None}}},
                subresource="status")
        except (errors.NotFound, errors.Conflict):
            return

    async def _warnings(self, policy: dict[str, Any]) -> list[dict[str, str]]:
        # CEL (cel-expr-python) loads with the first policy to check, not with the controller manager.
        from kybernetes.cel.typecheck import expression_warnings, kinds_to_check

        resolver = _Resolver(self)
        rules = ((policy.get("spec") or {}).get("matchConstraints") or {}).get("resourceRules") or []
        for rule in rules:
            if isinstance(rule, dict):
                for group in rule.get("apiGroups") or ():
                    for version in rule.get("apiVersions") or ():
                        if "*" not in str(group) and "*" not in str(version):
                            await resolver.load(str(group), str(version))
        kinds = [(gvk, await resolver.schema(gvk)) for gvk in kinds_to_check(policy, resolver.kinds_for)]
        params = None
        param_kind = (policy.get("spec") or {}).get("paramKind")
        if isinstance(param_kind, dict) and param_kind.get("kind"):
            group, _, version = str(param_kind.get("apiVersion") or "").rpartition("/")
            params = await resolver.schema((group, version, str(param_kind["kind"])))
        return await asyncio.to_thread(expression_warnings, policy, kinds, params)


CONTROLLERS: list[type[Controller]] = [ValidatingAdmissionPolicyStatusController]

__all__ = ["CONTROLLERS", "ValidatingAdmissionPolicyStatusController"]
