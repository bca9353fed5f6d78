"""The scheduling framework: extension points, statuses, cycle state, and a profile's plugin runner.

This follows kube-scheduler's framework (``pkg/scheduler/framework``): a profile is an ordered
set of plugins per extension point --

    PreFilter -> Filter (per node) -> PostFilter (only when no node fits)
    PreScore -> Score (per feasible node) -> NormalizeScore -> x weight
    Reserve / Unreserve -> Permit -> PreBind -> Bind

-- and a plugin is one object that implements any subset of the methods of :class:`Plugin`.
Which extension points a plugin takes part in is found by which methods its class overrides.

Performance conventions (the scheduling cycle is hot Python code):

- Filter returns ``None`` for success and a :class:`Status` only on failure, so the common case
  allocates nothing;
- PreFilter/PreScore may return a ``SKIP`` status: the plugin's Filter/Score is then not called
  for this pod at all (e.g. NodePorts for a pod without host ports);
- plugins read :class:`~kybernetes.scheduler.nodeinfo.NodeInfo` directly, never copies; the cache
  is only mutated between scheduling cycles (the cycle runs without awaiting), so it *is* the
  snapshot, with no per-cycle copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar

from kybernetes.api.label_selectors import LabelSelector
from kybernetes.api.obj import Obj
from kybernetes.scheduler import metrics
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo
from kybernetes.scheduler.volumes import VolumeStore

if TYPE_CHECKING:
    from kybernetes.scheduler.config import Profile

MAX_NODE_SCORE = 100


class Code(IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


class Status:
    """A non-success result of a plugin (success is ``None`` on the hot paths)."""

    __slots__ = ("code", "plugin", "reasons")

    def __init__(self, code: Code, *reasons: str, plugin: str = "") -> None:
        self.code = code
        self.reasons: tuple[str, ...] = reasons
        self.plugin = plugin

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def with_plugin(self, plugin: str) -> Status:
        if not self.plugin:
            self.plugin = plugin
        return self

    def __repr__(self) -> str:
        return f"Status({self.code.name}, {self.message!r}, plugin={self.plugin!r})"


SKIP = Status(Code.SKIP)


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, *reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)


LabelCheck = tuple[str, "Container[str]", bool]
"""``(label key, forbidden values, missing key passes)``: a node passes when its value of the key
is not among the forbidden ones, or when it has no such label and the third item is true."""


class CycleState:
    """Per-pod, per-cycle scratch space shared by the plugins of one scheduling attempt."""

    __slots__ = ("data", "label_checks", "node_names", "record_plugin_metrics", "skip_filter", "skip_score")

    def __init__(self, record_plugin_metrics: bool = False) -> None:
        self.record_plugin_metrics = record_plugin_metrics
        """Time each plugin call of this cycle (``scheduler_plugin_execution_duration_seconds``, sampled)."""
        self.data: dict[str, Any] = {}
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()
        self.node_names: set[str] | None = None
        """PreFilterResult: when set, only these nodes are worth filtering (NodeName, matchFields)."""
        self.label_checks: dict[str, tuple[LabelCheck, ...]] = {}
        """Plugin -> checks that pass exactly when its Filter passes, set by its PreFilter: the
        scheduler's node loop then decides a passing node inline (see ``find_nodes_that_fit``)."""


