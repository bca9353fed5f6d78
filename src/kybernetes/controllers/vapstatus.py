"""validatingadmissionpolicy-status-controller: writes a ValidatingAdmissionPolicy's
``status.typeChecking`` and ``status.observedGeneration``, as kube-controller-manager's
``pkg/controller/validatingadmissionpolicystatus``.

Kubernetes type-checks every expression against the OpenAPI schemas of the kinds the policy
matches and lists what does not check as ``typeChecking.expressionWarnings``. Here expressions
are checked when the policy is written (one that does not compile is refused), with every
variable typed ``dyn``: there is nothing more to warn about, so ``typeChecking`` is empty. The
status says that the policy's current generation has been checked.
"""

from __future__ import annotations

import logging

from kybernetes import errors
from kybernetes.controllers.base import Controller, ControllerContext, split_key

log = logging.getLogger(__name__)

API = "admissionregistration.k8s.io/v1"
PLURAL = "validatingadmissionpolicies"


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
        _, name = split_key(key)
        try:
            await self.client.patch(API, PLURAL, name, {"status": {"observedGeneration": generation,
                                                                   "typeChecking": {}}},
                                    subresource="status")
        except (errors.NotFound, errors.Conflict):
            return


CONTROLLERS: list[type[Controller]] = [ValidatingAdmissionPolicyStatusController]

__all__ = ["CONTROLLERS", "ValidatingAdmissionPolicyStatusController"]
