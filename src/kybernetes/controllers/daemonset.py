"""The DaemonSet controller (``pkg/controller/daemon``).

A DaemonSet runs one pod on every node that should run it:

* the node matches the template's ``nodeSelector`` and required node affinity, and
* every ``NoSchedule``/``NoExecute`` taint of the node is tolerated by the pod (both decided by
  :mod:`kybernetes.api.scheduling`, as the scheduler decides them) - whose tolerations
  include the defaults every daemon pod gets (``not-ready`` and ``unreachable`` NoExecute; disk,
  memory and PID pressure, ``unschedulable`` NoSchedule), so daemons survive node trouble.

A node whose untolerated taints are only ``NoSchedule`` keeps a daemon pod it already has (taints
do not evict) but gets no new one; an untolerated ``NoExecute`` taint removes it.

Pods are not bound directly: as Kubernetes has done since 1.12, each pod gets a required node
affinity term ``matchFields metadata.name In [<node>]`` and the scheduler binds it. A pod's node
is therefore its ``spec.nodeName`` or, until scheduled, that affinity term.

Versions are ControllerRevisions (:mod:`.history`); pods carry the revision's hash in the
``controller-revision-hash`` label. ``RollingUpdate`` replaces old pods node by node:

* ``maxSurge`` 0: delete old pods, never leaving more than ``maxUnavailable`` nodes without an
  available daemon (old pods that are not available anyway may always go); the next sync creates
  the new pod on the emptied node;
* ``maxSurge`` > 0: start the new pod next to the old one on up to ``maxSurge`` nodes, and delete
  the old pod once the new one is available.

Creations use expectations and slow-start batches, as in the ReplicaSet controller. Status:
desired/current/updated/misscheduled/ready/available/unavailable counts, observedGeneration.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_ready
from kybernetes.api.scheduling import find_untolerated_taint, node_matches_pod
from kybernetes.api.timeutil import parse_epoch
from kybernetes.controllers import history
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.deployment_util import scaled_value
from kybernetes.controllers.podutil import (
    Expectations,
    PodOwnerController,
    annotations_of,
    claim_objects,
    controller_ref,
    int_field,
    is_pod_available,
    is_terminating,
    labels_of,
    meta,
    obj_key,
    pod_from_template,
    seconds_until_available,
    slow_start_batch,
    spec_of,
    status_of,
)

log = logging.getLogger(__name__)

TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
BURST_REPLICAS = 250

DEFAULT_TOLERATIONS: list[dict[str, Any]] = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


# --- scheduling predicates -----------------------------------------------------------------------


def add_default_tolerations(spec: dict[str, Any]) -> None:
    tolerations = list(spec.get("tolerations") or [])
    for t in DEFAULT_TOLERATIONS:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tolerations):
            tolerations.append(dict(t))
    spec["tolerations"] = tolerations


def node_should_run(node: Obj, pod_spec: dict[str, Any]) -> tuple[bool, bool]:
    """(should run a new pod, may keep running an existing one) - ``NodeShouldRunDaemonPod``."""
    if not node_matches_pod(node, pod_spec):
        return False, False
    taints = spec_of(node).get("taints") or []
    tolerations = pod_spec.get("tolerations") or []
    if find_untolerated_taint(taints, tolerations) is None:
        return True, True
    # A daemon pod already there stays unless a NoExecute taint is not tolerated.
    return False, find_untolerated_taint(taints, tolerations, ("NoExecute",)) is None


def target_node(pod: Obj) -> str:
    """The node a daemon pod is for: ``spec.nodeName``, or its ``metadata.name`` affinity term."""
    spec = spec_of(pod)
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return str(f["values"][0])
    return ""


def pin_to_node(spec: dict[str, Any], node_name: str) -> None:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: the required terms become one metadata.name term."""
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}


# --- the controller ------------------------------------------------------------------------------


