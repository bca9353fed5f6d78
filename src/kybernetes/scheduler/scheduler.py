"""The scheduler: informers feed the cache and the queue; one loop schedules; binds run concurrently.

One scheduling cycle (``scheduleOne``), entirely synchronous so that the cache is its snapshot:

1. pop the highest-priority pod; skip it if it is gone, bound, or not for one of our profiles;
2. PreFilter, then Filter nodes in a rotating order (each cycle starts where the last stopped, so
   all nodes get their turn) until ``numFeasibleNodesToFind`` fit: all nodes below 100, else
   ``max(100, N * pct / 100)`` with the adaptive ``pct = max(5, 50 - N/125)`` unless configured;
   nodes with pods nominated there (preemption) are checked with those pods added first;
3. PreScore/Score/Normalize x weight; highest total wins, ties broken uniformly at random
   (reservoir sampling, as ``selectHost``); with one feasible node scoring is skipped;
4. assume the pod on the node in the cache, Reserve, Permit -- then the binding cycle runs as its
   own task (PreBind, Bind) under a semaphore, so many binds are in flight while the loop goes on.

A pod that fits nowhere gets PostFilter (preemption), then Kubernetes' FitError message::

    0/5 nodes are available: 2 Insufficient cpu, 3 node(s) had untolerated taint {k: v}.
    preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.

as a ``FailedScheduling`` event and as the ``PodScheduled=False/Unschedulable`` condition (written
only when it changed), and waits in unschedulablePods for a cluster event. A failed bind forgets
the assumption and retries the pod after its backoff.

Cluster events and the plugins they can help (a light form of queueing hints): node add/update ->
all; assigned pod deleted -> all (resources, ports, spreading, anti-affinity); assigned pod added
or relabelled -> InterPodAffinity and PodTopologySpread; a PersistentVolume, PersistentVolumeClaim,
StorageClass or CSINode added or changed -> the volume plugins (VolumeBinding, VolumeRestrictions,
NodeVolumeLimits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object, new_requirement
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_terminal
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.client.workqueue import Clock
from kybernetes.scheduler import metrics
from kybernetes.scheduler.cache import Cache
from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.framework import (
    Code,
    CycleState,
    Framework,
    Handle,
    LabelCheck,
    Status,
    reason_summary,
)
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo, ScoreMemo
from kybernetes.scheduler.queue import Nominator, QueuedPod, SchedulingQueue, pod_key
from kybernetes.scheduler.volumes import VolumeStore

log = logging.getLogger(__name__)

MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENTAGE = 5
BASE_PERCENTAGE = 50
AFFINITY_PLUGINS = ("InterPodAffinity", "PodTopologySpread")
VOLUME_PLUGINS = ("VolumeBinding", "VolumeRestrictions", "NodeVolumeLimits")


_QUICK_FILTERS = frozenset({"NodeUnschedulable", "NodeResourcesFit", "TaintToleration"})
"""Filters whose pass find_nodes_that_fit can decide inline for a plain pod (see there)."""


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """``numFeasibleNodesToFind``: how many fitting nodes are enough to stop filtering."""
    if num_nodes < MIN_FEASIBLE_NODES or percentage >= 100:
        return num_nodes
    if percentage <= 0:
        percentage = max(BASE_PERCENTAGE - num_nodes // 125, MIN_FEASIBLE_PERCENTAGE)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES)


def _labels_pass(labels: dict[str, str], checks: list[LabelCheck]) -> bool:
    for key, forbidden, missing_passes in checks:
        v = labels.get(key)
        if v is None:
            if not missing_passes:
                return False
        elif v in forbidden:
            return False
    return True


class FitError(Exception):
    """No node fits: per-node statuses (or a PreFilter rejection for all)."""

    def __init__(self, num_nodes: int, statuses: dict[str, Status], pre_filter: Status | None = None) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.statuses = statuses
        self.pre_filter = pre_filter
        self.post_filter_msg = ""

    def message(self) -> str:
        if self.num_nodes == 0:
            msg = "no nodes available to schedule pods"
        elif self.pre_filter is not None:
            msg = f"0/{self.num_nodes} nodes are available: {self.pre_filter.message}."
        else:
            msg = f"0/{self.num_nodes} nodes are available: {reason_summary(self.statuses.values())}."
        if self.post_filter_msg:
            msg += " " + self.post_filter_msg
        return msg

    def plugins(self) -> set[str]:
        out = {st.plugin for st in self.statuses.values() if st.plugin}
        if self.pre_filter is not None and self.pre_filter.plugin:
            out.add(self.pre_filter.plugin)
        return out

    def __str__(self) -> str:
        return self.message()


class Scheduler:
    def __init__(self, client: Any, config: SchedulerConfig | None = None, *, clock: Clock | None = None,
                 recorder: Any = None, rng: random.Random | None = None) -> None:
        self.client = client
        self.config = config or SchedulerConfig()
        self.cache = Cache(clock, ttl=self.config.assumed_pod_ttl)
        self.queue = SchedulingQueue(clock, initial_backoff=self.config.pod_initial_backoff,
                                     max_backoff=self.config.pod_max_backoff,
                                     max_unschedulable=self.config.pod_max_unschedulable)
        self.nominator = Nominator()
        self._own_recorder = recorder is None and client is not None
        if self._own_recorder:
            from kybernetes.client.events import EventRecorder
            recorder = EventRecorder(client, "default-scheduler")
        self.recorder = recorder
        self.rng = rng or random.Random()
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.pdbs: dict[str, Obj] = {}
        self.services: dict[str, Obj] = {}
        self.priority_classes: dict[str, int] = {}
        self.default_priority: int | None = None
        self.owners: dict[str, Obj] = {}
        """ReplicaSets and StatefulSets by ``kind/ns/name`` (default topology spreading)."""
        self.volumes = VolumeStore()
        self.frameworks: dict[str, Framework] = {}
        self.handles: list[Handle] = []
        for profile in self.config.profiles:
            h = Handle(self.cache.snapshot)
            h.volumes = self.volumes
            h.namespace_labels = self.namespace_labels
            h.client = client
            h.recorder = recorder
            h.nominator = self.nominator
            h.spread_selector = self.spread_selector
            h.status_patcher = self._patch_status_later
            h.pod_deleter = self._delete_victim_later
            self.handles.append(h)
            self.frameworks[profile.scheduler_name] = Framework(profile, h)
        self.next_start = 0
        self._room = ScoreMemo()
        """The inline filter's verdicts by node generation (see :meth:`_filter_nodes`)."""
        self._bind_sem: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.gated: set[str] = set()
        metrics.track(self)
        self.stats = {"attempts": 0, "scheduled": 0, "unschedulable": 0, "bind_errors": 0, "errors": 0}
        self.on_scheduled: Callable[[PodInfo, str], None] | None = None
        self.handlers_synced = False
        """The informers of :meth:`run` have synced (the ``sched-handler-sync`` readiness check)."""

    # --- informer handlers -----------------------------------------------------------------------

    def responsible(self, pod: Obj) -> bool:
        return ((pod.get("spec") or {}).get("schedulerName") or "default-scheduler") in self.frameworks

    @staticmethod
    def _assigned(pod: Obj) -> bool:
        return bool((pod.get("spec") or {}).get("nodeName"))

    @staticmethod
    def _schedulable(pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (not spec.get("schedulingGates") and not is_pod_terminal(pod)
                and (pod.get("metadata") or {}).get("deletionTimestamp") is None)

    def _with_priority(self, pod: Obj) -> Obj:
        """Resolve ``priorityClassName`` when the API server did not fill ``spec.priority``.

        The Priority admission plugin normally does this; resolving it here too keeps preemption and
        queue order right against servers that skip it. The informer's dict is not modified.
        """
        spec = pod.get("spec") or {}
        if spec.get("priority") is not None or not (self.priority_classes or self.default_priority):
            return pod
        name = spec.get("priorityClassName")
        value = self.priority_classes.get(name) if name else self.default_priority
        if value is None:
            return pod
        return {**pod, "spec": {**spec, "priority": value}}

    def _set_priority_class(self, pc: Obj, present: bool = True) -> None:
        name = pc["metadata"]["name"]
        if present:
            self.priority_classes[name] = int(pc.get("value") or 0)
        else:
            self.priority_classes.pop(name, None)
        defaults = [pc for pc in [pc] if present and pc.get("globalDefault")]
        if defaults:
            self.default_priority = int(defaults[0].get("value") or 0)
        elif not present and pc.get("globalDefault"):
            self.default_priority = None

    def _note_gated(self, pod: Obj, present: bool = True) -> None:
        """Keep :attr:`gated` (``scheduler_pending_pods{queue="gated"}``): our unbound, live pods
        held back by ``spec.schedulingGates``."""
        key = pod_key(pod)
        spec = pod.get("spec") or {}
        if present and spec.get("schedulingGates") and not self._assigned(pod) and self.responsible(pod) \
                and not is_pod_terminal(pod):
            self.gated.add(key)
        else:
            self.gated.discard(key)

    def pending_counts(self) -> dict[str, int]:
        """``scheduler_pending_pods`` by queue: the scheduling queue's, and the gated pods."""
        return {**self.queue.pending_counts(), "gated": len(self.gated)}

    def on_pod_add(self, pod: Obj) -> None:
        pod = self._with_priority(pod)
        self._note_gated(pod)
        if self._assigned(pod):
            self.cache.add_pod(pod)
            self.nominator.remove(pod_key(pod))
            if self.queue.pods:
                self.queue.move_all(AFFINITY_PLUGINS)
        elif self.responsible(pod) and self._schedulable(pod):
            self.nominator.update_from_pod(pod)
            self.queue.add(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        old, new = self._with_priority(old), self._with_priority(new)
        self._note_gated(new)
        if self._assigned(new):
            key = pod_key(new)
            if not self._assigned(old) or key in self.queue:
                self.queue.delete(new)
                self.nominator.remove(key)
            was_assumed = self.cache.is_assumed(key)
            self.cache.update_pod(new)
            if not self.queue.pods or was_assumed:
                return
            if is_pod_terminal(new) and not is_pod_terminal(old):
                self.queue.move_all()  # its resources are free now
            elif (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
                self.queue.move_all(AFFINITY_PLUGINS)
        elif self.responsible(new):
            self.nominator.update_from_pod(new)
            if self._schedulable(new):
                self.queue.update(old, new)
            else:
                self.queue.delete(new)

    def on_pod_delete(self, pod: Obj) -> None:
        pod = self._with_priority(pod)
        self._note_gated(pod, present=False)
        key = pod_key(pod)
        self.nominator.remove(key)
        if self._assigned(pod) or key in self.cache.pods:
            self.cache.remove_pod(pod)
            self.volumes.notify()  # a VolumeBinding PreBind waiting for this pod's claims stops
            if self.queue.pods:
                self.queue.move_all()
        self.queue.delete(pod)

    def on_node_add(self, node: Obj) -> None:
        self.cache.add_node(node)
        if self.queue.pods:
            self.queue.move_all()

    def on_node_update(self, old: Obj, new: Obj) -> None:
        self.cache.update_node(new)
        if self.queue.pods and (old.get("spec") != new.get("spec")
                                or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
                                or (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable")):
            self.queue.move_all()

    def on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(node)

    def on_namespace(self, ns: Obj) -> None:
        self.namespace_labels[ns["metadata"]["name"]] = (ns.get("metadata") or {}).get("labels") or {}

    def on_namespace_delete(self, ns: Obj) -> None:
        self.namespace_labels.pop(ns["metadata"]["name"], None)

    def _set_pdb(self, pdb: Obj, present: bool = True) -> None:
        key = pod_key(pdb)
        if present:
            self.pdbs[key] = pdb
        else:
            self.pdbs.pop(key, None)
        pdbs = list(self.pdbs.values())
        for h in self.handles:
            h.pdbs = pdbs

    def _set_keyed(self, store: dict[str, Obj], prefix: str, obj: Obj, present: bool = True) -> None:
        key = prefix + pod_key(obj)
        if present:
            store[key] = obj
        else:
            store.pop(key, None)

    def _on_volume_object(self, setter: Callable[[Obj, bool], None], obj: Obj, present: bool = True) -> None:
        """A PV, PVC, StorageClass or CSINode changed: update the store, retry pods its plugins rejected."""
        setter(obj, present)
        if present and self.queue.pods:
            self.queue.move_all(VOLUME_PLUGINS)

    def spread_selector(self, pi: PodInfo) -> LabelSelector | None:
        """The labels of the pod's Services, ReplicaSet and StatefulSet (``helper.DefaultSelector``)."""
        labels: dict[str, str] = {}
        for svc in self.services.values():
            meta = svc.get("metadata") or {}
            sel = (svc.get("spec") or {}).get("selector") or {}
            if meta.get("namespace") == pi.namespace and sel and all(pi.labels.get(k) == v for k, v in sel.items()):
                labels.update(sel)
        extra: list[Any] = []
        for ref in (pi.pod.get("metadata") or {}).get("ownerReferences") or ():
            if ref.get("kind") not in ("ReplicaSet", "StatefulSet"):
                continue
            owner = self.owners.get(f"{ref['kind']}/{pi.namespace}/{ref.get('name')}")
            if owner is None:
                continue
            sel = (owner.get("spec") or {}).get("selector")
            if sel:
                extra.extend(from_label_selector_object(sel).requirements)
        if not labels and not extra:
            return None
        return LabelSelector([new_requirement(k, "=", [v]) for k, v in labels.items()] + extra)

    def register(self, factory: Any) -> None:
        """Attach the handlers to a SharedInformerFactory's informers."""
        # PriorityClasses first: pods listed at start-up need them to be ordered and preempt right.
        factory.informer("scheduling.k8s.io/v1", "priorityclasses").add_handler(
            self._set_priority_class, lambda o, n: self._set_priority_class(n),
            lambda o: self._set_priority_class(o, False))
        factory.informer("v1", "pods").add_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)
        factory.informer("v1", "nodes").add_handler(self.on_node_add, self.on_node_update, self.on_node_delete)
        factory.informer("v1", "namespaces").add_handler(
            self.on_namespace, lambda o, n: self.on_namespace(n), self.on_namespace_delete)
        factory.informer("policy/v1", "poddisruptionbudgets").add_handler(
            self._set_pdb, lambda o, n: self._set_pdb(n), lambda o: self._set_pdb(o, False))
        factory.informer("v1", "services").add_handler(
            lambda o: self._set_keyed(self.services, "", o), lambda o, n: self._set_keyed(self.services, "", n),
            lambda o: self._set_keyed(self.services, "", o, False))
        vs = self.volumes
        for api, plural, setter in (("v1", "persistentvolumes", vs.set_pv),
                                    ("v1", "persistentvolumeclaims", vs.set_pvc),
                                    ("storage.k8s.io/v1", "storageclasses", vs.set_class),
                                    ("storage.k8s.io/v1", "csinodes", vs.set_csinode)):
            factory.informer(api, plural).add_handler(
                lambda o, f=setter: self._on_volume_object(f, o),
                lambda o, n, f=setter: self._on_volume_object(f, n),
                lambda o, f=setter: self._on_volume_object(f, o, False))
        for api, plural, kind in (("apps/v1", "replicasets", "ReplicaSet/"), ("apps/v1", "statefulsets", "StatefulSet/")):
            factory.informer(api, plural).add_handler(
                lambda o, k=kind: self._set_keyed(self.owners, k, o),
                lambda o, n, k=kind: self._set_keyed(self.owners, k, n),
                lambda o, k=kind: self._set_keyed(self.owners, k, o, False))

    # --- the scheduling cycle --------------------------------------------------------------------

    def find_nodes_that_fit(self, fw: Framework, state: CycleState, pi: PodInfo) -> list[NodeInfo]:
        snap = self.cache.snapshot
        all_nodes = snap.node_list
        n_all = len(all_nodes)
        if n_all == 0:
            raise FitError(0, {})
        st = fw.run_pre_filter(state, pi)
        if st is not None:
            if st.code == Code.ERROR:
                raise RuntimeError(f"PreFilter {st.plugin}: {st.message}")
            raise FitError(n_all, {ni.name: st for ni in all_nodes}, st)
        if state.node_names is not None:
            nodes = [snap.nodes[n] for n in sorted(state.node_names) if n in snap.nodes]
            start = 0
        else:
            nodes = all_nodes
            start = self.next_start % n_all
        pct = fw.profile.percentage_of_nodes_to_score
        want = num_feasible_nodes_to_find(len(nodes), pct if pct is not None else self.config.percentage_of_nodes_to_score)
        statuses: dict[str, Status] = {}
        feasible, turned_away, processed = self._filter_nodes(
            fw, state, pi, (nodes[start:] + nodes[:start]) if start else nodes, want, statuses)
        if state.node_names is None:
            self.next_start = (start + processed) % n_all
        if not feasible:
            for ni in turned_away:
                st = fw.run_filter(state, pi, ni)
                assert st is not None, f"{ni.name} failed a label check and passed every Filter"
                if st.code == Code.ERROR:
                    raise RuntimeError(f"Filter {st.plugin} on {ni.name}: {st.message}")
                statuses[ni.name] = st
            # Nodes the PreFilterResult ruled out count as unresolvable for the message.
            if len(statuses) < n_all:
                names = sorted(state.data.get("prefilter_result_plugins") or ())
                absent = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                                f"node(s) didn't satisfy plugin(s) [{' '.join(names)}]")
                for ni in all_nodes:
                    if ni.name not in statuses:
                        statuses[ni.name] = absent
            raise FitError(n_all, statuses)
        return feasible

    def _filter_nodes(self, fw: Framework, state: CycleState, pi: PodInfo, order: list[NodeInfo], want: int,
                      statuses: dict[str, Status]) -> tuple[list[NodeInfo], list[NodeInfo], int]:
        """Filter ``order`` until ``want`` nodes fit: (feasible, turned away, nodes processed).

        Failing nodes' statuses go to ``statuses``, except those *turned away*: nodes that passed
        the inline checks below but a label check, which only a label-check plugin rejects; the
        Filter chain that names it runs only if no node fits (``find_nodes_that_fit``).

        The default filters of a plain pod (no ports, affinity, volumes...) are three: a node that
        is schedulable, untainted and has room for the pod's cpu and memory passes all of them, so
        such a node is decided here without the three calls (the verdict remembered by node
        generation for the pod's cpu and memory, :class:`ScoreMemo`); Filters whose PreFilter
        stated their verdict as label checks (PodTopologySpread, InterPodAffinity without required
        affinity) join that decision. Any other node, or any doubt, goes through the plugins as
        usual and gets their exact status.
        """
        feasible: list[NodeInfo] = []
        turned_away: list[NodeInfo] = []
        fns = fw.filter_fns(state)
        nominated = self.nominator.by_node
        fit = state.data.get("NodeResourcesFit")
        checks = [c for name, _ in fns if name in state.label_checks for c in state.label_checks[name]]
        one_check = checks[0] if len(checks) == 1 else None
        room: dict[int, int] | None = None
        # A cycle sampled for plugin metrics calls (and times) every filter, as Kubernetes does.
        if fit is not None and not fit[2] and not state.record_plugin_metrics and \
                all(name in _QUICK_FILTERS or name in state.label_checks for name, _ in fns):
            cpu, mem = fit[0], fit[1]
            room = self._room.for_pod((cpu, mem))
        processed = 0
        for ni in order:
            processed += 1
            if room is not None:
                fits = room.get(ni.generation)
                if fits is None:
                    fits = room[ni.generation] = (not ni.unschedulable and not ni.taints
                                                  and len(ni.pods) < ni.alloc_pods and cpu <= ni.alloc_cpu - ni.req_cpu
                                                  and mem <= ni.alloc_mem - ni.req_mem)
                if fits and not (nominated and ni.name in nominated):
                    if one_check is not None:  # the usual single check, inlined
                        v = ni.labels.get(one_check[0])
                        if (v in one_check[1]) if v is not None else not one_check[2]:
                            turned_away.append(ni)
                            continue
                    elif checks and not _labels_pass(ni.labels, checks):
                        turned_away.append(ni)
                        continue
                    feasible.append(ni)
                    if len(feasible) >= want:
                        break
                    continue
            if nominated and ni.name in nominated:
                st = self._filter_with_nominated(fw, state, pi, ni)
            else:
                # The hot loop: Framework.run_filter inlined.
                st = None
                for name, fn in fns:
                    st = fn(state, pi, ni)
                    if st is not None:
                        st.plugin = name
                        break
            if st is None:
                feasible.append(ni)
                if len(feasible) >= want:
                    break
            else:
                if st.code == Code.ERROR:
                    raise RuntimeError(f"Filter {st.plugin} on {ni.name}: {st.message}")
                statuses[ni.name] = st
        return feasible, turned_away, processed

    def _filter_with_nominated(self, fw: Framework, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        """Pods of >= priority nominated to the node count as already there (``addNominatedPods``)."""
        others = [p for p in self.nominator.nominated_on(ni.name)
                  if p.priority >= pi.priority and p.key != pi.key and p.key not in ni.pods]
        if others:
            clone = ni.clone()
            for p in others:
                clone.add_pod(p)
            st = fw.run_filter(state, pi, clone)
            if st is not None:
                return st
        return fw.run_filter(state, pi, ni)

    def select_host(self, nodes: list[NodeInfo], scores: list[int]) -> NodeInfo:
        """The highest score; among equals, a uniformly random one (``selectHost``)."""
        best = max(scores)
        top = [i for i, s in enumerate(scores) if s == best]
        return nodes[top[0] if len(top) == 1 else self.rng.choice(top)]

    def schedule_pod(self, fw: Framework, state: CycleState, pi: PodInfo) -> NodeInfo:
        feasible = self.find_nodes_that_fit(fw, state, pi)
        if len(feasible) == 1:
            return feasible[0]
        st = fw.run_pre_score(state, pi, feasible)
        if st is not None:
            raise RuntimeError(f"PreScore {st.plugin}: {st.message}")
        return self.select_host(feasible, fw.run_score(state, pi, feasible))

    async def schedule_one(self, qp: QueuedPod) -> None:
        pod = qp.pod
        fw = self.frameworks.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")
        if fw is None or self._assigned(pod) or qp.key in self.cache.pods or not self._schedulable(pod):
            self.queue.done(qp)
            return
        self.stats["attempts"] += 1
        start = self.queue.clock.now()
        profile = fw.profile.scheduler_name
        pi = PodInfo(pod)
        state = CycleState(metrics.sample_plugin_metrics(self.rng))
        try:
            ni = self.schedule_pod(fw, state, pi)
        except FitError as fe:
            self._handle_fit_error(fw, state, qp, pi, fe)
            metrics.attempt(metrics.UNSCHEDULABLE, profile, self.queue.clock.now() - start)
            return
        except Exception:
            metrics.attempt(metrics.ERROR, profile, self.queue.clock.now() - start)
            raise
        node = ni.name
        self.cache.assume(pi, node)
        st = fw.run_reserve(state, pi, node)
        if st is None:
            st = fw.run_permit(state, pi, node)
        if st is not None:
            fw.run_unreserve(state, pi, node)
            self.cache.forget(pi)
            self._record_failure(qp, pi, st.message, [st.plugin] if st.is_rejected() else [])
            metrics.attempt(metrics.UNSCHEDULABLE if st.is_rejected() else metrics.ERROR, profile,
                            self.queue.clock.now() - start)
            return
        if self._bind_sem is None:
            self._bind_sem = asyncio.Semaphore(self.config.bind_concurrency)
        await self._bind_sem.acquire()
        self._spawn(self._binding_cycle(fw, state, qp, pi, node, start))

    def _handle_fit_error(self, fw: Framework, state: CycleState, qp: QueuedPod, pi: PodInfo, fe: FitError) -> None:
        if fe.num_nodes and fw.post_filter_plugins:
            _, pst = fw.run_post_filter(state, pi, fe.statuses)
            if pst is not None and pst.message:
                fe.post_filter_msg = pst.message
        self.stats["unschedulable"] += 1
        self._record_failure(qp, pi, fe.message(), fe.plugins() or ["NodeResourcesFit"])

    def _record_failure(self, qp: QueuedPod, pi: PodInfo, message: str, plugins: list[str] | set[str]) -> None:
        if plugins:
            self.queue.add_unschedulable(qp, plugins)
        else:
            self.queue.add_backoff(qp)
        if self.recorder is not None:
            self.recorder.event(qp.pod, "Warning", "FailedScheduling", message)
        cond = next((c for c in (qp.pod.get("status") or {}).get("conditions") or ()
                     if c.get("type") == "PodScheduled"), None)
        if cond is not None and cond.get("status") == "False" and cond.get("reason") == "Unschedulable" \
                and cond.get("message") == message:
            return  # nothing new to say; spare the API server a write
        patch = {"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}]}}
        self._patch_status_later(pi, patch)

    async def _binding_cycle(self, fw: Framework, state: CycleState, qp: QueuedPod, pi: PodInfo, node: str,
                             start: float) -> None:
        """Bind (PreBind, Bind); ``start`` is when the attempt began (the queue's clock), for its metrics."""
        try:
            st = await fw.run_pre_bind(state, pi, node)
            if st is None:
                st = await fw.run_bind(state, pi, node)
        except Exception as e:  # a transport error is a bind failure like any other
            st = Status(Code.ERROR, f"{type(e).__name__}: {e}")
        finally:
            assert self._bind_sem is not None
            self._bind_sem.release()
        if st is None:
            self.cache.finish_binding(pi)
            self.queue.done(qp)
            self.nominator.remove(pi)
            self.stats["scheduled"] += 1
            now = self.queue.clock.now()
            metrics.attempt(metrics.SCHEDULED, fw.profile.scheduler_name, now - start)
            if qp.initial_attempt is not None:
                metrics.SLI_DURATION.labels(metrics.attempts_label(qp.attempts)).observe(now - qp.initial_attempt)
            if self.recorder is not None:
                self.recorder.event(qp.pod, "Normal", "Scheduled",
                                    f"Successfully assigned {pi.namespace}/{pi.name} to {node}")
            if self.on_scheduled is not None:
                self.on_scheduled(pi, node)
            return
        self.stats["bind_errors"] += 1
        metrics.attempt(metrics.ERROR, fw.profile.scheduler_name, self.queue.clock.now() - start)
        log.info("binding %s to %s failed: %s", pi.key, node, st.message)
        fw.run_unreserve(state, pi, node)
        self.cache.forget(pi)
        if self.recorder is not None:
            self.recorder.event(qp.pod, "Warning", "FailedScheduling", f"Binding rejected: {st.message}")
        self.queue.add_backoff(qp)

    # --- background API writes -------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _patch_status_later(self, pi: PodInfo, patch: Obj) -> None:
        async def go() -> None:
            try:
                await self.client.patch("v1", "pods", pi.name, patch, pi.namespace,
                                        patch_type="strategic", subresource="status")
            except errors.NotFound:
                pass
            except Exception as e:
                log.info("status update of %s failed: %s", pi.key, e)
        if self.client is not None:
            self._spawn(go())

    def _delete_victim_later(self, victim: PodInfo, message: str) -> None:
        async def go() -> None:
            try:
                await self.client.delete("v1", "pods", victim.name, victim.namespace,
                                         preconditions={"uid": victim.uid} if victim.uid else None)
            except errors.NotFound:
                return
            except Exception as e:
                log.info("deleting preemption victim %s failed: %s", victim.key, e)
                return
            if self.recorder is not None:
                self.recorder.event(victim.pod, "Normal", "Preempted", message)
        if self.client is not None:
            self._spawn(go())

    # --- running ---------------------------------------------------------------------------------

    async def loop(self) -> None:
        n = 0
        while True:
            qp = await self.queue.pop()
            try:
                await self.schedule_one(qp)
            except Exception:
                self.stats["errors"] += 1
                log.exception("scheduling %s failed", qp.key)
                self.queue.add_backoff(qp)
            n += 1
            if n % 8 == 0:
                await asyncio.sleep(0)  # let informer events and bind results in

    async def drain(self) -> None:
        """Schedule everything that is active now and wait for the binds (tests, explain-like runs)."""
        while (qp := self.queue.pop_nowait()) is not None:
            await self.schedule_one(qp)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.cache.cleanup_expired()

    async def run(self, factory: Any | None = None, *, sync_timeout: float | None = None) -> None:
        """Watch the cluster and schedule until cancelled."""
        from kybernetes.client.informer import SharedInformerFactory

        own = factory is None
        factory = factory or SharedInformerFactory(self.client)
        self.register(factory)
        await factory.start()
        try:
            if not await factory.wait_for_sync(sync_timeout):
                raise RuntimeError("informers did not sync")
            self.handlers_synced = True
            log.info("scheduler started: %d nodes, %d pending pods", len(self.cache.snapshot.node_list),
                     len(self.queue))
            aux = [asyncio.ensure_future(self.queue.run_flushers()), asyncio.ensure_future(self.housekeeping())]
            try:
                await self.loop()
            finally:
                for t in aux:
                    t.cancel()
        finally:
            self.queue.close()
            for t in list(self._tasks):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if own:
                await factory.stop()
            if self._own_recorder:
                with contextlib.suppress(Exception):
                    await self.recorder.close()

