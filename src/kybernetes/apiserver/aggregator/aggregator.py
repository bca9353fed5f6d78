"""The aggregation layer in front of the API server's own APIs (kube-aggregator, in-process).

:class:`Aggregator` keeps every APIService in memory from a list-and-watch, and:

* at start publishes ``kube-system/extension-apiserver-authentication`` (:mod:`.frontproxy`) and
  registers the local APIServices of the built-in groups (:mod:`.autoregister`), and keeps those
  of custom resource groups in step with the CRDs (:mod:`.crdregistration`), re-creating one a
  user deleted and resetting one a user changed;
* runs the availability controller (:mod:`.available`): every remote APIService is checked when
  it appears or its spec changes, when its Service or one of that Service's EndpointSlices
  changes (both watched, as kube-aggregator's informers are), every ``apiservice_resync_seconds``,
  and sooner while a check fails; its discovery document is fetched when the check passes;
* answers, for the request path: which group/versions are remote (:meth:`remote`), the proxying of
  their requests after kube-apiserver has authenticated and authorized them (:meth:`proxy`), and
  the discovery documents with the remote groups merged in (:mod:`.discovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.aggregator import autoregister, available, crdregistration, discovery, frontproxy
from kybernetes.apiserver.aggregator.backend import Backend, text_error
from kybernetes.apiserver.aggregator.openapi import RemoteOpenAPI
from kybernetes.apiserver.registry.apiregistration import available_condition
from kybernetes.apiserver.registry.request import ListOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.serviceresolver import SERVICE_NAME_LABEL
from kybernetes.httpserver.messages import AnyResponse, Request
from kybernetes.pki import PKI

log = logging.getLogger(__name__)
RETRY_FIRST = 0.5
CRD_SYNC_INTERVAL = 0.5
SYSTEM = RequestContext(user=User("system:apiserver", ("system:masters",)), field_manager="kube-apiserver")


class Aggregator:
    def __init__(self, registry: Registry, catalogue: Catalogue, pki: PKI, config: frontproxy.FrontProxyConfig,
                 on_discovery_change: Callable[[], None]) -> None:
        self.registry, self.catalogue, self.pki, self.config = registry, catalogue, pki, config
        self.on_discovery_change = on_discovery_change
        self.resource = catalogue.get(autoregister.GROUP, "v1", "apiservices")
        self.apiservices: dict[str, Obj] = {}
        self.by_group_version: dict[tuple[str, str], Obj] = {}
        self.remote_groups: dict[str, tuple[int, list[Obj]]] = {}
        self.backends: set[tuple[str, str]] = set()
        """(namespace, name) of every Service an APIService names."""
        self.docs: dict[str, tuple[Obj, bool]] = {}
        """APIService name -> (the backend's APIResourceList, whether its last check passed)."""
        self.backend: Backend | None = None
        self.openapi = RemoteOpenAPI()
        self._wake = asyncio.Event()
        self._crd_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        trust = frontproxy.resolve_trust(self.config, self.pki)
        data = frontproxy.configmap_data(self.pki.ca_pem, trust.ca_pem, self.config, trust.allowed_names)
        await frontproxy.publish(self.registry, self.catalogue, data, SYSTEM)
        self.backend = Backend(self.registry, self.catalogue, self.config, trust.client_cert, trust.client_key)
        await autoregister.register_local(self.registry, self.catalogue, SYSTEM)
        assert self.resource is not None
        res = await self.registry.list(self.resource, "", ListOptions())
        self._set({o["metadata"]["name"]: o for o in res.items})
        self._tasks = [asyncio.create_task(self._follow(res.resource_version), name="apiservices-watch"),
                       asyncio.create_task(self._controller(), name="apiservice-availability"),
                       asyncio.create_task(self._crd_registration(), name="crd-apiservices"),
                       asyncio.create_task(self._follow_backends("", "services"), name="apiservice-services"),
                       asyncio.create_task(self._follow_backends("discovery.k8s.io", "endpointslices"),
                                           name="apiservice-endpointslices")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        if self.backend is not None:
            await self.backend.close()

    # --- the request path ---------------------------------------------------------------------

    def remote(self, group: str, version: str) -> Obj | None:
        """The APIService serving ``group/version`` from a Service, if one does."""
        return self.by_group_version.get((group, version))

    async def proxy(self, request: Request, apiservice: Obj, user: User) -> AnyResponse:
        cond = available_condition(apiservice)
        if self.backend is None or cond is None or cond.get("status") != "True":
            return text_error("service unavailable", 503)
        return await self.backend.proxy(request, apiservice, user)

    def api_group_list(self) -> dict[str, Any]:
        return discovery.api_group_list(self.catalogue, self.remote_groups)

    def aggregated(self) -> dict[str, Any]:
        return discovery.aggregated(self.catalogue, self.remote_groups, self.docs)

    def api_group(self, group: str) -> dict[str, Any] | None:
        return discovery.api_group(self.catalogue, group, self.remote_groups)

    def root_paths(self) -> list[str]:
        """The paths of ``/`` that the aggregated APIs add: ``/apis/<group>`` and
        ``/apis/<group>/<version>`` of every remote APIService (kube-aggregator lists both)."""
        return discovery.root_paths(self.remote_groups)

    # --- the APIServices ---------------------------------------------------------------------

    def _set(self, apiservices: dict[str, Obj]) -> None:
        self.apiservices = apiservices
        self.by_group_version = {(o["spec"].get("group") or "", o["spec"].get("version") or ""): o
                                 for o in apiservices.values() if (o.get("spec") or {}).get("service")}
        self.remote_groups = discovery.remote_groups(apiservices)
        self.backends = {(str(o["spec"]["service"].get("namespace") or ""), str(o["spec"]["service"].get("name") or ""))
                         for o in self.by_group_version.values()}
        self.docs = {k: v for k, v in self.docs.items() if k in apiservices}
        self.openapi.forget_except(set(self.by_group_version_names()))
        self.on_discovery_change()

    def by_group_version_names(self) -> list[str]:
        return [o["metadata"]["name"] for o in self.by_group_version.values()]

    async def _follow(self, resource_version: str) -> None:
        assert self.resource is not None
        while True:
            try:
                opts = ListOptions(resource_version=resource_version)
                async for ev in self.registry.watch(self.resource, "", opts, send_initial=False):
                    resource_version = str(ev.obj["metadata"].get("resourceVersion") or resource_version)
                    self._apply(ev.type, ev.obj)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch of apiservices failed; listing again")
                await asyncio.sleep(0.5)
                res = await self.registry.list(self.resource, "", ListOptions())
                resource_version = res.resource_version
                self._set({o["metadata"]["name"]: o for o in res.items})
                self._wake.set()

    def _apply(self, event: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        old = self.apiservices.get(name)
        apiservices = dict(self.apiservices)
        if event == "DELETED":
            apiservices.pop(name, None)
        else:
            apiservices[name] = obj
        self._set(apiservices)
        if event == "DELETED" or old is None or old.get("spec") != obj.get("spec"):
            self._wake.set()  # a status write (ours) needs no new check
            if crdregistration.is_managed(obj):
                self._crd_dirty.set()  # a user deleted or changed one: sync it back (autoregister)

    def _backend_of(self, obj: Obj, plural: str) -> tuple[str, str]:
        """(namespace, Service name) a Service or EndpointSlice event is about."""
        meta = obj.get("metadata") or {}
        name = meta.get("name") if plural == "services" else (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        return str(meta.get("namespace") or ""), str(name or "")

    async def _follow_backends(self, group: str, plural: str) -> None:
        """Wake the availability controller when a Service that an APIService names, or one of
        its EndpointSlices, changes: kube-aggregator's service and endpointslice handlers."""
        resource = self.catalogue.get(group, "v1", plural)
        assert resource is not None
        while True:
            try:
                async for ev in self.registry.watch(resource, "", ListOptions(), send_initial=False):
                    if self._backend_of(ev.obj, plural) in self.backends:
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch of %s for APIServices failed; watching again", plural)
                self._wake.set()  # a change may have been missed
                await asyncio.sleep(0.5)


    async def _crd_registration(self) -> None:
        """Keep the CRD groups' local APIServices (:mod:`.crdregistration`) in step with the
        catalogue and with what users do to them: a sync whenever the catalogue's generation moved
        or a managed APIService was deleted or changed."""
        synced = -1
        while True:
            generation = self.catalogue.generation
            if generation != synced or self._crd_dirty.is_set():
                self._crd_dirty.clear()
                try:
                    await crdregistration.sync(self.registry, self.catalogue, dict(self.apiservices), SYSTEM)
                    synced = generation
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("syncing the custom resources' APIServices failed")
            with contextlib.suppress(TimeoutError):
                await wait_for(self._crd_dirty.wait(), CRD_SYNC_INTERVAL)

    # --- the availability controller ----------------------------------------------------------

    async def _controller(self) -> None:
        """Check every remote APIService, then wait for a change or the resync period; while some
        check fails, check again sooner (0.5 s, doubling), as kube-aggregator requeues a failure
        with back-off, so a backend that comes up late is seen soon."""
        retry = RETRY_FIRST
        while True:
            self._wake.clear()
            remote = [o for o in self.apiservices.values() if (o.get("spec") or {}).get("service")]
            try:
                passed = await asyncio.gather(*(self._check(o) for o in remote))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking APIService availability failed")
                passed = [False]
            resync = self.config.apiservice_resync_seconds
            wait, retry = (resync, RETRY_FIRST) if all(passed) else (min(retry, resync), min(retry * 2, resync))
            with contextlib.suppress(TimeoutError):
                await wait_for(self._wake.wait(), wait)

    async def _check(self, apiservice: Obj) -> bool:
        """Check one APIService and record the outcome; whether it is available."""
        assert self.backend is not None
        cond = await available.check(self.registry, self.catalogue, self.backend, apiservice)
        name = apiservice["metadata"]["name"]
        passed = cond["status"] == "True"
        doc = await self.backend.fetch_discovery(apiservice) if passed else None
        before = self.docs.get(name)
        if doc is not None:
            self.docs[name] = (doc, True)
        elif before is not None and before[1] != passed:
            self.docs[name] = (before[0], passed)
        if self.docs.get(name) != before:
            self.on_discovery_change()
        if doc is not None and (self.docs.get(name) != before or name not in self.openapi.asked):
            self.openapi.record(name, *await self.backend.fetch_openapi(apiservice))
        await available.write_condition(self.registry, self.catalogue, apiservice, cond, SYSTEM)
        return passed
