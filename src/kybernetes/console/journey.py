"""An object's journey through the system (``/api/journey``), assembled from cached objects.

Contract (:func:`journey`): for a Deployment, StatefulSet, DaemonSet, Job, ReplicaSet or Pod,
the stages in CONSOLE.md's shape, one entry per stage, each with ``steps`` (its dated parts):

- ``accepted``: the object's creationTimestamp and the managers of its managedFields (the first
  one created it);
- ``controller``: each level of ownerReferences down the chain (Deployment -> ReplicaSets ->
  Pods, Job -> Pods ...), with the creating manager and time; for a pod, the owner that made it;
- then, for the *focus pod* (the pod itself, or the workload's first pod that is not ready, else
  its newest): ``scheduled`` (PodScheduled condition, Scheduled / FailedScheduling events),
  ``kubelet`` (Pulling/Pulled/Created/Started/Killing/Unhealthy/BackOff/Failed events and the
  Initialized/ContainersReady/Ready conditions), ``endpoints`` (EndpointSlices holding the pod's
  IP or naming it, dated by their managedFields), ``proxy`` (kube-proxy's last sync, when the
  caller could read it from the node; only after the endpoints).
- A stage not reached has ``time`` None and ``ok`` None; a stage that failed has ``ok`` False.
  Stages are ordered by time, those not reached last in stage order.
- ``pods``: the first :data:`MAX_PODS` pods by name (``podCount`` says how many there are); the
  controller stage lists its first :data:`MAX_STEPS` children as steps, then how many more.
- ``scheduling``: for a pending focus pod, what ``kyb explain-scheduling`` computes
  (:func:`kybernetes.scheduler.explain.explain_pod` on the cached nodes and pods) and the last
  FailedScheduling message; None otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kybernetes.api.podutil import is_pod_terminal
from kybernetes.console.rows import event_time
from kybernetes.scheduler.explain import Explanation, explain_pod

Obj = dict[str, Any]

STAGES = ("accepted", "controller", "scheduled", "kubelet", "endpoints", "proxy")
OWNED = {"Deployment": ("replicasets",), "ReplicaSet": ("pods",), "StatefulSet": ("pods",),
         "DaemonSet": ("pods",), "Job": ("pods",), "CronJob": ("jobs",)}
KUBELET_REASONS = ("Pulling", "Pulled", "Created", "Started", "Killing", "Unhealthy", "BackOff", "Failed",
                   "FailedMount", "FailedCreatePodSandBox")
MAX_STEPS = 50
MAX_PODS = 500
KUBELET_FAILURES = ("BackOff", "Failed", "FailedMount", "FailedCreatePodSandBox")


class Source(Protocol):
    """What the journey reads: the console's model, or a list of objects in tests."""

    def get(self, resource: str, namespace: str, name: str) -> Obj | None: ...
    def owned(self, resource: str, uid: str) -> list[Obj]: ...
    def events_for(self, kind: str, namespace: str, name: str) -> list[Obj]: ...
    def objects(self, resource: str, namespace: str = "") -> list[Obj]: ...


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _ref(obj: Obj) -> Obj:
    m = _meta(obj)
    return {"kind": obj.get("kind") or "", "namespace": m.get("namespace") or "", "name": m.get("name") or ""}


def _stage(stage: str, time: str | None, actor: str, title: str, detail: str, ok: bool | None, obj: Obj,
           steps: list[Obj] | None = None) -> Obj:
    return {"stage": stage, "time": time or None, "actor": actor, "title": title, "detail": detail,
            "ok": ok if time else None, "object": _ref(obj), "steps": steps or []}


def _creator(obj: Obj) -> str:
    """Who most likely created the object: Kubernetes records no creator, so the earliest entry of
    managedFields that is not a subresource's (a controller's status writes are ``status``
    entries, sorted first only by name), the first entry when every one is a subresource's."""
    fields = [f for f in _meta(obj).get("managedFields") or () if isinstance(f, dict)]
    spec_writers = [f for f in fields if not f.get("subresource")] or fields
    if not spec_writers:
        return ""
    first = min(spec_writers, key=lambda f: str(f.get("time") or ""))
    return str(first.get("manager") or "")


