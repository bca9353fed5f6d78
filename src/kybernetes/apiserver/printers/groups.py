"""Printers for the named API groups: apps, batch, autoscaling, networking, storage, rbac and others.

Like :mod:`.core`, each row function mirrors Kubernetes' ``printX`` for the kind, always producing
the wide cells. The kinds Kubernetes has no printer for (Role, ClusterRole, LimitRange,
CustomResourceDefinition, ...) are not here: they get the default Name / Created At table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.apiserver.printers._common import (
    JSON,
    WIDE_TEMPLATE,
    Cells,
    Printer,
    age,
    age_col,
    aware,
    col,
    container_cells,
    dig,
    dint,
    dlist,
    dmap,
    dstr,
    format_label_selector,
    format_labels,
    human_duration,
    int_or_string,
    is_deleting,
    meta,
    name_col,
    name_of,
    replicas_printer,
    selector_string,
    since,
)

_SELECTOR_DESC = "The label selector of the managed pods."
_WIDE_SELECTOR = col("Selector", description=_SELECTOR_DESC, priority=1)

# ---------------------------------------------------------------------------------------------- apps


def _deployment_cells(d: JSON, now: datetime) -> Cells:
    names, images = container_cells(dig(d, "spec", "template", "spec"))
    sel = selector_string(dig(d, "spec", "selector"))
    return [
        name_of(d),
        f"{dint(d, 'status', 'readyReplicas')}/{dint(d, 'spec', 'replicas', default=1)}",
        dint(d, "status", "updatedReplicas"),
        dint(d, "status", "availableReplicas"),
        age(d, now),
        names,
        images,
        "<invalid>" if sel is None else sel,
    ]


DEPLOYMENT = Printer(
    (
        name_col(),
        col("Ready", description="Number of the pod with ready state"),
        col("Up-to-date", description="The number of replicas running the latest template."),
        col("Available", description="The number of replicas available to serve."),
        age_col(),
        *WIDE_TEMPLATE,
        _WIDE_SELECTOR,
    ),
    _deployment_cells,
)


REPLICA_SET = replicas_printer(format_label_selector, _SELECTOR_DESC)


def _stateful_set_cells(s: JSON, now: datetime) -> Cells:
    names, images = container_cells(dig(s, "spec", "template", "spec"))
    ready = f"{dint(s, 'status', 'readyReplicas')}/{dint(s, 'spec', 'replicas', default=1)}"
    return [name_of(s), ready, age(s, now), names, images]


STATEFUL_SET = Printer(
    (name_col(), col("Ready", description="Number of the pod with ready state"), age_col(), *WIDE_TEMPLATE),
    _stateful_set_cells,
)


def _daemon_set_cells(ds: JSON, now: datetime) -> Cells:
    status = dmap(ds, "status")
    names, images = container_cells(dig(ds, "spec", "template", "spec"))
    return [
        name_of(ds),
        dint(status, "desiredNumberScheduled"),
        dint(status, "currentNumberScheduled"),
        dint(status, "numberReady"),
        dint(status, "updatedNumberScheduled"),
        dint(status, "numberAvailable"),
        format_labels(dig(ds, "spec", "template", "spec", "nodeSelector")),
        age(ds, now),
        names,
        images,
        format_label_selector(dig(ds, "spec", "selector")),
    ]


DAEMON_SET = Printer(
    (
        name_col(),
        col("Desired", "integer", "The number of nodes that should run the daemon pod."),
        col("Current", "integer", "The number of nodes running at least one daemon pod."),
        col("Ready", "integer", "The number of nodes with a ready daemon pod."),
        col("Up-to-date", "integer", "The number of nodes running the latest daemon pod."),
        col("Available", "integer", "The number of nodes with an available daemon pod."),
        col("Node Selector", description="The node selector of the pod template."),
        age_col(),
        *WIDE_TEMPLATE,
        _WIDE_SELECTOR,
    ),
    _daemon_set_cells,
)


def _group_kind_name(api_version: str, kind: str, name: str) -> str:
    """``formatResourceName``: ``kind.group/name`` in lower case (``kind/name`` for core)."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    gk = f"{kind}.{group}" if group else kind
    return f"{gk.lower()}/{name}" if gk else name


