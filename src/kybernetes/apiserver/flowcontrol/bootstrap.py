"""The configuration every kube-apiserver maintains: the mandatory and suggested APF objects.

These are Kubernetes 1.32's objects (``k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap``), in
their ``flowcontrol.apiserver.k8s.io/v1`` JSON form, fully defaulted. :func:`planned_update` is
the rule kube-apiserver's bootstrap ensurer applies to an object that already exists:

* a *mandatory* object (``exempt`` and ``catch-all``, both kinds) always gets its spec back;
* a *suggested* object gets the bootstrap spec only while its ``apf.kubernetes.io/autoupdate-spec``
  annotation says true (or, without a parsable annotation, while its generation is 1, i.e. nobody
  changed it); the annotation is then set to what was decided;
* a missing object of either kind is created again;
* an object that is no longer part of the bootstrap configuration and whose annotation says true
  is deleted (:func:`should_remove`).

The ``exempt`` priority level keeps whatever ``spec.exempt`` an administrator gave it.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api.obj import Obj

AUTO_UPDATE_ANNOTATION = "apf.kubernetes.io/autoupdate-spec"
FIELD_MANAGER = "api-priority-and-fairness-config-producer-v1"
API_VERSION = "flowcontrol.apiserver.k8s.io/v1"

_ALL_RESOURCES = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True, "namespaces": ["*"]}
_ALL_NON_RESOURCES = {"verbs": ["*"], "nonResourceURLs": ["*"]}


def _pl(name: str, spec: Obj) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration",
            "metadata": {"name": name, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}}, "spec": spec}


def _limited(shares: int, lendable: int, queues: int = 0, hand: int = 0, length: int = 0) -> Obj:
    response: Obj = {"type": "Reject"}
    if queues:
        response = {"type": "Queue", "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": length}}
    return {"type": "Limited", "limited": {"nominalConcurrencyShares": shares, "lendablePercent": lendable,
                                           "limitResponse": response}}


def _fs(name: str, pl: str, precedence: int, method: str, *rules: Obj) -> Obj:
    spec: Obj = {"priorityLevelConfiguration": {"name": pl}, "matchingPrecedence": precedence}
    if method:
        spec["distinguisherMethod"] = {"type": method}
    spec["rules"] = list(rules)
    return {"apiVersion": API_VERSION, "kind": "FlowSchema",
            "metadata": {"name": name, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}}, "spec": spec}


def _groups(*names: str) -> list[Obj]:
    return [{"kind": "Group", "group": {"name": n}} for n in names]


def _users(*names: str) -> list[Obj]:
    return [{"kind": "User", "user": {"name": n}} for n in names]


def _kube_system_sas(*names: str) -> list[Obj]:
    return [{"kind": "ServiceAccount", "serviceAccount": {"name": n, "namespace": "kube-system"}} for n in names]


def _everything(subjects: list[Obj]) -> Obj:
    return {"subjects": subjects, "resourceRules": [dict(_ALL_RESOURCES)], "nonResourceRules": [dict(_ALL_NON_RESOURCES)]}


def _rule(verbs: list[str], groups: list[str], resources: list[str], namespaces: list[str],
          cluster_scope: bool = False) -> Obj:
    out: Obj = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if cluster_scope:
        out["clusterScope"] = True
    out["namespaces"] = namespaces
    return out


_GCU = ["get", "create", "update"]
KCM, SCHEDULER = "system:kube-controller-manager", "system:kube-scheduler"

MANDATORY_PRIORITY_LEVELS: tuple[Obj, ...] = (
    _pl("catch-all", _limited(5, 0)),
    _pl("exempt", {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}),
)
MANDATORY_FLOW_SCHEMAS: tuple[Obj, ...] = (
    _fs("exempt", "exempt", 1, "", _everything(_groups("system:masters"))),
    _fs("catch-all", "catch-all", 10000, "ByUser",
        _everything(_groups("system:unauthenticated", "system:authenticated"))),
)
SUGGESTED_PRIORITY_LEVELS: tuple[Obj, ...] = (
    _pl("system", _limited(30, 33, 64, 6, 50)),
    _pl("node-high", _limited(40, 25, 64, 6, 50)),
    _pl("leader-election", _limited(10, 0, 16, 4, 50)),
    _pl("workload-high", _limited(40, 50, 128, 6, 50)),
    _pl("workload-low", _limited(100, 90, 128, 6, 50)),
    _pl("global-default", _limited(20, 50, 128, 6, 50)),
)
SUGGESTED_FLOW_SCHEMAS: tuple[Obj, ...] = (
    _fs("system-nodes", "system", 500, "ByUser", _everything(_groups("system:nodes"))),
    _fs("system-node-high", "node-high", 400, "ByUser", {
        "subjects": _groups("system:nodes"),
        "resourceRules": [_rule(["*"], [""], ["nodes", "nodes/status"], ["*"], True),
                          _rule(["*"], ["coordination.k8s.io"], ["leases"], ["*"])]}),
    _fs("probes", "exempt", 2, "", {
        "subjects": _groups("system:unauthenticated", "system:authenticated"),
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]}),
    _fs("system-leader-election", "leader-election", 100, "ByUser", {
        "subjects": [*_users(KCM, SCHEDULER), *_kube_system_sas("*")],
        "resourceRules": [_rule(_GCU, ["coordination.k8s.io"], ["leases"], ["*"])]}),
    _fs("workload-leader-election", "leader-election", 200, "ByUser", {
        "subjects": _kube_system_sas("*"),
        "resourceRules": [_rule(_GCU, [""], ["endpoints", "configmaps"], ["*"]),
                          _rule(_GCU, ["coordination.k8s.io"], ["leases"], ["*"])]}),
    _fs("endpoint-controller", "workload-high", 150, "ByUser", {
        "subjects": [*_users(KCM), *_kube_system_sas("endpoint-controller", "endpointslicemirroring-controller")],
        "resourceRules": [_rule(_GCU, [""], ["endpoints"], ["*"])]}),
    _fs("kube-controller-manager", "workload-high", 800, "ByNamespace", _everything(_users(KCM))),
    _fs("kube-scheduler", "workload-high", 800, "ByNamespace", _everything(_users(SCHEDULER))),
    _fs("kube-system-service-accounts", "workload-high", 900, "ByNamespace", _everything(_kube_system_sas("*"))),
    _fs("service-accounts", "workload-low", 9000, "ByUser", _everything(_groups("system:serviceaccounts"))),
    _fs("global-default", "global-default", 9900, "ByUser",
        _everything(_groups("system:unauthenticated", "system:authenticated"))),
)

MANDATORY_PL_SPECS = {o["metadata"]["name"]: o["spec"] for o in MANDATORY_PRIORITY_LEVELS}
MANDATORY_FS_SPECS = {o["metadata"]["name"]: o["spec"] for o in MANDATORY_FLOW_SCHEMAS}


def go_parse_bool(value: str) -> bool | None:
    """Go's ``strconv.ParseBool``: None when the text is not one of its spellings."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def semantic(value: Any) -> Any:
    """A value with Go's zero values and empty collections dropped, so that two specs compare as
    ``equality.Semantic.DeepEqual`` compares the structs they decode to."""
    if isinstance(value, dict):
        out = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, False, "", [], {})}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def spec_differs(bootstrap: Obj, current: Obj) -> bool:
    """True if ``current``'s spec is not the bootstrap spec (the exempt level's ``spec.exempt`` is the
    administrator's to set)."""
    want = copy.deepcopy(bootstrap.get("spec") or {})
    have = current.get("spec") or {}
    if bootstrap.get("kind") == "PriorityLevelConfiguration" and bootstrap["metadata"]["name"] == "exempt":
        if have.get("exempt") is None:
            return True
        want["exempt"] = have["exempt"]
    return semantic(want) != semantic(have)