def accepted(obj: Obj) -> Obj:
    m = _meta(obj)
    fields = m.get("managedFields") or []
    steps = [{"time": f.get("time"), "title": f"{f.get('manager', '?')} ({f.get('operation', '?')})", "ok": True}
             for f in fields]
    creator = _creator(obj)
    detail = f"created by {creator}" if creator else "created"
    if len(fields) > 1:
        detail += f"; fields managed by {', '.join(sorted({str(f.get('manager')) for f in fields}))}"
    return _stage("accepted", m.get("creationTimestamp"), "kube-apiserver",
                  f"{obj.get('kind', 'Object')} {m.get('name')} accepted by the API server", detail, True, obj, steps)


def owner_chain(src: Source, obj: Obj) -> list[list[Obj]]:
    """The generations of objects owned by ``obj``, down to pods (each level sorted by name)."""
    levels: list[list[Obj]] = []
    current = [obj]
    while current:
        nxt: list[Obj] = []
        for o in current:
            for resource in OWNED.get(str(o.get("kind")), ()):
                nxt += src.owned(resource, str(_meta(o).get("uid")))
        if not nxt:
            break
        nxt.sort(key=lambda o: str(_meta(o).get("name")))
        levels.append(nxt)
        current = nxt
    return levels


def controller(src: Source, obj: Obj, levels: list[list[Obj]]) -> Obj | None:
    if obj.get("kind") == "Pod":
        owners = [r for r in _meta(obj).get("ownerReferences") or () if r.get("controller")]
        if not owners:
            return None
        o = owners[0]
        return _stage("controller", _meta(obj).get("creationTimestamp"), _creator(obj) or "controller",
                      f"created by {o.get('kind')} {o.get('name')}", f"ownerReference uid {o.get('uid')}", True, obj)
    steps = []
    for level in levels:
        for child in level:
            m = _meta(child)
            steps.append({"time": m.get("creationTimestamp"), "ok": True,
                          "title": f"{child.get('kind', '')} {m.get('name')} created by {_creator(child) or '?'}",
                          "object": _ref(child)})
    if not steps:
        return _stage("controller", None, "", "no objects created yet", "", None, obj)
    last = max(str(s["time"] or "") for s in steps)
    if len(steps) > MAX_STEPS:  # a Deployment of thousands of pods: the first ones, and a count
        steps = [*steps[:MAX_STEPS], {"time": None, "ok": True, "title": f"and {len(steps) - MAX_STEPS} more"}]
    summary = ", ".join(f"{len(level)} {level[0].get('kind', 'object')}(s)" for level in levels)
    return _stage("controller", last, _creator(levels[0][0]) or "controller", f"controllers created {summary}",
                  "ownerReferences: " + " -> ".join(level[0].get("kind", "") for level in [[obj], *levels]),
                  True, obj, steps)


def _cond(pod: Obj, ctype: str) -> Obj | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or () if c.get("type") == ctype), None)


def _event_steps(events: list[Obj], reasons: tuple[str, ...]) -> list[Obj]:
    steps = [{"time": event_time(e), "title": f"{e.get('reason')}: {e.get('message', '')}",
              "ok": e.get("type") != "Warning", "count": e.get("count") or 1}
             for e in events if e.get("reason") in reasons]
    return sorted(steps, key=lambda s: s["time"])


def scheduled(src: Source, pod: Obj) -> Obj:
    m = _meta(pod)
    events = src.events_for("Pod", m.get("namespace") or "", m.get("name") or "")
    steps = _event_steps(events, ("Scheduled", "FailedScheduling"))
    cond = _cond(pod, "PodScheduled")
    node = (pod.get("spec") or {}).get("nodeName") or ""
    if node and (cond is None or cond.get("status") == "True"):
        msg = next((s["title"] for s in reversed(steps) if s["title"].startswith("Scheduled")), "")
        when = (cond or {}).get("lastTransitionTime") or (steps[-1]["time"] if steps else None)
        return _stage("scheduled", when or m.get("creationTimestamp"), "default-scheduler",
                      f"scheduled to {node}", msg, True, pod, steps)
    failed = next((s for s in reversed(steps) if s["title"].startswith("FailedScheduling")), None)
    if (cond is not None and cond.get("status") == "False") or failed is not None:
        # The event may be seen before the condition (the scheduler writes both): either says it failed.
        cond = cond if cond is not None and cond.get("status") == "False" else {}
        message = cond.get("message") or (failed["title"].removeprefix("FailedScheduling: ") if failed else "")
        return _stage("scheduled", cond.get("lastTransitionTime") or (failed or {}).get("time"), "default-scheduler",
                      f"not scheduled: {cond.get('reason') or 'Unschedulable'}", message, False, pod, steps)
    return _stage("scheduled", None, "default-scheduler", "waiting for the scheduler", "", None, pod, steps)


