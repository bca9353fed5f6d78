"""AlwaysAdmit (deprecated in Kubernetes, off by default): admits everything; it exists so that
the name is accepted by ``--enable-admission-plugins``, as kube-apiserver accepts it."""

from __future__ import annotations

from kybernetes.apiserver.admission.chain import Attributes, Handler, PluginInit

NAME = "AlwaysAdmit"


class AlwaysAdmit(Handler):
    async def admit(self, attrs: Attributes) -> None:
        return None

    async def validate(self, attrs: Attributes) -> None:
        return None


def new(init: PluginInit) -> AlwaysAdmit:
    return AlwaysAdmit()
