"""The ``system:controller:*`` ClusterRoles and their bindings (``bootstrappolicy/controller_policy.go``).

Each controller of kube-controller-manager has a role named ``system:controller:<name>``, bound to
the ServiceAccount ``<name>`` in kube-system: with ``--use-service-account-credentials`` the
controller writes under that account's token (its informers stay on the controller manager's own
identity, which may list and watch everything). These are the roles of the controllers that are
on by default in Kubernetes 1.32; the roles of feature-gated controllers are left out (see the
unit test's list of differences).
"""

from __future__ import annotations

from kybernetes.api.obj import Obj
from kybernetes.apiserver.authz.bootstrappolicy.builders import (
    LEGACY,
    READ,
    Rule,
    cluster_role,
    cluster_role_binding,
    events_rule,
    rule,
    service_accounts,
)

CONTROLLER_ROLE_PREFIX = "system:controller:"
CONTROLLER_NAMESPACE = "kube-system"
_RW_ALL = ("create", "delete", "get", "list", "patch", "update", "watch")


def _workload_controllers() -> dict[str, list[Rule]]:
    """The controllers of pods and of what owns pods."""
    return {
        "cronjob-controller": [
            rule("get", "list", "watch", "update").groups("batch").resources("cronjobs"),
            rule(*_RW_ALL).groups("batch").resources("jobs"),
            rule("update").groups("batch").resources("cronjobs/status"),
            rule("update").groups("batch").resources("cronjobs/finalizers"),
            rule("list", "watch", "delete").groups(LEGACY).resources("pods"), events_rule()],
        "daemon-set-controller": [
            rule(*READ).groups("apps", "extensions").resources("daemonsets"),
            rule("update").groups("apps", "extensions").resources("daemonsets/status"),
            rule("update").groups("apps", "extensions").resources("daemonsets/finalizers"),
            rule("list", "watch").groups(LEGACY).resources("nodes"),
            rule("list", "watch", "create", "delete", "patch").groups(LEGACY).resources("pods"),
            rule("create").groups(LEGACY).resources("pods/binding"),
            rule(*_RW_ALL).groups("apps").resources("controllerrevisions"), events_rule()],
        "deployment-controller": [
            rule("get", "list", "watch", "update").groups("apps", "extensions").resources("deployments"),
            rule("update").groups("apps", "extensions").resources("deployments/status"),
            rule("update").groups("apps", "extensions").resources("deployments/finalizers"),
            rule(*_RW_ALL).groups("apps", "extensions").resources("replicasets"),
            # pods: get/list/watch to adopt, update to relabel (``pod-template-hash``)
            rule("get", "list", "update", "watch").groups(LEGACY).resources("pods"), events_rule()],
        "disruption-controller": [
            rule(*READ).groups("apps", "extensions").resources("deployments"),
            rule(*READ).groups("apps", "extensions").resources("replicasets"),
            rule(*READ).groups(LEGACY).resources("replicationcontrollers"),
            rule(*READ).groups("policy").resources("poddisruptionbudgets"),
            rule(*READ).groups("apps").resources("statefulsets"),
            rule("update").groups("policy").resources("poddisruptionbudgets/status"),
            rule("patch", "update").groups(LEGACY).resources("pods/status"),
            rule("get").groups("*").resources("*/scale"), events_rule()],
        "job-controller": [
            rule("get", "list", "watch", "update", "patch").groups("batch").resources("jobs"),
            rule("update").groups("batch").resources("jobs/status"),
            rule("update").groups("batch").resources("jobs/finalizers"),
            rule("list", "watch", "create", "delete", "patch").groups(LEGACY).resources("pods"), events_rule()],
        "replicaset-controller": _replicator("apps", "extensions", kind="replicasets"),
        "replication-controller": _replicator(LEGACY, kind="replicationcontrollers"),
        "statefulset-controller": [
            rule("list", "watch").groups(LEGACY).resources("pods"),
            rule(*READ).groups("apps").resources("statefulsets"),
            rule("update").groups("apps").resources("statefulsets/status"),
            rule("update").groups("apps").resources("statefulsets/finalizers"),
            rule("get", "create", "delete", "update", "patch").groups(LEGACY).resources("pods"),
            rule(*_RW_ALL).groups("apps").resources("controllerrevisions"),
            rule("get", "create", "list", "watch").groups(LEGACY).resources("persistentvolumeclaims"),
            rule("update", "delete").groups(LEGACY).resources("persistentvolumeclaims"),
            rule("update").groups(LEGACY).resources("pods/finalizers"), events_rule()],
        "ttl-after-finished-controller": [
            rule("get", "list", "watch", "delete").groups("batch").resources("jobs"), events_rule()],
        "horizontal-pod-autoscaler": [
            rule(*READ).groups("autoscaling").resources("horizontalpodautoscalers"),
            rule("update").groups("autoscaling").resources("horizontalpodautoscalers/status"),
            rule("get", "update").groups("*").resources("*/scale"),
            rule("list", "watch").groups(LEGACY).resources("pods"),
            rule("list", "watch").groups("metrics.k8s.io").resources("pods"),
            rule(*READ).groups("custom.metrics.k8s.io").resources("*"),
            rule(*READ).groups("external.metrics.k8s.io").resources("*"), events_rule()],
        "pod-garbage-collector": [
            rule("list", "watch", "delete").groups(LEGACY).resources("pods"),
            rule(*READ).groups(LEGACY).resources("nodes"),
            rule("patch").groups(LEGACY).resources("pods/status")],
    }