class Snapshot:
    """The cluster as the plugins see it: nodes in a stable order, by name, and image spread.

    With ``change_log`` (the cache's own snapshot) it also records the name of every node whose
    pods, labels or listing changed, in order (:meth:`note`): :class:`~kybernetes.scheduler.aggregate.NodeSums`
    reads it to keep per-domain counts current by touching only the changed nodes, where a walk
    over every node per cycle is the cost at 5,000 nodes (kube-scheduler's snapshot likewise
    updates by generation, copying only changed nodes). Copies (:meth:`with_node`) have no log.
    """

    LOG_MAX = 50_000
    """Entries after which the log starts over (its readers then rebuild from the node list)."""

    def __init__(self, change_log: bool = False) -> None:
        self.log: list[str] | None = [] if change_log else None
        self.log_start = 0
        """The position (counted since the snapshot was made) of ``log[0]``."""
        self.node_list: list[NodeInfo] = []
        self.nodes: dict[str, NodeInfo] = {}
        self.image_nodes: dict[str, int] = {}
        """normalised image name -> number of nodes that have it (ImageLocality's spread)."""
        self.affinity_pods = 0
        """How many pods with (anti-)affinity are on nodes; 0 lets InterPodAffinity skip the walk."""
        self.anti_affinity_pods = 0
        self.scoring_affinity_pods = 0
        """How many of them have terms InterPodAffinity's Score counts for an incoming pod
        (required affinity, preferred (anti-)affinity); 0 lets its PreScore skip the walk."""
        # Listed nodes holding pods with (required anti-)affinity, kept up to date by track():
        # InterPodAffinity asks for them every cycle, and a walk over every node to find them was
        # a large part of a cycle at 5,000 nodes.
        self._affinity: dict[str, NodeInfo] = {}
        self._anti_affinity: dict[str, NodeInfo] = {}

    def note(self, name: str) -> None:
        """Node ``name``'s pods, labels or listing changed (a no-op without a change log)."""
        log = self.log
        if log is None:
            return
        if len(log) >= self.LOG_MAX:
            self.log_start += len(log)
            log.clear()
        log.append(name)

    def track(self, ni: NodeInfo) -> None:
        """Update the affinity indexes after ``ni``'s pods changed or it joined or left the list."""
        name = ni.name
        listed = self.nodes.get(name) is ni
        if listed and ni.pods_with_affinity:
            self._affinity[name] = ni
        else:
            self._affinity.pop(name, None)
        if listed and ni.pods_with_required_anti_affinity:
            self._anti_affinity[name] = ni
        else:
            self._anti_affinity.pop(name, None)

    def with_node(self, ni: NodeInfo) -> Snapshot:
        """A shallow copy with one node replaced (preemption's what-if)."""
        s = Snapshot()
        s.nodes = dict(self.nodes)
        s.nodes[ni.name] = ni
        s.node_list = [ni if n.name == ni.name else n for n in self.node_list]
        s.image_nodes = self.image_nodes
        s.affinity_pods = self.affinity_pods
        s.anti_affinity_pods = self.anti_affinity_pods
        s.scoring_affinity_pods = self.scoring_affinity_pods
        s._affinity = dict(self._affinity)
        s._anti_affinity = dict(self._anti_affinity)
        s.track(ni)
        return s

    def affinity_nodes(self) -> list[NodeInfo]:
        if not self.affinity_pods:
            return []
        return list(self._affinity.values())

    def anti_affinity_nodes(self) -> list[NodeInfo]:
        if not self.anti_affinity_pods:
            return []
        return list(self._anti_affinity.values())


class Handle:
    """What plugins may use beyond their arguments: the snapshot, cluster lookups and the API."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot or Snapshot()
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.pdbs: list[Obj] = []
        self.client: Any = None
        self.recorder: Any = None
        self.nominator: Any = None
        self.framework: Framework | None = None
        self.spread_selector: Callable[[PodInfo], LabelSelector | None] = lambda pi: None
        """The selector of the pod's Services/ReplicaSets/StatefulSets (default spreading)."""
        self.status_patcher: Callable[[PodInfo, Obj], None] | None = None
        """Schedules a status patch of a pod (nominatedNodeName) without blocking the cycle."""
        self.pod_deleter: Callable[[PodInfo, str], None] | None = None
        """Schedules the graceful deletion of a preemption victim (with its event)."""
        self.volumes = VolumeStore()
        """PVs, PVCs, StorageClasses and CSINodes (the volume plugins' listers)."""


