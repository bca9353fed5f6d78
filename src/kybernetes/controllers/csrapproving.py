"""csrapproving: auto-approves kubelet client certificate requests, as kube-controller-manager's
``pkg/controller/certificates/approver/sarapprove.go``.

A pending request (no certificate, neither Approved nor Denied) for
``kubernetes.io/kube-apiserver-client-kubelet`` that meets that signer's rules (O=system:nodes,
CN=system:node:NAME, no SANs, the kubelet client usages) is recognised as

* ``selfnodeclient`` when its requestor is the node it names (``spec.username`` equals the CN):
  a node renewing its own client certificate;
* ``nodeclient`` otherwise: a new node asking, typically with a bootstrap token.

Kubernetes then asks the authorizer (a SubjectAccessReview for the requestor: verb ``create``,
group ``certificates.k8s.io``, resource ``certificatesigningrequests``, subresource
``selfnodeclient`` or ``nodeclient``) and approves if it is allowed, with reason
``AutoApproved``; requests for other signers are left to people (``kubectl certificate approve``).

kybernetes has no authorizer yet (RBAC is issue 10), so :func:`authorized` decides what a cluster
with kubeadm's default bindings would: ``system:masters`` may do anything; ``selfnodeclient`` is
allowed to ``system:nodes`` (kubeadm's ``kubeadm:node-autoapprove-certificate-rotation``),
``nodeclient`` to ``system:bootstrappers`` and its sub-groups
(``kubeadm:node-autoapprove-bootstrap``). When RBAC lands this becomes the SubjectAccessReview.
"""

from __future__ import annotations

import logging

from kybernetes import errors
from kybernetes.api import certificates as certs
from kybernetes.api.obj import Obj
from kybernetes.controllers.base import Controller, ControllerContext

log = logging.getLogger(__name__)

API = "certificates.k8s.io/v1"
PLURAL = "certificatesigningrequests"

RECOGNIZERS = (
    ("selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview."),
    ("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."),
)


def recognize(csr: Obj, info: certs.CSRInfo) -> list[str]:
    """The recognizers (``selfnodeclient``, ``nodeclient``) this request matches, in order."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != certs.KUBE_APISERVER_CLIENT_KUBELET:
        return []
    try:
        certs.validate_kubelet_client_csr(info, list(spec.get("usages") or []))
    except certs.CSRError:
        return []
    matched = ["nodeclient"]
    if spec.get("username") == info.common_name:
        matched.insert(0, "selfnodeclient")
    return matched


def authorized(spec: Obj, subresource: str) -> bool:
    """Whether the requestor may ``create certificatesigningrequests/<subresource>`` (see above)."""
    groups = set(spec.get("groups") or [])
    if "system:masters" in groups:
        return True
    if subresource == "selfnodeclient":
        return "system:nodes" in groups
    return any(g == "system:bootstrappers" or g.startswith("system:bootstrappers:") for g in groups)


class CSRApprovingController(Controller):
    name = "certificatesigningrequest-approving-controller"
    queue_name = "certificate"
    service_account = "certificate-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = self.informer(API, PLURAL)
        self.csrs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))

    async def sync(self, key: str) -> None:
        csr = self.csrs.store.get(key)
        if csr is None:
            return
        status = csr.get("status") or {}
        types = {c.get("type") for c in status.get("conditions") or [] if isinstance(c, dict)}
        if status.get("certificate") or types & {certs.APPROVED, certs.DENIED}:
            return
        spec = csr.get("spec") or {}
        try:
            info = certs.parse_csr(certs.decode_bytes(spec.get("request")))
        except certs.CSRError as e:  # the API server validated it: only a corrupt object gets here
            log.warning("unable to parse csr %s: %s", key, e)
            return
        tried = recognize(csr, info)
        for subresource in tried:
            if not authorized(spec, subresource):
                continue
            message = dict(RECOGNIZERS)[subresource]
            conds = [*status.get("conditions", []), {"type": certs.APPROVED, "status": "True",
                                                     "reason": "AutoApproved", "message": message}]
            try:
                await self.client.update(API, PLURAL, dict(csr, status={**status, "conditions": conds}),
                                         subresource="approval")
            except errors.NotFound:
                return
            log.info("approved csr %s (%s)", key, subresource)
            return
        if tried:
            log.info("recognized csr %s as %s but subject access review was not approved", key, tried)


CONTROLLERS: list[type[Controller]] = [CSRApprovingController]

__all__ = ["CONTROLLERS", "CSRApprovingController", "authorized", "recognize"]
