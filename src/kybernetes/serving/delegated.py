"""Who may use a component's secure port: what kube-scheduler's and the controller managers'
``DelegatingAuthorizationOptions`` add to :mod:`kybernetes.client.delegatedauth`.

Contract (the reviews themselves, their caches and certificate users are
:mod:`kybernetes.client.delegatedauth`'s; here they are cached for k8s.io/apiserver's 10 s):

- **Always allowed.** Paths in ``always_allow_paths`` (``/healthz``, ``/readyz``, ``/livez`` by
  default; exact, or a prefix when the entry ends in ``*``) and users in an ``always_allow_groups``
  group (``system:masters``) are allowed without asking.
- **Reviewed.** Anyone else's request is a ``SubjectAccessReview`` with ``nonResourceAttributes``:
  the path and the verb as Kubernetes names it (:func:`request_verb`: ``get`` for GET).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kybernetes.client.delegatedauth import DELEGATING_TTLS, CacheTTLs, Decision, DelegatedAuth, User
from kybernetes.client.rest import Client

DEFAULT_ALWAYS_ALLOW_PATHS = ("/healthz", "/readyz", "/livez")
DEFAULT_ALWAYS_ALLOW_GROUPS = ("system:masters",)


class ComponentAuth(DelegatedAuth):
    """Delegated auth of a component's secure port (see the module doc)."""

    def __init__(self, client: Client | None, *, always_allow_paths: Sequence[str] = DEFAULT_ALWAYS_ALLOW_PATHS,
                 always_allow_groups: Sequence[str] = DEFAULT_ALWAYS_ALLOW_GROUPS,
                 ttls: CacheTTLs = DELEGATING_TTLS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(client, ttls, clock=clock)
        self.always_allow_paths = tuple(always_allow_paths)
        self.always_allow_groups = frozenset(always_allow_groups)

    def always_allowed(self, path: str) -> bool:
        """Kubernetes' ``path.NewAuthorizer``: an exact match, or a prefix for an entry ending in ``*``
        (so ``/healthz`` does not cover ``/healthz/ping``: that one is reviewed)."""
        for allowed in self.always_allow_paths:
            if allowed.endswith("*") and path.startswith(allowed[:-1]):
                return True
            if path == allowed:
                return True
        return False

    async def authorize_path(self, user: User, verb: str, path: str) -> Decision:
        """Whether ``user`` may ``verb`` the non-resource ``path``, and the reviewer's reason."""
        if self.always_allowed(path) or self.always_allow_groups.intersection(user.groups):
            return Decision(True)
        return await self.authorize(user, non_resource={"path": path, "verb": verb})


def request_verb(method: str) -> str:
    """The authorization verb of a non-resource request (``GET`` -> ``get``), as Kubernetes' RequestInfo."""
    return method.lower()
