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

A token stops working at once when its account is deleted (the API server checks the object a
token is bound to). Kubernetes' controller client then recovers at its next request: client-go's
``tokenSourceTransport`` resets the cached token on a 401 (``ResetTokenOlderThan`` the request's
start) and the next ``Token()`` runs the builder's ``tokenSourceImpl`` again, which gets or creates
the account and requests a new token. Each client here has an :class:`AccountToken` as its
:class:`~kybernetes.client.rest.TokenSource` doing the same, at most once per
MIN_RESET_RENEW_SECONDS per account so that a 401 that persists cannot hammer the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from kybernetes import errors
from kybernetes.api.timeutil import parse_epoch
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
EXPIRATION_SECONDS = 3600
LEEWAY = 0.2
RETRY_SECONDS = 10.0  # a failed renewal's retry, and the longest wait for a refused account
FIRST_RETRY_SECONDS = 0.5  # then doubled up to RETRY_SECONDS (Kubernetes' token source: 0.5 s, x2)
MIN_RESET_RENEW_SECONDS = 5.0  # the least time between two renewals that 401s asked for


class AccountToken:
    """The token of one account's client (a :class:`~kybernetes.client.rest.TokenSource`):
    client-go's ``cachingTokenSource`` over the controller manager's ``tokenSourceImpl``.

    - :meth:`refresh` fetches a token (``fetch``: the token and its lifetime in seconds) and
      raises what the fetch raised; the token is due for renewal (:meth:`due`) at 80% of its life.
    - :meth:`reset_older_than` (a 401 on a request that began at ``start``) marks the token stale
      if it was obtained before ``start``; then :meth:`token` fetches a new one before answering.
      A failed fetch is logged and the old token sent; a stale token is fetched again at most once
      per ``min_interval`` (the same old token is sent meanwhile).
    - One fetch at a time: callers that wait for it then get its token, not a fetch of their own.

    ``clock`` is ``time.monotonic`` or a fake of it: the client's ``start`` comes from that clock.
    """

    def __init__(self, name: str, fetch: Callable[[], Awaitable[tuple[str, float]]], *,
                 clock: Callable[[], float] = time.monotonic,
                 min_interval: float = MIN_RESET_RENEW_SECONDS) -> None:
        self.name = name
        self._fetch = fetch
        self.clock = clock
        self.min_interval = min_interval
        self._token = ""
        self._obtained = -math.inf  # when the current token arrived
        self._tried = -math.inf  # when the last fetch began
        self.renew_at = -math.inf
        self.stale = False
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if not self.stale:
            return self._token
        async with self._lock:
            if self.stale and self.clock() >= self._tried + self.min_interval:
                try:
                    await self._fetch_locked()
                except (errors.StatusError, OSError) as err:
                    log.warning("renewing the refused token of %s/%s: %s; sending the old one", NAMESPACE,
                                self.name, err)
        return self._token

    def reset_older_than(self, start: float) -> None:
        if self._obtained < start and not self.stale:
            log.info("the token of %s/%s was refused (401 Unauthorized): getting a new one", NAMESPACE, self.name)
            self.stale = True

    def due(self) -> bool:
        return self.clock() >= self.renew_at

    async def refresh(self) -> None:
        """Fetch a new token now (after any fetch under way); raises what the fetch raised."""
        async with self._lock:
            await self._fetch_locked()

    async def _fetch_locked(self) -> None:
        self._tried = self.clock()
        token, lifetime = await self._fetch()
        self._obtained = self.clock()
        self._token, self.stale = token, False
        self.renew_at = self._obtained + lifetime * (1 - LEEWAY)


@dataclasses.dataclass
class _Account:
    client: Client
    token: AccountToken


class ServiceAccountClients:
    """Clients authenticated as ``system:serviceaccount:kube-system:<name>``, kept renewed."""

    def __init__(self, root: Client, *, expiration_seconds: int = EXPIRATION_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.expiration_seconds = expiration_seconds
        self.clock = clock
        self._accounts: dict[str, _Account] = {}
        self._renewer: asyncio.Task[None] | None = None

    async def client_for(self, name: str) -> Client:
        """The client of ServiceAccount ``name`` (created if missing), with a fresh token."""
        if name not in self._accounts:
            source = AccountToken(name, lambda: self._fetch_token(name), clock=self.clock)
            await source.refresh()
            config = dataclasses.replace(self.root.config, cert_data=None, cert_file=None, key_data=None,
                                         key_file=None, token=None, token_file=None)
            client = Client(config, user_agent=f"{self.root.user_agent}/{name}", token_source=source)
            self._accounts[name] = _Account(client, source)
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

    async def _fetch_token(self, name: str) -> tuple[str, float]:
        """The account ``name`` (created if missing) and a TokenRequest for it: the token and its
        lifetime in seconds (as Kubernetes' token source, from its expirationTimestamp)."""
        await self._ensure_account(name)
        out = await self.root.create("v1", "serviceaccounts", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": self.expiration_seconds}}, NAMESPACE, subresource="token", name=name)
        status = out.get("status") or {}
        now = time.time()
        expires = parse_epoch(status.get("expirationTimestamp")) or now + self.expiration_seconds
        return status["token"], expires - now

    async def renew_due(self) -> list[str]:
        """Renew every token whose renewal time has come (a failure is retried after
        RETRY_SECONDS); returns the accounts renewed."""
        renewed: list[str] = []
        for name, account in self._accounts.items():
            if not account.token.due():
                continue
            try:
                await account.token.refresh()
            except (errors.StatusError, OSError) as err:
                log.warning("renewing the token of %s/%s: %s", NAMESPACE, name, err)
                account.token.renew_at = self.clock() + RETRY_SECONDS
                continue
            renewed.append(name)
        return renewed

    def start(self) -> None:
        """Renew tokens in the background until :meth:`close`."""
        async def loop() -> None:
            while True:
                await self.renew_due()
                next_due = min((a.token.renew_at for a in self._accounts.values()), default=self.clock() + 60)
                await asyncio.sleep(max(1.0, next_due - self.clock()))

        self._renewer = asyncio.create_task(loop(), name="service-account-token-renewer")

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(BaseException):
                await self._renewer
        for account in self._accounts.values():
            await account.client.close()
