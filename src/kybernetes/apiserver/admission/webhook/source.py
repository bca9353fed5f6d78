"""The webhook configurations of one kind, kept in memory from a registry list-and-watch.

Kubernetes' ``configuration/{mutating,validating}_webhook_manager.go``: configurations are
ordered by name and each one's webhooks keep their order; every webhook is compiled once per
version of its configuration (selectors parsed, matchConditions compiled) and known by a uid
``<configuration>/<webhook>/<index>`` that the mutating dispatcher's reinvocation bookkeeping
uses. :meth:`WebhookSource.start` lists before it returns, so the first request after start
already sees every stored configuration; later changes arrive through the watch (as through an
informer in Kubernetes, a moment after the write).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Resource
from kybernetes.apiserver.admission.webhook.conditions import Conditions
from kybernetes.apiserver.registry.admissionregistration import default_webhook
from kybernetes.apiserver.registry.request import ListOptions
from kybernetes.apiserver.registry.store import Registry

log = logging.getLogger(__name__)

GROUP = "admissionregistration.k8s.io"


@dataclass(frozen=True)
class Webhook:
    """One webhook of a configuration, compiled (Kubernetes' ``WebhookAccessor``)."""

    uid: str
    configuration: str
    name: str
    spec: dict[str, Any]
    """The webhook as stored, defaulted."""
    mutating: bool
    namespace_selector: LabelSelector
    object_selector: LabelSelector
    conditions: Conditions = field(compare=False)

    @property
    def failure_policy_ignore(self) -> bool:
        return self.spec.get("failurePolicy") == "Ignore"

    @property
    def timeout_seconds(self) -> int:
        value = self.spec.get("timeoutSeconds")
        return value if isinstance(value, int) and value > 0 else 10

    @property
    def reinvoke_if_needed(self) -> bool:
        return self.spec.get("reinvocationPolicy") == "IfNeeded"


def compile_webhooks(config: Obj, *, mutating: bool) -> list[Webhook]:
    """The webhooks of one configuration; one whose selectors cannot be parsed (only a stored
    object from before validation could have such) selects nothing."""
    name = str((config.get("metadata") or {}).get("name") or "")
    out = []
    for i, raw in enumerate(config.get("webhooks") or []):
        if not isinstance(raw, dict):
            continue
        spec = copy.deepcopy(raw)
        default_webhook(spec, mutating=mutating)
        try:
            ns_sel = from_label_selector_object(spec.get("namespaceSelector"))
            obj_sel = from_label_selector_object(spec.get("objectSelector"))
        except errors.StatusError:
            ns_sel = obj_sel = LabelSelector.nothing()
        hook_name = str(spec.get("name") or "")
        out.append(Webhook(f"{name}/{hook_name}/{i}", name, hook_name, spec, mutating, ns_sel, obj_sel,
                           Conditions(list(spec.get("matchConditions") or []))))
    return out


class WebhookSource:
    """Every webhook of one configuration kind, in Kubernetes' order, rebuilt on each change."""

    def __init__(self, registry: Registry, resource: Resource, *, mutating: bool) -> None:
        self.registry = registry
        self.resource = resource
        self.mutating = mutating
        self.configs: dict[str, Obj] = {}
        self.webhooks: list[Webhook] = []
        self._compiled: dict[str, tuple[str, list[Webhook]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """List the configurations, then follow the watch in the background."""
        if self._task is not None:
            return
        res = await self.registry.list(self.resource, "", ListOptions())
        self.configs = {o["metadata"]["name"]: o for o in res.items}
        self._rebuild()
        self._task = asyncio.create_task(self._follow(res.resource_version), name=f"webhooks-{self.resource.plural}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _follow(self, resource_version: str) -> None:
        while True:
            try:
                opts = ListOptions(resource_version=resource_version)
                async for ev in self.registry.watch(self.resource, "", opts, send_initial=False):
                    name = ev.obj["metadata"]["name"]
                    resource_version = str(ev.obj["metadata"].get("resourceVersion") or resource_version)
                    if ev.type == "DELETED":
                        self.configs.pop(name, None)
                    else:
                        self.configs[name] = ev.obj
                    self._rebuild()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch of %s failed; listing again", self.resource.plural)
                await asyncio.sleep(0.5)
                res = await self.registry.list(self.resource, "", ListOptions())
                self.configs = {o["metadata"]["name"]: o for o in res.items}
                resource_version = res.resource_version
                self._rebuild()

    def _rebuild(self) -> None:
        hooks: list[Webhook] = []
        compiled: dict[str, tuple[str, list[Webhook]]] = {}
        for name in sorted(self.configs):
            config = self.configs[name]
            rv = str(config["metadata"].get("resourceVersion") or "")
            known = self._compiled.get(name)
            entry = known if known is not None and known[0] == rv else (
                rv, compile_webhooks(config, mutating=self.mutating))
            compiled[name] = entry
            hooks.extend(entry[1])
        self._compiled = compiled
        self.webhooks = hooks
