"""What every namespace gets: the ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap.

Two small controllers, as in kube-controller-manager (``serviceaccount`` and
``root-ca-cert-publisher``), both keyed by namespace name:

- :class:`ServiceAccountsController` makes sure each active namespace has a ServiceAccount named
  ``default`` and re-creates it when it is deleted (its delete event enqueues the namespace).
- :class:`RootCACertPublisher` keeps a ConfigMap ``kube-root-ca.crt`` whose ``ca.crt`` is the
  cluster CA (read once from the ``root-ca-file`` option) in each active namespace; when the
  ConfigMap is deleted or edited it is put back. Without a CA file the publisher does nothing.

Terminating namespaces are left alone: creating there is Forbidden, and the namespace controller
is busy removing what is in them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.controllers.base import Controller, ControllerContext

log = logging.getLogger(__name__)

DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
    "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)


def namespace_active(ns: Obj | None) -> bool:
    if ns is None:
        return False
    if ns.get("metadata", {}).get("deletionTimestamp"):
        return False
    return (ns.get("status") or {}).get("phase", "Active") != "Terminating"


class ServiceAccountsController(Controller):
    """Ensures the ``default`` ServiceAccount in every active namespace."""

    name = "serviceaccount-controller"
    queue_name = "serviceaccount"
    service_account = "service-account-controller"
    workers = 1
    managed_names: tuple[str, ...] = (DEFAULT_SERVICE_ACCOUNT,)

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = self.informer("v1", "namespaces")
        self.serviceaccounts = self.informer("v1", "serviceaccounts")
        self.namespaces.add_handler(on_add=self._ns_changed, on_update=lambda _old, new: self._ns_changed(new))
        self.serviceaccounts.add_handler(on_delete=self._sa_deleted)

    def _ns_changed(self, ns: Obj) -> None:
        if namespace_active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _sa_deleted(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in self.managed_names and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def sync(self, key: str) -> None:
        ns = self.namespaces.store.get(key)
        if not namespace_active(ns):
            return
        for name in self.managed_names:
            if self.serviceaccounts.store.get(f"{key}/{name}") is not None:
                continue
            sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": key}}
            try:
                await self.client.create("v1", "serviceaccounts", sa, key)
            except errors.AlreadyExists:
                pass  # the cache had not seen it yet
            except (errors.Forbidden, errors.NotFound):
                pass  # the namespace is terminating or gone: nothing to do there


class RootCACertPublisher(Controller):
    """Publishes the cluster CA as ``kube-root-ca.crt`` in every active namespace."""

    name = "root-ca-cert-publisher"
    queue_name = "root_ca_cert_publisher"
    service_account = "root-ca-cert-publisher"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.ca_data = self._read_ca(ctx.option("root-ca-file", None))
        self.namespaces = self.informer("v1", "namespaces")
        self.configmaps = self.informer("v1", "configmaps")
        if self.ca_data is None:
            return  # nothing to publish: do not even register handlers
        self.namespaces.add_handler(on_add=self._ns_changed, on_update=lambda _old, new: self._ns_changed(new))
        self.configmaps.add_handler(on_update=lambda _old, new: self._cm_changed(new), on_delete=self._cm_changed)

    @staticmethod
    def _read_ca(path: Any) -> str | None:
        if not path:
            log.info("root-ca-cert-publisher: no root-ca-file; not publishing %s", ROOT_CA_CONFIGMAP)
            return None
        try:
            return Path(path).read_text()
        except OSError as e:
            log.warning("root-ca-cert-publisher: cannot read %s: %s", path, e)
            return None

    def _ns_changed(self, ns: Obj) -> None:
        if namespace_active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _cm_changed(self, cm: Obj) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == ROOT_CA_CONFIGMAP and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def sync(self, key: str) -> None:
        if self.ca_data is None or not namespace_active(self.namespaces.store.get(key)):
            return
        data = {ROOT_CA_KEY: self.ca_data}
        cm = self.configmaps.store.get(f"{key}/{ROOT_CA_CONFIGMAP}")
        try:
            if cm is None:
                new: Obj = {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": key,
                                 "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": data,
                }
                await self.client.create("v1", "configmaps", new, key)
                return
            annotations = (cm.get("metadata") or {}).get("annotations") or {}
            if cm.get("data") == data and not cm.get("binaryData") and annotations.get(DESCRIPTION_ANNOTATION):
                return
            upd = dict(cm)
            upd["metadata"] = dict(cm["metadata"])
            upd["metadata"]["annotations"] = {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}
            upd["data"] = data
            upd.pop("binaryData", None)
            await self.client.update("v1", "configmaps", upd, key)
        except errors.AlreadyExists:
            # The cache is behind; the ConfigMap's add event brings it back here if it needs fixing.
            self.queue.add_after(key, 1.0)
        except (errors.Forbidden, errors.NotFound):
            pass  # terminating or gone namespace; or deleted under us (its delete event requeues)


CONTROLLERS: list[type[Controller]] = [ServiceAccountsController, RootCACertPublisher]
