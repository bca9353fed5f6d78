"""The default ServiceAccount and the kube-root-ca.crt ConfigMap, against a real API server."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers.serviceaccounts import CONTROLLERS
from kybernetes.testing import ServerProcess
from tests.controllers import harness
from tests.controllers.harness import run_controllers, running, seen, seen_deleted, settled

pytestmark = pytest.mark.integration
SERVER_RUNS_SERVICEACCOUNT_CONTROLLER = False
"""This module tests that controller: the server must not run one of its own."""
wait_for = partial(harness.wait_for, timeout=15.0)
Obj = dict[str, Any]


async def get_or_none(client: Client, plural: str, name: str, ns: str) -> Obj | None:
    return await harness.get_or_none(client, "v1", plural, name, ns)


async def test_default_service_account_and_root_ca(srv: ServerProcess) -> None:
    ca = (srv.data_dir / "tls" / "ca.crt").read_text()
    async with running(srv, *CONTROLLERS,
                       options={"root-ca-file": str(srv.data_dir / "tls" / "ca.crt")}) as client:
        # Namespaces that existed before the controllers started are covered too.
        await wait_for(lambda: get_or_none(client, "serviceaccounts", "default", "default"), what="default/default")
        await wait_for(lambda: get_or_none(client, "configmaps", "kube-root-ca.crt", "kube-system"),
                       what="kube-system root CA")

        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "team-a"}})
        sa = await wait_for(lambda: get_or_none(client, "serviceaccounts", "default", "team-a"), what="default SA")
        cm = await wait_for(lambda: get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a"), what="root CA")
        assert cm["data"] == {"ca.crt": ca}
        assert "kubernetes.io/description" in cm["metadata"]["annotations"]

        # Deleted: both come back (as new objects).
        await client.delete("v1", "serviceaccounts", "default", "team-a")
        await client.delete("v1", "configmaps", "kube-root-ca.crt", "team-a")

        async def sa_back() -> Obj | None:
            new = await get_or_none(client, "serviceaccounts", "default", "team-a")
            return new if new is not None and new["metadata"]["uid"] != sa["metadata"]["uid"] else None

        async def cm_back() -> Obj | None:
            new = await get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a")
            return new if new is not None and new["metadata"]["uid"] != cm["metadata"]["uid"] else None

        await wait_for(sa_back, what="default SA re-created")
        cm = await wait_for(cm_back, what="root CA re-created")
        assert cm["data"] == {"ca.crt": ca}

        # Changed: put right.
        await client.patch("v1", "configmaps", "kube-root-ca.crt", {"data": {"ca.crt": "bogus", "extra": "x"}},
                           "team-a")

        async def cm_fixed() -> bool:
            now = await get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a")
            return now is not None and now["data"] == {"ca.crt": ca}

        await wait_for(cm_fixed, what="root CA restored")


async def test_terminating_namespace_is_left_alone(srv: ServerProcess) -> None:
    async with run_controllers(srv, *CONTROLLERS,
                               options={"root-ca-file": str(srv.data_dir / "tls" / "ca.crt")}) as env:
        client = env.client
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "going"}})
        await wait_for(lambda: get_or_none(client, "serviceaccounts", "default", "going"), what="default SA")
        await client.delete("v1", "namespaces", "going")  # no namespace controller: stays Terminating
        terminating = await client.get("v1", "namespaces", "going")
        await client.delete("v1", "serviceaccounts", "default", "going")
        # The controllers have seen both and have nothing left to do: the SA was not put back.
        await settled(env, seen(env, "v1", "namespaces", terminating),
                      seen_deleted(env, "v1", "serviceaccounts", "going/default"),
                      what="the controllers to process the deletion")
        assert await get_or_none(client, "serviceaccounts", "default", "going") is None
