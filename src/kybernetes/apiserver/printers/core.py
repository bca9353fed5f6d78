"""Printers for the core (``""``) API group: pods, nodes, services, events, volumes and friends.

Each ``_x_cells`` function computes one row from the JSON (v1) form of an object, the way the
matching ``printX`` function in Kubernetes' ``pkg/printers/internalversion`` does from the internal
form. The API server always asks for the wide variant (kubectl drops priority-1 columns itself
unless ``-o wide``), so every function returns all cells. Where Kubernetes relies on a value the
v1-to-internal conversion or defaulting fills in (``podIPs`` from ``podIP``, ``clusterIPs`` from
``clusterIP``, ``replicas`` defaulting to 1) we fall back the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.apiserver.printers._common import (
    CONTAINERS_DESC,
    IMAGES_DESC,
    JSON,
    Cells,
    Column,
    Printer,
    age,
    age_col,
    col,
    container_cells,
    dig,
    dint,
    dlist,
    dmap,
    dstr,
    format_labels,
    is_deleting,
    name_col,
    name_of,
    replicas_printer,
    since,
)

# ----------------------------------------------------------------------------------------------- Pod

_NODE_LOST = "NodeLost"  # the reason the node lifecycle controller gives pods on an unreachable node


def _restartable(init_spec: dict[str, JSON], name: str) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return init_spec.get(name, {}).get("restartPolicy") == "Always"


def _condition_true(conditions: list[Any], type_: str) -> bool:
    for c in conditions:
        if isinstance(c, dict) and c.get("type") == type_:
            return c.get("status") == "True"
    return False


def _later(current: datetime | None, finished: Any) -> datetime | None:
    t = parse_rfc3339(finished)
    if t is not None and (current is None or current < t):
        return t
    return current


def pod_status(pod: JSON) -> tuple[int, int, str, int, datetime | None]:
    """(ready containers, total containers, STATUS reason, restarts, last restart time) of a pod."""
    spec, status = dmap(pod, "spec"), dmap(pod, "status")
    init_specs = {str(c.get("name")): c for c in dlist(spec, "initContainers") if isinstance(c, dict)}
    conditions = dlist(status, "conditions")
    phase = dstr(status, "phase")

    total = len(dlist(spec, "containers")) + sum(1 for n in init_specs if _restartable(init_specs, n))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    reason = dstr(status, "reason") or phase
    for c in conditions:
        if isinstance(c, dict) and c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = [s for s in dlist(status, "initContainerStatuses") if isinstance(s, dict)]
    for i, cs in enumerate(init_statuses):
        cname = str(cs.get("name"))
        count = dint(cs, "restartCount")
        restarts += count
        finished = dig(cs, "lastState", "terminated", "finishedAt")
        last_restart = _later(last_restart, finished)
        if _restartable(init_specs, cname):
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        terminated = dmap(cs, "state", "terminated")
        waiting = dmap(cs, "state", "waiting")
        has_terminated = isinstance(dig(cs, "state", "terminated"), dict)
        if has_terminated and dint(terminated, "exitCode") == 0:
            continue
        if _restartable(init_specs, cname) and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if has_terminated:
            # Initialisation failed.
            if terminated.get("reason"):
                reason = "Init:" + str(terminated["reason"])
            elif dint(terminated, "signal"):
                reason = f"Init:Signal:{dint(terminated, 'signal')}"
            else:
                reason = f"Init:ExitCode:{dint(terminated, 'exitCode')}"
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        # Only sidecar restarts count once the pod is initialised.
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        statuses = [s for s in dlist(status, "containerStatuses") if isinstance(s, dict)]
        # Walk backwards so the first container's state wins, as in Kubernetes.
        for cs in reversed(statuses):
            restarts += dint(cs, "restartCount")
            last_restart = _later(last_restart, dig(cs, "lastState", "terminated", "finishedAt"))
            waiting = dmap(cs, "state", "waiting")
            terminated_v = dig(cs, "state", "terminated")
            terminated = terminated_v if isinstance(terminated_v, dict) else {}
            if waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(terminated_v, dict) and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif isinstance(terminated_v, dict):
                if dint(terminated, "signal"):
                    reason = f"Signal:{dint(terminated, 'signal')}"
                else:
                    reason = f"ExitCode:{dint(terminated, 'exitCode')}"
            elif cs.get("ready") is True and isinstance(dig(cs, "state", "running"), dict):
                has_running = True
                ready += 1
        # A "Completed" container next to a running one means the pod as a whole is still up.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if is_deleting(pod) and dstr(status, "reason") == _NODE_LOST:
        reason = "Unknown"
    elif is_deleting(pod) and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return ready, total, reason, restarts, last_restart


def _pod_cells(pod: JSON, now: datetime) -> Cells:
    spec, status = dmap(pod, "spec"), dmap(pod, "status")
    ready, total, reason, restarts, last_restart = pod_status(pod)
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({since(last_restart.isoformat(), now)} ago)"
    ips = [p.get("ip") for p in dlist(status, "podIPs") if isinstance(p, dict)]
    ip = (ips[0] if ips else "") or dstr(status, "podIP") or "<none>"
    gates = [g for g in dlist(spec, "readinessGates") if isinstance(g, dict)]
    gates_cell = "<none>"
    if gates:
        conditions = [c for c in dlist(status, "conditions") if isinstance(c, dict)]
        true_count = 0
        for g in gates:
            for c in conditions:
                if c.get("type") == g.get("conditionType"):
                    true_count += c.get("status") == "True"
                    break
        gates_cell = f"{true_count}/{len(gates)}"
    return [
        name_of(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age(pod, now),
        ip,
        dstr(spec, "nodeName") or "<none>",
        dstr(status, "nominatedNodeName") or "<none>",
        gates_cell,
    ]


def _pod_conditions(pod: JSON) -> list[JSON]:
    phase = dstr(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []


POD = Printer(
    (
        name_col(),
        col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        col("Status", description="The aggregate status of the containers in this pod."),
        col("Restarts", description="How many times the pod's containers restarted, and when the last did."),
        age_col(),
        col("IP", description="The pod's IP address.", priority=1),
        col("Node", description="The node the pod is bound to.", priority=1),
        col("Nominated Node", description="The node the scheduler nominated by preemption.", priority=1),
        col("Readiness Gates", description="How many of the pod's readiness gates are true.", priority=1),
    ),
    _pod_cells,
    _pod_conditions,
)


def _pod_template_cells(obj: JSON, now: datetime) -> Cells:
    names, images = container_cells(dig(obj, "template", "spec"))
    return [name_of(obj), names, images, format_labels(dig(obj, "template", "metadata", "labels"))]


POD_TEMPLATE = Printer(
    (
        name_col(),
        col("Containers", description=CONTAINERS_DESC),
        col("Images", description=IMAGES_DESC),
        col("Pod Labels", description="The labels for the pod template."),
    ),
    _pod_template_cells,
)

# ---------------------------------------------------------------------------------------------- Node


def node_roles(node: JSON) -> str:
    """Roles from ``node-role.kubernetes.io/<role>`` keys and a ``kubernetes.io/role`` value."""
    roles: set[str] = set()
    for k, v in dmap(node, "metadata", "labels").items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(str(v))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: JSON, type_: str) -> str:
    for a in dlist(node, "status", "addresses"):
        if isinstance(a, dict) and a.get("type") == type_:
            return str(a.get("address", ""))
    return "<none>"


def _node_cells(node: JSON, now: datetime) -> Cells:
    status: list[str] = []
    for c in dlist(node, "status", "conditions"):
        # Only the Ready condition is shown; the last one listed wins, like Kubernetes' map.
        if isinstance(c, dict) and c.get("type") == "Ready":
            status = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if dig(node, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    info = dmap(node, "status", "nodeInfo")
    return [
        name_of(node),
        ",".join(status),
        node_roles(node),
        age(node, now),
        dstr(info, "kubeletVersion"),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        dstr(info, "osImage") or "<unknown>",
        dstr(info, "kernelVersion") or "<unknown>",
        dstr(info, "containerRuntimeVersion") or "<unknown>",
    ]


NODE = Printer(
    (
        name_col(),
        col("Status", description="The status of the node"),
        col("Roles", description="The roles of the node"),
        age_col(),
        col("Version", description="The kubelet version the node reports."),
        col("Internal-IP", description="The node's first InternalIP address.", priority=1),
        col("External-IP", description="The node's first ExternalIP address.", priority=1),
        col("OS-Image", description="The OS image the node reports.", priority=1),
        col("Kernel-Version", description="The kernel version the node reports.", priority=1),
        col("Container-Runtime", description="The container runtime and version the node reports.",
            priority=1),
    ),
    _node_cells,
)

# ------------------------------------------------------------------------------ simple core objects

NAMESPACE = Printer(
    (name_col(), col("Status", description="The status of the namespace"), age_col()),
    lambda o, now: [name_of(o), dstr(o, "status", "phase"), age(o, now)],
)

CONFIG_MAP = Printer(
    (name_col(), col("Data", description="The number of data and binaryData entries."), age_col()),
    lambda o, now: [name_of(o), len(dmap(o, "data")) + len(dmap(o, "binaryData")), age(o, now)],
)

SECRET = Printer(
    (
        name_col(),
        col("Type", description="The secret type."),
        col("Data", description="The number of data entries."),
        age_col(),
    ),
    lambda o, now: [name_of(o), dstr(o, "type"), len(dmap(o, "data")), age(o, now)],
)

SERVICE_ACCOUNT = Printer(
    (name_col(), col("Secrets", description="The number of secrets listed in the account."), age_col()),
    lambda o, now: [name_of(o), len(dlist(o, "secrets")), age(o, now)],
)

# ------------------------------------------------------------------------------------------- Service


def _lb_ingress(ingress: list[Any]) -> list[str]:
    """The load balancer's IPs (or hostnames), de-duplicated and sorted, like a Go string set."""
    found: set[str] = set()
    for i in ingress:
        if isinstance(i, dict):
            if i.get("ip"):
                found.add(str(i["ip"]))
            elif i.get("hostname"):
                found.add(str(i["hostname"]))
    return sorted(found)


