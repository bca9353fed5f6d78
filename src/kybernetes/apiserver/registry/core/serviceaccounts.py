"""ServiceAccounts: the strategy and ``/token`` (TokenRequest).

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_list
from kybernetes.apiserver.registry.rest import Reply, ResourceREST, SubresourceCall, SubresourceREST
from kybernetes.apiserver.registry.strategy import Obj, Strategy

if TYPE_CHECKING:
    from kybernetes.apiserver.registry.request import RequestContext


# --- ServiceAccount and Event ----------------------------------------------------------------


class ServiceAccountStrategy(Strategy):
    kind = "ServiceAccount"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for field in ("secrets", "imagePullSecrets"):
            for i, ref in enumerate(as_list(obj.get(field))):
                if not isinstance(ref, dict):
                    errs.append(v.type_invalid(Path(field).index(i), ref, "must be an object"))
        return errs


TokenIssuer = Callable[[str, str, Any, "RequestContext"], Awaitable[Obj]]


class TokenREST(SubresourceREST):
    """``serviceaccounts/NAME/token`` (POST a TokenRequest): a token for the account, issued by
    ``issue(namespace, name, body, ctx)`` (the server's service-account token issuer)."""

    methods = frozenset(("POST",))

    def __init__(self, issue: TokenIssuer) -> None:
        self.issue = issue

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        from kybernetes.apiserver.registry.store import admit_subresource_create

        body = await call.read_body("TokenRequest")
        if isinstance(body, dict):
            await admit_subresource_create(rest.registry, rest.resource, "TokenRequest", call.namespace, call.name,
                                           body, call.ctx, "token")
        return Reply(await self.issue(call.namespace, call.name, body, call.ctx), 201)
