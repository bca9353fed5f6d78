"""The catalogue of API resources: group, version, kind, plural, scope, names, verbs, subresources.

This is the RESTMapper of kybernetes. Discovery, routing, OpenAPI and the registry all read it.
Built-in resources are listed once, in :data:`BUILTIN`; custom resources are added and removed at
run time as CustomResourceDefinitions come and go (:meth:`Catalogue.add`, :meth:`Catalogue.remove`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    singular: str = ""
    """Defaults to the lower-cased kind."""
    builtin: bool = True
    storage_group: str | None = None
    """The group whose storage it shares, when it is another API's view of that group's objects
    (``events.k8s.io`` Events are core Events); None: its own group."""

    @property
    def stored(self) -> bool:
        """Whether its objects are kept in the store: every stored resource can be created and
        read back; one that cannot is computed (componentstatuses) or only accepts requests
        (bindings, tokenreviews). Discovery gives only stored ones a storageVersionHash."""
        return "create" in self.verbs and "get" in self.verbs

    # api_version and key_prefix are read on every request (several times): computed once per
    # Resource (it is frozen; the cached values live outside its fields, so equality and hash
    # are unchanged).
    @cached_property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``deployments.apps``, or ``pods`` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def stored_in(self) -> tuple[str, str]:
        """The (group, plural) its objects are stored under: shared by all its versions and views."""
        return (self.group if self.storage_group is None else self.storage_group, self.plural)

    @cached_property
    def key_prefix(self) -> str:
        """Where its objects live in the store (one prefix per stored resource, all versions), as
        kube-apiserver lays out etcd: see :func:`storage_prefix`."""
        group, plural = self.stored_in
        return f"/registry/{storage_prefix(group, plural, self.builtin)}/"

    @property
    def legacy_key_prefix(self) -> str:
        """Where kybernetes kept its objects before it used kube-apiserver's layout
        (``/registry/<group or core>/<plural>/``), for the one-time rename of an older store."""
        group, plural = self.stored_in
        return f"/registry/{group or 'core'}/{plural}/"

    def key(self, namespace: str, name: str) -> str:
        return f"{self.key_prefix}{namespace}/{name}" if self.namespaced else f"{self.key_prefix}{name}"

    def namespace_prefix(self, namespace: str) -> str:
        return f"{self.key_prefix}{namespace}/" if self.namespaced and namespace else self.key_prefix


SPECIAL_PREFIXES = {
    ("", "replicationcontrollers"): "controllers",
    ("", "endpoints"): "services/endpoints",
    ("", "nodes"): "minions",
    ("", "services"): "services/specs",
    ("networking.k8s.io", "ingresses"): "ingress",
}
"""kube-apiserver's prefixes that are not the resource's name (``SpecialDefaultResourcePrefixes``
in ``pkg/kubeapiserver/default_storage_factory_builder.go``)."""

GROUP_PREFIXED = ("apiextensions.k8s.io", "apiregistration.k8s.io")
"""Built-in groups whose resources kube-apiserver keeps under ``<group>/<resource>`` (they are
served by the apiextensions and aggregator servers, which use that layout)."""


def storage_prefix(group: str, plural: str, builtin: bool = True) -> str:
    """A stored resource's key prefix below ``/registry/``, as in a kube-apiserver's etcd:
    ``pods``, ``deployments``, ``services/specs``, ``apiextensions.k8s.io/customresourcedefinitions``;
    ``<group>/<plural>`` for custom resources."""
    if not builtin or group in GROUP_PREFIXED:
        return f"{group}/{plural}"
    return SPECIAL_PREFIXES.get((group, plural), plural)


def _r(group: str, version: str, kind: str, plural: str, **kw: object) -> Resource:
    return Resource(group, version, kind, plural, **kw)  # type: ignore[arg-type]


ALL = ("all",)

BUILTIN: tuple[Resource, ...] = (
    # core/v1
    _r("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",), subresources=("status", "finalize"),
       verbs=NO_COLLECTION),
    _r("", "v1", "Pod", "pods", short_names=("po",), categories=ALL,
       subresources=("status", "binding", "eviction", "log", "exec", "attach", "portforward", "ephemeralcontainers")),
    _r("", "v1", "Node", "nodes", namespaced=False, short_names=("no",), subresources=("status", "proxy")),
    _r("", "v1", "Service", "services", short_names=("svc",), categories=ALL, subresources=("status", "proxy"),
       verbs=NO_COLLECTION),
    _r("", "v1", "Endpoints", "endpoints", short_names=("ep",), singular="endpoints"),
    _r("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    _r("", "v1", "Secret", "secrets"),
    _r("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",), subresources=("token",)),
    _r("", "v1", "Event", "events", short_names=("ev",)),
    _r("", "v1", "ResourceQuota", "resourcequotas", short_names=("quota",), subresources=("status",)),
    _r("", "v1", "LimitRange", "limitranges", short_names=("limits",)),
    _r("", "v1", "PersistentVolume", "persistentvolumes", namespaced=False, short_names=("pv",),
       subresources=("status",)),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), subresources=("status",)),
    _r("", "v1", "ReplicationController", "replicationcontrollers", short_names=("rc",), categories=ALL,
       subresources=("status", "scale")),
    _r("", "v1", "PodTemplate", "podtemplates"),
    _r("", "v1", "Binding", "bindings", verbs=("create",)),
    _r("", "v1", "ComponentStatus", "componentstatuses", namespaced=False, short_names=("cs",),
       verbs=("get", "list"), singular="componentstatus"),
    # authentication.k8s.io/v1: computed on create, never stored (apiserver/auth/reviews.py)
    _r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False, verbs=("create",)),
    _r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", namespaced=False,
       verbs=("create",)),
    # authorization.k8s.io/v1: asked of the authorizer on create, never stored (apiserver/authz/reviews.py)
    _r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", namespaced=False,
       verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", namespaced=False,
       verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", namespaced=False,
       verbs=("create",)),
    # apps/v1
    _r("apps", "v1", "Deployment", "deployments", short_names=("deploy",), categories=ALL,
       subresources=("status", "scale")),
    _r("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), categories=ALL,
       subresources=("status", "scale")),
    _r("apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), categories=ALL,
       subresources=("status", "scale")),
    _r("apps", "v1", "DaemonSet", "daemonsets", short_names=("ds",), categories=ALL, subresources=("status",)),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions"),
    # batch/v1
    _r("batch", "v1", "Job", "jobs", categories=ALL, subresources=("status",)),
    _r("batch", "v1", "CronJob", "cronjobs", short_names=("cj",), categories=ALL, subresources=("status",)),
    # certificates.k8s.io/v1
    _r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", namespaced=False,
       short_names=("csr",), subresources=("status", "approval")),
    # autoscaling: v1 and v2 serve the same objects (stored as v2)
    _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
       categories=ALL, subresources=("status",)),
    _r("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
       categories=ALL, subresources=("status",)),
    # others
    _r("coordination.k8s.io", "v1", "Lease", "leases"),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    _r("events.k8s.io", "v1", "Event", "events", short_names=("ev",), storage_group=""),
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False, short_names=("pc",)),
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short_names=("pdb",), subresources=("status",)),
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", short_names=("ing",), subresources=("status",)),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short_names=("netpol",)),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", namespaced=False),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False, short_names=("sc",)),
    _r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", namespaced=False),
    _r("storage.k8s.io", "v1", "CSINode", "csinodes", namespaced=False),
    _r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", namespaced=False, subresources=("status",)),
    _r("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", singular="csistoragecapacity"),
    _r("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", namespaced=False),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    _r("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", namespaced=False, subresources=("status",)),
    _r("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations",
       namespaced=False, subresources=("status",)),
    _r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
       namespaced=False, categories=("api-extensions",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
       namespaced=False, categories=("api-extensions",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies",
       namespaced=False, categories=("api-extensions",), subresources=("status",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings",
       namespaced=False, categories=("api-extensions",)),
    _r("apiregistration.k8s.io", "v1", "APIService", "apiservices", namespaced=False,
       categories=("api-extensions",), subresources=("status",)),
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False,
       short_names=("crd", "crds"), categories=("api-extensions",), subresources=("status",)),
)

# The order of groups in discovery; kubectl prefers the first group that has a resource name.
GROUP_ORDER = (
    "", "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
    "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io",
    "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io",
    "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "flowcontrol.apiserver.k8s.io",
)


@dataclass
class Catalogue:
    """Resources by (group, version, plural), with the lookups discovery and routing need."""

    _by_path: dict[tuple[str, str, str], Resource] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    generation: int = 0
    """Bumped on every change, so caches of discovery documents know when to rebuild."""

    @classmethod
    def builtin(cls) -> Catalogue:
        c = cls()
        c.add_all(BUILTIN)
        return c

    def add_all(self, resources: Iterable[Resource]) -> None:
        with self._lock:
            for r in resources:
                self._by_path[(r.group, r.version, r.plural)] = r
            self.generation += 1

    def add(self, r: Resource) -> None:
        self.add_all([r])

    def remove(self, group: str, version: str, plural: str) -> None:
        with self._lock:
            if self._by_path.pop((group, version, plural), None) is not None:
                self.generation += 1

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> Resource | None:
        for r in self._by_path.values():
            if r.group == group and r.version == version and r.kind == kind:
                return r
        return None

    def all(self) -> list[Resource]:
        return list(self._by_path.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name -> its versions, preferred (first listed) first."""
        out: dict[str, list[str]] = {}
        for r in self._by_path.values():
            vs = out.setdefault(r.group, [])
            if r.version not in vs:
                vs.append(r.version)
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        for vs in out.values():
            vs.sort(key=version_priority)
        return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self._by_path.values() if r.group == group and r.version == version]


def version_priority(v: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA before beta before alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor)
