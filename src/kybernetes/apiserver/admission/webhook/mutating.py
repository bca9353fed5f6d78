"""The MutatingAdmissionWebhook plugin (mutating phase): :class:`.dispatch.MutatingDispatcher`."""

from __future__ import annotations

from kybernetes.apiserver.admission.chain import Attributes, PluginInit
from kybernetes.apiserver.admission.webhook.dispatch import MutatingDispatcher
from kybernetes.apiserver.admission.webhook.plugin import WebhookPlugin

NAME = "MutatingAdmissionWebhook"


class MutatingWebhook(WebhookPlugin):
    async def admit(self, attrs: Attributes) -> None:
        if self.source.webhooks:
            assert isinstance(self.dispatcher, MutatingDispatcher)
            await self.dispatcher.dispatch(attrs)


def new(init: PluginInit) -> MutatingWebhook:
    return MutatingWebhook(init, mutating=True)
