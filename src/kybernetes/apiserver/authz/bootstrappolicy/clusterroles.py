"""Kubernetes 1.32's ClusterRoles and ClusterRoleBindings (``bootstrappolicy/policy.go``).

The user-facing roles (cluster-admin; admin, edit and view, filled by aggregation from the
``system:aggregate-to-*`` roles), discovery and self-review for everyone, and one role per
component. ``system:node``'s rules are the Node authorizer's static rules (``authz/node_rules.py``);
its binding has no subjects, as in Kubernetes, where nodes get their rights from the Node authorizer
rather than from this binding.
"""

from __future__ import annotations

from kybernetes.api.obj import Obj
from kybernetes.apiserver.authz.bootstrappolicy.builders import (
    LEGACY,
    RBAC_GROUP,
    READ,
    READ_WRITE,
    WRITE,
    Rule,
    cluster_role,
    cluster_role_binding,
    events_rule,
    groups,
    rule,
    service_accounts,
    url_rule,
    users,
)
from kybernetes.apiserver.authz.node_rules import NODE_RULES

AGGREGATE_TO = f"{RBAC_GROUP}/aggregate-to-"


def _aggregated_into(role_name: str) -> dict[str, str]:
    return {AGGREGATE_TO + role_name: "true"}


def _user_facing() -> list[Obj]:
    """cluster-admin and the aggregated admin/edit/view with what they aggregate."""
    return [
        cluster_role("cluster-admin", rule("*").groups("*").resources("*"), url_rule("*", verbs=("*",))),
        cluster_role("admin", aggregate_from="admin"),
        cluster_role("edit", aggregate_from="edit", labels=_aggregated_into("admin")),
        cluster_role("view", aggregate_from="view", labels=_aggregated_into("edit")),
        cluster_role("system:aggregate-to-admin",
                     rule("create").groups("authorization.k8s.io").resources("localsubjectaccessreviews"),
                     rule(*READ_WRITE).groups(RBAC_GROUP).resources("rolebindings", "roles"),
                     labels=_aggregated_into("admin")),
        cluster_role("system:aggregate-to-edit", *_edit_rules(), labels=_aggregated_into("edit")),
        cluster_role("system:aggregate-to-view", *_view_rules(), labels=_aggregated_into("view")),
    ]


def _edit_rules() -> list[Rule]:
    pod_subresources = ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy")
    return [
        rule(*READ).groups(LEGACY).resources(*pod_subresources, "secrets", "services/proxy"),
        rule("impersonate").groups(LEGACY).resources("serviceaccounts"),
        rule(*WRITE).groups(LEGACY).resources("pods", *pod_subresources),
        rule("create").groups(LEGACY).resources("pods/eviction"),
        rule(*WRITE).groups(LEGACY).resources(
            "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
            "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"),
        rule("create").groups(LEGACY).resources("serviceaccounts/token"),
        rule(*WRITE).groups("apps").resources(
            "statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
            "deployments/rollback", "replicasets", "replicasets/scale"),
        rule(*WRITE).groups("autoscaling").resources("horizontalpodautoscalers"),
        rule(*WRITE).groups("batch").resources("jobs", "cronjobs"),
        rule(*WRITE).groups("extensions").resources(
            "daemonsets", "deployments", "deployments/scale", "deployments/rollback", "ingresses",
            "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"),
        rule(*WRITE).groups("policy").resources("poddisruptionbudgets"),
        rule(*WRITE).groups("networking.k8s.io").resources("ingresses", "networkpolicies"),
        rule(*READ_WRITE).groups("coordination.k8s.io").resources("leases"),
    ]


def _view_rules() -> list[Rule]:
    return [
        rule(*READ).groups(LEGACY).resources(
            "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
            "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
            "configmaps"),
        rule(*READ).groups(LEGACY).resources(
            "limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status",
            "namespaces/status", "replicationcontrollers/status", "pods/log"),
        rule(*READ).groups(LEGACY).resources("namespaces"),
        rule(*READ).groups("discovery.k8s.io").resources("endpointslices"),
        rule(*READ).groups("apps").resources(
            "controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale", "daemonsets",
            "daemonsets/status", "deployments", "deployments/status", "deployments/scale", "replicasets",
            "replicasets/status", "replicasets/scale"),
        rule(*READ).groups("autoscaling").resources("horizontalpodautoscalers", "horizontalpodautoscalers/status"),
        rule(*READ).groups("batch").resources("jobs", "cronjobs", "cronjobs/status", "jobs/status"),
        rule(*READ).groups("extensions").resources(
            "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
            "ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status",
            "replicationcontrollers/scale", "networkpolicies"),
        rule(*READ).groups("policy").resources("poddisruptionbudgets", "poddisruptionbudgets/status"),
        rule(*READ).groups("networking.k8s.io").resources("ingresses", "ingresses/status", "networkpolicies"),
    ]


