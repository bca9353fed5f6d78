"""What a hollow node says about itself: the Node, its Lease, and the status of its pods.

Pure functions over plain dicts, no I/O, so that the fleet (``nodes.py``) and the pod kubelet
(``pods.py``) only decide *when* to write and these decide *what*.

Addresses are data only — nothing ever listens on them, and nothing here connects to them:

- node ``i`` (counting from ``--first-index``) gets the InternalIP ``10.64.0.0 + i + 1`` (a /10,
  four million nodes before it runs out), away from the usual service (10.43/16, 10.96/12) and
  cluster (10.42/16, 10.244/16) ranges;
- when node IPAM has not given the node a ``spec.podCIDR`` its pods get addresses from the /24
  ``10.128.0.0 + 256 * i`` (the upper half of 10/8: 32,768 nodes), unique per node.

The shapes follow what a kubelet 1.32 writes (and what kwok copies): the four node conditions with
``KubeletReady``/``KubeletHas...`` reasons, ``nodeInfo``, ``daemonEndpoints``; for a pod the five
conditions, ``hostIP(s)``, ``podIP(s)``, ``startTime`` and one status per container.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from kybernetes.api import timeutil
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import readiness_gates_unmet
from kybernetes.api.timeutil import format_micro, format_rfc3339

HOLLOW_ANNOTATION = "kybernetes.io/hollow"
EXIT_AFTER_ANNOTATION = "kybernetes.io/hollow-exit-after"
EXIT_CODE_ANNOTATION = "kybernetes.io/hollow-exit-code"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
INSTANCE_TYPE = "hollow"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
KUBELET_VERSION = "v1.32.0-kyb-hollow"
RUNTIME_VERSION = "hollow://1.0"

_NODE_IP_BASE = int(ipaddress.IPv4Address("10.64.0.0"))
_NODE_IP_LIMIT = int(ipaddress.IPv4Address("10.128.0.0"))
_POD_NET_BASE = int(ipaddress.IPv4Address("10.128.0.0"))
_POD_NET_LIMIT = int(ipaddress.IPv4Address("11.0.0.0"))


def parse_duration(value: str) -> float:
    """A Go duration (``2s``, ``1m30s``, ``500ms``) or a bare number of seconds, in seconds."""
    return timeutil.parse_duration(value.strip(), bare_seconds=True)


# --- nodes ------------------------------------------------------------------------------------


@dataclass
class NodeShape:
    """What every node of the fleet has in common (from the command line)."""

    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c")
    extra_labels: dict[str, str] = field(default_factory=dict)


def node_ip(index: int) -> str:
    value = _NODE_IP_BASE + index + 1
    if value >= _NODE_IP_LIMIT:
        raise ValueError(f"node index {index} is past the hollow node address range")
    return str(ipaddress.IPv4Address(value))


def default_pod_cidr(index: int) -> str:
    value = _POD_NET_BASE + (index << 8)
    if value >= _POD_NET_LIMIT:
        raise ValueError(f"node index {index} is past the hollow pod address range")
    return f"{ipaddress.IPv4Address(value)}/24"


def _stable_id(name: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{name}".encode()).hexdigest()[:32]


def node_conditions(ready: bool, transition: str, heartbeat: str) -> list[Obj]:
    """The kubelet's four conditions: healthy when ``ready``; else Ready=False (NotReady)."""
    def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
        return {"type": ctype, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition}

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status") if ready else
        cond("Ready", "False", "KubeletNotReady", "hollow kubelet is not ready"),
    ]


