"""Who may use the kubelet's API: Kubernetes' webhook authentication and authorization modes.

Contract (the kubelet's ``--authentication-token-webhook`` and ``--authorization-mode=Webhook``):

- A request's user comes from its client certificate (verified against the cluster CA by TLS:
  CN the name, O the groups) or from its ``Authorization: Bearer`` token, sent to the API server as
  a TokenReview (``authentication.k8s.io/v1``). Answers are cached for ``authn_ttl`` (2 minutes,
  the kubelet's default ``cacheTTL``); an API server that cannot be asked is "not authenticated".
- The user's request is then put to the API server as a SubjectAccessReview with the kubelet's
  resource mapping (``pkg/kubelet/server/auth.go``): verb from the HTTP method (GET get, POST
  create, PUT update, PATCH patch, DELETE delete), resource ``nodes``, name the node, subresource
  ``stats`` under /stats, ``metrics`` under /metrics, ``log`` under /logs, ``proxy`` for everything
  else. Allowed answers are cached 5 minutes, denied ones 30 seconds (the kubelet's defaults).
- The API server's own kubelet client (CN ``kube-apiserver-kubelet-client``) and ``system:masters``
  are allowed without a review, as before there was a webhook: the API server must reach logs and
  exec even while its authorizer is still starting.
- The 403's words are the kubelet's: ``Forbidden (user=U, verb=V, resource=nodes, subresource=S)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kybernetes import errors
from kybernetes.client import Client

log = logging.getLogger(__name__)

APISERVER_CLIENT_CN = "kube-apiserver-kubelet-client"
MASTERS_GROUP = "system:masters"
AUTHN_TTL = 120.0
AUTHZ_ALLOWED_TTL = 300.0
AUTHZ_DENIED_TTL = 30.0

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"))


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


@dataclass(frozen=True)
class Attributes:
    """What a kubelet request asks to do, as a SubjectAccessReview's resourceAttributes."""

    verb: str
    subresource: str
    node: str

    def resource_attributes(self) -> dict[str, str]:
        return {"verb": self.verb, "group": "", "version": "v1", "resource": "nodes",
                "subresource": self.subresource, "name": self.node}

    def forbidden(self, user: User) -> str:
        return (f"Forbidden (user={user.name}, verb={self.verb}, resource=nodes, "
                f"subresource={self.subresource})")


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def request_attributes(method: str, path: str, node: str) -> Attributes:
    """The kubelet's authorization attributes of a request (see the module contract)."""
    subresource = next((sub for prefix, sub in _SUBRESOURCES if _is_subpath(path, prefix)), "proxy")
    return Attributes(verb=_VERBS.get(method.upper(), ""), subresource=subresource, node=node)


def certificate_user(peercert: dict[str, Any]) -> User:
    """The user of a verified client certificate: CN the name, O the groups (as the API server reads it)."""
    names: list[str] = []
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.append(value)
    return User(name=names[0] if names else "", groups=tuple(groups))


def is_privileged(user: User) -> bool:
    """The API server's kubelet client or a cluster admin: allowed without a review."""
    return user.name == APISERVER_CLIENT_CN or MASTERS_GROUP in user.groups


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
        if len(self._entries) > 4096:
            self._entries.clear()  # bounded: a flood of distinct tokens cannot grow it without end
        self._entries[key] = (self.clock() + ttl, value)


class WebhookAuth:
    """TokenReview authentication and SubjectAccessReview authorization through ``client``."""

    def __init__(self, client: Client, node_name: str, *, clock: Callable[[], float] = time.monotonic,
                 authn_ttl: float = AUTHN_TTL, allowed_ttl: float = AUTHZ_ALLOWED_TTL,
                 denied_ttl: float = AUTHZ_DENIED_TTL) -> None:
        self.client = client
        self.node_name = node_name
        self.authn_ttl, self.allowed_ttl, self.denied_ttl = authn_ttl, allowed_ttl, denied_ttl
        self._tokens = _TTLCache(clock)
        self._decisions = _TTLCache(clock)

    async def authenticate_token(self, token: str) -> User | None:
        """The token's user, or None if the API server does not know it (or cannot be asked)."""
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

    async def authorize(self, user: User, attrs: Attributes) -> bool:
        """Whether the API server's authorizer allows ``user`` the request ``attrs``."""
        if is_privileged(user):
            return True
        key = (user, attrs)
        hit, cached = self._decisions.get(key)
        if hit:
            return bool(cached)
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups),
                                "resourceAttributes": attrs.resource_attributes()}
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
