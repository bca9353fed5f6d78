"""Delegated authentication and authorization: asking the API server who a caller is and what it may do.

What k8s.io/apiserver's delegating authenticator and authorizer are to the kubelet and to aggregated
API servers (metrics-server): a server that is not the API server takes a bearer token to a
TokenReview (``authentication.k8s.io/v1``) and a request to a SubjectAccessReview
(``authorization.k8s.io/v1``), made with its own credentials (which need ``system:auth-delegator``'s
rights). Contract:

- ``authenticate_token`` answers the token's user, or None when the API server says it is not
  authenticated or cannot be asked (a failure is never a user). Answers, "no" included, are cached
  for ``authn_ttl`` (2 minutes, the kubelet's and k8s.io/apiserver's default ``cacheTTL``).
- ``authorize`` puts the user and either ``resource`` or ``non_resource`` attributes (the review's
  ``resourceAttributes`` / ``nonResourceAttributes``) to a SubjectAccessReview. Allowed answers are
  cached 5 minutes, denied ones 30 seconds (the defaults of both); a failed review is a denial,
  not cached.
- ``certificate_user`` is the user of a verified client certificate: CN the name, O the groups.
- The caches are bounded (a flood of distinct tokens empties them rather than growing them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes import errors
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

AUTHN_TTL = 120.0
AUTHZ_ALLOWED_TTL = 300.0
AUTHZ_DENIED_TTL = 30.0
CACHE_LIMIT = 4096


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


def certificate_user(peercert: Mapping[str, Any]) -> User:
    """The user of a verified client certificate (as the API server reads one)."""
    names: list[str] = []
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.append(value)
    return User(name=names[0] if names else "", groups=tuple(groups))


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
        if len(self._entries) >= CACHE_LIMIT:
            self._entries.clear()
        self._entries[key] = (self.clock() + ttl, value)


class DelegatedAuth:
    """TokenReview authentication and SubjectAccessReview authorization through ``client``."""

    def __init__(self, client: Client, *, clock: Callable[[], float] = time.monotonic,
                 authn_ttl: float = AUTHN_TTL, allowed_ttl: float = AUTHZ_ALLOWED_TTL,
                 denied_ttl: float = AUTHZ_DENIED_TTL) -> None:
        self.client = client
        self.authn_ttl, self.allowed_ttl, self.denied_ttl = authn_ttl, allowed_ttl, denied_ttl
        self._tokens = _TTLCache(clock)
        self._decisions = _TTLCache(clock)

    async def authenticate_token(self, token: str) -> User | None:
        hit, cached = self._tokens.get(token)
        if hit:
            return cached  # type: ignore[no-any-return]
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            answer = await self.client.create("authentication.k8s.io/v1", "tokenreviews", review)
        except (errors.StatusError, OSError) as err:
            log.warning("token review failed: %s", err)
            return None
        status = answer.get("status") or {}
        user = None
        if status.get("authenticated"):
            u = status.get("user") or {}
            extra = tuple(sorted((k, tuple(v)) for k, v in (u.get("extra") or {}).items()))
            user = User(name=u.get("username", ""), groups=tuple(u.get("groups") or ()), uid=u.get("uid", ""),
                        extra=extra)
        self._tokens.put(token, user, self.authn_ttl)
        return user

    async def authorize(self, user: User, *, resource: Mapping[str, str] | None = None,
                        non_resource: Mapping[str, str] | None = None) -> bool:
        """Whether the API server's authorizer allows ``user`` the described request."""
        attrs = ("resourceAttributes", dict(resource)) if resource is not None else \
            ("nonResourceAttributes", dict(non_resource or {}))
        key = (user, attrs[0], tuple(sorted(attrs[1].items())))
        hit, cached = self._decisions.get(key)
        if hit:
            return bool(cached)
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups), attrs[0]: attrs[1]}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        try:
            answer = await self.client.create("authorization.k8s.io/v1", "subjectaccessreviews", review)
        except (errors.StatusError, OSError) as err:
            log.warning("subject access review failed: %s", err)
            return False
        allowed = bool((answer.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed, self.allowed_ttl if allowed else self.denied_ttl)
        return allowed
