"""AlwaysDeny (deprecated in Kubernetes, off by default): refuses every write with 403
``<resource> "<name>" is forbidden: admission control is denying all modifications``."""

from __future__ import annotations

from kybernetes.apiserver.admission.chain import Attributes, Handler, PluginInit, forbidden

NAME = "AlwaysDeny"


class AlwaysDeny(Handler):
    async def admit(self, attrs: Attributes) -> None:
        raise forbidden(attrs, "admission control is denying all modifications")

    async def validate(self, attrs: Attributes) -> None:
        raise forbidden(attrs, "admission control is denying all modifications")


def new(init: PluginInit) -> AlwaysDeny:
    return AlwaysDeny()