def service_external_ip(svc: JSON) -> str:
    spec = dmap(svc, "spec")
    type_ = dstr(spec, "type") or "ClusterIP"
    external = [str(x) for x in dlist(spec, "externalIPs")]
    if type_ in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if type_ == "LoadBalancer":
        # The server renders wide cells, so the list is never clipped here.
        lb = _lb_ingress(dlist(svc, "status", "loadBalancer", "ingress"))
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if type_ == "ExternalName":
        return dstr(spec, "externalName")
    return "<unknown>"


def service_ports(svc: JSON) -> str:
    pieces = []
    for p in dlist(svc, "spec", "ports"):
        if not isinstance(p, dict):
            continue
        proto = p.get("protocol") or "TCP"
        node_port = dint(p, "nodePort")
        if node_port > 0:
            pieces.append(f"{dint(p, 'port')}:{node_port}/{proto}")
        else:
            pieces.append(f"{dint(p, 'port')}/{proto}")
    return ",".join(pieces) or "<none>"


def _service_cells(svc: JSON, now: datetime) -> Cells:
    spec = dmap(svc, "spec")
    ips = [str(x) for x in dlist(spec, "clusterIPs")]
    cluster_ip = (ips[0] if ips else "") or dstr(spec, "clusterIP") or "<none>"
    return [
        name_of(svc),
        dstr(spec, "type") or "ClusterIP",  # what defaulting would have filled in
        cluster_ip,
        service_external_ip(svc),
        service_ports(svc),
        age(svc, now),
        format_labels(dig(spec, "selector")),
    ]