def _controller_revision_cells(cr: JSON, now: datetime) -> Cells:
    controller = "<none>"
    for ref in meta(cr).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            controller = _group_kind_name(
                str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("name") or "")
            )
            break
    return [name_of(cr), controller, dint(cr, "revision"), age(cr, now)]


CONTROLLER_REVISION = Printer(
    (
        name_col(),
        col("Controller", description="Controller of the object"),
        col("Revision", description="The revision number of the captured state."),
        age_col(),
    ),
    _controller_revision_cells,
)

# --------------------------------------------------------------------------------------------- batch


def _job_condition(job: JSON, type_: str) -> bool:
    for c in dlist(job, "status", "conditions"):
        if isinstance(c, dict) and c.get("type") == type_:
            return c.get("status") == "True"
    return False


def job_status(job: JSON) -> str:
    if _job_condition(job, "Complete"):
        return "Complete"
    if _job_condition(job, "Failed"):
        return "Failed"
    if is_deleting(job):
        return "Terminating"
    if _job_condition(job, "Suspended"):
        return "Suspended"
    if _job_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_cells(job: JSON, now: datetime) -> Cells:
    spec = dmap(job, "spec")
    succeeded = dint(job, "status", "succeeded")
    if isinstance(dig(spec, "completions"), int):
        completions = f"{succeeded}/{dint(spec, 'completions')}"
    elif dint(spec, "parallelism") > 1:
        completions = f"{succeeded}/1 of {dint(spec, 'parallelism')}"
    else:
        completions = f"{succeeded}/1"
    start = parse_rfc3339(dig(job, "status", "startTime"))
    end = parse_rfc3339(dig(job, "status", "completionTime"))
    # Running jobs count up to now; finished ones show how long they took.
    duration = human_duration((end or aware(now)) - start) if start is not None else ""
    names, images = container_cells(dig(spec, "template", "spec"))
    return [
        name_of(job),
        job_status(job),
        completions,
        duration,
        age(job, now),
        names,
        images,
        format_label_selector(dig(spec, "selector")),
    ]


JOB = Printer(
    (
        name_col(),
        col("Status", description="Status of the job."),
        col("Completions", description="Succeeded pods out of the completions wanted."),
        col("Duration", description="Time required to complete the job."),
        age_col(),
        *WIDE_TEMPLATE,
        _WIDE_SELECTOR,
    ),
    _job_cells,
)


def _bool_ptr(v: Any) -> str:
    """``printBoolPtr``: ``True``/``False``, ``<unset>`` when absent."""
    if isinstance(v, bool):
        return "True" if v else "False"
    return "<unset>"


def _cron_job_cells(cj: JSON, now: datetime) -> Cells:
    spec = dmap(cj, "spec")
    last = dig(cj, "status", "lastScheduleTime")
    job_spec = dmap(spec, "jobTemplate", "spec")
    names, images = container_cells(dig(job_spec, "template", "spec"))
    return [
        name_of(cj),
        dstr(spec, "schedule"),
        dstr(spec, "timeZone") if isinstance(spec.get("timeZone"), str) else "<none>",
        _bool_ptr(spec.get("suspend")),
        len(dlist(cj, "status", "active")),
        since(last, now) if last is not None else "<none>",
        age(cj, now),
        names,
        images,
        format_label_selector(dig(job_spec, "selector")),
    ]


CRON_JOB = Printer(
    (
        name_col(),
        col("Schedule", description="The cron schedule."),
        col("Timezone", description="The time zone of the schedule."),
        col("Suspend", "boolean", "Whether scheduling is suspended."),
        col("Active", "integer", "The number of running jobs."),
        col("Last Schedule", description="When a job was last scheduled."),
        age_col(),
        *WIDE_TEMPLATE,
        _WIDE_SELECTOR,
    ),
    _cron_job_cells,
)