def kubelet(src: Source, pod: Obj) -> Obj:
    m = _meta(pod)
    events = src.events_for("Pod", m.get("namespace") or "", m.get("name") or "")
    steps = _event_steps(events, KUBELET_REASONS)
    for ctype in ("Initialized", "ContainersReady", "Ready"):
        c = _cond(pod, ctype)
        if c is not None and c.get("lastTransitionTime"):
            steps.append({"time": c["lastTransitionTime"], "title": f"{ctype}={c.get('status')}",
                          "ok": c.get("status") == "True"})
    steps.sort(key=lambda s: s["time"])
    node = (pod.get("spec") or {}).get("nodeName") or ""
    ready = _cond(pod, "Ready")
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    failing = [s for s in steps if not s["ok"] and any(s["title"].startswith(r) for r in KUBELET_FAILURES)]
    if ready is not None and ready.get("status") == "True":
        return _stage("kubelet", ready.get("lastTransitionTime"), f"kubelet on {node}",
                      "containers running and ready", phase, True, pod, steps)
    if phase in ("Succeeded", "Failed"):
        last = steps[-1]["time"] if steps else m.get("creationTimestamp")
        return _stage("kubelet", last, f"kubelet on {node}", f"pod {phase.lower()}", phase,
                      phase == "Succeeded", pod, steps)
    if not node or not steps:
        return _stage("kubelet", None, f"kubelet on {node}" if node else "kubelet", "not started yet", "", None,
                      pod, steps)
    if failing:
        return _stage("kubelet", failing[-1]["time"], f"kubelet on {node}", "containers failing",
                      failing[-1]["title"], False, pod, steps)
    return _stage("kubelet", steps[-1]["time"], f"kubelet on {node}", "starting containers",
                  steps[-1]["title"], None, pod, steps)


def _slice_time(sl: Obj) -> str:
    times = [str(f.get("time")) for f in _meta(sl).get("managedFields") or () if f.get("time")]
    return max(times) if times else str(_meta(sl).get("creationTimestamp") or "")


def holding_slices(src: Source, pod: Obj) -> list[Obj]:
    """The EndpointSlices of the pod's namespace that hold its IP or name it in a targetRef."""
    m = _meta(pod)
    ip = (pod.get("status") or {}).get("podIP")
    uid = m.get("uid")
    out = []
    for sl in src.objects("endpointslices", m.get("namespace") or ""):
        for ep in sl.get("endpoints") or ():
            if (ip and ip in (ep.get("addresses") or ())) or (ep.get("targetRef") or {}).get("uid") == uid:
                out.append(sl)
                break
    return out


def endpoints(src: Source, pod: Obj, slices: list[Obj]) -> Obj:
    if not slices:
        return _stage("endpoints", None, "endpointslice-controller", "in no Service's endpoints",
                      "no EndpointSlice holds this pod (no Service selects it, or it is not ready)", None, pod)
    services = sorted({str((_meta(s).get("labels") or {}).get("kubernetes.io/service-name", "?")) for s in slices})
    steps = [{"time": _slice_time(s), "title": f"EndpointSlice {_meta(s).get('name')}", "ok": True,
              "object": _ref(s)} for s in slices]
    return _stage("endpoints", max(_slice_time(s) for s in slices), "endpointslice-controller",
                  f"endpoints of Service {', '.join(services)}", f"{len(slices)} EndpointSlice(s)", True, pod, steps)


def proxy(pod: Obj, endpoints_stage: Obj, proxy_synced: str | None) -> Obj:
    node = (pod.get("spec") or {}).get("nodeName") or ""
    actor = f"kube-proxy on {node}" if node else "kube-proxy"
    if endpoints_stage["time"] is None:
        return _stage("proxy", None, actor, "nothing to program", "the pod is in no Service's endpoints", None, pod)
    if not proxy_synced:
        return _stage("proxy", None, actor, "programming not observed",
                      "kube-proxy's metrics are not readable from here", None, pod)
    if proxy_synced < str(endpoints_stage["time"]):
        return _stage("proxy", None, actor, "waiting for kube-proxy", f"last sync {proxy_synced}", None, pod)
    return _stage("proxy", proxy_synced, actor, "rules programmed", "kubeproxy_sync_proxy_rules_last_timestamp",
                  True, pod)


