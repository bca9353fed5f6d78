"""kube-apiserver's storage metrics: the store's requests and how many objects it holds.

Contract (``k8s.io/apiserver/pkg/storage/etcd3/metrics`` of Kubernetes 1.32):

- ``etcd_request_duration_seconds`` / ``etcd_requests_total`` / ``etcd_request_errors_total``
  {operation, type}: every call the API server makes to its store (get, list, listWithCount for a
  count, create, update, delete), ``type`` the resource (``pods``, ``deployments.apps``). The names
  say etcd whichever store is behind them, as on a k3s server whose kube-apiserver talks to SQLite
  through kine: dashboards built for Kubernetes read them unchanged. A store error counts in
  ``etcd_request_errors_total`` (not-found, conflicts and the like are answers, not errors).
- ``apiserver_storage_objects`` {resource}: the objects of each stored resource, counted when the
  server starts and every minute after (``-1`` when the count failed), as Kubernetes' storage
  monitor does.

:func:`instrument` wraps the store's methods on the instance (so every user of the store, the
watch cache included, is measured), once, when the server opens it; nothing is wrapped when the
server's metrics are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from functools import wraps
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client.registry import Collector

from kybernetes.apiserver.metrics import REQUEST_DURATION_BUCKETS
from kybernetes.metrics.accumulate import HistogramState, counter_family, gauge_family, histogram_family
from kybernetes.storage.interface import KeyExistsError, KeyNotFoundError, RevisionMismatchError, StoreError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from kybernetes.api.resources import Catalogue
    from kybernetes.storage.interface import Store

log = logging.getLogger(__name__)

COUNT_INTERVAL = 60.0
"""Seconds between counts of the stored objects (Kubernetes' storage monitor period)."""

_OPERATIONS = {"get": "get", "list": "list", "count": "listWithCount", "create": "create", "update": "update",
               "delete": "delete"}
_ANSWERS = (KeyExistsError, KeyNotFoundError, RevisionMismatchError)
"""Store exceptions that are the store's answer to a request, not a failed request."""


class StorageMetrics(Collector):
    """Storage request and object-count metrics of one API server's store."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._types: dict[str, str] = {}
        """A key's parent directory -> the resource it belongs to."""
        self._prefixes: dict[str, str] = {}
        self._requests: dict[tuple[str, str], HistogramState] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._objects: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    # --- the store's requests --------------------------------------------------------------

    def instrument(self, store: Store) -> None:
        """Measure ``store``'s request methods from now on."""
        for method, operation in _OPERATIONS.items():
            setattr(store, method, self._measured(getattr(store, method), operation))

    def _measured(self, fn: Callable[..., Awaitable[Any]], operation: str) -> Callable[..., Awaitable[Any]]:
        @wraps(fn)
        async def measured(key: str, *args: Any, **kwargs: Any) -> Any:
            t0 = perf_counter()
            failed = False
            try:
                return await fn(key, *args, **kwargs)
            except _ANSWERS:
                raise
            except StoreError:
                failed = True
                raise
            finally:
                self._record(operation, self.resource_of(key), perf_counter() - t0, failed)

        return measured

    def _record(self, operation: str, resource: str, seconds: float, failed: bool) -> None:
        key = (operation, resource)
        h = self._requests.get(key)
        if h is None:
            h = self._requests[key] = HistogramState(REQUEST_DURATION_BUCKETS)
        h.observe(seconds)
        if failed:
            self._errors[key] = self._errors.get(key, 0) + 1

    def resource_of(self, key: str) -> str:
        """The resource (``pods``, ``deployments.apps``) a store key or prefix belongs to."""
        parent = key[:key.rfind("/") + 1]
        found = self._types.get(parent)
        if found is None:
            found = self._types[parent] = self._lookup(parent)
        return found

    def _lookup(self, parent: str) -> str:
        # A key is PREFIX + name or PREFIX + namespace/name; a list's prefix is PREFIX or
        # PREFIX + namespace/. A custom resource's prefix appears with its CRD: look again then.
        for refresh in (False, True):
            if refresh or not self._prefixes:
                self._prefixes = {r.key_prefix: _group_resource(*r.stored_in) for r in self._catalogue.all() if r.stored}
            candidate = parent
            for _ in range(2):
                found = self._prefixes.get(candidate)
                if found is not None:
                    return found
                candidate = candidate[:candidate.rstrip("/").rfind("/") + 1]
        return key_tail(parent)

    # --- stored objects --------------------------------------------------------------------

    def start(self, store: Store) -> None:
        """Count the stored objects now and every :data:`COUNT_INTERVAL` seconds."""
        self._task = asyncio.get_running_loop().create_task(self._count_forever(store))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _count_forever(self, store: Store) -> None:
        while True:
            await self.count_objects(store)
            await asyncio.sleep(COUNT_INTERVAL)

    async def count_objects(self, store: Store) -> None:
        prefixes = {r.key_prefix: _group_resource(*r.stored_in) for r in self._catalogue.all() if r.stored}
        for prefix, resource in prefixes.items():
            try:
                self._objects[resource] = await store.count(prefix)
            except StoreError as e:
                log.warning("counting %s in the store: %s", resource, e)
                self._objects[resource] = -1

    # --- exposition ------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        requests = [(k, h) for k, h in list(self._requests.items())]
        yield histogram_family("etcd_request_duration_seconds",
                               "Etcd request latency in seconds for each operation and object type.",
                               ("operation", "type"), requests)
        yield counter_family("etcd_requests_total", "Etcd request counts for each operation and object type.",
                             ("operation", "type"), ((k, h.count) for k, h in requests))
        yield counter_family("etcd_request_errors_total", "Etcd failed request counts for each operation and object "
                             "type.", ("operation", "type"), list(self._errors.items()))
        yield gauge_family("apiserver_storage_objects", "Number of stored objects at the time of last check split by "
                           "kind. In case of a fetching error, the value will be -1.", ("resource",),
                           [((r,), n) for r, n in sorted(self._objects.items())])


def _group_resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def key_tail(prefix: str) -> str:
    """A label for a key outside every resource: its path after ``/registry/``."""
    return prefix.removeprefix("/registry/").strip("/")