# --------------------------------------------------------------------------------------- autoscaling


def _qty(v: Any) -> str:
    return "<nil>" if v is None else str(v)


def _metric_target(spec: JSON, status: JSON | None, source: str, with_name: bool) -> str:
    """One Resource / ContainerResource / Pods / Object / External metric as ``current/target``."""
    s = dmap(spec, source)
    target = dmap(s, "target")
    current = dmap(status, source, "current") if isinstance(status, dict) else {}
    has_status = isinstance(status, dict) and isinstance(status.get(source), dict)
    prefix = f"{dstr(s, 'name')}: " if with_name else ""
    if source in ("resource", "containerResource"):
        if target.get("averageValue") is not None:
            cur = _qty(current.get("averageValue")) if has_status else "<unknown>"
            return f"{prefix}{cur}/{target['averageValue']}"
        cur = "<unknown>"
        if has_status and isinstance(current.get("averageUtilization"), int):
            cur = f"{current['averageUtilization']}%"
        tgt = "<auto>"
        if isinstance(target.get("averageUtilization"), int):
            tgt = f"{target['averageUtilization']}%"
        return f"{prefix}{cur}/{tgt}"
    if source == "pods":
        cur = _qty(current.get("averageValue")) if has_status else "<unknown>"
        return f"{cur}/{_qty(target.get('averageValue'))}"
    # object and external metrics: an average target is marked "(avg)".
    if target.get("averageValue") is not None:
        cur = "<unknown>"
        if has_status and current.get("averageValue") is not None:
            cur = str(current["averageValue"])
        return f"{cur}/{target['averageValue']} (avg)"
    cur = _qty(current.get("value")) if has_status else "<unknown>"
    return f"{cur}/{_qty(target.get('value'))}"


_METRIC_SOURCES = {
    "Resource": ("resource", True),
    "ContainerResource": ("containerResource", True),
    "Pods": ("pods", False),
    "Object": ("object", False),
    "External": ("external", False),
}


def hpa_targets(hpa: JSON) -> str:
    specs = [m for m in dlist(hpa, "spec", "metrics") if isinstance(m, dict)]
    if not specs:
        return "<none>"
    statuses = dlist(hpa, "status", "currentMetrics")
    shown: list[str] = []
    for i, m in enumerate(specs):
        st = statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else None
        src = _METRIC_SOURCES.get(str(m.get("type")))
        shown.append(_metric_target(m, st, *src) if src else "<unknown type>")
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def _hpa_cells(hpa: JSON, now: datetime) -> Cells:
    ref = dmap(hpa, "spec", "scaleTargetRef")
    min_r = dig(hpa, "spec", "minReplicas")
    return [
        name_of(hpa),
        f"{dstr(ref, 'kind')}/{dstr(ref, 'name')}",
        hpa_targets(hpa),
        str(min_r) if isinstance(min_r, int) else "<unset>",
        dint(hpa, "spec", "maxReplicas"),
        dint(hpa, "status", "currentReplicas"),
        age(hpa, now),
    ]


HPA = Printer(
    (
        name_col(),
        col("Reference", description="The workload being scaled."),
        col("Targets", description="Current and target values of the metrics."),
        col("MinPods", description="The lower replica limit."),
        col("MaxPods", description="The upper replica limit."),
        col("Replicas", description="The current number of replicas."),
        age_col(),
    ),
    _hpa_cells,
)

# ------------------------------------------------------------------------- coordination / discovery

LEASE = Printer(
    (name_col(), col("Holder", description="Who holds the lease."), age_col()),
    lambda o, now: [name_of(o), dstr(o, "spec", "holderIdentity"), age(o, now)],
)