def _everyone() -> list[Obj]:
    """What every (or every authenticated) client gets: discovery, health, self-reviews."""
    health = ("/healthz", "/livez", "/readyz")
    return [
        cluster_role("system:discovery", url_rule(
            *health, "/version", "/version/", "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*")),
        cluster_role("system:monitoring", url_rule(
            *health, "/metrics", "/metrics/slis", "/healthz/*", "/livez/*", "/readyz/*")),
        cluster_role("system:basic-user",
                     rule("create").groups("authorization.k8s.io").resources(
                         "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
                     rule("create").groups("authentication.k8s.io").resources("selfsubjectreviews")),
        cluster_role("system:public-info-viewer", url_rule(*health, "/version", "/version/")),
        cluster_role("system:service-account-issuer-discovery",
                     url_rule("/.well-known/openid-configuration", "/openid/v1/jwks")),
        cluster_role("system:auth-delegator",
                     rule("create").groups("authentication.k8s.io").resources("tokenreviews"),
                     rule("create").groups("authorization.k8s.io").resources("subjectaccessreviews")),
    ]


def _certificate_roles() -> list[Obj]:
    """CSR creation for node clients and approval per signer (``system:certificates.k8s.io:*``)."""
    prefix = "system:certificates.k8s.io:"
    out = [cluster_role(f"{prefix}certificatesigningrequests:{kind}", rule("create").groups(
        "certificates.k8s.io").resources(f"certificatesigningrequests/{kind}"))
        for kind in ("nodeclient", "selfnodeclient")]
    for signer in ("kube-apiserver-client", "kube-apiserver-client-kubelet", "kubelet-serving", "legacy-unknown"):
        out.append(cluster_role(f"{prefix}{signer}-approver", rule("approve").groups(
            "certificates.k8s.io").resources("signers").names(f"kubernetes.io/{signer}")))
    return out


def _leader_rules(lease: str) -> list[Rule]:
    return [rule("create").groups("coordination.k8s.io").resources("leases"),
            rule("get", "update").groups("coordination.k8s.io").resources("leases").names(lease)]


def _reviews() -> list[Rule]:
    return [rule("create").groups("authentication.k8s.io").resources("tokenreviews"),
            rule("create").groups("authorization.k8s.io").resources("subjectaccessreviews")]


def _control_plane() -> list[Obj]:
    """The scheduler's and the controller manager's own identities (``system:kube-*``)."""
    return [
        cluster_role(
            "system:kube-controller-manager", events_rule(), *_leader_rules("kube-controller-manager"),
            # what it needs to create and use the per-controller service-account credentials
            rule("create").groups(LEGACY).resources("secrets", "serviceaccounts"),
            rule("delete").groups(LEGACY).resources("secrets"),
            rule("get").groups(LEGACY).resources("namespaces", "secrets", "serviceaccounts", "configmaps"),
            rule("update").groups(LEGACY).resources("secrets", "serviceaccounts"),
            *_reviews(),
            # the shared informers of every controller run under this identity
            rule("list", "watch").groups("*").resources("*"),
            rule("create").groups(LEGACY).resources("serviceaccounts/token")),
        cluster_role(
            "system:kube-scheduler", events_rule(), *_leader_rules("kube-scheduler"),
            rule(*READ).groups(LEGACY).resources("nodes"),
            rule("get", "list", "watch", "delete").groups(LEGACY).resources("pods"),
            rule("create").groups(LEGACY).resources("pods/binding", "bindings"),
            rule("patch", "update").groups(LEGACY).resources("pods/status"),
            rule(*READ).groups(LEGACY).resources("replicationcontrollers", "services"),
            rule(*READ).groups("apps", "extensions").resources("replicasets"),
            rule(*READ).groups("apps").resources("statefulsets"),
            rule(*READ).groups("policy").resources("poddisruptionbudgets"),
            rule(*READ).groups(LEGACY).resources("persistentvolumeclaims", "persistentvolumes"),
            *_reviews(),
            rule(*READ).groups("storage.k8s.io").resources("csinodes"),
            rule(*READ).groups(LEGACY).resources("namespaces"),
            rule(*READ).groups("storage.k8s.io").resources("csidrivers"),
            rule(*READ).groups("storage.k8s.io").resources("csistoragecapacities")),
        cluster_role(
            "system:volume-scheduler",
            rule("get", "list", "watch", "patch", "update").groups(LEGACY).resources("persistentvolumes"),
            rule(*READ).groups("storage.k8s.io").resources("storageclasses"),
            rule("get", "list", "watch", "patch", "update").groups(LEGACY).resources("persistentvolumeclaims")),
    ]


def _node_side() -> list[Obj]:
    """kube-proxy, node bootstrap and the node add-ons (heapster, problem detector, provisioner, DNS)."""
    node = cluster_role("system:node")
    # The Node authorizer's static rules (one home), each list sorted as rbacv1helpers.NewRule's sets are.
    node["rules"] = [{k: sorted(v) for k, v in r.items()} for r in NODE_RULES]
    return [
        node,
        cluster_role("system:node-proxier",
                     rule("list", "watch").groups(LEGACY).resources("services", "endpoints"),
                     rule(*READ).groups(LEGACY).resources("nodes"), events_rule(),
                     rule("list", "watch").groups("discovery.k8s.io").resources("endpointslices")),
        cluster_role("system:node-bootstrapper", rule("create", "get", "list", "watch").groups(
            "certificates.k8s.io").resources("certificatesigningrequests")),
        cluster_role("system:kubelet-api-admin",
                     rule(*READ).groups(LEGACY).resources("nodes"),
                     rule("proxy").groups(LEGACY).resources("nodes"),
                     rule("*").groups(LEGACY).resources("nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log")),
        cluster_role("system:node-problem-detector",
                     rule("get").groups(LEGACY).resources("nodes"),
                     rule("patch").groups(LEGACY).resources("nodes/status"), events_rule()),
        cluster_role("system:persistent-volume-provisioner",
                     rule("get", "list", "watch", "create", "delete").groups(LEGACY).resources("persistentvolumes"),
                     rule("get", "list", "watch", "update").groups(LEGACY).resources("persistentvolumeclaims"),
                     rule(*READ).groups("storage.k8s.io").resources("storageclasses"),
                     rule("watch").groups(LEGACY).resources("events"), events_rule()),
        cluster_role("system:heapster",
                     rule(*READ).groups(LEGACY).resources("events", "pods", "nodes", "namespaces"),
                     rule(*READ).groups("extensions").resources("deployments")),
        cluster_role("system:kube-aggregator", rule(*READ).groups(LEGACY).resources("services", "endpoints")),
        cluster_role("system:kube-dns", rule("list", "watch").groups(LEGACY).resources("endpoints", "services")),
    ]


def cluster_roles() -> list[Obj]:
    """Every bootstrap ClusterRole but the controllers'."""
    return _user_facing() + _everyone() + _certificate_roles() + _control_plane() + _node_side()


def cluster_role_bindings() -> list[Obj]:
    """Every bootstrap ClusterRoleBinding but the controllers'."""
    authenticated = "system:authenticated"
    return [
        cluster_role_binding("cluster-admin", groups("system:masters")),
        cluster_role_binding("system:monitoring", groups("system:monitoring")),
        cluster_role_binding("system:discovery", groups(authenticated)),
        cluster_role_binding("system:basic-user", groups(authenticated)),
        cluster_role_binding("system:public-info-viewer", groups(authenticated, "system:unauthenticated")),
        cluster_role_binding("system:node-proxier", users("system:kube-proxy")),
        cluster_role_binding("system:kube-controller-manager", users("system:kube-controller-manager")),
        cluster_role_binding("system:kube-dns", service_accounts("kube-system", "kube-dns")),
        cluster_role_binding("system:kube-scheduler", users("system:kube-scheduler")),
        cluster_role_binding("system:volume-scheduler", users("system:kube-scheduler")),
        # Since 1.8 nodes get their rights from the Node authorizer: the binding has no subjects.
        cluster_role_binding("system:node", []),
        cluster_role_binding("system:service-account-issuer-discovery", groups("system:serviceaccounts")),
    ]
