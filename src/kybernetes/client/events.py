"""Recording ``core/v1`` Events about objects, as client-go's ``tools/record`` does.

``recorder.event(obj, "Normal", "Scheduled", "assigned default/web-0 to node-a")`` never blocks
and never raises: the event goes into a bounded queue (:data:`QUEUE_SIZE`) and a background task
writes it. When the queue is full the event is dropped (and logged): events are a diagnostic
side channel and must never slow a controller down.

Each Event is named ``<object name>.<unique hex suffix>`` in the object's namespace (``default``
for cluster-scoped objects, as Kubernetes does) and carries ``involvedObject`` (kind, namespace,
name, uid, apiVersion, resourceVersion), ``reason``, ``message``, ``type``, ``source``
(component, host), ``firstTimestamp``/``lastTimestamp``, ``count``, ``reportingComponent`` and
``reportingInstance``.

Aggregation (client-go's ``EventCorrelator``, the identical-event part): events are keyed by
source + involved object + type + reason + message. A repeat of a key whose Event was written
less than :data:`AGGREGATE_WINDOW` seconds ago patches that Event — ``count + 1`` and a new
``lastTimestamp`` — instead of creating another. The cache of keys is an LRU of
:data:`CACHE_SIZE` entries. If the Event was deleted meanwhile (404), a new one is created.

``flush()`` waits until everything queued so far has been written (or failed); ``close()``
flushes and stops the writer. Write failures are logged and not retried beyond the REST
client's own retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kybernetes import errors
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
AGGREGATE_WINDOW = 600.0
CACHE_SIZE = 4096
MAX_NAME = 253

_counter = itertools.count()


def _event_name(obj_name: str) -> str:
    # client-go uses the wall clock in nanoseconds; the counter keeps names unique within a process
    # even when two events land in the same nanosecond tick.
    suffix = f"{time.time_ns() + next(_counter):x}"
    return f"{obj_name[: MAX_NAME - len(suffix) - 1]}.{suffix}"


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    last: float
    """time.monotonic() of the last write."""


class EventRecorder:
    """Writes Events for one component (see the module doc)."""

    def __init__(self, client: Client, component: str, host: str = "", *,
                 timestamp: Callable[[], str] = now_rfc3339) -> None:
        """``timestamp`` gives an event's time (``metav1.Time`` text, wall clock; tests move it)."""
        self.client = client
        self._timestamp = timestamp
        self.component = component
        self.host = host or os.uname().nodename
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, str, str]] = asyncio.Queue(QUEUE_SIZE)
        self._cache: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0

    def event(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        """Record an event about ``obj`` (type ``Normal`` or ``Warning``); never blocks or raises."""
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("event %s/%s dropped: no running event loop", reason, message)
            return
        try:
            self._queue.put_nowait((obj, type, reason, message, self._timestamp()))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event queue full; dropped %s event %s: %s", type, reason, message)
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._writer(), name=f"events:{self.component}")

    async def flush(self) -> None:
        """Wait until every event recorded so far has been written (or has failed)."""
        if self._task is None or self._task.done():
            return
        await self._queue.join()

    async def close(self) -> None:
        await self.flush()
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _writer(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("could not write event %s %s: %s", item[2], item[3], e)
            finally:
                self._queue.task_done()

    async def _write(self, obj: dict[str, Any], type: str, reason: str, message: str, ts: str) -> None:
        meta = obj.get("metadata") or {}
        involved = {
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace") or "",
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        namespace = involved["namespace"] or "default"
        key = (self.component, self.host, involved["kind"], involved["namespace"], involved["name"],
               involved["uid"], involved["apiVersion"], type, reason, message)
        seen = self._cache.get(key)
        now = time.monotonic()
        if seen is not None and now - seen.last < AGGREGATE_WINDOW:
            try:
                await self.client.patch("v1", "events", seen.name,
                                        {"count": seen.count + 1, "lastTimestamp": ts}, seen.namespace)
                seen.count += 1
                seen.last = now
                self._cache.move_to_end(key)
                return
            except errors.NotFound:
                pass  # someone deleted it (or it expired): start a new one
        name = _event_name(involved["name"] or "unknown")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        await self.client.create("v1", "events", event, namespace)
        self._cache[key] = _Seen(name, namespace, 1, now)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
