"""What kybernetes' components need beyond Kubernetes' bootstrap roles, each with its reason.

Kubernetes' own roles stay exactly Kubernetes' (the golden-file test checks them); what a
kybernetes component does differently gets a role of its own here, named
``system:kybernetes:<Kubernetes' role name>`` and bound to the same subject, so that every
permission beyond Kubernetes' is visible in one place:

* the scheduler lists and watches PriorityClasses: it resolves ``priorityClassName`` itself for a
  pod that reaches it without ``spec.priority`` (Kubernetes' scheduler trusts the Priority
  admission plugin);
* the StatefulSet controller *patches* PersistentVolumeClaims (their ownerReferences, for the
  PVC retention policy), and the PVC and PV protection controllers *patch* claims and volumes to
  drop their finalizers, where Kubernetes' controllers update them: patch grants nothing update
  does not, it only spares a read-modify-write;
* kube-proxy (``system:kube-proxy``) lists and watches NetworkPolicies, Pods and Namespaces: it
  also enforces NetworkPolicies on its node (``proxy/netpol_sync.py``), as k3s' agent does with
  its ``system:k3s-controller`` identity.

And the node bindings kubeadm makes (kube-apiserver does not, but ``kyb agent`` joins and rotates
as kubeadm's nodes do), to Kubernetes' own roles, named ``kybernetes:<kubeadm's name>``:

* ``system:bootstrappers`` (bootstrap tokens) may create CSRs (``system:node-bootstrapper``) and
  have a node-client CSR auto-approved (``...:nodeclient``);
* ``system:nodes`` may have their client certificate's renewal auto-approved (``...:selfnodeclient``).

And the cloud-controller-manager's role, which kube-apiserver does not bootstrap (the cloud
provider's manifests do): ``system:cloud-controller-manager``, bound to the user
``system:cloud-controller-manager`` (its client certificate from ``kyb server``). Least privilege
for what ``kybernetes.cloud`` does: watch and initialise/taint/delete Nodes and write their
status (addresses, NetworkUnavailable); watch Services, add/remove their load balancer finalizer
and write their status; events; its own leader-election Lease; TokenReviews, SubjectAccessReviews and
the client CA for its secure port.
"""

from __future__ import annotations

from kybernetes.api.obj import Obj
from kybernetes.apiserver.authz.bootstrappolicy.builders import (
    LEGACY,
    Rule,
    cluster_role,
    cluster_role_binding,
    events_rule,
    groups,
    rule,
    service_accounts,
    users,
)
from kybernetes.apiserver.authz.bootstrappolicy.controllerroles import CONTROLLER_NAMESPACE

PREFIX = "system:kybernetes:"


def _extras() -> list[tuple[str, list[Rule], list[Obj]]]:
    """(Kubernetes' role name, the extra rules, the subjects of that role's binding)."""
    def controller(name: str) -> list[Obj]:
        return service_accounts(CONTROLLER_NAMESPACE, name)

    return [
        ("system:kube-scheduler", [rule("list", "watch").groups("scheduling.k8s.io").resources("priorityclasses")],
         users("system:kube-scheduler")),
        ("system:controller:statefulset-controller",
         [rule("patch").groups(LEGACY).resources("persistentvolumeclaims")], controller("statefulset-controller")),
        ("system:controller:pvc-protection-controller",
         [rule("patch").groups(LEGACY).resources("persistentvolumeclaims")], controller("pvc-protection-controller")),
        ("system:node-proxier",
         [rule("list", "watch").groups(LEGACY).resources("pods", "namespaces"),
          rule("list", "watch").groups("networking.k8s.io").resources("networkpolicies")],
         users("system:kube-proxy")),
        ("system:controller:pv-protection-controller",
         [rule("patch").groups(LEGACY).resources("persistentvolumes")], controller("pv-protection-controller")),
    ]


CLOUD_CONTROLLER_MANAGER = "system:cloud-controller-manager"
CLOUD_CONTROLLER_MANAGER_LEASE = "cloud-controller-manager"


def _cloud_controller_manager_role() -> Obj:
    return cluster_role(
        CLOUD_CONTROLLER_MANAGER,
        events_rule(),
        rule("create").groups("coordination.k8s.io").resources("leases"),
        rule("get", "update").groups("coordination.k8s.io").resources("leases").names(CLOUD_CONTROLLER_MANAGER_LEASE),
        rule("get", "list", "watch", "update", "patch", "delete").groups(LEGACY).resources("nodes"),
        rule("patch", "update").groups(LEGACY).resources("nodes/status"),
        rule("get", "list", "watch", "patch", "update").groups(LEGACY).resources("services"),
        rule("patch", "update").groups(LEGACY).resources("services/status"),
        # its secure port's delegated authentication and authorization (kybernetes.serving), which
        # the cloud provider's manifests grant with system:auth-delegator and
        # extension-apiserver-authentication-reader
        rule("create").groups("authentication.k8s.io").resources("tokenreviews"),
        rule("create").groups("authorization.k8s.io").resources("subjectaccessreviews"),
        rule("get", "list", "watch").groups(LEGACY).resources("configmaps").names("extension-apiserver-authentication"),
    )


def extra_cluster_roles() -> list[Obj]:
    return [cluster_role(PREFIX + name, *rules) for name, rules, _ in _extras()] + \
        [_cloud_controller_manager_role()]


CSR_ROLES = "system:certificates.k8s.io:certificatesigningrequests:"


def _kubeadm_node_bindings() -> list[Obj]:
    def bind(name: str, role: str, group: str) -> Obj:
        return cluster_role_binding(role, groups(group), name="kybernetes:" + name)

    return [bind("kubelet-bootstrap", "system:node-bootstrapper", "system:bootstrappers"),
            bind("node-autoapprove-bootstrap", CSR_ROLES + "nodeclient", "system:bootstrappers"),
            bind("node-autoapprove-certificate-rotation", CSR_ROLES + "selfnodeclient", "system:nodes")]


def extra_cluster_role_bindings() -> list[Obj]:
    return [cluster_role_binding(PREFIX + name, subjects) for name, _, subjects in _extras()] + \
        _kubeadm_node_bindings() + \
        [cluster_role_binding(CLOUD_CONTROLLER_MANAGER, users(CLOUD_CONTROLLER_MANAGER))]
