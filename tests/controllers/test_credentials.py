"""Per-controller ServiceAccount credentials (``--use-service-account-credentials``) against a
real API server: the account is created, its TokenRequest token authenticates as the account, a
controller writes with it, and the token is renewed once 80% of its life has passed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.controllers.base import ControllerContext
from kybernetes.controllers.credentials import ServiceAccountClients
from kybernetes.controllers.deployment import DeploymentController
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration


async def _whoami(client: Client) -> dict[str, Any]:
    review = await client.create("authentication.k8s.io/v1", "selfsubjectreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    user: dict[str, Any] = review["status"]["userInfo"]
    return user


async def test_controller_writes_as_its_service_account_and_token_is_renewed(srv: ServerProcess) -> None:
    now = [time.monotonic()]
    async with Client.from_kubeconfig(str(srv.kubeconfig)) as root:
        accounts = ServiceAccountClients(root, expiration_seconds=3600, clock=lambda: now[0])
        try:
            client = await accounts.client_for("deployment-controller")
            assert await accounts.client_for("deployment-controller") is client
            await root.get("v1", "serviceaccounts", "deployment-controller", "kube-system")
            user = await _whoami(client)
            assert user["username"] == "system:serviceaccount:kube-system:deployment-controller"
            assert "system:serviceaccounts:kube-system" in user["groups"]

            ctx = ControllerContext(root, SharedInformerFactory(root), lambda name: EventRecorder(root, name),
                                    clients={"deployment-controller": client})
            assert DeploymentController.service_account == "deployment-controller"
            assert DeploymentController(ctx).client is client

            now[0] += 0.79 * 3600
            assert await accounts.renew_due() == []  # not yet due
            now[0] += 0.02 * 3600
            assert await accounts.renew_due() == ["deployment-controller"]
            assert await accounts.renew_due() == []  # the next renewal is an hour's 80% later
            assert (await _whoami(client))["username"].endswith(":deployment-controller")
        finally:
            await accounts.close()
