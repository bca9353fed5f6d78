"""The pods' connect subresources (log, exec, attach, portforward) without their cost at start.

:class:`~kybernetes.apiserver.transport.proxy.StreamingProxy` talks to kubelets with aiohttp's client
and the streaming module; an API server imports both only when the first such request comes
(~0.15 s of CPU at every start and ~14 MB for life otherwise, issue 18). Guarantee: the same
answers as the proxy itself, which is made once, on the first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kybernetes.api.resources import Catalogue
    from kybernetes.apiserver.registry.store import Registry
    from kybernetes.apiserver.transport.proxy import StreamingProxy
    from kybernetes.httpserver.messages import AnyResponse, Request


class LazyStreamingProxy:
    """Stands in for a ``StreamingProxy(registry, catalogue, ca=..., client_cert=..., client_key=...)``."""

    def __init__(self, registry: Registry, catalogue: Catalogue, *, ca: Path, client_cert: Path,
                 client_key: Path) -> None:
        self._args: dict[str, Any] = {"registry": registry, "catalogue": catalogue, "ca": ca,
                                      "client_cert": client_cert, "client_key": client_key}
        self._proxy: StreamingProxy | None = None

    @property
    def proxy(self) -> StreamingProxy:
        if self._proxy is None:
            from kybernetes.apiserver.transport.proxy import StreamingProxy

            self._proxy = StreamingProxy(**self._args)
        return self._proxy

    async def handle(self, request: Request, sub: str, ns: str, name: str) -> AnyResponse:
        return await self.proxy.handle(request, sub, ns, name)
