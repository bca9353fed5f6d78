"""The static node rules of Kubernetes 1.32 (``bootstrappolicy.NodeRules()``).

What every node may do on resources the Node authorizer does not subdivide by its graph, and the
rules of the ``system:node`` ClusterRole. PolicyRule dicts, in Kubernetes' order; the feature-gated
rules of features off by default in 1.32 (DynamicResourceAllocation's resourceclaims,
ClusterTrustBundle's clustertrustbundles) are left out, as 1.32 leaves them out by default.
"""

from __future__ import annotations

from typing import Any

_READ = ("get", "list", "watch")


def _rule(verbs: tuple[str, ...], group: str, *resources: str) -> dict[str, Any]:
    return {"verbs": list(verbs), "apiGroups": [group], "resources": list(resources)}


NODE_RULES: tuple[dict[str, Any], ...] = (
    # API access checks (non-mutating creates).
    _rule(("create",), "authentication.k8s.io", "tokenreviews"),
    _rule(("create",), "authorization.k8s.io", "subjectaccessreviews", "localsubjectaccessreviews"),
    # Service environment variables.
    _rule(_READ, "", "services"),
    # Registering and reporting on the node (NodeRestriction limits them to its own Node).
    _rule(("create", "get", "list", "watch"), "", "nodes"),
    _rule(("update", "patch"), "", "nodes/status"),
    _rule(("update", "patch"), "", "nodes"),
    _rule(("create", "update", "patch"), "", "events"),
    _rule(_READ, "", "pods"),
    # Mirror pods, pod status and evictions (NodeRestriction limits them to pods bound to the node).
    _rule(("create", "delete"), "", "pods"),
    _rule(("update", "patch"), "", "pods/status"),
    _rule(("create",), "", "pods/eviction"),
    # Secrets, configmaps, claims and volumes (the Node authorizer limits them to its pods').
    _rule(_READ, "", "secrets", "configmaps"),
    _rule(("get",), "", "persistentvolumeclaims", "persistentvolumes"),
    _rule(("get",), "", "endpoints"),
    # Client certificate rotation.
    _rule(("create", "get", "list", "watch"), "certificates.k8s.io", "certificatesigningrequests"),
    _rule(("get", "create", "update", "patch", "delete"), "coordination.k8s.io", "leases"),
    _rule(("get",), "storage.k8s.io", "volumeattachments"),
    _rule(("create",), "", "serviceaccounts/token"),
    _rule(("get", "update", "patch"), "", "persistentvolumeclaims/status"),
    _rule(("get", "watch", "list"), "storage.k8s.io", "csidrivers"),
    _rule(("get", "create", "update", "patch", "delete"), "storage.k8s.io", "csinodes"),
    _rule(_READ, "node.k8s.io", "runtimeclasses"),
)
"""``NodeRules()`` of Kubernetes 1.32 with its default feature gates."""
