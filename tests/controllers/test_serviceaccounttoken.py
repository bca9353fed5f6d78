"""The token controller (serviceaccount-token): legacy token Secrets, against a real API server."""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from kybernetes.client.rest import Client
from kybernetes.controllers.serviceaccounttoken import CONTROLLERS
from kybernetes.testing import ServerProcess
from tests.controllers import harness
from tests.controllers.harness import run_controllers

pytestmark = pytest.mark.integration
wait_for = partial(harness.wait_for, timeout=15.0)
Obj = dict[str, Any]


def _token_secret(name: str, sa: str, **annotations: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": sa, **annotations}}}


async def _filled(client: Client, ns: str, name: str) -> Obj | None:
    secret = await harness.get_or_none(client, "v1", "secrets", name, ns)
    return secret if secret and (secret.get("data") or {}).get("token") else None


async def test_token_secret_filled_in_and_deleted_with_its_account(srv: ServerProcess) -> None:
    tls = srv.data_dir / "tls"
    options = {"service-account-private-key-file": str(tls / "service-account.key"),
               "root-ca-file": str(tls / "ca.crt")}
    async with run_controllers(srv, *CONTROLLERS, options=options) as env:
        client = env.client
        ns = await harness.namespace(client, "satoken")
        sa = await client.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                           "metadata": {"name": "bot"}}, ns)
        await client.create("v1", "secrets", _token_secret("bot-token", "bot"), ns)
        secret = await wait_for(lambda: _filled(client, ns, "bot-token"), what="token filled in")
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        assert data["ca.crt"] == (tls / "ca.crt").read_bytes()
        assert data["namespace"] == ns.encode()
        assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa["metadata"]["uid"]
        key = serialization.load_pem_private_key((tls / "service-account.key").read_bytes(), None)
        claims = jwt.decode(data["token"], key.public_key(), algorithms=["ES256"],  # type: ignore[arg-type]
                            issuer="kubernetes/serviceaccount")
        assert claims == {
            "iss": "kubernetes/serviceaccount", "sub": f"system:serviceaccount:{ns}:bot",
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": "bot-token",
            "kubernetes.io/serviceaccount/service-account.name": "bot",
            "kubernetes.io/serviceaccount/service-account.uid": sa["metadata"]["uid"],
        }

        # A token Secret for an account that does not exist, or another account's uid, is deleted.
        await client.create("v1", "secrets", _token_secret("ghost-token", "ghost"), ns)
        await client.create("v1", "secrets", _token_secret(
            "stale-token", "bot", **{"kubernetes.io/service-account.uid": "not-the-uid"}), ns)
        for name in ("ghost-token", "stale-token"):
            await wait_for(lambda n=name: _gone(client, ns, n), what=f"{name} deleted")

        # Deleting a token Secret removes it from its account's secrets.
        await client.create("v1", "secrets", _token_secret("listed-token", "bot"), ns)
        await wait_for(lambda: _filled(client, ns, "listed-token"), what="listed-token filled in")
        await harness.patch(client, "v1", "serviceaccounts", "bot",
                            {"secrets": [{"name": "listed-token"}, {"name": "other"}]}, ns)
        await client.delete("v1", "secrets", "listed-token", ns)

        async def unlisted() -> bool:
            account = await client.get("v1", "serviceaccounts", "bot", ns)
            return account.get("secrets") == [{"name": "other"}]
        await wait_for(unlisted, what="the reference removed")

        # Deleting the account deletes its tokens.
        await client.delete("v1", "serviceaccounts", "bot", ns)
        await wait_for(lambda: _gone(client, ns, "bot-token"), what="bot-token deleted with its account")


async def _gone(client: Client, ns: str, name: str) -> bool:
    return await harness.get_or_none(client, "v1", "secrets", name, ns) is None
