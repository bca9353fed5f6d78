"""The ValidatingAdmissionWebhook plugin (validating phase): :class:`.dispatch.ValidatingDispatcher`."""

from __future__ import annotations

from kybernetes.apiserver.admission.chain import Attributes, PluginInit
from kybernetes.apiserver.admission.webhook.dispatch import ValidatingDispatcher
from kybernetes.apiserver.admission.webhook.plugin import WebhookPlugin

NAME = "ValidatingAdmissionWebhook"


class ValidatingWebhook(WebhookPlugin):
    async def validate(self, attrs: Attributes) -> None:
        if self.source.webhooks:
            assert isinstance(self.dispatcher, ValidatingDispatcher)
            await self.dispatcher.dispatch(attrs)


def new(init: PluginInit) -> ValidatingWebhook:
    return ValidatingWebhook(init, mutating=False)
