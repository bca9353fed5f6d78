"""csrcleaner: deletes CertificateSigningRequests that have served their purpose, as
kube-controller-manager's ``pkg/controller/certificates/cleaner``.

A request goes when any of these holds (times from the condition's ``lastUpdateTime``):

* Approved and issued, more than 1 hour ago;
* Denied, more than 1 hour ago; Failed, more than 1 hour ago;
* pending (no conditions at all), created more than 24 hours ago;
* Approved and issued, and the certificate's NotAfter has passed.

Kubernetes lists every request once an hour; here each request is queued for the moment its first
deadline passes (on the controller's clock), so it goes at that moment, and every change to it
re-evaluates. A certificate that cannot be parsed never counts as expired (Kubernetes logs it).
"""

from __future__ import annotations

import datetime as dt
import logging

from cryptography import x509

from kybernetes import errors
from kybernetes.api import certificates as certs
from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.job_util import now_dt

log = logging.getLogger(__name__)

API = "certificates.k8s.io/v1"
PLURAL = "certificatesigningrequests"
APPROVED_EXPIRATION = dt.timedelta(hours=1)
DENIED_EXPIRATION = dt.timedelta(hours=1)
PENDING_EXPIRATION = dt.timedelta(hours=24)


def certificate_not_after(csr: Obj) -> dt.datetime | None:
    """NotAfter of the first certificate in ``status.certificate``; None if none or unparseable."""
    try:
        block, _ = certs.pem_decode(certs.decode_bytes((csr.get("status") or {}).get("certificate")))
        if block is None:
            return None
        return x509.load_der_x509_certificate(block.bytes).not_valid_after_utc
    except (certs.CSRError, ValueError):
        return None


def deadline(csr: Obj) -> tuple[dt.datetime, str] | None:
    """When ``csr`` becomes garbage and why; None if it never does in its current state."""
    status = csr.get("status") or {}
    conds = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    issued = bool(status.get("certificate"))
    found: list[tuple[dt.datetime, str]] = []
    for c in conds:
        at = parse_rfc3339(c.get("lastUpdateTime"))
        if at is None:
            continue
        if c.get("type") == certs.APPROVED and issued:
            found.append((at + APPROVED_EXPIRATION, "approved and issued"))
            not_after = certificate_not_after(csr)
            if not_after is not None:
                found.append((not_after, "its certificate expired"))
        elif c.get("type") == certs.DENIED:
            found.append((at + DENIED_EXPIRATION, "denied"))
        elif c.get("type") == certs.FAILED:
            found.append((at + DENIED_EXPIRATION, "failed"))
    created = parse_rfc3339((csr.get("metadata") or {}).get("creationTimestamp"))
    if not conds and created is not None:
        found.append((created + PENDING_EXPIRATION, "pending and unhandled"))
    return min(found) if found else None


class CSRCleanerController(Controller):
    name = "certificatesigningrequest-cleaner-controller"
    service_account = "certificate-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = self.informer(API, PLURAL)
        self.csrs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))

    async def sync(self, key: str) -> None:
        csr = self.csrs.store.get(key)
        if csr is None:
            return
        due = deadline(csr)
        if due is None:
            return
        left = (due[0] - now_dt(self.ctx.clock)).total_seconds()
        if left >= 0:
            # Strictly older than the deadline, as Kubernetes' isOlderThan; a little after it.
            self.queue.add_after(key, left + 0.001)
            return
        _, name = split_key(key)
        meta = csr.get("metadata") or {}
        try:
            await self.client.delete(API, PLURAL, name, preconditions={"uid": meta.get("uid")})
        except (errors.NotFound, errors.Conflict):
            return
        log.info("cleaned csr %s: %s", name, due[1])


CONTROLLERS: list[type[Controller]] = [CSRCleanerController]

__all__ = ["CONTROLLERS", "CSRCleanerController", "certificate_not_after", "deadline"]
