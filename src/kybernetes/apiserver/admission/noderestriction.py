"""NodeRestriction (Kubernetes 1.32's ``plugin/pkg/admission/noderestriction``; mutating phase).

Limits what a node (a user ``system:node:NAME`` in ``system:nodes``) may write, beyond what the
Node authorizer lets through; every other user passes. A node user that names no node is refused
everything. For a node N:

- pods: create only mirror pods (``kubernetes.io/config.mirror``) bound to N, owned by N's Node
  (one controller reference with N's uid, no blockOwnerDeletion), naming no service account,
  secret, configmap, claim or ClusterTrustBundle; delete only pods bound to N; no other operation;
- ``pods/status``: update only pods bound to N, without changing labels or resource claim
  statuses; ``pods/eviction``: only of pods bound to N; any other pod subresource is refused;
- ``persistentvolumeclaims/status``: only status.capacity, status.conditions and (volume expansion
  recovery, beta and on in 1.32) status.allocatedResources / allocatedResourceStatuses may change;
  any other claim write is refused;
- nodes: only its own Node; not created with a configSource nor with labels outside the kubelet's
  set; on update not given a new configSource, not its taints changed, not its labels changed
  outside the kubelet's set (``node-restriction.kubernetes.io`` and unknown ``kubernetes.io`` /
  ``k8s.io`` labels are forbidden);
- ``serviceaccounts/token``: only bound to a pod (by name and uid) that is bound to N;
- leases: only in ``kube-node-lease`` and named N; csinodes: only named N.

Refusals are 403 with Kubernetes' words; a pod or Node that does not exist is its 404. The pods and
Node it looks up are read from the registry's watch cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybernetes.api import podrefs
from kybernetes.apiserver.admission.chain import (
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Handler,
    PluginInit,
    forbidden,
)
from kybernetes.join import NODE_LEASE_NAMESPACE, node_identity

if TYPE_CHECKING:
    from kybernetes.apiserver.registry.store import Registry

NAME = "NodeRestriction"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
})
"""``kubeletapis.KubeletLabels``: the ``kubernetes.io`` labels a kubelet may set on its Node."""
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def label_namespace(key: str) -> str:
    prefix, sep, _ = key.partition("/")
    return prefix if sep else ""


def is_kubelet_label(key: str) -> bool:
    """``kubeletapis.IsKubeletLabel``."""
    namespace = label_namespace(key)
    return key in KUBELET_LABELS or any(_in_namespace(namespace, ns) for ns in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The label keys added, removed or changed that a node may not touch, sorted."""
    modified = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k) or (k in old) != (k in new)}
    out = []
    for key in modified:
        namespace = label_namespace(key)
        kubernetes_label = _in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")
        if _in_namespace(namespace, NODE_RESTRICTION_LABEL_NAMESPACE) or (kubernetes_label and not is_kubelet_label(key)):
            out.append(key)
    return sorted(out)


