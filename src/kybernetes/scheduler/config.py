"""KubeSchedulerConfiguration (``kubescheduler.config.k8s.io/v1``): profiles, plugins, arguments.

A YAML file in Kubernetes' format is read into :class:`SchedulerConfig`. Each profile's plugin set
is resolved the way kube-scheduler does it:

1. start from the default ``multiPoint`` set (every default plugin at every extension point it
   implements, with the default score weights: TaintToleration 3, NodeAffinity 2,
   PodTopologySpread 2, InterPodAffinity 2, the rest 1);
2. apply the profile's ``multiPoint`` enabled/disabled lists (``disabled: [{name: "*"}]`` drops
   every default);
3. apply the per-extension-point lists (``filter``, ``score`` ...): disabled entries remove a
   plugin from that point only, enabled entries add it (for ``score`` with its ``weight``).

``pluginConfig`` args are passed to the plugin's constructor as plain dicts. Durations in the
leader-election block accept Kubernetes' strings ("15s", "1m").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kybernetes.api import timeutil
from kybernetes.scheduler.framework import EXTENSION_POINTS, POINT_NAMES, implements

DEFAULT_SCHEDULER_NAME = "default-scheduler"

# (name, score weight) in kube-scheduler's default order.
DEFAULT_PLUGINS: list[tuple[str, int]] = [
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("NodeVolumeLimits", 0),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
]


@dataclass
class Profile:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    points: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """extension point (method name, e.g. ``pre_filter``) -> [(plugin, weight)] in order."""
    plugin_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None


@dataclass
class SchedulerConfig:
    profiles: list[Profile] = field(default_factory=lambda: [build_profile({})])
    percentage_of_nodes_to_score: int = 0
    """0 = adaptive (50% - nodes/125, at least 5%), as Kubernetes."""
    pod_initial_backoff: float = 1.0
    pod_max_backoff: float = 10.0
    pod_max_unschedulable: float = 300.0
    """How long a pod may sit in unschedulablePods before it is retried anyway."""
    bind_concurrency: int = 32
    kubeconfig: str | None = None
    leader_elect: bool = False
    lease_name: str = "kube-scheduler"
    lease_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    assumed_pod_ttl: float = 0.0
    """Seconds after a finished bind before an unconfirmed assumed pod expires; 0 = never."""

    def profile(self, name: str) -> Profile | None:
        for p in self.profiles:
            if p.scheduler_name == name:
                return p
        return None


def parse_duration(v: Any, default: float) -> float:
    """A config duration: a Go duration string ("15s", "1m30s", "500ms") or a number of seconds."""
    if v is None:
        return default
    if isinstance(v, int | float):
        return float(v)
    return timeutil.parse_duration(str(v))


def _names(block: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    if not block:
        return []
    return [e for e in block.get(key) or () if isinstance(e, Mapping)]


def build_profile(spec: Mapping[str, Any]) -> Profile:
    """Resolve one ``profiles[]`` entry into ordered plugins per extension point."""
    from kybernetes.scheduler.plugins import REGISTRY

    plugins = spec.get("plugins") or {}
    multi = plugins.get("multiPoint") or {}
    multi_disabled = {e.get("name") for e in _names(multi, "disabled")}
    weights: dict[str, int] = {}
    multi_set: list[str] = []
    if "*" not in multi_disabled:
        for name, w in DEFAULT_PLUGINS:
            if name not in multi_disabled:
                multi_set.append(name)
                weights[name] = w or 1
    for e in _names(multi, "enabled"):
        name = e["name"]
        if name in multi_set:
            multi_set.remove(name)  # re-enabling moves it to the end, as kube-scheduler does
        multi_set.append(name)
        weights[name] = int(e.get("weight") or weights.get(name) or 1)
    for name in multi_set:
        if name not in REGISTRY:
            raise ValueError(f"unknown plugin {name!r}")

    points: dict[str, list[tuple[str, int]]] = {}
    for point in EXTENSION_POINTS:
        points[point] = [(n, weights.get(n, 1)) for n in multi_set if implements(REGISTRY[n], point)]
    for cfg_name, point in POINT_NAMES.items():
        block = plugins.get(cfg_name)
        if not block:
            continue
        disabled = {e.get("name") for e in _names(block, "disabled")}
        cur = [] if "*" in disabled else [(n, w) for n, w in points[point] if n not in disabled]
        for e in _names(block, "enabled"):
            name = e["name"]
            if name not in REGISTRY:
                raise ValueError(f"unknown plugin {name!r}")
            cur = [(n, w) for n, w in cur if n != name]
            cur.append((name, int(e.get("weight") or weights.get(name) or 1)))
        points[point] = cur

    args: dict[str, dict[str, Any]] = {}
    for pc in spec.get("pluginConfig") or ():
        args[pc["name"]] = dict(pc.get("args") or {})
    pct = spec.get("percentageOfNodesToScore")
    return Profile(scheduler_name=spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME, points=points,
                   plugin_args=args, percentage_of_nodes_to_score=int(pct) if pct is not None else None)


def from_dict(doc: Mapping[str, Any]) -> SchedulerConfig:
    kind = doc.get("kind")
    if kind and kind != "KubeSchedulerConfiguration":
        raise ValueError(f"expected kind KubeSchedulerConfiguration, got {kind}")
    api = doc.get("apiVersion")
    if api and not str(api).startswith("kubescheduler.config.k8s.io/"):
        raise ValueError(f"unsupported apiVersion {api}")
    profiles = [build_profile(p) for p in doc.get("profiles") or ()] or [build_profile({})]
    names = [p.scheduler_name for p in profiles]
    if len(set(names)) != len(names):
        raise ValueError("duplicate schedulerName in profiles")
    le = doc.get("leaderElection") or {}
    cc = doc.get("clientConnection") or {}
    return SchedulerConfig(
        profiles=profiles,
        percentage_of_nodes_to_score=int(doc.get("percentageOfNodesToScore") or 0),
        pod_initial_backoff=float(doc.get("podInitialBackoffSeconds") or 1),
        pod_max_backoff=float(doc.get("podMaxBackoffSeconds") or 10),
        kubeconfig=cc.get("kubeconfig") or None,
        leader_elect=bool(le.get("leaderElect", False)),
        lease_name=le.get("resourceName") or "kube-scheduler",
        lease_namespace=le.get("resourceNamespace") or "kube-system",
        lease_duration=parse_duration(le.get("leaseDuration"), 15.0),
        renew_deadline=parse_duration(le.get("renewDeadline"), 10.0),
        retry_period=parse_duration(le.get("retryPeriod"), 2.0),
    )


def load(path: str | Path) -> SchedulerConfig:
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    return from_dict(doc)
