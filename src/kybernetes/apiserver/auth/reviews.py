"""``authentication.k8s.io/v1`` TokenReview and SelfSubjectReview: computed on create, never stored.

- **TokenReview** (``POST /apis/authentication.k8s.io/v1/tokenreviews``): validates
  ``spec.token`` as the API server's own authenticator would (service-account JWTs, token-file
  tokens) for ``spec.audiences`` (the API's audiences when empty) and answers 201 with the review,
  its ``status`` holding ``authenticated``, ``user`` (username, uid, groups, extra), the
  ``audiences`` the token is good for, and ``error`` (Kubernetes' text) when it is not.
  Kubernetes' ``pkg/registry/authentication/tokenreview/storage.go``.
- **SelfSubjectReview** (``POST .../selfsubjectreviews``): the requesting user's own info in
  ``status.userInfo`` (``kubectl auth whoami``). ``pkg/registry/authentication/selfsubjectreview``.

Both are cluster-scoped, accept only POST to the collection, and store nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.registry.rest import Reply, ResourceREST, SubresourceCall, SubresourceREST

GROUP_VERSION = "authentication.k8s.io/v1"
INVALID_BEARER_TOKEN = "invalid bearer token"
"""apiserver/pkg/authentication/request/bearertoken's error for a token no authenticator accepts."""

TokenReviewer = Callable[[str, "tuple[str, ...] | list[str]"], "tuple[User | None, list[str], str]"]
"""``(token, audiences) -> (user, audiences it is good for, error text)``."""


def user_info(user: User) -> Obj:
    """A ``UserInfo`` as Go writes it: empty fields left out (``omitempty``), extra keys sorted."""
    out: Obj = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(user.extra[k]) for k in sorted(user.extra)}  # a Go map: keys sorted
    return out


def _review_body(kind: str, body: Any, namespace: str) -> Obj:
    """The decoded body checked as Kubernetes' create does: the right kind, no namespace."""
    if not isinstance(body, dict) or body.get("kind", kind) != kind:
        raise errors.BadRequest(f"not a {kind}: {body!r}")
    if namespace:
        raise errors.BadRequest(f"namespace is not allowed on this type: {namespace}")
    out = copy.deepcopy(body)
    out["kind"], out["apiVersion"] = kind, GROUP_VERSION
    meta = out.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    out["metadata"] = dict(meta, creationTimestamp=None)
    return out


class TokenReviewREST(SubresourceREST):
    """Serves ``tokenreviews``' create with ``review`` (the server's token authenticators)."""

    methods = frozenset(("POST",))

    def __init__(self, review: TokenReviewer, api_audiences: tuple[str, ...]) -> None:
        self.review = review
        self.api_audiences = api_audiences

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        out = _review_body("TokenReview", await call.read_body("TokenReview"), call.namespace)
        spec = out.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise errors.BadRequest("token is required for TokenReview in authentication")
        requested = [str(a) for a in spec.get("audiences") or []]
        user, audiences, error = self.review(token, requested or list(self.api_audiences))
        status: Obj = {}
        if user is not None:
            status["authenticated"] = True
        status["user"] = user_info(user) if user is not None else {}
        if user is not None and audiences:
            status["audiences"] = audiences
        if user is None:
            # The bearer-token authenticator's default error, aggregated (deduplicated) with the
            # service-account authenticator's own when it has one.
            status["error"] = f"[{INVALID_BEARER_TOKEN}, {error}]" if error else INVALID_BEARER_TOKEN
        out["status"] = status
        return Reply(out, 201)


class SelfSubjectReviewREST(SubresourceREST):
    """Serves ``selfsubjectreviews``' create: the requesting user's info."""

    methods = frozenset(("POST",))

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        out = _review_body("SelfSubjectReview", await call.read_body("SelfSubjectReview"), call.namespace)
        out["status"] = {"userInfo": user_info(call.ctx.user)}
        return Reply(out, 201)