def focus_pod(obj: Obj, levels: list[list[Obj]]) -> Obj | None:
    if obj.get("kind") == "Pod":
        return obj
    pods = [p for level in levels for p in level if p.get("kind") == "Pod"]
    live = [p for p in pods if not is_pod_terminal(p)] or pods
    not_ready = [p for p in live if (_cond(p, "Ready") or {}).get("status") != "True"]
    pick = not_ready or live
    return max(pick, key=lambda p: str(_meta(p).get("creationTimestamp"))) if pick else None


def explain_inputs(src: Source, pod: Obj) -> tuple[list[Obj], list[Obj], dict[str, Any]] | None:
    """What the scheduler's explanation of a pending pod reads (nodes, live pods, namespaces'
    labels), copied out of the cache; None for a pod that has a node or has finished."""
    if (pod.get("spec") or {}).get("nodeName") or is_pod_terminal(pod):
        return None
    pods = [p for p in src.objects("pods") if not is_pod_terminal(p)]
    namespaces = {str(_meta(n).get("name")): _meta(n).get("labels") or {} for n in src.objects("namespaces")}
    return src.objects("nodes"), pods, namespaces


def explain(pod: Obj, inputs: tuple[list[Obj], list[Obj], dict[str, Any]]) -> Explanation:
    """``kyb explain-scheduling``'s computation (CPU-bound: the server runs it in a thread)."""
    nodes, pods, namespaces = inputs
    return explain_pod(pod, nodes, pods, namespaces=namespaces)


def scheduling(src: Source, pod: Obj, exp: Explanation) -> Obj:
    """The journey's ``scheduling`` block: the explanation and the last FailedScheduling message."""
    m = _meta(pod)
    events = src.events_for("Pod", m.get("namespace") or "", m.get("name") or "")
    failed = [e for e in events if e.get("reason") == "FailedScheduling"]
    last = max(failed, key=event_time).get("message", "") if failed else ""
    return {"pod": exp.pod, "fits": [v.node for v in exp.feasible],
            "nodes": [{"node": v.node, "verdict": "fits" if v.fits else "rejected", "plugin": v.plugin,
                       "reasons": v.reasons} for v in exp.nodes],
            "suggestions": exp.suggestions, "message": last or exp.message, "explanation": exp.message}


def journey(src: Source, obj: Obj, proxy_synced: Callable[[str], str | None] | None = None, *,
            with_scheduling: bool = True) -> Obj:
    """The journey of ``obj`` (see the module contract); ``proxy_synced(node)`` reads kube-proxy's
    last sync time on a node, when it can. Without ``with_scheduling``, ``scheduling`` is left
    None for the caller to fill (:func:`explain_inputs`, :func:`explain`, :func:`scheduling`)."""
    levels = owner_chain(src, obj)
    stages = [accepted(obj)]
    ctrl = controller(src, obj, levels)
    if ctrl is not None:
        stages.append(ctrl)
    pod = focus_pod(obj, levels)
    sched = None
    if pod is not None:
        slices = holding_slices(src, pod)
        ep = endpoints(src, pod, slices)
        node = (pod.get("spec") or {}).get("nodeName") or ""
        synced = proxy_synced(node) if proxy_synced is not None and node and slices else None
        stages += [scheduled(src, pod), kubelet(src, pod), ep, proxy(pod, ep, synced)]
        inputs = explain_inputs(src, pod) if with_scheduling else None
        sched = scheduling(src, pod, explain(pod, inputs)) if inputs is not None else None
    order = {s: i for i, s in enumerate(STAGES)}
    stages.sort(key=lambda s: (s["time"] is None, s["time"] or "", order[s["stage"]]))
    pods = [p for level in levels for p in level if p.get("kind") == "Pod"] if obj.get("kind") != "Pod" else [obj]
    return {"object": {**_ref(obj), "uid": _meta(obj).get("uid") or ""}, "stages": stages,
            "pods": [{"name": _meta(p).get("name"), "phase": (p.get("status") or {}).get("phase") or "Pending",
                      "node": (p.get("spec") or {}).get("nodeName") or ""} for p in pods[:MAX_PODS]],
            "podCount": len(pods),
            "focus": _ref(pod) if pod is not None else None, "scheduling": sched}
