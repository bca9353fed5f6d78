"""Pod facts every component agrees on: conditions, readiness, and effective resource requests.

The Python home of Kubernetes' ``pkg/api/v1/pod/util.go`` (``GetPodCondition``, ``IsPodReady``,
``IsPodAvailable``) and ``k8s.io/component-helpers/resource`` (``PodRequests``). Pure functions
over plain-dict objects, tolerant of malformed input (a missing or non-dict part reads as
empty; nothing raises).

Contract:

* :func:`is_pod_terminal` / :func:`is_pod_active`: phase Succeeded/Failed; neither that nor
  being deleted (``controller.FilterActivePods``).
* :func:`pod_condition` is the *first* condition of the type, as ``GetPodCondition`` is;
  :func:`is_pod_ready` is "that Ready condition's status is ``True``".
* :func:`readiness_gates_unmet` lists the ``spec.readinessGates`` whose condition is not ``True``
  (``pkg/kubelet/status/generate.go``: Ready needs every gate).
* :func:`pod_resource_totals` is the one rule for a pod's effective requests or limits:
  ``max(sum over app containers + sidecars, each init container + the sidecars started before
  it) + spec.overhead``, where a sidecar is an init container with ``restartPolicy: Always``.
  It is generic over the value type so that the scheduler (integers) and quota (exact
  quantities) share it; :func:`pod_requests` is the scheduler's integer form.
* :func:`pod_qos_class` is ``GetPodQOS``: Guaranteed, Burstable or BestEffort (the API server sets
  ``status.qosClass`` with it; the kubelet places a pod's cgroup by it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kybernetes.api.quantity import cpu_millis, to_bytes
from kybernetes.api.timeutil import parse_epoch
from kybernetes.api.validation.fields import as_dict, as_list, quantity_or_none

V = TypeVar("V")

CPU = "cpu"


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- phase --------------------------------------------------------------------------------------


def is_pod_terminal(pod: Mapping[str, Any]) -> bool:
    """``IsPodTerminal``: phase ``Succeeded`` or ``Failed`` (the pod's containers will not run again)."""
    return _d(pod.get("status")).get("phase") in ("Succeeded", "Failed")


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """``controller.IsPodActive``: neither terminal nor being deleted."""
    return not is_pod_terminal(pod) and not _d(pod.get("metadata")).get("deletionTimestamp")


# --- conditions and readiness --------------------------------------------------------------------


def pod_condition(pod: Mapping[str, Any], ctype: str) -> dict[str, Any] | None:
    """The pod's first status condition of type ``ctype`` (``GetPodCondition``), or ``None``."""
    for c in _d(pod.get("status")).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """``IsPodReady``: the Ready condition is ``True``."""
    c = pod_condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def is_running_and_ready(pod: Mapping[str, Any]) -> bool:
    """``IsPodReady`` of a pod in phase ``Running`` (the StatefulSet and DaemonSet test)."""
    return _d(pod.get("status")).get("phase") == "Running" and is_pod_ready(pod)


def pod_ready_since(pod: Mapping[str, Any]) -> float | None:
    """POSIX time the pod last became ready (its Ready transition), if it is ready now."""
    c = pod_condition(pod, "Ready")
    if c is None or c.get("status") != "True":
        return None
    return parse_epoch(c.get("lastTransitionTime"))


def readiness_gates_unmet(spec: Mapping[str, Any], conditions: Iterable[Any]) -> list[str]:
    """The ``readinessGates`` condition types (in spec order) whose condition is absent or not ``True``.

    The first condition of a type decides (``GetPodConditionFromList``), as for :func:`pod_condition`.
    """
    status: dict[Any, Any] = {}
    for c in conditions:
        if isinstance(c, dict):
            status.setdefault(c.get("type"), c.get("status"))
    gates = [_d(g).get("conditionType") for g in spec.get("readinessGates") or ()]
    return [str(g) for g in gates if status.get(g) != "True"]


# --- resource requests ---------------------------------------------------------------------------


def pod_resource_totals(spec: Mapping[str, Any], values_of: Callable[[Mapping[str, Any]], Mapping[str, V]],
                        add: Callable[[V, V], V], greater: Callable[[V, V], bool],
                        overhead: Mapping[str, V]) -> dict[str, V]:
    """A pod's effective requests (or limits): ``resourcehelper.PodRequests``' rule.

    ``values_of(container)`` gives one container's amounts, ``add``/``greater`` combine and
    compare them, ``overhead`` is ``spec.overhead`` in the same value type. App containers and
    sidecars (init containers with ``restartPolicy: Always``) run together and add up; each
    plain init container runs alone next to the sidecars started before it; the pod needs the
    larger of the two, per resource, plus the overhead.
    """
    def add_into(acc: dict[str, V], more: Mapping[str, V]) -> None:
        for k, v in more.items():
            acc[k] = add(acc[k], v) if k in acc else v

    def max_into(acc: dict[str, V], other: Mapping[str, V]) -> None:
        for k, v in other.items():
            if k not in acc or greater(v, acc[k]):
                acc[k] = v

    total: dict[str, V] = {}
    for c in spec.get("containers") or ():
        add_into(total, values_of(_d(c)))
    sidecars: dict[str, V] = {}
    init_max: dict[str, V] = {}
    for c in spec.get("initContainers") or ():
        c = _d(c)
        if c.get("restartPolicy") == "Always":
            add_into(sidecars, values_of(c))
        else:
            step = dict(sidecars)
            add_into(step, values_of(c))
            max_into(init_max, step)
    add_into(total, sidecars)
    max_into(total, init_max)
    add_into(total, overhead)
    return total


def quantity_value(resource: str, value: Any) -> int:
    """A quantity as the integer the scheduler compares: millicores for cpu, units for the rest.

    A malformed quantity (in a stored object) is 0 rather than an exception.
    """
    try:
        return cpu_millis(value) if resource == CPU else to_bytes(value)
    except Exception:
        return 0


def resource_list(rl: Mapping[str, Any] | None) -> dict[str, int]:
    """A ``ResourceList`` as :func:`quantity_value` integers."""
    if not rl:
        return {}
    return {k: quantity_value(k, v) for k, v in rl.items()}


def container_requests(c: Mapping[str, Any]) -> dict[str, int]:
    """One container's requests as integers; a missing request falls back to the limit (API defaulting)."""
    res = c.get("resources") or {}
    out = resource_list(res.get("limits"))
    out.update(resource_list(res.get("requests")))
    return out


def _int_add(a: int, b: int) -> int:
    return a + b


def _int_greater(a: int, b: int) -> bool:
    return a > b


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """A pod's effective requests as :func:`quantity_value` integers, zero entries dropped."""
    spec = _d(pod.get("spec"))
    total = pod_resource_totals(spec, container_requests, _int_add, _int_greater, resource_list(spec.get("overhead")))
    return {k: v for k, v in total.items() if v}


def _init_and_app_containers(spec: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for field in ("initContainers", "containers"):
        for ctr in as_list(spec.get(field)):
            if isinstance(ctr, dict):
                yield ctr


def pod_qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort, from cpu and memory requests and limits (``GetPodQOS``)."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for ctr in _init_and_app_containers(spec):
        res = as_dict(ctr.get("resources"))
        for name, qty in as_dict(res.get("requests")).items():
            value = quantity_or_none(qty)
            if name in ("cpu", "memory") and value:
                have = requests.get(name)
                requests[name] = value if have is None else have + value
        ctr_limits = set()
        for name, qty in as_dict(res.get("limits")).items():
            value = quantity_or_none(qty)
            if name in ("cpu", "memory") and value:
                ctr_limits.add(name)
                have = limits.get(name)
                limits[name] = value if have is None else have + value
        if ctr_limits != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests.keys() == limits.keys() and all(requests[k] == limits[k] for k in requests):
        return "Guaranteed"
    return "Burstable"
