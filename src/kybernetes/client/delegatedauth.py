"""Delegated authentication and authorization: asking the API server who a caller is and what it may do.

What k8s.io/apiserver's delegating authenticator and authorizer are to servers that are not the API
server (the kubelet, metrics-server, the secure ports of kube-scheduler and the controller managers):
a bearer token goes to a TokenReview (``authentication.k8s.io/v1``) and a request to a
SubjectAccessReview (``authorization.k8s.io/v1``), made with the server's own credentials (which need
``system:auth-delegator``'s rights). Contract:

- ``authenticate_token`` answers the token's user, or None when the API server says it is not
  authenticated or cannot be asked (a failure is never a user).
- ``authorize`` puts the user and either ``resource`` or ``non_resource`` attributes (the review's
  ``resourceAttributes`` / ``nonResourceAttributes``) to a SubjectAccessReview and answers a
  :class:`Decision`: allowed only when the review says ``allowed`` and not ``denied`` (Kubernetes'
  webhook authorizer), with the reviewer's reason.
- **Caching.** Every answer, "no" included, is cached for the TTLs the constructor is given
  (:class:`CacheTTLs`): the kubelet's defaults are 2 minutes for tokens, 5 minutes for allowed and
  30 seconds for denied requests (:data:`KUBELET_TTLS`); k8s.io/apiserver's
  ``DelegatingAuthenticationOptions`` / ``DelegatingAuthorizationOptions``, used by kube-scheduler,
  the controller managers and metrics-server, cache everything for 10 seconds
  (:data:`DELEGATING_TTLS`). The caches are bounded (a flood of distinct tokens empties them rather
  than growing them).
- **Failures.** A review that fails or takes longer than :data:`REVIEW_TIMEOUT` (Kubernetes' 10 s
  client timeout) is not authenticated / not allowed, logged and not cached. Without a client (no
  API server to ask) no token is authenticated and no review allows.
- ``certificate_user`` is the user of a verified client certificate: CN the name, O the groups, plus
  ``system:authenticated`` (k8s.io/apiserver's x509 authenticator behind its authenticated-group adder).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.aiorun import wait_for
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

ANONYMOUS = "system:anonymous"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
REVIEW_TIMEOUT = 10.0
CACHE_LIMIT = 4096


@dataclass(frozen=True)
class CacheTTLs:
    """How long (seconds) answers are trusted: token reviews, allowed and denied access reviews."""

    authn: float
    allowed: float
    denied: float


KUBELET_TTLS = CacheTTLs(authn=120.0, allowed=300.0, denied=30.0)
DELEGATING_TTLS = CacheTTLs(authn=10.0, allowed=10.0, denied=10.0)


@dataclass(frozen=True)
class User:
    """Who a caller is. Hashable (``extra`` is sorted pairs), so it can key the decision cache."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def extra_map(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.extra}


ANONYMOUS_USER = User(ANONYMOUS, (UNAUTHENTICATED,))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def with_authenticated_group(user: User) -> User:
    """``user`` with ``system:authenticated`` added unless it is already (un)authenticated-grouped
    (k8s.io/apiserver's ``AuthenticatedGroupAdder``)."""
    if AUTHENTICATED in user.groups or UNAUTHENTICATED in user.groups:
        return user
    return User(user.name, (*user.groups, AUTHENTICATED), user.uid, user.extra)


def certificate_user(peercert: Mapping[str, Any]) -> User:
    """The user of a verified client certificate, from Python's ``getpeercert()`` form."""
    names: list[str] = []
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.append(value)
    return with_authenticated_group(User(name=names[0] if names else "", groups=tuple(groups)))


class _TTLCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        hit = self._entries.get(key)
        if hit is None or hit[0] <= self.clock():
            self._entries.pop(key, None)
            return False, None
        return True, hit[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        now = self.clock()
        if len(self._entries) >= CACHE_LIMIT:  # bounded: drop what expired, else everything
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= CACHE_LIMIT:
                self._entries.clear()
        self._entries[key] = (now + ttl, value)


class DelegatedAuth:
    """TokenReview authentication and SubjectAccessReview authorization through ``client``, answers
    cached for ``ttls`` (see the module doc)."""

    def __init__(self, client: Client | None, ttls: CacheTTLs, *, clock: Callable[[], float] = time.monotonic,
                 timeout: float = REVIEW_TIMEOUT) -> None:
        self.client = client
        self.ttls = ttls
        self.timeout = timeout
        self._tokens = _TTLCache(clock)
        self._decisions = _TTLCache(clock)

    async def _create(self, api_version: str, plural: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The review's answer, or None when it cannot be had (logged: the caller fails closed)."""
        if self.client is None:
            return None
        try:
            return await wait_for(self.client.create(api_version, plural, body), self.timeout)
        except Exception as err:  # any failure is "no" (Kubernetes fails closed); the reason goes to the log
            log.warning("%s %s failed: %s", body["kind"], api_version, err or type(err).__name__)
            return None

    async def authenticate_token(self, token: str) -> User | None:
        hit, cached = self._tokens.get(token)
        if hit:
            return cached  # type: ignore[no-any-return]
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        answer = await self._create("authentication.k8s.io/v1", "tokenreviews", review)
        if answer is None:
            return None
        status = answer.get("status") or {}
        user = None
        if status.get("authenticated"):
            u = status.get("user") or {}
            extra = tuple(sorted((k, tuple(v)) for k, v in (u.get("extra") or {}).items()))
            user = with_authenticated_group(User(name=str(u.get("username") or ""), groups=tuple(u.get("groups") or ()),
                                                 uid=str(u.get("uid") or ""), extra=extra))
        self._tokens.put(token, user, self.ttls.authn)
        return user

    async def authorize(self, user: User, *, resource: Mapping[str, str] | None = None,
                        non_resource: Mapping[str, str] | None = None) -> Decision:
        """Whether the API server's authorizer allows ``user`` the described request."""
        kind, attrs = ("resourceAttributes", dict(resource)) if resource is not None else \
            ("nonResourceAttributes", dict(non_resource or {}))
        key = (user, kind, tuple(sorted(attrs.items())))
        hit, cached = self._decisions.get(key)
        if hit:
            return cached  # type: ignore[no-any-return]
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups), kind: attrs}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = user.extra_map()
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        answer = await self._create("authorization.k8s.io/v1", "subjectaccessreviews", review)
        if answer is None:
            return Decision(False)
        status = answer.get("status") or {}
        decision = Decision(bool(status.get("allowed")) and not status.get("denied"), str(status.get("reason") or ""))
        self._decisions.put(key, decision, self.ttls.allowed if decision.allowed else self.ttls.denied)
        return decision