def _replicator(*api_groups: str, kind: str) -> list[Rule]:
    """ReplicaSets' and ReplicationControllers' controller: the same rules over their own kind."""
    return [rule("get", "list", "watch", "update").groups(*api_groups).resources(kind),
            rule("update").groups(*api_groups).resources(f"{kind}/status"),
            rule("update").groups(*api_groups).resources(f"{kind}/finalizers"),
            rule("list", "watch", "patch", "create", "delete").groups(LEGACY).resources("pods"), events_rule()]


def _service_controllers() -> dict[str, list[Rule]]:
    """Services' endpoints and the cloud-facing service and route controllers."""
    slices = rule("create", "delete", "get", "list", "update", "watch").groups("discovery.k8s.io").resources(
        "endpointslices")
    return {
        "endpoint-controller": [
            rule(*READ).groups(LEGACY).resources("services", "pods"),
            rule("get", "list", "create", "update", "delete", "watch").groups(LEGACY).resources("endpoints"),
            rule("create").groups(LEGACY).resources("endpoints/restricted"), events_rule()],
        "endpointslice-controller": [
            rule(*READ).groups(LEGACY).resources("services", "pods", "nodes"),
            # the OwnerReferencesPermissionEnforcement admission plugin wants finalizers of the owner
            rule("update").groups(LEGACY).resources("services/finalizers"), slices, events_rule()],
        "endpointslicemirroring-controller": [
            rule(*READ).groups(LEGACY).resources("services", "endpoints"),
            rule("update").groups(LEGACY).resources("services/finalizers"),
            rule("update").groups(LEGACY).resources("endpoints/finalizers"),
            rule("create", "delete", "get", "list", "update", "watch").groups("discovery.k8s.io").resources(
                "endpointslices"), events_rule()],
        "service-controller": [
            rule(*READ).groups(LEGACY).resources("services"),
            rule("patch", "update").groups(LEGACY).resources("services/status"),
            rule("list", "watch").groups(LEGACY).resources("nodes"), events_rule()],
        "route-controller": [
            rule("list", "watch").groups(LEGACY).resources("nodes"),
            rule("patch").groups(LEGACY).resources("nodes/status"), events_rule()],
    }


def _volume_controllers() -> dict[str, list[Rule]]:
    """Attach/detach, binding, expansion, ephemeral volumes and the protection finalizers."""
    claims, volumes = "persistentvolumeclaims", "persistentvolumes"
    return {
        "attachdetach-controller": [
            rule("list", "watch").groups(LEGACY).resources(volumes, claims),
            rule(*READ).groups(LEGACY).resources("nodes"),
            rule("patch", "update").groups(LEGACY).resources("nodes/status"),
            rule("list", "watch").groups(LEGACY).resources("pods"), events_rule(),
            rule("get", "create", "delete", "list", "watch").groups("storage.k8s.io").resources("volumeattachments"),
            rule(*READ).groups("storage.k8s.io").resources("csidrivers"),
            rule(*READ).groups("storage.k8s.io").resources("csinodes")],
        "ephemeral-volume-controller": [
            rule(*READ).groups(LEGACY).resources("pods"),
            rule("update").groups(LEGACY).resources("pods/finalizers"),
            rule("get", "list", "watch", "create").groups(LEGACY).resources(claims), events_rule()],
        "expand-controller": [
            rule("get", "list", "watch", "update", "patch").groups(LEGACY).resources(volumes),
            rule("update", "patch").groups(LEGACY).resources(f"{claims}/status"),
            rule(*READ).groups(LEGACY).resources(claims), events_rule()],
        "persistent-volume-binder": [
            rule("get", "list", "watch", "update", "create", "delete").groups(LEGACY).resources(volumes),
            rule("update").groups(LEGACY).resources(f"{volumes}/status"),
            rule("get", "list", "watch", "update").groups(LEGACY).resources(claims),
            rule("update").groups(LEGACY).resources(f"{claims}/status"),
            rule("get", "list", "watch", "create", "delete").groups(LEGACY).resources("pods"),
            rule(*READ).groups("storage.k8s.io").resources("storageclasses"),
            rule("list", "watch").groups(LEGACY).resources("nodes"), events_rule(),
            rule("watch").groups(LEGACY).resources("events")],
        "pv-protection-controller": [
            rule("get", "list", "watch", "update").groups(LEGACY).resources(volumes), events_rule()],
        "pvc-protection-controller": [
            rule("get", "list", "watch", "update").groups(LEGACY).resources(claims),
            rule("update").groups(LEGACY).resources(f"{claims}/status"),
            rule(*READ).groups(LEGACY).resources("pods"), events_rule()],
    }