SERVICE = Printer(
    (
        name_col(),
        col("Type", description="How the service is exposed."),
        col("Cluster-IP", description="The service's cluster IP address."),
        col("External-IP", description="External addresses the service is reachable at."),
        col("Port(s)", description="The ports the service exposes."),
        age_col(),
        col("Selector", description="The label selector of the pods behind the service.", priority=1),
    ),
    _service_cells,
)

# ----------------------------------------------------------------------------------------- Endpoints


def _join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: IPv6 addresses get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_endpoints(ep: JSON) -> str:
    subsets = [s for s in dlist(ep, "subsets") if isinstance(s, dict)]
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addresses = [a for a in dlist(ss, "addresses") if isinstance(a, dict)]
        ports = [p for p in dlist(ss, "ports") if isinstance(p, dict)]
        if not ports:
            # Headless services may have no ports: just list the addresses.
            count += len(addresses)
            for a in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(str(a.get("ip", "")))
            continue
        for p in ports:
            count += len(addresses)
            for a in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_join_host_port(str(a.get("ip", "")), dint(p, "port")))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


ENDPOINTS = Printer(
    (name_col(), col("Endpoints", description="The addresses and ports of the endpoints."), age_col()),
    lambda o, now: [name_of(o), format_endpoints(o), age(o, now)],
)