class NodeRestriction(Handler):
    operations = frozenset({CREATE, UPDATE, DELETE})
    resources = frozenset({("", "pods"), ("", "nodes"), ("", "persistentvolumeclaims"), ("", "serviceaccounts"),
                           ("coordination.k8s.io", "leases"), ("storage.k8s.io", "csinodes")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def admit(self, attrs: Attributes) -> None:
        node, is_node = node_identity(attrs.user.name, attrs.user.groups)
        if not is_node:
            return
        if not node:
            raise forbidden(attrs, f'could not determine node from user "{attrs.user.name}"')
        if attrs.group == "":
            if attrs.resource == "pods":
                await self._pod(node, attrs)
            elif attrs.resource == "nodes":
                self._node(node, attrs)
            elif attrs.resource == "persistentvolumeclaims":
                self._pvc_status(node, attrs)
            elif attrs.resource == "serviceaccounts":
                await self._token(node, attrs)
        elif attrs.resource == "leases":
            self._lease(node, attrs)
        elif attrs.resource == "csinodes":
            self._csinode(node, attrs)

    async def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        r = self.registry.catalogue.get("", "v1", plural)
        assert r is not None
        return await self.registry.get(r, namespace, name)

    # --- pods ------------------------------------------------------------------------------------

    async def _pod(self, node: str, attrs: Attributes) -> None:
        if attrs.subresource == "":
            if attrs.operation == CREATE:
                await self._mirror_pod(node, attrs)
            elif attrs.operation == DELETE:
                pod = await self._get("pods", attrs.namespace, attrs.name)
                if _d(pod.get("spec")).get("nodeName") != node:
                    raise forbidden(attrs, f'node "{node}" can only delete pods with spec.nodeName set to itself')
            else:
                raise forbidden(attrs, f'unexpected operation "{attrs.operation}", node "{node}" can only create and '
                                       "delete mirror pods")
        elif attrs.subresource == "status":
            self._pod_status(node, attrs)
        elif attrs.subresource == "eviction":
            await self._eviction(node, attrs)
        else:
            raise forbidden(attrs, f'unexpected pod subresource "{attrs.subresource}", only \'status\' and '
                                   "'eviction' are allowed")

    async def _mirror_pod(self, node: str, attrs: Attributes) -> None:
        pod = _d(attrs.object)
        meta = _d(pod.get("metadata"))
        if MIRROR_ANNOTATION not in _d(meta.get("annotations")):
            raise forbidden(attrs, f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only '
                                   "create mirror pods")
        if _d(pod.get("spec")).get("nodeName") != node:
            raise forbidden(attrs, f'node "{node}" can only create pods with spec.nodeName set to itself')
        await self._check_owner(node, attrs, meta.get("ownerReferences"))
        refused = _pod_reference_refusal(pod)
        if refused:
            raise forbidden(attrs, f'node "{node}" can not create pods that reference {refused}')

    async def _check_owner(self, node: str, attrs: Attributes, refs: Any) -> None:
        refs = refs if isinstance(refs, list) else []
        if len(refs) > 1:
            raise forbidden(attrs, f'node "{node}" can only create pods with a single owner reference set to itself')
        owner = _d(refs[0]) if refs else {}
        if not refs or owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
            raise forbidden(attrs, f'node "{node}" can only create pods with an owner reference set to itself')
        if owner.get("controller") is not True:
            raise forbidden(attrs, f'node "{node}" can only create pods with a controller owner reference set to itself')
        if owner.get("blockOwnerDeletion") is True:
            raise forbidden(attrs, f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        uid = _d((await self._get("nodes", "", node)).get("metadata")).get("uid")
        if owner.get("uid") != uid:
            raise forbidden(attrs, f"node {node} UID mismatch: expected {owner.get('uid') or ''} got {uid}")

    @staticmethod
    def _pod_status(node: str, attrs: Attributes) -> None:
        if attrs.operation != UPDATE:
            raise forbidden(attrs, f'unexpected operation "{attrs.operation}"')
        old, new = _d(attrs.old_object), _d(attrs.object)
        if _d(old.get("spec")).get("nodeName") != node:
            raise forbidden(attrs, f'node "{node}" can only update pod status for pods with spec.nodeName set to itself')
        if _d(_d(old.get("metadata")).get("labels")) != _d(_d(new.get("metadata")).get("labels")):
            raise forbidden(attrs, f'node "{node}" cannot update labels through pod status')
        if _claim_statuses(old) != _claim_statuses(new):
            raise forbidden(attrs, f'node "{node}" cannot update resource claim statues')

    async def _eviction(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != CREATE:
            raise forbidden(attrs, f"unexpected operation {attrs.operation}")
        pod_name = attrs.name or str(_d(_d(attrs.object).get("metadata")).get("name") or "")
        if not pod_name:
            raise forbidden(attrs, "could not determine pod from request data")
        pod = await self._get("pods", attrs.namespace, pod_name)
        if _d(pod.get("spec")).get("nodeName") != node:
            raise forbidden(attrs, f"node {node} can only evict pods with spec.nodeName set to itself")

    # --- claims, nodes, tokens, leases, csinodes -------------------------------------------------

    @staticmethod
    def _pvc_status(node: str, attrs: Attributes) -> None:
        if attrs.subresource != "status":
            raise forbidden(attrs, "may only update PVC status")
        if attrs.operation != UPDATE:
            raise forbidden(attrs, f'unexpected operation "{attrs.operation}"')
        old, new = _pvc_without_status_fields(attrs.old_object), _pvc_without_status_fields(attrs.object)
        if old != new:
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise forbidden(attrs, f'node "{node}" is not allowed to update fields other than status.capacity and '
                                   f"status.conditions: {', '.join(changed)}")

    @staticmethod
    def _node(node: str, attrs: Attributes) -> None:
        if attrs.name != node:
            raise forbidden(attrs, f'node "{node}" is not allowed to modify node "{attrs.name}"')
        new = _d(attrs.object)
        new_labels = _d(_d(new.get("metadata")).get("labels"))
        if attrs.operation == CREATE:
            if _d(new.get("spec")).get("configSource") is not None:
                raise forbidden(attrs, f'node "{node}" is not allowed to create pods with a non-nil configSource')
            if bad := forbidden_labels({}, new_labels):
                raise forbidden(attrs, f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}')
        elif attrs.operation == UPDATE:
            old = _d(attrs.old_object)
            spec, old_spec = _d(new.get("spec")), _d(old.get("spec"))
            source = spec.get("configSource")
            if source is not None and source != old_spec.get("configSource"):
                raise forbidden(attrs, f'node "{node}" is not allowed to update configSource to a new non-nil '
                                       "configSource")
            if (spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise forbidden(attrs, f'node "{node}" is not allowed to modify taints')
            if bad := forbidden_labels(_d(_d(old.get("metadata")).get("labels")), new_labels):
                raise forbidden(attrs, f"is not allowed to modify labels: {', '.join(bad)}")

    async def _token(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != CREATE or attrs.subresource != "token":
            return
        ref = _d(_d(_d(attrs.object).get("spec")).get("boundObjectRef"))
        if not ref or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise forbidden(attrs, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise forbidden(attrs, "node requested token with a pod binding without a uid")
        pod = await self._get("pods", attrs.namespace, str(ref["name"]))
        if ref["uid"] != _d(pod.get("metadata")).get("uid"):
            raise forbidden(attrs, f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
                                   "record. The object might have been deleted and then recreated")
        if _d(pod.get("spec")).get("nodeName") != node:
            raise forbidden(attrs, "node requested token bound to a pod scheduled on a different node")

    @staticmethod
    def _lease(node: str, attrs: Attributes) -> None:
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            raise forbidden(attrs, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        if _object_name(attrs) != node:
            raise forbidden(attrs, "can only access node lease with the same name as the requesting node")

    @staticmethod
    def _csinode(node: str, attrs: Attributes) -> None:
        if _object_name(attrs) != node:
            raise forbidden(attrs, "can only access CSINode with the same name as the requesting node")


def _object_name(attrs: Attributes) -> str:
    """The name a create asks for (from the object), else the request's."""
    if attrs.operation == CREATE:
        return str(_d(_d(attrs.object).get("metadata")).get("name") or "")
    return attrs.name


def _pod_reference_refusal(pod: dict[str, Any]) -> str:
    """What a node's mirror pod may not reference, in the order Kubernetes checks it ("" if none)."""
    if _d(pod.get("spec")).get("serviceAccountName"):
        return "a service account"
    if podrefs.secret_names(pod):
        return "secrets"
    if podrefs.configmap_names(pod):
        return "configmaps"
    if podrefs.has_cluster_trust_bundles(pod):
        return "clustertrustbundles"
    volumes = _d(pod.get("spec")).get("volumes")
    if any(_d(v).get("persistentVolumeClaim") is not None for v in (volumes if isinstance(volumes, list) else [])):
        return "persistentvolumeclaims"
    return ""


def _claim_statuses(pod: dict[str, Any]) -> list[tuple[Any, Any]]:
    statuses = _d(pod.get("status")).get("resourceClaimStatuses")
    return [(_d(s).get("name"), _d(s).get("resourceClaimName")) for s in (statuses if isinstance(statuses, list) else [])]


def _pvc_without_status_fields(pvc: Any) -> dict[str, Any]:
    """A claim less what a node may change (capacity, conditions, allocated resources) and what does not
    count (resourceVersion, managedFields)."""
    out = dict(_d(pvc))
    meta = dict(_d(out.get("metadata")))
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    out["metadata"] = meta
    status = dict(_d(out.get("status")))
    for field in ("capacity", "conditions", "allocatedResources", "allocatedResourceStatuses"):
        status.pop(field, None)
    out["status"] = status
    return out


def new(init: PluginInit) -> NodeRestriction:
    return NodeRestriction(init.registry)