def node_object(name: str, index: int, shape: NodeShape, now: float | None = None) -> Obj:
    """The Node a hollow kubelet registers (status included, as a kubelet does)."""
    ts = format_rfc3339(now)
    capacity = {"cpu": str(shape.cpu), "memory": str(shape.memory), "pods": str(shape.pods),
                "ephemeral-storage": str(shape.ephemeral_storage)}
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        INSTANCE_TYPE_LABEL: INSTANCE_TYPE,
        **shape.extra_labels,
    }
    if shape.zones:
        labels["topology.kubernetes.io/zone"] = shape.zones[index % len(shape.zones)]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {HOLLOW_ANNOTATION: "true", "node.alpha.kubernetes.io/ttl": "0"},
        },
        # As kwok's nodes carry kwok://: a cloud provider leaves a node of another scheme alone (the
        # local one never dials a hollow node's made-up address).
        "spec": {"providerID": f"hollow://{name}"},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": node_conditions(True, ts, ts),
            "addresses": [{"type": "InternalIP", "address": node_ip(index)},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _stable_id(name, "machine"),
                "systemUUID": _stable_id(name, "system"),
                "bootID": _stable_id(name, "boot"),
                "kernelVersion": "6.1.0-hollow",
                "osImage": "Hollow Linux (kybernetes)",
                "containerRuntimeVersion": RUNTIME_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def lease_object(name: str, node_uid: str, now: float | None = None) -> Obj:
    """The node's heartbeat Lease in kube-node-lease, owned by the Node (as the kubelet does)."""
    meta: Obj = {"name": name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": format_micro(now)},
    }


# --- pods -------------------------------------------------------------------------------------


class PodAddresses:
    """Pod IPs of one node's range: lowest free host first, released when the sandbox goes."""

    __slots__ = ("network", "used")

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.used: set[int] = set()

    def allocate(self) -> str | None:
        # .0 is the network, .1 the gateway (a bridge CNI's convention), the last is broadcast.
        last = min(self.network.num_addresses - 2, 1 << 16)
        for offset in range(2, last + 1):
            if offset not in self.used:
                self.used.add(offset)
                return str(self.network.network_address + offset)
        return None

    def reserve(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr not in self.network:
            return False
        self.used.add(int(addr) - int(self.network.network_address))
        return True

    def release(self, ip: str) -> None:
        try:
            self.used.discard(int(ipaddress.ip_address(ip)) - int(self.network.network_address))
        except ValueError:
            pass


def _image_id(image: str) -> str:
    return f"hollow://sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _container_id(uid: str, name: str, restarts: int = 0) -> str:
    return f"hollow://{hashlib.sha256(f'{uid}/{name}/{restarts}'.encode()).hexdigest()[:32]}"


def _pod_condition(ctype: str, status: str, ts: str, reason: str = "") -> Obj:
    cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": ts}
    if reason:
        cond["reason"] = reason
    return cond


def running_status(pod: Obj, host_ip: str, pod_ip: str, now: float | None = None) -> Obj:
    """The status of a pod whose containers all started: Running and (gates permitting) Ready."""
    ts = format_rfc3339(now)
    spec = pod.get("spec") or {}
    uid = pod["metadata"].get("uid", "")
    ready = not readiness_gates_unmet(spec, (pod.get("status") or {}).get("conditions") or ())
    init_statuses = []
    for ctr in spec.get("initContainers") or []:
        cid = _container_id(uid, ctr["name"])
        base = {"name": ctr["name"], "image": ctr.get("image", ""), "imageID": _image_id(ctr.get("image", "")),
                "containerID": cid, "restartCount": 0}
        if ctr.get("restartPolicy") == "Always":  # a sidecar: runs alongside the main containers
            init_statuses.append({**base, "ready": True, "started": True,
                                  "state": {"running": {"startedAt": ts}}})
        else:
            init_statuses.append({**base, "ready": True, "started": False, "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": ts, "finishedAt": ts, "containerID": cid}}})
    statuses = [
        {"name": ctr["name"], "image": ctr.get("image", ""), "imageID": _image_id(ctr.get("image", "")),
         "containerID": _container_id(uid, ctr["name"]), "ready": True, "started": True, "restartCount": 0,
         "state": {"running": {"startedAt": ts}}, "lastState": {}}
        for ctr in spec.get("containers") or []
    ]
    status: Obj = {
        "phase": "Running",
        "conditions": [
            _pod_condition("PodReadyToStartContainers", "True", ts),
            _pod_condition("Initialized", "True", ts),
            _pod_condition("Ready", "True" if ready else "False", ts, "" if ready else "ReadinessGatesNotReady"),
            _pod_condition("ContainersReady", "True", ts),
            _pod_condition("PodScheduled", "True", ts),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": ts,
        "containerStatuses": statuses,
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status


def terminated_status(pod: Obj, exit_code: int, now: float | None = None) -> Obj:
    """The status of a pod whose containers all exited with ``exit_code``: Succeeded or Failed."""
    ts = format_rfc3339(now)
    uid = pod["metadata"].get("uid", "")
    old = pod.get("status") or {}
    started = {c.get("name"): ((c.get("state") or {}).get("running") or {}).get("startedAt", ts)
               for c in old.get("containerStatuses") or []}
    reason = "Completed" if exit_code == 0 else "Error"
    statuses = []
    for ctr in (pod.get("spec") or {}).get("containers") or []:
        cid = _container_id(uid, ctr["name"])
        statuses.append({
            "name": ctr["name"], "image": ctr.get("image", ""), "imageID": _image_id(ctr.get("image", "")),
            "containerID": cid, "ready": False, "started": False, "restartCount": 0, "lastState": {},
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, "containerID": cid,
                                     "startedAt": started.get(ctr["name"], ts), "finishedAt": ts}},
        })
    conds = {c.get("type"): c for c in old.get("conditions") or []}

    def keep(ctype: str) -> Obj:
        return conds.get(ctype) or _pod_condition(ctype, "True", ts)

    return {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "conditions": [
            _pod_condition("PodReadyToStartContainers", "False", ts),
            keep("Initialized"),
            _pod_condition("Ready", "False", ts, "PodCompleted"),
            _pod_condition("ContainersReady", "False", ts, "PodCompleted"),
            keep("PodScheduled"),
        ],
        "containerStatuses": statuses,
    }


def exit_plan(pod: Obj) -> tuple[float, int] | None:
    """(seconds after start, exit code) when the pod asks to finish and its restart policy lets it.

    Only ``Never`` and ``OnFailure`` pods finish; an ``OnFailure`` pod whose containers fail would
    be restarted by a kubelet forever, so only its exit code 0 ends it (a failing one keeps running).
    """
    annotations = pod["metadata"].get("annotations") or {}
    after = annotations.get(EXIT_AFTER_ANNOTATION)
    if after is None:
        return None
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if policy == "Always":
        return None
    try:
        seconds = parse_duration(str(after))
        code = int(annotations.get(EXIT_CODE_ANNOTATION, "0"))
    except ValueError:
        return None
    if policy == "OnFailure" and code != 0:
        return None
    return seconds, code