# ------------------------------------------------------------------------------------------- Events


def _event_source(component: str, host: str) -> str:
    return f"{component}, {host}" if host else component


def event_cells(ev: JSON, now: datetime) -> Cells:
    """The event row (``printEvent``), from a core/v1 Event; events.k8s.io/v1 events are the same
    objects and are printed from this form too."""
    first, last = ev.get("firstTimestamp"), ev.get("lastTimestamp")
    first_cell = since(first, now) if parse_rfc3339(first) else since(ev.get("eventTime"), now)
    last_cell = since(last, now) if parse_rfc3339(last) else first_cell
    count = dint(ev, "count")
    series = dig(ev, "series")
    if isinstance(series, dict):
        last_cell = since(series.get("lastObservedTime"), now)
        count = dint(series, "count")
    elif count == 0:
        # Singleton events of the new API carry no count.
        count = 1
    involved, source = dmap(ev, "involvedObject"), dmap(ev, "source")
    kind, name = str(involved.get("kind") or ""), str(involved.get("name") or "")
    target = f"{kind.lower()}/{name}" if name else kind.lower()
    src = _event_source(
        dstr(source, "component") or dstr(ev, "reportingComponent"),
        dstr(source, "host") or dstr(ev, "reportingInstance"),
    )
    return [
        last_cell,
        dstr(ev, "type"),
        dstr(ev, "reason"),
        target,
        str(involved.get("fieldPath") or ""),
        src,
        dstr(ev, "message").strip(),
        first_cell,
        count,
        name_of(ev),
    ]


EVENT_COLUMNS = (
    col("Last Seen", description="When the event was last observed."),
    col("Type", description="Normal or Warning."),
    col("Reason", description="Why the event happened, in a short machine-readable form."),
    col("Object", description="The object the event is about."),
    col("Subobject", description="The part of the object the event is about.", priority=1),
    col("Source", description="The component (and host) that reported the event.", priority=1),
    col("Message", description="A human-readable description of the event."),
    col("First Seen", description="When the event was first observed.", priority=1),
    col("Count", description="How many times the event happened.", priority=1),
    # The event's own name is a wide column, yet still the one marked as the name.
    Column("Name", "string", "name", "The event's name.", 1),
)



EVENT = Printer(EVENT_COLUMNS, event_cells)

# ----------------------------------------------------------------------------------- ResourceQuota


def _quota_cells(rq: JSON, now: datetime) -> Cells:
    hard, used = dmap(rq, "status", "hard"), dmap(rq, "status", "used")
    requests: list[str] = []
    limits: list[str] = []
    for res in sorted(hard):
        out = limits if res.split(".")[0] == "limits" and "." in res else requests
        out.append(f"{res}: {used.get(res, '0')}/{hard[res]}")
    return [name_of(rq), ", ".join(requests), ", ".join(limits), age(rq, now)]


RESOURCE_QUOTA = Printer(
    (
        name_col(),
        col("Request", description="Used and hard amounts of the requests-type resources."),
        col("Limit", description="Used and hard amounts of the limits-type resources."),
        age_col(),
    ),
    _quota_cells,
)

# ------------------------------------------------------------------------------------ Volumes (PV/C)

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def access_modes(modes: list[Any]) -> str:
    """``GetAccessModesAsString``: short forms in a fixed order, duplicates dropped."""
    return ",".join(short for full, short in _ACCESS_MODES if full in modes)


_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


def _pv_cells(pv: JSON, now: datetime) -> Cells:
    spec = dmap(pv, "spec")
    claim = ""
    ref = dig(spec, "claimRef")
    if isinstance(ref, dict):
        claim = f"{ref.get('namespace') or ''}/{ref.get('name') or ''}"
    phase = "Terminating" if is_deleting(pv) else dstr(pv, "status", "phase")
    klass = dmap(pv, "metadata", "annotations").get(_BETA_CLASS) or dstr(spec, "storageClassName")
    capacity = dig(spec, "capacity", "storage")
    return [
        name_of(pv),
        str(capacity) if capacity is not None else "0",
        access_modes(dlist(spec, "accessModes")),
        dstr(spec, "persistentVolumeReclaimPolicy"),
        phase,
        claim,
        klass,
        dstr(spec, "volumeAttributesClassName") or "<unset>",
        dstr(pv, "status", "reason"),
        age(pv, now),
        dstr(spec, "volumeMode") or "<unset>",
    ]