class Plugin:
    """Base class: subclasses set ``name`` and override the extension points they implement."""

    name: ClassVar[str] = ""

    def __init__(self, args: Mapping[str, Any] | None, handle: Handle) -> None:
        self.args: Mapping[str, Any] = args or {}
        self.handle = handle

    # PreFilter: None, SKIP, or a rejecting Status for the whole pod.
    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        raise NotImplementedError

    # Filter: None when the node fits.
    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        raise NotImplementedError

    # PostFilter: (nominated node name or "", status); only called when nothing fits.
    def post_filter(self, state: CycleState, pi: PodInfo,
                    statuses: Mapping[str, Status]) -> tuple[str, Status]:
        raise NotImplementedError

    def pre_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        raise NotImplementedError

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        raise NotImplementedError

    def normalize_score(self, state: CycleState, pi: PodInfo, scores: list[int]) -> None:
        raise NotImplementedError

    # Optional batch form of Score, for speed: the same numbers as calling score() per node.
    score_all: Callable[[CycleState, PodInfo, Sequence[NodeInfo]], list[int]] | None = None

    def reserve(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        raise NotImplementedError

    def unreserve(self, state: CycleState, pi: PodInfo, node_name: str) -> None:
        raise NotImplementedError

    def permit(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        raise NotImplementedError

    async def pre_bind(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        raise NotImplementedError

    async def bind(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        raise NotImplementedError


EXTENSION_POINTS = ("pre_filter", "filter", "post_filter", "pre_score", "score", "reserve",
                    "permit", "pre_bind", "bind")
# Configuration names of the extension points (KubeSchedulerConfiguration's plugins.<point>).
POINT_NAMES = {"preFilter": "pre_filter", "filter": "filter", "postFilter": "post_filter",
               "preScore": "pre_score", "score": "score", "reserve": "reserve", "permit": "permit",
               "preBind": "pre_bind", "bind": "bind"}


def implements(cls: type[Plugin], point: str) -> bool:
    return getattr(cls, point) is not getattr(Plugin, point)


class Framework:
    """One profile's plugins, ready to run (``frameworkImpl``)."""

    def __init__(self, profile: Profile, handle: Handle,
                 registry: Mapping[str, type[Plugin]] | None = None) -> None:
        from kybernetes.scheduler.plugins import REGISTRY

        registry = registry or REGISTRY
        self.profile = profile
        self.scheduler_name = profile.scheduler_name
        self.handle = handle
        if handle.framework is None:
            handle.framework = self
        self.plugins: dict[str, Plugin] = {}
        points: dict[str, list[Plugin]] = {p: [] for p in EXTENSION_POINTS}
        self.weights: dict[str, int] = {}
        for point, names in profile.points.items():
            for name, weight in names:
                cls = registry.get(name)
                if cls is None:
                    raise ValueError(f"profile {profile.scheduler_name!r}: unknown plugin {name!r}")
                if not implements(cls, point):
                    raise ValueError(f"plugin {name!r} does not implement {point}")
                plugin = self.plugins.get(name)
                if plugin is None:
                    plugin = self.plugins[name] = cls(profile.plugin_args.get(name), handle)
                points[point].append(plugin)
                if point == "score":
                    self.weights[name] = weight
        self.pre_filter_plugins = points["pre_filter"]
        self.filter_plugins = points["filter"]
        self.post_filter_plugins = points["post_filter"]
        self.pre_score_plugins = points["pre_score"]
        self.score_plugins = points["score"]
        self.reserve_plugins = points["reserve"]
        self.permit_plugins = points["permit"]
        self.pre_bind_plugins = points["pre_bind"]
        self.bind_plugins = points["bind"]
        self._normalizers = {p.name for p in self.score_plugins if implements(type(p), "normalize_score")}

    # --- filtering -------------------------------------------------------------------------------

    def run_pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        for p in self.pre_filter_plugins:
            st = _call(state, "PreFilter", p.name, p.pre_filter, state, pi)
            if st is None:
                continue
            if st.code == Code.SKIP:
                state.skip_filter.add(p.name)
                continue
            return st.with_plugin(p.name)
        return None

    def run_filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        skip = state.skip_filter
        for p in self.filter_plugins:
            if skip and p.name in skip:
                continue
            st = p.filter(state, pi, ni)
            if st is not None:
                return st.with_plugin(p.name)
        return None

    def filter_fns(self, state: CycleState) -> list[tuple[str, Callable[[CycleState, PodInfo, NodeInfo], Status | None]]]:
        """The Filter callables not skipped for this cycle, for the scheduler's inlined node loop."""
        skip = state.skip_filter
        if state.record_plugin_metrics:
            return [(p.name, metrics.timed("Filter", p.name, p.filter)) for p in self.filter_plugins
                    if p.name not in skip]
        return [(p.name, p.filter) for p in self.filter_plugins if p.name not in skip]

    def run_filter_all(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> list[Status]:
        """Every failing Filter for a node, not just the first (explain)."""
        out = []
        for p in self.filter_plugins:
            if p.name in state.skip_filter:
                continue
            st = p.filter(state, pi, ni)
            if st is not None:
                out.append(st.with_plugin(p.name))
        return out

    def run_post_filter(self, state: CycleState, pi: PodInfo,
                        statuses: Mapping[str, Status]) -> tuple[str, Status | None]:
        last: Status | None = None
        for p in self.post_filter_plugins:
            start = time.perf_counter()
            nominated, st = p.post_filter(state, pi, statuses)
            if state.record_plugin_metrics:
                metrics.observe_plugin("PostFilter", p.name, st, time.perf_counter() - start)
            if st.is_success():
                return nominated, None
            last = st.with_plugin(p.name)
            if st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE or st.code == Code.ERROR:
                break
        return "", last

    # --- scoring ---------------------------------------------------------------------------------

    def run_pre_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        for p in self.pre_score_plugins:
            st = _call(state, "PreScore", p.name, p.pre_score, state, pi, nodes)
            if st is None:
                continue
            if st.code == Code.SKIP:
                state.skip_score.add(p.name)
                continue
            return st.with_plugin(p.name)
        return None

    def run_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo],
                  detail: dict[str, list[int]] | None = None) -> list[int]:
        """Weighted total score per node (same order as ``nodes``); ``detail`` gets per-plugin scores."""
        totals = [0] * len(nodes)
        skip = state.skip_score
        for p in self.score_plugins:
            if p.name in skip:
                continue
            if p.score_all is not None:
                scores = p.score_all(state, pi, nodes)
            else:
                score = metrics.timed("Score", p.name, p.score) if state.record_plugin_metrics else p.score
                scores = [score(state, pi, ni) for ni in nodes]
            if p.name in self._normalizers:
                p.normalize_score(state, pi, scores)
            w = self.weights.get(p.name, 1)
            if detail is not None:
                detail[p.name] = [s * w for s in scores]
            totals = [t + s * w for t, s in zip(totals, scores, strict=True)] if w != 1 else \
                [t + s for t, s in zip(totals, scores, strict=True)]
        return totals

    # --- the binding cycle -----------------------------------------------------------------------

    def run_reserve(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        for p in self.reserve_plugins:
            st = _call(state, "Reserve", p.name, p.reserve, state, pi, node_name)
            if st is not None:
                return st.with_plugin(p.name)
        return None

    def run_unreserve(self, state: CycleState, pi: PodInfo, node_name: str) -> None:
        for p in reversed(self.reserve_plugins):
            p.unreserve(state, pi, node_name)

    def run_permit(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        for p in self.permit_plugins:
            st = _call(state, "Permit", p.name, p.permit, state, pi, node_name)
            if st is not None:
                return st.with_plugin(p.name)
        return None

    async def run_pre_bind(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        for p in self.pre_bind_plugins:
            start = time.perf_counter()
            st = await p.pre_bind(state, pi, node_name)
            if state.record_plugin_metrics:
                metrics.observe_plugin("PreBind", p.name, st, time.perf_counter() - start)
            if st is not None:
                return st.with_plugin(p.name)
        return None

    async def run_bind(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        for p in self.bind_plugins:
            start = time.perf_counter()
            st = await p.bind(state, pi, node_name)
            if state.record_plugin_metrics:
                metrics.observe_plugin("Bind", p.name, st, time.perf_counter() - start)
            if st is not None and st.code == Code.SKIP:
                continue
            return st.with_plugin(p.name) if st is not None else None
        return Status(Code.ERROR, "no bind plugin bound the pod")


def _call(state: CycleState, point: str, plugin: str, fn: Callable[..., Status | None], *args: Any) -> Status | None:
    """``fn(*args)``, timed when the cycle is sampled for plugin metrics."""
    if not state.record_plugin_metrics:
        return fn(*args)
    start = time.perf_counter()
    st = fn(*args)
    metrics.observe_plugin(point, plugin, st, time.perf_counter() - start)
    return st


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """``helper.DefaultNormalizeScore``: scale to 0..100 by the maximum (optionally reversed)."""
    m = max(scores, default=0)
    if m == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, s in enumerate(scores):
        v = MAX_NODE_SCORE * s // m
        scores[i] = MAX_NODE_SCORE - v if reverse else v


def reason_summary(statuses: Iterable[Status]) -> str:
    """Kubernetes' FitError reasons: ``"2 Insufficient cpu, 3 node(s) were unschedulable"``.

    Each reason counted once per node that gave it; the "count reason" strings sorted as text
    (``sort.Strings`` in ``FitError.Error``), which is why "10 ..." sorts before "2 ...".
    """
    counts: dict[str, int] = {}
    for st in statuses:
        for r in st.reasons:
            counts[r] = counts.get(r, 0) + 1
    return ", ".join(sorted(f"{n} {r}" for r, n in counts.items()))
