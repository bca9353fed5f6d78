"""The ReplicaSet controller (and, with the same code, the ReplicationController manager).

``pkg/controller/replicaset``: keep ``spec.replicas`` active pods that match the selector and are
controlled by the set.

One sync of a key:

1. read the set from the informer cache (gone: forget its expectations);
2. claim pods: every non-terminal pod of the namespace that matches the selector and has no
   controller is adopted, every owned pod that stopped matching is released;
3. if the expectations of the last round are met (every creation and deletion asked for has been
   seen by the pod informer, or five minutes passed), create or delete the difference:
   creations in slow-start batches from the template (``generateName: <set>-``), deletions of the
   pods ranked first by :func:`~kybernetes.controllers.podutil.rank_pods_for_deletion`;
4. write status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
   observedGeneration, and the ``ReplicaFailure`` condition when creating or deleting failed.

Expectations matter because the informer lags the API: without them the next sync, triggered by
the first new pod's event, would still see too few pods and create them again.

The pod handlers map a pod to its set: by controller reference, or - for an orphan - to every set
whose selector matches (one of them will adopt it). A pod becoming ready with ``minReadySeconds``
set brings its set back after that delay so ``availableReplicas`` moves.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any, ClassVar

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_active, is_pod_ready, is_pod_terminal
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.podutil import (
    Expectations,
    PodOwnerController,
    claim_objects,
    controller_ref,
    get_condition,
    int_field,
    is_pod_available,
    is_terminating,
    labels_of,
    meta,
    obj_key,
    pod_from_template,
    rank_pods_for_deletion,
    remove_condition,
    seconds_until_available,
    slow_start_batch,
    spec_of,
    status_of,
)

log = logging.getLogger(__name__)

# At most this many creations or deletions per sync (``BurstReplicas``).
BURST_REPLICAS = 500


class ReplicaSetController(PodOwnerController):
    name = "replicaset-controller"
    queue_name = "replicaset"
    service_account = "replicaset-controller"
    workers = 5
    api_version: ClassVar[str] = "apps/v1"
    plural: ClassVar[str] = "replicasets"
    kind: ClassVar[str] = "ReplicaSet"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations()
        self.sets = self.informer(self.api_version, self.plural)
        self.pods = self.informer("v1", "pods")
        self.sets.add_handler(on_add=self.enqueue, on_update=self._set_updated, on_delete=self._set_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # --- event handlers (only enqueue) -------------------------------------------------------

    def _set_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _set_deleted(self, obj: Obj) -> None:
        self.expectations.delete(obj_key(obj))
        self.enqueue(obj)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        key = self._owner_key(new)
        if is_terminating(new) and not is_terminating(old) and key is not None:
            # A graceful deletion is a deletion as far as the set is concerned.
            self.expectations.deletion_observed(key, obj_key(new))
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            old_key = self._owner_key(old)
            if old_key is not None:
                self.queue.add(old_key)
        if key is not None:
            self.queue.add(key)
            rs = self.sets.store.get(key)
            min_ready = int_field(spec_of(rs), "minReadySeconds") if rs else 0
            if min_ready > 0 and is_pod_ready(new) and not is_pod_ready(old):
                # Available only later: look again once minReadySeconds have passed.
                self.queue.add_after(key, min_ready + 0.5)
        elif new_ref is None and (labels_of(old) != labels_of(new) or old_ref is not None):
            for rs in self._matching_sets(new):
                self.enqueue(rs)

    # --- sync --------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        found = self._owner_to_sync(key)
        if found is None:
            return
        rs, selector = found
        ns, _ = split_key(key)
        needs_sync = self.expectations.satisfied(key)
        candidates = [p for p in self.pods.store.by_index("namespace", ns) if not is_pod_terminal(p)]
        owned = await claim_objects(self.client, rs, self.api_version, self.kind, selector, candidates,
                                    "v1", "pods")
        active = [p for p in owned if is_pod_active(p)]
        manage_error: BaseException | None = None
        if needs_sync and not is_terminating(rs):
            try:
                await self.manage_replicas(key, rs, active)
            except errors.StatusError as e:
                manage_error = e
        await self.update_status(rs, active, selector, manage_error)
        if manage_error is not None:
            raise manage_error

    async def manage_replicas(self, key: str, rs: Obj, active: list[Obj]) -> None:
        want = int_field(spec_of(rs), "replicas", 1)
        diff = len(active) - want
        ns = meta(rs).get("namespace", "")
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect(key, adds=count)
            template = spec_of(rs).get("template") or {}
            pod = pod_from_template(template, rs, self.api_version, self.kind,
                                    generate_name=f"{meta(rs).get('name')}-")

            async def create_one() -> None:
                try:
                    await self.client.create("v1", "pods", copy.deepcopy(pod), ns)
                except BaseException:
                    # No watch event will come for a pod that was never created.
                    self.expectations.creation_observed(key)
                    raise

            done, err = await slow_start_batch(count, create_one)
            if err is not None:
                skipped = count - done - 1
                # The failed batch lowered itself; the batches never started must be lowered too.
                if skipped > 0:
                    self.expectations.creation_observed(key, skipped)
                self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {err}")
                if isinstance(err, errors.StatusError):
                    raise err
                raise errors.InternalError(str(err))
            self.recorder.event(rs, "Normal", "SuccessfulCreate",
                                f"Created {count} pod(s)" if count > 1 else "Created pod")
        elif diff > 0:
            count = min(diff, BURST_REPLICAS)
            co_located: dict[str, int] = {}
            for p in active:
                node = spec_of(p).get("nodeName") or ""
                if node:
                    co_located[node] = co_located.get(node, 0) + 1
            victims = rank_pods_for_deletion(active, co_located)[:count]
            self.expectations.expect(key, dels=[obj_key(p) for p in victims])

            async def delete_one(pod: Obj) -> None:
                name = meta(pod)["name"]
                try:
                    await self.client.delete("v1", "pods", name, ns)
                    self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
                except errors.NotFound:
                    self.expectations.deletion_observed(key, obj_key(pod))
                except BaseException:
                    self.expectations.deletion_observed(key, obj_key(pod))
                    raise

            results = await asyncio.gather(*(delete_one(p) for p in victims), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {failures[0]}")
                err = failures[0]
                raise err if isinstance(err, errors.StatusError) else errors.InternalError(str(err))

    # --- status ------------------------------------------------------------------------------

    def calculate_status(self, rs: Obj, active: list[Obj], selector: LabelSelector,
                         manage_error: BaseException | None) -> dict[str, Any]:
        status = copy.deepcopy(status_of(rs))
        template_labels = ((spec_of(rs).get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int_field(spec_of(rs), "minReadySeconds")
        fully = ready = available = 0
        for p in active:
            plabels = labels_of(p)
            if all(plabels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if is_pod_ready(p):
                ready += 1
                if is_pod_available(p, min_ready):
                    available += 1
        status.update(replicas=len(active), fullyLabeledReplicas=fully, readyReplicas=ready,
                      availableReplicas=available, observedGeneration=int_field(meta(rs), "generation"))
        failure = get_condition(status, "ReplicaFailure")
        if manage_error is not None:
            diff = len(active) - int_field(spec_of(rs), "replicas", 1)
            reason = "FailedCreate" if diff < 0 else "FailedDelete"
            if failure is None or failure.get("reason") != reason:
                remove_condition(status, "ReplicaFailure")
                status.setdefault("conditions", []).append({
                    "type": "ReplicaFailure", "status": "True", "reason": reason,
                    "message": str(manage_error), "lastTransitionTime": now_rfc3339()})
        elif failure is not None:
            remove_condition(status, "ReplicaFailure")
        return status

    async def update_status(self, rs: Obj, active: list[Obj], selector: LabelSelector,
                            manage_error: BaseException | None) -> None:
        status = self.calculate_status(rs, active, selector, manage_error)
        if status != status_of(rs):
            m = meta(rs)
            for attempt in range(2):
                rs["status"] = status
                try:
                    await self.client.update(self.api_version, self.plural, rs, m.get("namespace", ""),
                                             subresource="status")
                    break
                except errors.NotFound:
                    return
                except errors.Conflict:
                    if attempt:
                        raise
                    rs = await self.client.get(self.api_version, self.plural, m["name"], m.get("namespace", ""))
        # minReadySeconds: a ready pod turns available later without any event.
        min_ready = int_field(spec_of(rs), "minReadySeconds")
        waits = [w for p in active if (w := seconds_until_available(p, min_ready)) is not None]
        if waits:
            self.queue.add_after(obj_key(rs), min(waits) + 0.2)


class ReplicationManager(ReplicaSetController):
    """ReplicationControllers: the same controller over ``v1`` objects whose selector is a plain map."""

    name = "replicationcontroller-controller"
    queue_name = "replicationmanager"
    service_account = "replication-controller"
    api_version = "v1"
    plural = "replicationcontrollers"
    kind = "ReplicationController"

    def selector(self, rs: Obj) -> LabelSelector:
        sel = spec_of(rs).get("selector")
        if not sel:
            # A missing selector defaults to the template's labels (the API server does this too).
            sel = ((spec_of(rs).get("template") or {}).get("metadata") or {}).get("labels") or {}
        return from_label_selector_object({"matchLabels": sel}, none_matches=True)


CONTROLLERS: list[type[Controller]] = [ReplicaSetController, ReplicationManager]
