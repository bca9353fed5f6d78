"""The CSR cleaner against a real API server, on a fake clock."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybernetes.client.rest import Client
from kybernetes.client.workqueue import FakeClock
from kybernetes.controllers.csrcleaner import CSRCleanerController
from kybernetes.controllers.job_util import now_dt
from kybernetes.testing import ServerProcess
from tests.controllers.harness import get_or_none, run_controllers, wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
API, PLURAL = "certificates.k8s.io/v1", "certificatesigningrequests"


async def make_csr(c: Client, name: str) -> Obj:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return await c.create(API, PLURAL, {
        "apiVersion": API, "kind": "CertificateSigningRequest", "metadata": {"name": name},
        "spec": {"request": base64.b64encode(pem).decode(), "signerName": "example.com/x", "usages": ["client auth"]}})


async def test_denied_goes_after_an_hour_pending_after_a_day(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)  # anchor the fake clock's wall time before anything is written
    async with run_controllers(srv, CSRCleanerController, clock=clock) as env:
        c = env.client
        pending = await make_csr(c, "pending")
        denied = await make_csr(c, "denied")
        denied["status"] = {"conditions": [{"type": "Denied", "status": "True", "reason": "No"}]}
        await c.update(API, PLURAL, denied, subresource="approval")
        # The denied request is due an hour after its condition was written (whole seconds).
        await wait_for(lambda: due_within(clock, 3590, 3601), 10, "the cleaner to schedule the denied request")
        assert await get_or_none(c, API, PLURAL, "denied") is not None
        await clock.advance(3602)
        await wait_for(lambda: gone(c, "denied"), 10, "the denied request deleted after 1 h")
        await wait_for(lambda: due_within(clock, 86400 - 3602 - 10, 86401 - 3602), 10, "the pending request's turn")
        assert await get_or_none(c, API, PLURAL, "pending") is not None
        await clock.advance(86401 - 3602)
        await wait_for(lambda: gone(c, "pending"), 10, "the pending request deleted after 24 h")
        assert pending["metadata"]["name"] == "pending"


async def due_within(clock: FakeClock, low: float, high: float) -> bool:
    """Whether the clock's next timer is ``low``..``high`` seconds from now."""
    at = clock.next_wakeup()
    return at is not None and low <= at - clock.now() <= high


async def gone(c: Client, name: str) -> bool:
    return await get_or_none(c, API, PLURAL, name) is None