def _list_more(items: list[str], count: int, limit: int = 3) -> str:
    """``listWithMoreString``: up to three items, a ``+ N more...`` tail, ``<unset>`` when empty."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def _endpoint_slice_cells(es: JSON, now: datetime) -> Cells:
    ports: list[str] = []
    for p in dlist(es, "ports"):
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("port"), int):
            ports.append(str(p["port"]))
        elif isinstance(p.get("name"), str):
            ports.append(p["name"])
        else:
            ports.append("*")
    addresses = [
        str(a) for e in dlist(es, "endpoints") if isinstance(e, dict) for a in dlist(e, "addresses")
    ]
    return [
        name_of(es),
        dstr(es, "addressType"),
        _list_more(ports, len(ports)),
        _list_more(addresses, len(addresses)),
        age(es, now),
    ]


ENDPOINT_SLICE = Printer(
    (
        name_col(),
        col("AddressType", description="IPv4, IPv6 or FQDN."),
        col("Ports", description="The ports of the endpoints."),
        col("Endpoints", description="The addresses of the endpoints."),
        age_col(),
    ),
    _endpoint_slice_cells,
)


# ------------------------------------------------------------------------------ scheduling / policy

PRIORITY_CLASS = Printer(
    (
        name_col(),
        col("Value", "integer", "The priority value."),
        col("Global-Default", "boolean", "Whether this is the default priority class."),
        age_col(),
        col("PreemptionPolicy", description="Whether pods of this class may preempt others."),
    ),
    lambda o, now: [
        name_of(o),
        dint(o, "value"),
        o.get("globalDefault") is True,
        age(o, now),
        dstr(o, "preemptionPolicy"),
    ],
)


def _pdb_cells(pdb: JSON, now: datetime) -> Cells:
    spec = dmap(pdb, "spec")
    min_a, max_u = spec.get("minAvailable"), spec.get("maxUnavailable")
    return [
        name_of(pdb),
        int_or_string(min_a) if min_a is not None else "N/A",
        int_or_string(max_u) if max_u is not None else "N/A",
        dint(pdb, "status", "disruptionsAllowed"),
        age(pdb, now),
    ]


POD_DISRUPTION_BUDGET = Printer(
    (
        name_col(),
        col("Min Available", description="The minimum number of pods that must be available."),
        col("Max Unavailable", description="The maximum number of pods that may be unavailable."),
        col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
        age_col(),
    ),
    _pdb_cells,
)

# ------------------------------------------------------------------------------------- networking


def _ingress_cells(ing: JSON, now: datetime) -> Cells:
    spec = dmap(ing, "spec")
    rules = [r for r in dlist(spec, "rules") if isinstance(r, dict)]
    hosts: list[str] = []
    more = False
    for r in rules:
        if len(hosts) == 3:
            more = True
        if not more and r.get("host"):
            hosts.append(str(r["host"]))
    hosts_cell = ",".join(hosts) or "*"
    if hosts and more:
        hosts_cell = f"{hosts_cell} + {len(rules) - 3} more..."
    found: set[str] = set()
    for i in dlist(ing, "status", "loadBalancer", "ingress"):
        if isinstance(i, dict) and (i.get("ip") or i.get("hostname")):
            found.add(str(i.get("ip") or i.get("hostname")))
    klass = spec.get("ingressClassName")
    return [
        name_of(ing),
        klass if isinstance(klass, str) else "<none>",
        hosts_cell,
        ",".join(sorted(found)),
        "80, 443" if dlist(spec, "tls") else "80",
        age(ing, now),
    ]


INGRESS = Printer(
    (
        name_col(),
        col("Class", description="The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", description="Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", description="Address is a list containing ingress points for the load-balancer"),
        col("Ports", description="Ports of TLS configurations that open"),
        age_col(),
    ),
    _ingress_cells,
)


def _ingress_class_cells(ic: JSON, now: datetime) -> Cells:
    params = dig(ic, "spec", "parameters")
    cell = "<none>"
    if isinstance(params, dict):
        cell = str(params.get("kind") or "")
        if isinstance(params.get("apiGroup"), str):
            cell += "." + params["apiGroup"]
        cell += "/" + str(params.get("name") or "")
    return [name_of(ic), dstr(ic, "spec", "controller"), cell, age(ic, now)]


INGRESS_CLASS = Printer(
    (
        name_col(),
        col("Controller", description="Controller that is responsible for handling this class"),
        col("Parameters", description="A reference to a resource with additional parameters"),
        age_col(),
    ),
    _ingress_class_cells,
)

NETWORK_POLICY = Printer(
    (name_col(), col("Pod-Selector", description="The pods the policy applies to."), age_col()),
    lambda o, now: [name_of(o), format_label_selector(dmap(o, "spec", "podSelector")), age(o, now)],
)

# ------------------------------------------------------------------------------------------ storage

_DEFAULT_CLASS_KEYS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def _storage_class_cells(sc: JSON, now: datetime) -> Cells:
    annotations = dmap(sc, "metadata", "annotations")
    name = name_of(sc)
    if any(annotations.get(k) == "true" for k in _DEFAULT_CLASS_KEYS):
        name += " (default)"
    expand = sc.get("allowVolumeExpansion")
    return [
        name,
        dstr(sc, "provisioner"),
        dstr(sc, "reclaimPolicy") or "Delete",
        dstr(sc, "volumeBindingMode") or "Immediate",
        expand if isinstance(expand, bool) else False,
        age(sc, now),
    ]


STORAGE_CLASS = Printer(
    (
        name_col(),
        col("Provisioner", description="The volume plugin that provisions volumes of this class."),
        col("ReclaimPolicy", description="What happens to provisioned volumes when released."),
        col("VolumeBindingMode", description="When volumes are bound and provisioned."),
        col("AllowVolumeExpansion", description="Whether volumes of this class may be expanded."),
        age_col(),
    ),
    _storage_class_cells,
)

# --------------------------------------------------------------------------------------------- rbac


def _subjects(binding: JSON) -> tuple[str, str, str]:
    users: list[str] = []
    groups: list[str] = []
    sas: list[str] = []
    for s in dlist(binding, "subjects"):
        if not isinstance(s, dict):
            continue
        kind, name = s.get("kind"), str(s.get("name") or "")
        if kind == "ServiceAccount":
            sas.append(f"{s.get('namespace') or ''}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _binding_cells(b: JSON, now: datetime) -> Cells:
    ref = dmap(b, "roleRef")
    return [name_of(b), f"{dstr(ref, 'kind')}/{dstr(ref, 'name')}", age(b, now), *_subjects(b)]


def _binding_printer(what: str) -> Printer:
    return Printer(
        (
            name_col(),
            col("Role", description="The role the subjects are bound to."),
            age_col(),
            col("Users", description=f"Users in the {what}", priority=1),
            col("Groups", description=f"Groups in the {what}", priority=1),
            col("ServiceAccounts", description=f"ServiceAccounts in the {what}", priority=1),
        ),
        _binding_cells,
    )


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("apps", "Deployment"): DEPLOYMENT,
    ("apps", "ReplicaSet"): REPLICA_SET,
    ("apps", "StatefulSet"): STATEFUL_SET,
    ("apps", "DaemonSet"): DAEMON_SET,
    ("apps", "ControllerRevision"): CONTROLLER_REVISION,
    ("batch", "Job"): JOB,
    ("batch", "CronJob"): CRON_JOB,
    ("autoscaling", "HorizontalPodAutoscaler"): HPA,
    ("coordination.k8s.io", "Lease"): LEASE,
    ("discovery.k8s.io", "EndpointSlice"): ENDPOINT_SLICE,
    ("scheduling.k8s.io", "PriorityClass"): PRIORITY_CLASS,
    ("policy", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET,
    ("networking.k8s.io", "Ingress"): INGRESS,
    ("networking.k8s.io", "IngressClass"): INGRESS_CLASS,
    ("networking.k8s.io", "NetworkPolicy"): NETWORK_POLICY,
    ("storage.k8s.io", "StorageClass"): STORAGE_CLASS,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding_printer("roleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding_printer("clusterRoleBinding"),
}