def planned_update(current: Obj, bootstrap: Obj, *, mandatory: bool) -> Obj | None:
    """The object the ensurer writes over ``current``, or None if it is left alone."""
    meta = current.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    auto = mandatory
    if not auto:
        parsed = go_parse_bool(str(annotations.get(AUTO_UPDATE_ANNOTATION, "")))
        auto = parsed if parsed is not None else meta.get("generation") == 1
    current_flag = go_parse_bool(str(annotations.get(AUTO_UPDATE_ANNOTATION, "")))
    fix_annotation = AUTO_UPDATE_ANNOTATION not in annotations or current_flag != auto
    fix_spec = auto and spec_differs(bootstrap, current)
    if not (fix_annotation or fix_spec):
        return None
    out = copy.deepcopy(current)
    if fix_annotation:
        out["metadata"].setdefault("annotations", {})[AUTO_UPDATE_ANNOTATION] = "true" if auto else "false"
    if fix_spec:
        out["spec"] = copy.deepcopy(bootstrap["spec"])
    return out


def should_remove(obj: Obj, bootstrap_names: set[str]) -> bool:
    """True for an object the ensurer once made that the configuration no longer has."""
    meta = obj.get("metadata") or {}
    if meta.get("name") in bootstrap_names:
        return False
    value = (meta.get("annotations") or {}).get(AUTO_UPDATE_ANNOTATION)
    return value is not None and go_parse_bool(str(value)) is True
