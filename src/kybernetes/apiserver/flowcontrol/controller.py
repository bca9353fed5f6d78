"""API Priority and Fairness in the API server: the configuration controller and the request gate.

:class:`FlowControl` keeps the bootstrap configuration in the cluster (``bootstrap.py``'s rules),
watches FlowSchemas and PriorityLevelConfigurations, and on every change rebuilds

* one :class:`~.queueset.QueueSet` per priority level, whose seats are the level's share of the
  server's concurrency limit (``--max-requests-inflight`` + ``--max-mutating-requests-inflight``):
  ``ceil(limit * shares / sum of all levels' shares)``, as Kubernetes' nominal limits; an exempt
  level has no limit;
* a :class:`~.classifier.Classifier`; FlowSchemas whose level is missing are skipped and get the
  ``Dangling`` condition, and the mandatory objects are used from memory while missing;

and writes each FlowSchema's ``Dangling`` status condition.

:meth:`FlowControl.serve` is the one place requests pass through (after authentication):
long-running requests other than watches (exec, attach, logs, port-forward, proxy) pass
untouched, as in Kubernetes; every other request is classified, gets the
``X-Kubernetes-PF-FlowSchema-UID`` and ``X-Kubernetes-PF-PriorityLevel-UID`` headers, and takes
a seat of its level (waiting in its flow's queue if need be) for as long as its handler runs; a
watch gives its seat back when its stream starts, its initial events gathered (as Kubernetes does
once the watch is initialized). A rejected request gets Kubernetes' 429 (plain text
"Too many requests, please try again later." and ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from collections.abc import Awaitable, Callable
from time import perf_counter

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.apiserver.flowcontrol import bootstrap
from kybernetes.apiserver.flowcontrol.classifier import Classifier, Match
from kybernetes.apiserver.flowcontrol.dropped import DroppedRequests
from kybernetes.apiserver.flowcontrol.metrics import FlowControlMetrics, FlowStats
from kybernetes.apiserver.flowcontrol.queueset import Clock, LoopClock, QueueSet
from kybernetes.apiserver.registry.request import DeleteOptions, ListOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.transport.requestinfo import RequestInfo
from kybernetes.apiserver.transport.requests import bool_param
from kybernetes.httpserver.messages import AnyResponse, Request, Response

log = logging.getLogger(__name__)

GROUP = "flowcontrol.apiserver.k8s.io"
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "log", "portforward", "proxy"})
TOO_MANY = b"Too many requests, please try again later.\n"
WAIT_LIMIT = 15.0
"""Seconds a request may wait in a queue (Kubernetes: a quarter of the 60 s request timeout)."""

STATUS_FIELD_MANAGER = "api-priority-and-fairness-config-consumer-v1"
"""Kubernetes' APF controller writes FlowSchema status as this manager (the ensurer as the producer)."""
_MASK64 = (1 << 64) - 1
_SYSTEM = User("system:apiserver", ("system:masters", "system:authenticated"))


def shares_of(pl: Obj) -> int:
    spec = pl.get("spec") or {}
    part = spec.get("limited") if spec.get("type") == "Limited" else spec.get("exempt")
    value = (part or {}).get("nominalConcurrencyShares") if isinstance(part, dict) else 0
    return value if isinstance(value, int) and value > 0 else 0


