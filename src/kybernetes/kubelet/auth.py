"""Who may use the kubelet's API: Kubernetes' webhook authentication and authorization modes.

Contract (the kubelet's ``--authentication-token-webhook`` and ``--authorization-mode=Webhook``, on
:mod:`kybernetes.client.delegatedauth`'s TokenReview and SubjectAccessReview with their caches, kept
for the kubelet's default TTLs, :data:`KUBELET_TTLS`):

- A request's user comes from its client certificate (verified against the cluster CA by TLS:
  CN the name, O and ``system:authenticated`` the groups) or from its ``Authorization: Bearer`` token (a TokenReview).
- The user's request is then put to a SubjectAccessReview with the kubelet's resource mapping
  (``pkg/kubelet/server/auth.go``): verb from the HTTP method (GET get, POST create, PUT update,
  PATCH patch, DELETE delete), resource ``nodes``, name the node, subresource ``stats`` under
  /stats, ``metrics`` under /metrics, ``log`` under /logs, ``proxy`` for everything else.
- The API server's own kubelet client (CN ``kube-apiserver-kubelet-client``) and ``system:masters``
  are allowed without a review, as before there was a webhook: the API server must reach logs and
  exec even while its authorizer is still starting.
- The 403's words are the kubelet's: ``Forbidden (user=U, verb=V, resource=nodes, subresource=S)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kybernetes.client.delegatedauth import KUBELET_TTLS, DelegatedAuth, User, certificate_user

__all__ = ["KUBELET_TTLS", "Attributes", "DelegatedAuth", "User", "certificate_user", "is_privileged",
           "request_attributes"]

APISERVER_CLIENT_CN = "kube-apiserver-kubelet-client"
MASTERS_GROUP = "system:masters"

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"))


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


def is_privileged(user: User) -> bool:
    """The API server's kubelet client or a cluster admin: allowed without a review."""
    return user.name == APISERVER_CLIENT_CN or MASTERS_GROUP in user.groups