def _cluster_controllers() -> dict[str, list[Rule]]:
    """Nodes, namespaces, garbage collection, quota, service accounts, certificates, RBAC, TTLs."""
    signers = ("kube-apiserver-client", "kube-apiserver-client-kubelet", "kubelet-serving", "legacy-unknown")
    return {
        "certificate-controller": [
            rule("get", "list", "watch", "delete").groups("certificates.k8s.io").resources(
                "certificatesigningrequests"),
            rule("update").groups("certificates.k8s.io").resources(
                "certificatesigningrequests/status", "certificatesigningrequests/approval"),
            rule("approve").groups("certificates.k8s.io").resources("signers").names(
                "kubernetes.io/kube-apiserver-client-kubelet"),
            rule("sign").groups("certificates.k8s.io").resources("signers").names(
                *(f"kubernetes.io/{s}" for s in signers)),
            rule("create").groups("authorization.k8s.io").resources("subjectaccessreviews"), events_rule()],
        "clusterrole-aggregation-controller": [
            # escalate: it writes into a role rules it need not hold itself
            rule("escalate", "get", "list", "watch", "update", "patch").groups("rbac.authorization.k8s.io").resources(
                "clusterroles")],
        "generic-garbage-collector": [
            rule("get", "list", "watch", "patch", "update", "delete").groups("*").resources("*"), events_rule()],
        "legacy-service-account-token-cleaner": [
            rule("get").groups(LEGACY).resources("configmaps").names(
                "kube-apiserver-legacy-service-account-token-tracking"),
            rule("patch", "delete").groups(LEGACY).resources("secrets")],
        "namespace-controller": [
            rule("get", "list", "watch", "delete").groups(LEGACY).resources("namespaces"),
            rule("update").groups(LEGACY).resources("namespaces/finalize", "namespaces/status"),
            rule("get", "list", "watch", "delete", "deletecollection").groups("*").resources("*")],
        "node-controller": [
            rule("get", "list", "update", "delete", "patch", "watch").groups(LEGACY).resources("nodes"),
            rule("patch", "update").groups(LEGACY).resources("nodes/status"),
            rule("patch", "update").groups(LEGACY).resources("pods/status"),
            rule("list", "watch", "delete", "get").groups(LEGACY).resources("pods"), events_rule()],
        "resourcequota-controller": [
            rule("list", "watch").groups("*").resources("*"),
            rule("update").groups(LEGACY).resources("resourcequotas/status"), events_rule()],
        "root-ca-cert-publisher": [
            rule("create", "update").groups(LEGACY).resources("configmaps"), events_rule()],
        "service-account-controller": [
            rule("create").groups(LEGACY).resources("serviceaccounts"), events_rule()],
        "ttl-controller": [
            rule("update", "patch", "list", "watch").groups(LEGACY).resources("nodes"), events_rule()],
        "validatingadmissionpolicy-status-controller": [
            rule(*READ).groups("admissionregistration.k8s.io").resources("validatingadmissionpolicies"),
            rule("get", "patch", "update").groups("admissionregistration.k8s.io").resources(
                "validatingadmissionpolicies/status"), events_rule()],
    }


def _controller_rules() -> dict[str, list[Rule]]:
    return {**_workload_controllers(), **_service_controllers(), **_volume_controllers(), **_cluster_controllers()}


CONTROLLER_NAMES: tuple[str, ...] = tuple(sorted(_controller_rules()))
"""The ServiceAccount name of every controller that has a bootstrap role."""


def controller_roles() -> list[Obj]:
    return [cluster_role(CONTROLLER_ROLE_PREFIX + name, *rules) for name, rules in sorted(_controller_rules().items())]


def controller_role_bindings() -> list[Obj]:
    """One ClusterRoleBinding per controller role, to the controller's ServiceAccount in kube-system."""
    return [cluster_role_binding(CONTROLLER_ROLE_PREFIX + name, service_accounts(CONTROLLER_NAMESPACE, name))
            for name in CONTROLLER_NAMES]