class FlowControl:
    def __init__(self, registry: Registry, catalogue: Catalogue, server_concurrency: int = 600, *,
                 clock: Clock | None = None, wait_limit: float = WAIT_LIMIT,
                 metrics: FlowControlMetrics | None = None) -> None:
        self.registry = registry
        self.metrics = metrics
        """The server's APF series (flowcontrol/metrics.py); None when metrics are off."""
        self.server_concurrency = server_concurrency
        self.clock: Clock = clock or LoopClock()
        self.wait_limit = wait_limit
        fs = catalogue.get(GROUP, "v1", "flowschemas")
        pl = catalogue.get(GROUP, "v1", "prioritylevelconfigurations")
        assert fs is not None and pl is not None
        self.fs_resource: Resource = fs
        self.pl_resource: Resource = pl
        self.levels: dict[str, QueueSet] = {}
        self.classifier = Classifier([], {})
        self.dropped = DroppedRequests()
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty = asyncio.Event()
        self._ctx = RequestContext(user=_SYSTEM, field_manager=bootstrap.FIELD_MANAGER)
        self._status_ctx = RequestContext(user=_SYSTEM, field_manager=STATUS_FIELD_MANAGER)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Ensure the bootstrap objects and build the configuration before the server answers."""
        await self.sync()
        self._tasks = [asyncio.create_task(self._watch(r), name=f"apf-watch-{r.plural}")
                       for r in (self.fs_resource, self.pl_resource)]
        self._tasks.append(asyncio.create_task(self._run(), name="apf-config"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t

    async def _watch(self, r: Resource) -> None:
        while True:
            try:
                async for _ev in self.registry.watch(r, "", ListOptions(), send_initial=False):
                    self._dirty.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("APF watch of %s failed; restarting", r.plural)
                self._dirty.set()
                await asyncio.sleep(0.5)

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("APF configuration sync failed; retrying")
                await asyncio.sleep(1.0)
                self._dirty.set()

    # --- the configuration -------------------------------------------------------------------

    async def _list(self, r: Resource) -> dict[str, Obj]:
        res = await self.registry.list(r, "", ListOptions())
        return {o["metadata"]["name"]: o for o in res.items}

    async def sync(self) -> None:
        """Keep the bootstrap objects, rebuild levels and classifier, write Dangling conditions."""
        pls, fss = await self._list(self.pl_resource), await self._list(self.fs_resource)
        changed = await self._ensure(self.pl_resource, pls, bootstrap.MANDATORY_PRIORITY_LEVELS,
                                     bootstrap.SUGGESTED_PRIORITY_LEVELS)
        changed |= await self._ensure(self.fs_resource, fss, bootstrap.MANDATORY_FLOW_SCHEMAS,
                                      bootstrap.SUGGESTED_FLOW_SCHEMAS)
        if changed:
            pls, fss = await self._list(self.pl_resource), await self._list(self.fs_resource)
        self._rebuild(pls, fss)
        await self._write_dangling(fss, pls)

    async def _ensure(self, r: Resource, current: dict[str, Obj], mandatory: tuple[Obj, ...],
                      suggested: tuple[Obj, ...]) -> bool:
        changed = False
        for objects, is_mandatory in ((mandatory, True), (suggested, False)):
            for want in objects:
                name = want["metadata"]["name"]
                have = current.get(name)
                try:
                    if have is None:
                        await self.registry.create(r, "", copy.deepcopy(want), self._ctx)
                        changed = True
                    elif (new := bootstrap.planned_update(have, want, mandatory=is_mandatory)) is not None:
                        await self.registry.update(r, "", name, new, self._ctx)
                        changed = True
                except (errors.AlreadyExists, errors.Conflict, errors.NotFound):
                    self._dirty.set()  # someone else wrote meanwhile: look again
        names = {o["metadata"]["name"] for o in (*mandatory, *suggested)}
        for name, obj in current.items():
            if bootstrap.should_remove(obj, names):
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    opts = DeleteOptions(preconditions={"uid": obj["metadata"].get("uid")})
                    await self.registry.delete(r, "", name, opts, self._ctx)
                    changed = True
        return changed

    def _rebuild(self, pls: dict[str, Obj], fss: dict[str, Obj]) -> None:
        effective = dict(pls)
        for want in bootstrap.MANDATORY_PRIORITY_LEVELS:
            effective.setdefault(want["metadata"]["name"], want)
        total = sum(shares_of(pl) for pl in effective.values()) or 1
        levels: dict[str, QueueSet] = {}
        for name, pl in effective.items():
            levels[name] = self._level(name, pl, total)
        self.levels = levels
        schemas = list(fss.values())
        for want in bootstrap.MANDATORY_FLOW_SCHEMAS:
            if want["metadata"]["name"] not in fss:
                schemas.append(want)
        uids = {name: str((pl.get("metadata") or {}).get("uid") or "") for name, pl in effective.items()}
        classifier = Classifier(schemas, {name: (uids[name], qs) for name, qs in levels.items()})
        if self.metrics is not None:
            for m in classifier.matches:
                m.stats = self.metrics.stats(m.priority_level, m.flow_schema)
        self.classifier = classifier

    def _level(self, name: str, pl: Obj, total_shares: int) -> QueueSet:
        spec = pl.get("spec") or {}
        limit: int | None = None
        queues = hand = length = 0
        if spec.get("type") != "Exempt":
            limit = math.ceil(self.server_concurrency * shares_of(pl) / total_shares)
            response = ((spec.get("limited") or {}).get("limitResponse") or {})
            queuing = response.get("queuing") if response.get("type") == "Queue" else None
            if isinstance(queuing, dict):
                queues = int(queuing.get("queues") or 0)
                hand = int(queuing.get("handSize") or 0)
                length = int(queuing.get("queueLengthLimit") or 0)
        old = self.levels.get(name)
        if old is not None and old.configure(limit, queues=queues, hand_size=hand, queue_length_limit=length):
            return old
        return QueueSet(name, limit, queues=queues, hand_size=hand, queue_length_limit=length,
                        wait_limit=self.wait_limit, clock=self.clock)

    async def _write_dangling(self, fss: dict[str, Obj], pls: dict[str, Obj]) -> None:
        for name, fs in fss.items():
            pl_name = str(((fs.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name") or "")
            want = dangling_condition(pl_name, pl_name in pls)
            conds = (fs.get("status") or {}).get("conditions") or []
            have = next((c for c in conds if isinstance(c, dict) and c.get("type") == "Dangling"), None)
            if have is not None and all(have.get(k) == want[k] for k in ("status", "reason", "message")):
                continue
            if have is not None and have.get("status") == want["status"] and have.get("lastTransitionTime"):
                want["lastTransitionTime"] = have["lastTransitionTime"]
            others = [c for c in conds if not (isinstance(c, dict) and c.get("type") == "Dangling")]
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self.registry.patch(self.fs_resource, "", name, "merge",
                                          {"status": {"conditions": [*others, want]}}, self._status_ctx,
                                          subresource="status")

    # --- the request gate --------------------------------------------------------------------

    async def serve(self, request: Request, info: RequestInfo, user: User,
                    call: Callable[[], Awaitable[AnyResponse]]) -> AnyResponse:
        """Run ``call`` (the request's handler) under API Priority and Fairness."""
        watch = False
        if info.is_resource_request:
            if info.subresource in LONG_RUNNING_SUBRESOURCES:
                return await call()
            # A watch holds its seat differently; ``?watch`` on a named GET streams too.
            watch = info.verb == "watch" or (
                bool(info.name) and "watch" in request.query_string and bool_param(request.query.get("watch")))
            resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
            namespace = info.namespace
            m = self.classifier.classify(user.name, user.groups, info.verb, info.api_group, resource, namespace, "",
                                         True)
        else:
            m = self.classifier.classify(user.name, user.groups, info.verb, "", "", "", request.path, False)
            namespace = ""
        if m is None:
            return await call()
        # After any header set before this gate (the Audit-Id).
        request.extra_headers = m.headers if request.extra_headers is None else request.extra_headers + m.headers
        qs: QueueSet = m.level
        stats: FlowStats | None = m.stats
        if qs.try_start():
            if stats is not None:
                stats.immediate += 1
                stats.executing += 1
        elif await self._queue(qs, stats, hash((m.flow_schema, m.flow(user.name, namespace))) & _MASK64):
            return self._reject(m)
        if watch:
            return await self._serve_watch(request, qs, stats, call)
        try:
            return await call()
        finally:
            qs.release()
            if stats is not None:
                stats.executing -= 1

    @staticmethod
    async def _queue(qs: QueueSet, stats: FlowStats | None, flow_hash: int) -> str:
        """Wait in ``qs`` for a seat: "" once seated, else the rejection's reason; counted in ``stats``."""
        if stats is None:
            return await qs.wait(flow_hash)
        t0 = perf_counter()
        stats.inqueue += 1
        try:
            reason = await qs.wait(flow_hash)
        except asyncio.CancelledError:
            stats.observe_wait(perf_counter() - t0, False)
            stats.reject("cancelled")
            raise
        finally:
            stats.inqueue -= 1
        stats.observe_wait(perf_counter() - t0, not reason)
        if reason:
            stats.reject(reason)
        else:
            stats.executing += 1
        return reason

    @staticmethod
    async def _serve_watch(request: Request, qs: QueueSet, stats: FlowStats | None,
                           call: Callable[[], Awaitable[AnyResponse]]) -> AnyResponse:
        """A watch holds its seat until its stream starts (its initial events are gathered)."""
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                qs.release()
                if stats is not None:
                    stats.executing -= 1

        request.on_stream_start = release
        try:
            return await call()
        finally:
            release()

    def _reject(self, m: Match) -> Response:
        self.dropped.record(m.priority_level, int(time.time()))
        retry = self.dropped.retry_after(m.priority_level)
        return Response(body=TOO_MANY, status=429, content_type="text/plain; charset=utf-8",
                        headers={"Retry-After": str(retry), "X-Content-Type-Options": "nosniff"})


def dangling_condition(pl_name: str, exists: bool) -> Obj:
    """The ``Dangling`` condition Kubernetes' APF controller writes on a FlowSchema."""
    if exists:
        return {"type": "Dangling", "status": "False", "lastTransitionTime": now_rfc3339(), "reason": "Found",
                "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{pl_name}" '
                           "and it exists"}
    return {"type": "Dangling", "status": "True", "lastTransitionTime": now_rfc3339(), "reason": "NotFound",
            "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{pl_name}" '
                       "but there is no such object"}

