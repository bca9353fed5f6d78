"""What the two webhook plugins share: their configuration source, matcher, client and lifecycle.

Kubernetes' ``generic.Webhook``: each plugin watches its own configuration kind, handles every
operation (CREATE, UPDATE, DELETE, CONNECT) on every resource, and starts (lists its
configurations) before the server answers requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kybernetes.apiserver.admission.chain import Handler, PluginInit
from kybernetes.apiserver.admission.webhook.client import WebhookClient
from kybernetes.apiserver.admission.webhook.dispatch import (
    Dispatcher,
    MutatingDispatcher,
    ValidatingDispatcher,
)
from kybernetes.apiserver.admission.webhook.matching import Matcher
from kybernetes.apiserver.admission.webhook.source import GROUP, WebhookSource

if TYPE_CHECKING:
    from kybernetes.apiserver.admission.metrics import AdmissionMetrics


class WebhookPlugin(Handler):
    def __init__(self, init: PluginInit, *, mutating: bool) -> None:
        registry = init.registry
        catalogue = registry.catalogue
        plural = "mutatingwebhookconfigurations" if mutating else "validatingwebhookconfigurations"
        resource = catalogue.get(GROUP, "v1", plural)
        assert resource is not None
        self.source = WebhookSource(registry, resource, mutating=mutating)
        self.client = WebhookClient(registry, catalogue)
        kind = MutatingDispatcher if mutating else ValidatingDispatcher
        self.dispatcher: Dispatcher = kind(self.source, Matcher(registry, catalogue), self.client, registry, catalogue,
                                            init.authorizer)

    def instrument(self, metrics: AdmissionMetrics) -> None:
        """Count and time every call of this plugin's webhooks."""
        self.dispatcher.metrics = metrics

    async def start(self) -> None:
        await self.source.start()

    async def stop(self) -> None:
        await self.source.stop()
        await self.client.close()