class DaemonSetController(PodOwnerController):
    name = "daemonset-controller"
    queue_name = "daemonset"
    service_account = "daemon-set-controller"
    workers = 2
    kind = "DaemonSet"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations()
        self.sets = self.informer("apps/v1", "daemonsets")
        self.pods = self.informer("v1", "pods")
        self.nodes = self.informer("v1", "nodes")
        self.revisions = self.informer("apps/v1", "controllerrevisions")
        self.sets.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                              on_delete=self._set_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._node_changed, on_update=self._node_updated,
                               on_delete=self._node_changed)

    # --- handlers ----------------------------------------------------------------------------

    def _set_deleted(self, ds: Obj) -> None:
        self.expectations.delete(obj_key(ds))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        key = self._owner_key(new)
        if key is not None:
            if is_terminating(new) and not is_terminating(old):
                self.expectations.deletion_observed(key, obj_key(new))
            self.queue.add(key)
        elif controller_ref(new) is None:
            for ds in self._matching_sets(new):
                self.enqueue(ds)
        old_key = self._owner_key(old)
        if old_key is not None and old_key != key:
            self.queue.add(old_key)

    def _node_changed(self, node: Obj) -> None:
        for ds in self.sets.store.list():
            self.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # Only what changes where daemons run matters; heartbeats do not.
        if (labels_of(old) != labels_of(new) or spec_of(old).get("taints") != spec_of(new).get("taints")
                or spec_of(old).get("unschedulable") != spec_of(new).get("unschedulable")):
            self._node_changed(new)

    # --- sync --------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        found = self._owner_to_sync(key)
        if found is None:
            return
        ds, selector = found
        ns, _ = split_key(key)
        candidates = self.pods.store.by_index("namespace", ns)
        pods = await claim_objects(self.client, ds, "apps/v1", "DaemonSet", selector, candidates, "v1", "pods")
        revisions = await self._claim_revisions(ds, selector, ns)
        if is_terminating(ds):
            return
        current, old_revisions = await self._construct_history(ds, revisions)
        hash_ = labels_of(current).get(history.CONTROLLER_REVISION_HASH, "")
        node_pods = self._pods_by_node(pods)
        nodes = self.nodes.store.list()
        if self.expectations.satisfied(key):
            await self._manage(ds, key, nodes, node_pods, hash_)
            if (spec_of(ds).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
                await self._rolling_update(ds, key, nodes, node_pods, hash_)
            await self._cleanup_history(ds, pods, current, old_revisions)
        await self._update_status(ds, nodes, node_pods, hash_)

    def _pods_by_node(self, pods: list[Obj]) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for p in pods:
            out.setdefault(target_node(p), []).append(p)
        return out

    async def _claim_revisions(self, ds: Obj, selector: LabelSelector, ns: str) -> list[Obj]:
        candidates = self.revisions.store.by_index("namespace", ns)
        return await claim_objects(self.client, ds, "apps/v1", "DaemonSet", selector, candidates,
                                   "apps/v1", "controllerrevisions")

    async def _construct_history(self, ds: Obj, revisions: list[Obj]) -> tuple[Obj, list[Obj]]:
        """The revision of the current template (found, renumbered or created) and the others."""
        revisions = history.sort_revisions(revisions)
        collision = int_field(status_of(ds), "collisionCount")
        data = history.template_patch(spec_of(ds).get("template") or {})
        labels = dict(((spec_of(ds).get("template") or {}).get("metadata") or {}).get("labels") or {})
        candidate = history.new_revision(ds, "apps/v1", "DaemonSet", data, labels,
                                         history.next_revision(revisions), collision)
        equal = history.find_equal_revisions(revisions, candidate)
        if equal:
            current = equal[-1]
            if current is not revisions[-1]:
                current = await history.bump_revision(self.client, current, history.next_revision(revisions))
        else:
            current, new_collision = await history.create_revision(self.client, ds, candidate, collision,
                                                                   "apps/v1", "DaemonSet")
            if new_collision != collision:
                ds.setdefault("status", {})["collisionCount"] = new_collision
        cur_name = meta(current).get("name")
        return current, [r for r in revisions if meta(r).get("name") != cur_name]

    async def _cleanup_history(self, ds: Obj, pods: list[Obj], current: Obj, old: list[Obj]) -> None:
        live = {meta(current).get("name", "")}
        live_hashes = {labels_of(p).get(history.CONTROLLER_REVISION_HASH) for p in pods}
        for r in old:
            if labels_of(r).get(history.CONTROLLER_REVISION_HASH) in live_hashes:
                live.add(meta(r).get("name", ""))
        await history.truncate_history(self.client, old, live, int_field(spec_of(ds), "revisionHistoryLimit", 10))

    # --- creating and deleting ---------------------------------------------------------------

    def _new_pod(self, ds: Obj, node_name: str, hash_: str) -> Obj:
        template = spec_of(ds).get("template") or {}
        pod = pod_from_template(template, ds, "apps/v1", "DaemonSet", generate_name=f"{meta(ds)['name']}-")
        labels = pod["metadata"].setdefault("labels", {})
        labels[history.CONTROLLER_REVISION_HASH] = hash_
        gen = annotations_of(ds).get(TEMPLATE_GENERATION)
        if gen:
            labels[TEMPLATE_GENERATION_LABEL] = gen
        add_default_tolerations(pod["spec"])
        pin_to_node(pod["spec"], node_name)
        return pod

    async def _sync_nodes(self, ds: Obj, key: str, create_on: list[str], delete: list[Obj], hash_: str) -> None:
        ns = meta(ds).get("namespace", "")
        create_on = create_on[:BURST_REPLICAS]
        delete = delete[:BURST_REPLICAS]
        self.expectations.expect(key, adds=len(create_on), dels=[obj_key(p) for p in delete])
        errs: list[BaseException] = []
        if create_on:
            pending = list(create_on)

            async def create_one() -> None:
                node_name = pending.pop(0)
                try:
                    await self.client.create("v1", "pods", self._new_pod(ds, node_name, hash_), ns)
                except BaseException:
                    self.expectations.creation_observed(key)
                    raise

            done, err = await slow_start_batch(len(create_on), create_one)
            if err is not None:
                skipped = len(pending)
                if skipped:
                    self.expectations.creation_observed(key, skipped)
                errs.append(err)
                self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {err}")
            elif done:
                self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created {done} pod(s)")
        for pod in delete:
            try:
                await self.client.delete("v1", "pods", meta(pod)["name"], ns)
                self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta(pod)['name']}")
            except errors.NotFound:
                self.expectations.deletion_observed(key, obj_key(pod))
            except errors.StatusError as e:
                self.expectations.deletion_observed(key, obj_key(pod))
                errs.append(e)
        if errs:
            err = errs[0]
            raise err if isinstance(err, errors.StatusError) else errors.InternalError(str(err))

    async def _manage(self, ds: Obj, key: str, nodes: list[Obj], node_pods: dict[str, list[Obj]],
                      hash_: str) -> None:
        """``manage``: create on nodes that need a daemon pod, delete where none (or fewer) should run."""
        pod_spec = spec_of(ds).get("template", {}).get("spec") or {}
        probe_spec = copy.deepcopy(pod_spec)
        add_default_tolerations(probe_spec)
        surge = self._max_surge(ds, nodes) > 0
        create_on: list[str] = []
        delete: list[Obj] = []
        node_names = set()
        for node in nodes:
            name = meta(node).get("name", "")
            node_names.add(name)
            should_run, keep = node_should_run(node, probe_spec)
            pods = [p for p in node_pods.get(name, []) if not is_terminating(p)]
            if should_run and not pods:
                create_on.append(name)
            elif not keep:
                delete.extend(pods)
            elif pods:
                failed = [p for p in pods if status_of(p).get("phase") == "Failed"]
                delete.extend(failed)
                running = sorted((p for p in pods if p not in failed),
                                 key=lambda p: meta(p).get("creationTimestamp") or "")
                if should_run and not running and failed:
                    # Replaced on the next sync, once the deletion is observed.
                    pass
                if len(running) > 1:
                    if surge:
                        # Keep the oldest old pod and the oldest updated one; the rollout settles them.
                        new = [p for p in running if labels_of(p).get(history.CONTROLLER_REVISION_HASH) == hash_]
                        old = [p for p in running if p not in new]
                        delete.extend(new[1:] + old[1:])
                    else:
                        delete.extend(running[1:])
        # Pods for nodes that no longer exist.
        for node_name, pods in node_pods.items():
            if node_name not in node_names:
                delete.extend(p for p in pods if not is_terminating(p))
        if create_on or delete:
            await self._sync_nodes(ds, key, create_on, delete, hash_)

    def _desired(self, ds: Obj, nodes: list[Obj]) -> int:
        pod_spec = copy.deepcopy(spec_of(ds).get("template", {}).get("spec") or {})
        add_default_tolerations(pod_spec)
        return sum(1 for n in nodes if node_should_run(n, pod_spec)[0])

    def _max_surge(self, ds: Obj, nodes: list[Obj]) -> int:
        ru = ((spec_of(ds).get("updateStrategy") or {}).get("rollingUpdate") or {})
        return scaled_value(ru.get("maxSurge", 0), self._desired(ds, nodes), True)

    def _max_unavailable(self, ds: Obj, nodes: list[Obj]) -> int:
        ru = ((spec_of(ds).get("updateStrategy") or {}).get("rollingUpdate") or {})
        desired = self._desired(ds, nodes)
        unavailable = scaled_value(ru.get("maxUnavailable", 1), desired, True)
        if unavailable == 0 and scaled_value(ru.get("maxSurge", 0), desired, True) == 0:
            unavailable = 1
        return unavailable

    async def _rolling_update(self, ds: Obj, key: str, nodes: list[Obj], node_pods: dict[str, list[Obj]],
                              hash_: str) -> None:
        if not self.expectations.satisfied(key):
            return
        min_ready = int_field(spec_of(ds), "minReadySeconds")
        max_surge = self._max_surge(ds, nodes)
        max_unavailable = self._max_unavailable(ds, nodes)
        pod_spec = copy.deepcopy(spec_of(ds).get("template", {}).get("spec") or {})
        add_default_tolerations(pod_spec)
        delete: list[Obj] = []
        create_on: list[str] = []
        if max_surge == 0:
            unavailable = 0
            allowed: list[Obj] = []
            candidates: list[Obj] = []
            for node in nodes:
                name = meta(node).get("name", "")
                if not node_should_run(node, pod_spec)[0]:
                    continue
                pods = [p for p in node_pods.get(name, []) if not is_terminating(p)]
                new = [p for p in pods if labels_of(p).get(history.CONTROLLER_REVISION_HASH) == hash_]
                old = [p for p in pods if p not in new]
                terminating = [p for p in node_pods.get(name, []) if is_terminating(p)]
                if len(new) > 1 or len(old) > 1:
                    continue
                if not old:
                    if not new or not is_pod_available(new[0], min_ready):
                        unavailable += 1
                    continue
                if terminating or not is_pod_available(old[0], min_ready):
                    # Already unavailable: replacing it costs nothing.
                    unavailable += 1
                    allowed.append(old[0])
                    continue
                candidates.append(old[0])
            room = max(0, max_unavailable - unavailable)
            delete = allowed + candidates[:room]
        else:
            surged = 0
            for node in nodes:
                name = meta(node).get("name", "")
                if not node_should_run(node, pod_spec)[0]:
                    continue
                pods = [p for p in node_pods.get(name, []) if not is_terminating(p)]
                new = [p for p in pods if labels_of(p).get(history.CONTROLLER_REVISION_HASH) == hash_]
                old = [p for p in pods if p not in new]
                if old and new:
                    surged += 1
            for node in nodes:
                name = meta(node).get("name", "")
                if not node_should_run(node, pod_spec)[0]:
                    continue
                pods = [p for p in node_pods.get(name, []) if not is_terminating(p)]
                new = [p for p in pods if labels_of(p).get(history.CONTROLLER_REVISION_HASH) == hash_]
                old = [p for p in pods if p not in new]
                if not old:
                    continue
                if not new:
                    if not is_pod_available(old[0], min_ready):
                        delete.append(old[0])  # nothing to protect: replace in place
                    elif surged < max_surge:
                        create_on.append(name)
                        surged += 1
                    continue
                if is_pod_available(new[0], min_ready):
                    delete.extend(old)
        if delete or create_on:
            await self._sync_nodes(ds, key, create_on, delete, hash_)

    # --- status ------------------------------------------------------------------------------

    async def _update_status(self, ds: Obj, nodes: list[Obj], node_pods: dict[str, list[Obj]], hash_: str) -> None:
        min_ready = int_field(spec_of(ds), "minReadySeconds")
        pod_spec = copy.deepcopy(spec_of(ds).get("template", {}).get("spec") or {})
        add_default_tolerations(pod_spec)
        desired = current = misscheduled = ready = available = updated = 0
        waits: list[float] = []
        for node in nodes:
            name = meta(node).get("name", "")
            should_run, _ = node_should_run(node, pod_spec)
            pods = sorted((p for p in node_pods.get(name, []) if not is_terminating(p)),
                          key=lambda p: (0 if labels_of(p).get(history.CONTROLLER_REVISION_HASH) == hash_ else 1,
                                         parse_epoch(meta(p).get("creationTimestamp")) or 0.0))
            if should_run:
                desired += 1
                if pods:
                    current += 1
                    pod = pods[0]
                    if is_pod_ready(pod):
                        ready += 1
                        if is_pod_available(pod, min_ready):
                            available += 1
                        elif (w := seconds_until_available(pod, min_ready)) is not None:
                            waits.append(w)
                    if labels_of(pod).get(history.CONTROLLER_REVISION_HASH) == hash_:
                        updated += 1
            elif pods:
                misscheduled += 1
        status = copy.deepcopy(status_of(ds))
        status.update(desiredNumberScheduled=desired, currentNumberScheduled=current,
                      numberMisscheduled=misscheduled, numberReady=ready, updatedNumberScheduled=updated,
                      numberAvailable=available, numberUnavailable=desired - available,
                      observedGeneration=int_field(meta(ds), "generation"))
        for k in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"):
            if status[k] == 0:
                del status[k]  # omitempty on the wire
        if waits:
            self.queue.add_after(obj_key(ds), min(waits) + 0.2)
        if status == status_of(ds):
            return
        ds["status"] = status
        m = meta(ds)
        try:
            await self.client.update("apps/v1", "daemonsets", ds, m.get("namespace", ""), subresource="status")
        except errors.NotFound:
            pass


CONTROLLERS: list[type[Controller]] = [DaemonSetController]