PERSISTENT_VOLUME = Printer(
    (
        name_col(),
        col("Capacity", description="The volume's storage capacity."),
        col("Access Modes", description="How the volume can be mounted."),
        col("Reclaim Policy", description="What happens to the volume when its claim is released."),
        col("Status", description="The volume's phase."),
        col("Claim", description="The claim bound to the volume."),
        col("StorageClass", description="StorageClass of the pv"),
        col("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        col("Reason", description="Why the volume is in its phase."),
        age_col(),
        col("VolumeMode", description="Filesystem or Block.", priority=1),
    ),
    _pv_cells,
)


def _pvc_cells(pvc: JSON, now: datetime) -> Cells:
    spec = dmap(pvc, "spec")
    phase = "Terminating" if is_deleting(pvc) else dstr(pvc, "status", "phase")
    capacity, modes = "", ""
    if dstr(spec, "volumeName"):
        modes = access_modes(dlist(pvc, "status", "accessModes"))
        cap = dig(pvc, "status", "capacity", "storage")
        capacity = str(cap) if cap is not None else "0"
    klass = dmap(pvc, "metadata", "annotations").get(_BETA_CLASS)
    if klass is None:
        klass = dstr(spec, "storageClassName")
    return [
        name_of(pvc),
        phase,
        dstr(spec, "volumeName"),
        capacity,
        modes,
        klass,
        dstr(spec, "volumeAttributesClassName") or "<unset>",
        age(pvc, now),
        dstr(spec, "volumeMode") or "<unset>",
    ]


PERSISTENT_VOLUME_CLAIM = Printer(
    (
        name_col(),
        col("Status", description="The claim's phase."),
        col("Volume", description="The volume bound to the claim."),
        col("Capacity", description="The bound volume's capacity."),
        col("Access Modes", description="How the bound volume can be mounted."),
        col("StorageClass", description="StorageClass of the pvc"),
        col("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
        age_col(),
        col("VolumeMode", description="Filesystem or Block.", priority=1),
    ),
    _pvc_cells,
)

# ---------------------------------------------------------------------------- ReplicationController


REPLICATION_CONTROLLER = replicas_printer(format_labels, "The label selector of the replicas.")


def _component_status_cells(cs: JSON, now: datetime) -> Cells:
    """``printComponentStatus``: the Healthy condition as Healthy/Unhealthy, with its message and error."""
    status, message, error = "Unknown", "", ""
    for c in dlist(cs, "conditions"):
        if isinstance(c, dict) and c.get("type") == "Healthy":
            status = "Healthy" if c.get("status") == "True" else "Unhealthy"
            message, error = str(c.get("message") or ""), str(c.get("error") or "")
            break
    return [name_of(cs), status, message, error]


COMPONENT_STATUS = Printer(
    (
        name_col(),
        col("Status", description="Whether the component is healthy (its Healthy condition)."),
        col("Message", description="What the component's health check said."),
        col("Error", description="Why the component's health check failed."),
    ),
    _component_status_cells,
)


BY_KIND: dict[str, Printer] = {
    "ComponentStatus": COMPONENT_STATUS,
    "Pod": POD,
    "PodTemplate": POD_TEMPLATE,
    "Node": NODE,
    "Namespace": NAMESPACE,
    "ConfigMap": CONFIG_MAP,
    "Secret": SECRET,
    "ServiceAccount": SERVICE_ACCOUNT,
    "Service": SERVICE,
    "Endpoints": ENDPOINTS,
    "Event": EVENT,
    "ResourceQuota": RESOURCE_QUOTA,
    "PersistentVolume": PERSISTENT_VOLUME,
    "PersistentVolumeClaim": PERSISTENT_VOLUME_CLAIM,
    "ReplicationController": REPLICATION_CONTROLLER,
}

__all__ = ["BY_KIND", "event_cells", "pod_status"]
