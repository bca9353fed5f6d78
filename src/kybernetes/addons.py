"""The cluster add-ons `kyb server` applies at every start, as k3s applies its manifests directory.

`coredns` (k3s's name; `--disable coredns` skips it), in kube-system, laid out as CoreDNS is in
k3s and kubeadm, so that tools looking for the cluster DNS find it where they expect:

- ServiceAccount `coredns`; ClusterRole `system:coredns` (list/watch endpoints, services, pods,
  namespaces and discovery.k8s.io endpointslices) and its ClusterRoleBinding;
- Deployment `coredns` (label `k8s-app: kube-dns`) running `kyb dns` from the kybernetes system
  image (`kybernetes.images.system`, imported by every kubelet; imagePullPolicy Never, since no
  registry holds it), /health on 8080 for liveness and /ready on 8181 for readiness,
  dnsPolicy Default (the DNS server itself resolves through the node's resolvers),
  priorityClassName system-cluster-critical, tolerating CriticalAddonsOnly and control-plane taints;
- Service `kube-dns` at the 10th address of the service range (10.43.0.10 by default), ports
  `dns` 53/UDP, `dns-tcp` 53/TCP and `metrics` 9153/TCP (CoreDNS's prometheus plugin): the address
  every kubelet gets as `--cluster-dns`.

`local-storage` (k3s's name; `--disable local-storage` skips it), the local-path provisioner as
k3s deploys it, in kube-system:

- ServiceAccount `local-path-provisioner-service-account`; ClusterRole
  `kybernetes:local-path-provisioner` (nodes get; persistentvolumeclaims get/list/watch and their
  status patch, for expansion; persistentvolumes get/list/watch/create/patch/delete;
  storageclasses get/list/watch; events create/patch) and its ClusterRoleBinding; Role and
  RoleBinding `local-path-provisioner` in kube-system (pods get/create/delete: the helper pods);
- Deployment `local-path-provisioner` running `kyb local-path-provisioner` from the system image;
- StorageClass `local-path`, the default class (`storageclass.kubernetes.io/is-default-class`),
  provisioner `kybernetes.io/local-path`, WaitForFirstConsumer, Delete, allowVolumeExpansion;
  without a `nodePath` parameter a volume lives under its node's `kybernetes.io/local-path-root`
  (`<agent data dir>/storage`).

`metrics-server` (k3s's name; `--disable metrics-server` skips it), metrics-server as k3s deploys it,
serving `metrics.k8s.io` for `kubectl top` and the HorizontalPodAutoscaler:

- ServiceAccount `metrics-server` in kube-system; ClusterRole `system:aggregated-metrics-reader`
  (metrics.k8s.io pods and nodes, aggregated into view, edit and admin); ClusterRole
  `system:metrics-server` (nodes/metrics get; pods and nodes get/list/watch) and its binding;
  `metrics-server:system:auth-delegator` (TokenReview, SubjectAccessReview) and RoleBinding
  `metrics-server-auth-reader` in kube-system (the front-proxy trust ConfigMap);
- Deployment `metrics-server` running `kyb metrics-server` from the system image with k3s's flags
  (`--secure-port=10250`, `--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname`,
  `--kubelet-use-node-status-port`, `--metric-resolution=15s`, `--cert-dir=/tmp` on an emptyDir),
  probes on `/readyz` and `/livez` over HTTPS;
- Service `metrics-server` (443 -> `https`) and APIService `v1beta1.metrics.k8s.io` backed by it
  (`insecureSkipTLSVerify`, group priority 100, version priority 100: metrics-server's manifest).

Reconciled by server-side apply with field manager `kybernetes-addons` and force: what the add-on
sets is put back at each start (a deleted object is created again), fields others set are kept.
A failure is logged and the server runs on; it does not stop the cluster from starting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kybernetes import errors
from kybernetes.api.clusterdns import DEFAULT_CLUSTER_DOMAIN, cluster_dns_ip
from kybernetes.api.localpath import PROVISIONER
from kybernetes.api.storageutil import IS_DEFAULT, WAIT_FOR_FIRST_CONSUMER
from kybernetes.client import Client

log = logging.getLogger(__name__)

FIELD_MANAGER = "kybernetes-addons"
ADDONS = ("coredns", "local-storage", "metrics-server")
"""The names `--disable` accepts."""


def _system_tolerations() -> list[dict[str, str]]:
    """What k3s' system add-ons tolerate: the CriticalAddonsOnly taint and the control plane's."""
    return [
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
    ]


Obj = dict[str, Any]


@dataclass(frozen=True)
class AddonSettings:
    service_cidr: str = "10.43.0.0/16"
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    image: str = ""
    """The system image's reference (default: `kybernetes.images.system.system_image_name()`)."""


