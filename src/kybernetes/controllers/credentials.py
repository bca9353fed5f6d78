"""``--use-service-account-credentials``: each controller writes under its own ServiceAccount.

Kubernetes' ``DynamicControllerClientBuilder`` (``k8s.io/controller-manager/pkg/clientbuilder``):
for a controller named ``deployment-controller`` the controller manager makes sure the
ServiceAccount ``kube-system/deployment-controller`` exists (creating it under its own identity,
``system:kube-controller-manager``), asks the TokenRequest API for a token of it valid for an hour,
and gives the controller a client that sends that token (and no client certificate, which the API
server would otherwise authenticate first). The token is renewed in the background once 80% of its
life has passed (Kubernetes' 20% leeway), so a controller never holds an expired one. The bootstrap
policy binds ``system:controller:<name>`` to each account.

When the API server refuses the controller manager's own requests for an account or its token
(a Forbidden while its RBAC, ClusterRole or ClusterRoleBinding ``system:kube-controller-manager``,
is missing: the API server restores those only at its start; an unreachable server),
:meth:`ServiceAccountClients.wait_for_clients` logs and retries with backoff until they are
granted, so the controllers start then. Kubernetes' token source retries the same requests with
backoff; its ``ClientOrDie`` exits at the first refusal while the controllers start, which under a
supervisor becomes an exit-and-restart loop: ours waits in place instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable

from kybernetes import errors
from kybernetes.api.timeutil import parse_epoch
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
EXPIRATION_SECONDS = 3600
LEEWAY = 0.2
RETRY_SECONDS = 10.0  # a failed renewal's retry, and the longest wait for a refused account
FIRST_RETRY_SECONDS = 0.5  # then doubled up to RETRY_SECONDS (Kubernetes' token source: 0.5 s, x2)


@dataclasses.dataclass
class _Account:
    client: Client
    renew_at: float


class ServiceAccountClients:
    """Clients authenticated as ``system:serviceaccount:kube-system:<name>``, kept renewed."""

    def __init__(self, root: Client, *, expiration_seconds: int = EXPIRATION_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.expiration_seconds = expiration_seconds
        self.clock = clock
        self._accounts: dict[str, _Account] = {}
        self._renewer: asyncio.Task[None] | None = None

    async def client_for(self, name: str) -> Client:
        """The client of ServiceAccount ``name`` (created if missing), with a fresh token."""
        if name not in self._accounts:
            await self._ensure_account(name)
            token, renew_at = await self._request_token(name)
            config = dataclasses.replace(self.root.config, cert_data=None, cert_file=None, key_data=None,
                                         key_file=None, token=token, token_file=None)
            client = Client(config, user_agent=f"{self.root.user_agent}/{name}")
            self._accounts[name] = _Account(client, renew_at)
        return self._accounts[name].client

    async def wait_for_clients(self, names: Iterable[str]) -> dict[str, Client]:
        """Each named account's client (:meth:`client_for`), by name. A refusal or a connection
        error is logged and retried after FIRST_RETRY_SECONDS, doubling up to RETRY_SECONDS, until
        the account and its token are granted; never raised (cancel the caller to give up)."""
        out: dict[str, Client] = {}
        for name in names:
            delay = FIRST_RETRY_SECONDS
            while name not in out:
                try:
                    out[name] = await self.client_for(name)
                except (errors.StatusError, OSError) as err:
                    log.warning("the credentials of ServiceAccount %s/%s: %s; retrying in %.1fs",
                                NAMESPACE, name, err, delay)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, RETRY_SECONDS)
        return out

    async def _ensure_account(self, name: str) -> None:
        try:
            await self.root.get("v1", "serviceaccounts", name, NAMESPACE)
        except errors.NotFound:
            with contextlib.suppress(errors.AlreadyExists):
                await self.root.create("v1", "serviceaccounts", {
                    "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}, NAMESPACE)

    async def _request_token(self, name: str) -> tuple[str, float]:
        """A TokenRequest for ``name``; returns the token and when to renew it (80% of its life)."""
        issued = self.clock()
        out = await self.root.create("v1", "serviceaccounts", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": self.expiration_seconds}}, NAMESPACE, subresource="token", name=name)
        status = out.get("status") or {}
        expires = parse_epoch(status.get("expirationTimestamp")) or issued + self.expiration_seconds
        return status["token"], issued + (expires - issued) * (1 - LEEWAY)

    async def renew_due(self) -> list[str]:
        """Renew every token whose renewal time has come (a failure is retried later); returns
        the accounts renewed."""
        renewed: list[str] = []
        for name, account in self._accounts.items():
            if self.clock() < account.renew_at:
                continue
            try:
                token, account.renew_at = await self._request_token(name)
            except (errors.StatusError, OSError) as err:
                log.warning("renewing the token of %s/%s: %s", NAMESPACE, name, err)
                account.renew_at = self.clock() + RETRY_SECONDS
                continue
            account.client.config.token = token
            renewed.append(name)
        return renewed

    def start(self) -> None:
        """Renew tokens in the background until :meth:`close`."""
        async def loop() -> None:
            while True:
                await self.renew_due()
                next_due = min((a.renew_at for a in self._accounts.values()), default=self.clock() + 60)
                await asyncio.sleep(max(1.0, next_due - self.clock()))

        self._renewer = asyncio.create_task(loop(), name="service-account-token-renewer")

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(BaseException):
                await self._renewer
        for account in self._accounts.values():
            await account.client.close()
