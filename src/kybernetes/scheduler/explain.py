"""Explain a scheduling decision without making it (beyond Kubernetes).

``explain_pod(pod, nodes, pods, config)`` builds a private cache from listed objects and runs the
pod's profile -- PreFilter, every Filter on every node (no sampling, no early stop), PreScore and
Score -- but never assumes, reserves or binds. For each node it reports the *first* plugin that
rejected it (what the scheduler would have recorded) and every other failing plugin, or the
weighted score per plugin. For a pod that fits nowhere it looks for the smallest change that would
make it fit:

- **resources**: for nodes that fail only on NodeResourcesFit, how much each insufficient request
  must drop, choosing the node that needs the smallest relative cut ("lower cpu request by 250m to
  fit node-3"); "Too many pods" cannot be fixed by the pod;
- **taints**: for nodes that fail only on TaintToleration, which taints to tolerate (fewest first);
- **volumes**: a missing claim to create, an unbound Immediate claim to bind, a PersistentVolume to
  create for a WaitForFirstConsumer claim nothing can serve, the nodes a bound PV's node affinity
  allows (:mod:`kybernetes.scheduler.volume_explain`);
- **constraints**: each nodeSelector/required node affinity, required pod (anti-)affinity and
  DoNotSchedule spread constraint is removed in turn and the whole framework re-run: the report
  says how many nodes would then fit, or that relaxing it does not help.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.scheduling import tuples_tolerate_taint
from kybernetes.scheduler.cache import Cache
from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.framework import CycleState, Framework, Handle, Status, reason_summary
from kybernetes.scheduler.nodeinfo import CPU, PODS, PodInfo
from kybernetes.scheduler.plugins.node_resources_fit import insufficient_resources
from kybernetes.scheduler.volume_explain import suggest_volumes
from kybernetes.scheduler.volumes import VolumeStore


@dataclass
class NodeVerdict:
    node: str
    fits: bool
    plugin: str = ""
    reasons: list[str] = field(default_factory=list)
    other_failures: list[tuple[str, list[str]]] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def to_dict(self) -> Obj:
        d: Obj = {"node": self.node, "fits": self.fits}
        if self.fits:
            d.update(total=self.total, scores=self.scores)
        else:
            d.update(plugin=self.plugin, reasons=self.reasons,
                     otherFailures=[{"plugin": p, "reasons": r} for p, r in self.other_failures])
        return d


@dataclass
class Explanation:
    pod: str
    profile: str
    nodes: list[NodeVerdict]
    chosen: str | None = None
    message: str = ""
    pre_filter: str = ""
    suggestions: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> list[NodeVerdict]:
        return [v for v in self.nodes if v.fits]

    def to_dict(self) -> Obj:
        return {"pod": self.pod, "profile": self.profile, "chosen": self.chosen, "message": self.message,
                "preFilter": self.pre_filter, "nodes": [v.to_dict() for v in self.nodes],
                "suggestions": self.suggestions}

    def render(self) -> str:
        lines = [f"Pod {self.pod} (profile {self.profile}): fits {len(self.feasible)}/{len(self.nodes)} node(s)"
                 + (f"; the scheduler would pick {self.chosen}" if self.chosen else "")]
        if self.message:
            lines.append(self.message)
        rows = [("NODE", "RESULT", "PLUGIN/TOTAL", "REASONS / WEIGHTED SCORES")]
        for v in sorted(self.nodes, key=lambda v: (not v.fits, -v.total, v.node)):
            if v.fits:
                detail = " ".join(f"{k}={s}" for k, s in v.scores.items())
                rows.append((v.node, "fits", str(v.total), detail))
            else:
                extra = "".join(f"; also {p}: {', '.join(r)}" for p, r in v.other_failures)
                rows.append((v.node, "rejected", v.plugin, ", ".join(v.reasons) + extra))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:3])) + "  " + r[3])
        if self.suggestions:
            lines.append("Suggestions:")
            lines += [f"  - {s}" for s in self.suggestions]
        return "\n".join(lines)


def format_amount(resource: str, value: int) -> str:
    if resource == CPU:
        return f"{value}m" if value % 1000 else f"{value // 1000}"
    if resource == PODS:
        return str(value)
    for suffix, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size}{suffix}"
    if value >= 1 << 20:
        return f"{-(-value // (1 << 20))}Mi"  # rounded up: lowering by at least this much fits
    return str(value)


class _Runner:
    """The framework over a fixed cache, re-runnable with variants of the pod."""

    def __init__(self, nodes: list[Obj], pods: list[Obj], config: SchedulerConfig, scheduler_name: str,
                 namespaces: Mapping[str, Mapping[str, str]] | None, pdbs: list[Obj] | None,
                 volumes: VolumeStore | None = None) -> None:
        self.cache = Cache.from_objects(nodes, pods)
        self.handle = Handle(self.cache.snapshot)
        if volumes is not None:
            self.handle.volumes = volumes
        self.handle.namespace_labels = {k: dict(v) for k, v in (namespaces or {}).items()}
        self.handle.pdbs = list(pdbs or [])
        profile = config.profile(scheduler_name) or config.profiles[0]
        self.profile = profile.scheduler_name
        self.fw = Framework(profile, self.handle)

    def fitting(self, pod: Obj) -> list[str]:
        pi = PodInfo(pod)
        state = CycleState()
        if self.fw.run_pre_filter(state, pi) is not None:
            return []
        return [ni.name for ni in self.cache.snapshot.node_list if self.fw.run_filter(state, pi, ni) is None]


def explain_pod(pod: Obj, nodes: list[Obj], pods: list[Obj], config: SchedulerConfig | None = None, *,
                namespaces: Mapping[str, Mapping[str, str]] | None = None,
                pdbs: list[Obj] | None = None, volumes: VolumeStore | None = None) -> Explanation:
    config = config or SchedulerConfig()
    meta = pod.get("metadata") or {}
    key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    others = [p for p in pods if f"{(p.get('metadata') or {}).get('namespace') or ''}/"
              f"{(p.get('metadata') or {}).get('name') or ''}" != key]
    # Explain the pod as if unscheduled even when it is bound already.
    pod = {**pod, "spec": {k: v for k, v in (pod.get("spec") or {}).items() if k != "nodeName"}}
    sched_name = (pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
    r = _Runner(nodes, others, config, sched_name, namespaces, pdbs, volumes)
    fw = r.fw
    pi = PodInfo(pod)
    state = CycleState()
    exp = Explanation(pod=key, profile=r.profile, nodes=[])
    node_list = r.cache.snapshot.node_list
    pst = fw.run_pre_filter(state, pi)
    statuses: dict[str, Status] = {}
    if pst is not None:
        exp.pre_filter = f"{pst.plugin}: {pst.message}"
        for ni in node_list:
            exp.nodes.append(NodeVerdict(ni.name, False, pst.plugin, list(pst.reasons)))
            statuses[ni.name] = pst
    else:
        feasible = []
        for ni in node_list:
            fails = fw.run_filter_all(state, pi, ni)
            if fails:
                first = fails[0]
                statuses[ni.name] = first
                exp.nodes.append(NodeVerdict(ni.name, False, first.plugin, list(first.reasons),
                                             [(f.plugin, list(f.reasons)) for f in fails[1:]]))
            else:
                feasible.append(ni)
        if feasible:
            fw.run_pre_score(state, pi, feasible)
            detail: dict[str, list[int]] = {}
            totals = fw.run_score(state, pi, feasible, detail)
            best = max(totals)
            for i, ni in enumerate(feasible):
                exp.nodes.append(NodeVerdict(ni.name, True, scores={k: v[i] for k, v in detail.items()},
                                             total=totals[i]))
            exp.chosen = next(ni.name for i, ni in enumerate(feasible) if totals[i] == best)
    if exp.chosen is None:
        n = len(node_list)
        exp.message = (f"0/{n} nodes are available: {reason_summary(statuses.values())}." if n
                       else "no nodes available to schedule pods")
        exp.suggestions = _suggest(r, pod, pi, exp)
    return exp


def _suggest(r: _Runner, pod: Obj, pi: PodInfo, exp: Explanation) -> list[str]:
    out: list[str] = []
    snap = r.cache.snapshot
    only = {v.node: v.plugin for v in exp.nodes if not v.fits and not v.other_failures}
    # Resources: the node needing the smallest relative cut.
    best: tuple[float, str, list[tuple[str, int]]] | None = None
    for name, plugin in only.items():
        if plugin != "NodeResourcesFit":
            continue
        short = insufficient_resources(pi, snap.nodes[name])
        if any(res == PODS or free < 0 for res, _, free in short):
            continue
        cuts = [(res, want - free) for res, want, free in short]
        cost = sum(cut / pi.requests[res] for res, cut in cuts)
        if best is None or cost < best[0]:
            best = (cost, name, cuts)
    if best is not None:
        parts = [f"lower {res} request by {format_amount(res, cut)}" for res, cut in best[2]]
        out.append(f"{' and '.join(parts)} to fit {best[1]}")
    # Taints: fewest untolerated first.
    taint_nodes = []
    for name, plugin in only.items():
        if plugin == "TaintToleration":
            ts = [t for t in snap.nodes[name].taints
                  if t.get("effect") in ("NoSchedule", "NoExecute") and not tuples_tolerate_taint(pi.tolerations, t)]
            taint_nodes.append((len(ts), name, ts))
    if taint_nodes:
        _, name, ts = min(taint_nodes)
        desc = ", ".join(f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
                         for t in ts)
        out.append(f"tolerate taint(s) {desc} to fit {name}")
    out += suggest_volumes(r.handle.volumes, snap.nodes, pi, exp.pre_filter, {v.node: v.reasons for v in exp.nodes if not v.fits})
    cordoned = [n for n, p in only.items() if p == "NodeUnschedulable"]
    if cordoned:
        out.append(f"{len(cordoned)} node(s) are cordoned (spec.unschedulable): uncordon e.g. {sorted(cordoned)[0]}")
    # Constraints: remove each and re-run everything.
    for label, variant in _relaxations(pod):
        fits = r.fitting(variant)
        if fits:
            out.append(f"removing {label} would let the pod fit {len(fits)} node(s), e.g. {sorted(fits)[0]}")
        else:
            out.append(f"removing {label} alone would not help")
    if not out:
        out.append("no single change found; the pod needs more capacity or different nodes")
    return out


def _relaxations(pod: Obj) -> list[tuple[str, Obj]]:
    spec = pod.get("spec") or {}
    out: list[tuple[str, Obj]] = []

    def variant(mutate: Any) -> Obj:
        p = copy.deepcopy(pod)
        mutate(p["spec"])
        return p

    aff = spec.get("affinity") or {}
    if spec.get("nodeSelector") or (aff.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution"):
        def drop_node_aff(s: Obj) -> None:
            s.pop("nodeSelector", None)
            (s.get("affinity") or {}).get("nodeAffinity", {}).pop("requiredDuringSchedulingIgnoredDuringExecution", None)
        out.append(("the nodeSelector/required node affinity", variant(drop_node_aff)))
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = (aff.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
        for i, t in enumerate(terms):
            def drop_term(s: Obj, kind: str = kind, i: int = i) -> None:
                del s["affinity"][kind]["requiredDuringSchedulingIgnoredDuringExecution"][i]
            out.append((f"required {kind} term {i} (topologyKey {t.get('topologyKey')})", variant(drop_term)))
    for i, c in enumerate(spec.get("topologySpreadConstraints") or []):
        if (c.get("whenUnsatisfiable") or "DoNotSchedule") != "DoNotSchedule":
            continue

        def drop_spread(s: Obj, i: int = i) -> None:
            del s["topologySpreadConstraints"][i]
        out.append((f"topologySpreadConstraints[{i}] (topologyKey {c.get('topologyKey')}, maxSkew "
                    f"{c.get('maxSkew')})", variant(drop_spread)))
    return out
