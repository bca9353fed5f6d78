"""Delegated authentication and authorization: a component asks the API server who a caller is and
what it may do, as Kubernetes' ``DelegatingAuthenticationOptions`` / ``DelegatingAuthorizationOptions``.

Contract:

- **Who.** A client certificate the TLS handshake verified against the client CA names the user
  (CN) and groups (O). Else an ``Authorization: Bearer`` token is sent to the API server as a
  ``TokenReview``; a token it does not authenticate is 401. Without credentials the caller is
  ``system:anonymous`` in ``system:unauthenticated``.
- **What.** Paths in ``always_allow_paths`` (``/healthz``, ``/readyz``, ``/livez`` by default;
  exact, or a prefix when the entry ends in ``*``) and users in an ``always_allow_groups`` group (``system:masters``)
  are allowed without asking; anyone else's request is a ``SubjectAccessReview`` with
  ``nonResourceAttributes`` (the path, the verb as Kubernetes names it: ``get`` for GET).
- **Caching.** Answers are cached for :data:`CACHE_TTL` seconds (Kubernetes' 10 s for both
  allowed and denied), so a scrape every few seconds costs the API server one review pair per TTL.
- **Failures.** A review the API server does not answer within :data:`REVIEW_TIMEOUT` counts as
  not authenticated / not allowed (Kubernetes fails closed too), and is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

CACHE_TTL = 10.0
REVIEW_TIMEOUT = 10.0
ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
DEFAULT_ALWAYS_ALLOW_PATHS = ("/healthz", "/readyz", "/livez")
DEFAULT_ALWAYS_ALLOW_GROUPS = ("system:masters",)


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)


def user_from_certificate(der: bytes) -> UserInfo:
    """The user a verified client certificate names: CN, and O as groups (Kubernetes' x509 authenticator)."""
    cert = x509.load_der_x509_certificate(der)
    cn = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return UserInfo(cn[0] if cn else "", (*orgs, "system:authenticated"))


class _TTLCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._items) > 4096:  # bounded: drop what expired, else everything
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v[0] >= now}
            if len(self._items) > 4096:
                self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)


class DelegatedAuth:
    """Authentication by TokenReview and authorization by SubjectAccessReview (see the module doc)."""

    def __init__(self, client: Client | None, *, always_allow_paths: Sequence[str] = DEFAULT_ALWAYS_ALLOW_PATHS,
                 always_allow_groups: Sequence[str] = DEFAULT_ALWAYS_ALLOW_GROUPS) -> None:
        self.client = client
        self.always_allow_paths = tuple(always_allow_paths)
        self.always_allow_groups = frozenset(always_allow_groups)
        self._tokens = _TTLCache(CACHE_TTL)
        self._decisions = _TTLCache(CACHE_TTL)

    async def authenticate_token(self, token: str) -> UserInfo | None:
        """The user the API server says ``token`` is, or None (not a valid token, or no answer)."""
        cached = self._tokens.get(token)
        if cached is not None:
            return cached or None
        user: UserInfo | None = None
        if self.client is not None:
            review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
            try:
                out = await asyncio.wait_for(
                    self.client.create("authentication.k8s.io/v1", "tokenreviews", review), REVIEW_TIMEOUT)
            except Exception as e:  # fail closed; the reason goes to the log, not the caller
                log.warning("TokenReview failed: %s", e)
                return None
            status = out.get("status") or {}
            if status.get("authenticated"):
                u = status.get("user") or {}
                user = UserInfo(str(u.get("username") or ""), tuple(u.get("groups") or ()), str(u.get("uid") or ""),
                                {k: list(v) for k, v in (u.get("extra") or {}).items()})
        self._tokens.put(token, user or False)
        return user

    def always_allowed(self, path: str) -> bool:
        """Kubernetes' ``path.NewAuthorizer``: an exact match, or a prefix for an entry ending in ``*``
        (so ``/healthz`` does not cover ``/healthz/ping``: that one is reviewed)."""
        for allowed in self.always_allow_paths:
            if allowed.endswith("*") and path.startswith(allowed[:-1]):
                return True
            if path == allowed:
                return True
        return False

    async def authorize(self, user: UserInfo, verb: str, path: str) -> tuple[bool, str]:
        """Whether ``user`` may ``verb`` the non-resource ``path``, and the reviewer's reason."""
        if self.always_allowed(path) or self.always_allow_groups.intersection(user.groups):
            return True, ""
        key = (user.name, user.groups, user.uid, verb, path)
        cached = self._decisions.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        if self.client is None:
            return False, ""
        spec: dict[str, Any] = {"nonResourceAttributes": {"path": path, "verb": verb}, "user": user.name,
                                "groups": list(user.groups)}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = user.extra
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        try:
            out = await asyncio.wait_for(
                self.client.create("authorization.k8s.io/v1", "subjectaccessreviews", review), REVIEW_TIMEOUT)
        except Exception as e:  # fail closed
            log.warning("SubjectAccessReview failed: %s", e)
            return False, ""
        status = out.get("status") or {}
        decision = (bool(status.get("allowed")) and not status.get("denied"), str(status.get("reason") or ""))
        self._decisions.put(key, decision)
        return decision


def request_verb(method: str) -> str:
    """The authorization verb of a non-resource request (``GET`` -> ``get``), as Kubernetes' RequestInfo."""
    return method.lower()