def _meta(name: str, namespace: str = "", labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return meta


def coredns_objects(settings: AddonSettings) -> list[Obj]:
    """The coredns add-on's objects, in the order they are applied."""
    from kybernetes.images.system import system_image_name

    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    rbac = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    container = {
        "name": "coredns",
        "image": settings.image or system_image_name(),
        "imagePullPolicy": "Never",
        "args": ["dns", "--cluster-domain", settings.cluster_domain, "--listen", "0.0.0.0:53"],
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                          "initialDelaySeconds": 60, "periodSeconds": 10, "timeoutSeconds": 1,
                          "successThreshold": 1, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                           "periodSeconds": 2, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("coredns", "kube-system")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta("system:coredns", labels=rbac),
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {**_meta("system:coredns", labels=rbac),
                      "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("coredns", "kube-system", labels),
         "spec": {
             "replicas": 1,
             "revisionHistoryLimit": 0,
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
             "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
             "template": {
                 "metadata": {"labels": {"k8s-app": "kube-dns"}},
                 "spec": {
                     "serviceAccountName": "coredns",
                     "priorityClassName": "system-cluster-critical",
                     "dnsPolicy": "Default",
                     "nodeSelector": {"kubernetes.io/os": "linux"},
                     "tolerations": _system_tolerations(),
                     "containers": [container],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {**_meta("kube-dns", "kube-system", {**labels, "kubernetes.io/cluster-service": "true"}),
                      "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
         "spec": {"selector": {"k8s-app": "kube-dns"}, "clusterIP": cluster_dns_ip(settings.service_cidr),
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}},
    ]


LOCAL_PATH_ACCOUNT = "local-path-provisioner-service-account"
LOCAL_PATH_CLASS = "local-path"


def local_storage_objects(settings: AddonSettings) -> list[Obj]:
    """The local-storage add-on's objects, in the order they are applied."""
    from kybernetes.images.system import system_image_name

    name, ns, role = "local-path-provisioner", "kube-system", "kybernetes:local-path-provisioner"
    labels = {"app": name}
    container = {
        "name": name,
        "image": settings.image or system_image_name(),
        "imagePullPolicy": "Never",
        "args": ["local-path-provisioner"],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"memory": "170Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    subject = [{"kind": "ServiceAccount", "name": LOCAL_PATH_ACCOUNT, "namespace": ns}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(LOCAL_PATH_ACCOUNT, ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(role),
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["persistentvolumeclaims/status"], "verbs": ["patch"]},
                   {"apiGroups": [""], "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
                   {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                   {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(role),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(name, ns),
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(name, ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": subject},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, ns, labels),
         "spec": {
             "replicas": 1,
             "revisionHistoryLimit": 0,
             # Never two at once: two provisioners would race to make the same volume.
             "strategy": {"type": "Recreate"},
             "selector": {"matchLabels": labels},
             "template": {
                 "metadata": {"labels": labels},
                 "spec": {
                     "serviceAccountName": LOCAL_PATH_ACCOUNT,
                     "priorityClassName": "system-node-critical",
                     "nodeSelector": {"kubernetes.io/os": "linux"},
                     "tolerations": _system_tolerations(),
                     "containers": [container],
                 },
             },
         }},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": LOCAL_PATH_CLASS,
                      "annotations": {IS_DEFAULT: "true"}},
         "provisioner": PROVISIONER, "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER, "reclaimPolicy": "Delete",
         "allowVolumeExpansion": True},
    ]


METRICS_SERVER = "metrics-server"


def metrics_server_objects(settings: AddonSettings) -> list[Obj]:
    """The metrics-server add-on's objects, in the order they are applied."""
    from kybernetes.images.system import system_image_name

    name, ns = METRICS_SERVER, "kube-system"
    labels = {"k8s-app": name}
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    aggregate = {f"rbac.authorization.k8s.io/aggregate-to-{r}": "true" for r in ("view", "edit", "admin")}
    probe = {"scheme": "HTTPS", "port": "https"}
    container = {
        "name": name,
        "image": settings.image or system_image_name(),
        "imagePullPolicy": "Never",
        "args": ["metrics-server", "--cert-dir=/tmp", "--secure-port=10250",
                 "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                 "--kubelet-use-node-status-port", "--metric-resolution=15s"],
        "ports": [{"name": "https", "containerPort": 10250, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", **probe}, "periodSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/livez", **probe}, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp-dir", "mountPath": "/tmp"}],
    }

    def binding(kind: str, binding_name: str, role_kind: str, role: str, namespace: str = "") -> Obj:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                "metadata": _meta(binding_name, namespace, labels),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
                "subjects": subject}

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns, labels)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta("system:aggregated-metrics-reader", labels={**labels, **aggregate}),
         "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta("system:metrics-server", labels=labels),
         "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]},
        binding("RoleBinding", "metrics-server-auth-reader", "Role", "extension-apiserver-authentication-reader", ns),
        binding("ClusterRoleBinding", "metrics-server:system:auth-delegator", "ClusterRole", "system:auth-delegator"),
        binding("ClusterRoleBinding", "system:metrics-server", "ClusterRole", "system:metrics-server"),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(name, ns, {**labels, "kubernetes.io/cluster-service": "true",
                                      "kubernetes.io/name": "Metrics-server"}),
         "spec": {"selector": labels,
                  "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, ns, labels),
         "spec": {
             "replicas": 1,
             "revisionHistoryLimit": 0,
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
             "selector": {"matchLabels": labels},
             "template": {
                 "metadata": {"labels": labels},
                 "spec": {
                     "serviceAccountName": name,
                     "priorityClassName": "system-node-critical",
                     "nodeSelector": {"kubernetes.io/os": "linux"},
                     "tolerations": _system_tolerations(),
                     "containers": [container],
                     "volumes": [{"name": "tmp-dir", "emptyDir": {}}],
                 },
             },
         }},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": _meta("v1beta1.metrics.k8s.io", labels=labels),
         "spec": {"service": {"name": name, "namespace": ns, "port": 443}, "group": "metrics.k8s.io",
                  "version": "v1beta1", "insecureSkipTLSVerify": True, "groupPriorityMinimum": 100,
                  "versionPriority": 100}},
    ]


_PLURALS = {"ServiceAccount": "serviceaccounts", "ClusterRole": "clusterroles",
            "ClusterRoleBinding": "clusterrolebindings", "Role": "roles", "RoleBinding": "rolebindings",
            "Deployment": "deployments", "Service": "services", "StorageClass": "storageclasses",
            "APIService": "apiservices"}


def addon_objects(settings: AddonSettings, disabled: Sequence[str] = ()) -> list[Obj]:
    """Every enabled add-on's objects; ValueError names an unknown add-on in `disabled`."""
    unknown = sorted(set(disabled) - set(ADDONS))
    if unknown:
        raise ValueError(f"unknown add-on {', '.join(unknown)} (known: {', '.join(ADDONS)})")
    objects = [] if "coredns" in disabled else coredns_objects(settings)
    objects += [] if "local-storage" in disabled else local_storage_objects(settings)
    return objects + ([] if METRICS_SERVER in disabled else metrics_server_objects(settings))


async def apply_addons(client: Client, objects: Sequence[Obj]) -> list[str]:
    """Server-side applies each object (field manager kybernetes-addons, forced); returns
    "Kind/name" of those that failed (logged), so that one bad object does not stop the others."""
    failed = []
    for obj in objects:
        meta = obj["metadata"]
        try:
            await client.patch(obj["apiVersion"], _PLURALS[obj["kind"]], meta["name"], obj,
                               meta.get("namespace", ""), patch_type="apply", field_manager=FIELD_MANAGER,
                               force=True)
        except (errors.StatusError, OSError) as err:
            log.error("add-on %s/%s not applied: %s", obj["kind"], meta["name"], err)
            failed.append(f"{obj['kind']}/{meta['name']}")
    return failed


__all__ = ["ADDONS", "FIELD_MANAGER", "LOCAL_PATH_CLASS", "METRICS_SERVER", "AddonSettings", "addon_objects",
           "apply_addons", "coredns_objects", "local_storage_objects", "metrics_server_objects"]
