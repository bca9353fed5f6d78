"""Discovery against kube-apiserver 1.32: every group/version/resource it serves by default is served
here, with the same facts (kind, scope, verbs, short names, categories, singular name, subresources),
or is an exception naming the issue that delivers it.

The reference is what a kube-apiserver 1.32 with default flags and feature gates answers in its
aggregated discovery (``kubectl api-resources -o wide``; ``api/discovery`` in Kubernetes' tree lists
the same resources with every API enabled). Only GA versions are on by default in 1.32. Each
resource's kind and scope are also checked against the 1.32 OpenAPI definitions the project already
ships (kubernetes-validate), so a typo in this table cannot pass.

metrics.k8s.io is not in the reference: kube-apiserver does not serve it (metrics-server does, by
aggregation); issue 15 ("Observability") delivers it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kybernetes.api import schema
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.transport import discovery

ALL8 = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION = ("create", "delete", "get", "list", "patch", "update", "watch")
CREATE = ("create",)
ALL = ("all",)
EXT = ("api-extensions",)


@dataclass(frozen=True)
class Ref:
    """One resource as kube-apiserver 1.32 serves it by default."""

    gv: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL8
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = ""

    @property
    def group_version(self) -> tuple[str, str]:
        group, _, version = self.gv.rpartition("/")
        return group, version

    @property
    def key(self) -> tuple[str, str, str]:
        return (*self.group_version, self.plural)


KUBE_APISERVER_1_32: tuple[Ref, ...] = (
    Ref("v1", "bindings", "Binding", True, CREATE),
    Ref("v1", "componentstatuses", "ComponentStatus", False, ("get", "list"), ("cs",)),
    Ref("v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    Ref("v1", "endpoints", "Endpoints", True, short_names=("ep",), singular="endpoints"),
    Ref("v1", "events", "Event", True, short_names=("ev",)),
    Ref("v1", "limitranges", "LimitRange", True, short_names=("limits",)),
    Ref("v1", "namespaces", "Namespace", False, NO_COLLECTION, ("ns",), subresources=("finalize", "status")),
    Ref("v1", "nodes", "Node", False, short_names=("no",), subresources=("proxy", "status")),
    Ref("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=("pvc",),
        subresources=("status",)),
    Ref("v1", "persistentvolumes", "PersistentVolume", False, short_names=("pv",), subresources=("status",)),
    Ref("v1", "pods", "Pod", True, short_names=("po",), categories=ALL,
        subresources=("attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward",
                      "proxy", "status")),
    Ref("v1", "podtemplates", "PodTemplate", True),
    Ref("v1", "replicationcontrollers", "ReplicationController", True, short_names=("rc",), categories=ALL,
        subresources=("scale", "status")),
    Ref("v1", "resourcequotas", "ResourceQuota", True, short_names=("quota",), subresources=("status",)),
    Ref("v1", "secrets", "Secret", True),
    Ref("v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",), subresources=("token",)),
    Ref("v1", "services", "Service", True, NO_COLLECTION, ("svc",), ALL, ("proxy", "status")),
    Ref("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False,
        categories=EXT),
    Ref("admissionregistration.k8s.io/v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False,
        categories=EXT, subresources=("status",)),
    Ref("admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding",
        False, categories=EXT),
    Ref("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
        False, categories=EXT),
    Ref("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition", False,
        short_names=("crd", "crds"), categories=EXT, subresources=("status",)),
    Ref("apiregistration.k8s.io/v1", "apiservices", "APIService", False, categories=EXT, subresources=("status",)),
    Ref("apps/v1", "controllerrevisions", "ControllerRevision", True),
    Ref("apps/v1", "daemonsets", "DaemonSet", True, short_names=("ds",), categories=ALL, subresources=("status",)),
    Ref("apps/v1", "deployments", "Deployment", True, short_names=("deploy",), categories=ALL,
        subresources=("scale", "status")),
    Ref("apps/v1", "replicasets", "ReplicaSet", True, short_names=("rs",), categories=ALL,
        subresources=("scale", "status")),
    Ref("apps/v1", "statefulsets", "StatefulSet", True, short_names=("sts",), categories=ALL,
        subresources=("scale", "status")),
    Ref("authentication.k8s.io/v1", "selfsubjectreviews", "SelfSubjectReview", False, CREATE),
    Ref("authentication.k8s.io/v1", "tokenreviews", "TokenReview", False, CREATE),
    Ref("authorization.k8s.io/v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True, CREATE),
    Ref("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, CREATE),
    Ref("authorization.k8s.io/v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, CREATE),
    Ref("authorization.k8s.io/v1", "subjectaccessreviews", "SubjectAccessReview", False, CREATE),
    Ref("autoscaling/v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, short_names=("hpa",),
        categories=ALL, subresources=("status",)),
    Ref("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, short_names=("hpa",),
        categories=ALL, subresources=("status",)),
    Ref("batch/v1", "cronjobs", "CronJob", True, short_names=("cj",), categories=ALL, subresources=("status",)),
    Ref("batch/v1", "jobs", "Job", True, categories=ALL, subresources=("status",)),
    Ref("certificates.k8s.io/v1", "certificatesigningrequests", "CertificateSigningRequest", False,
        short_names=("csr",), subresources=("approval", "status")),
    Ref("coordination.k8s.io/v1", "leases", "Lease", True),
    Ref("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
    Ref("events.k8s.io/v1", "events", "Event", True, short_names=("ev",)),
    Ref("flowcontrol.apiserver.k8s.io/v1", "flowschemas", "FlowSchema", False, subresources=("status",)),
    Ref("flowcontrol.apiserver.k8s.io/v1", "prioritylevelconfigurations", "PriorityLevelConfiguration", False,
        subresources=("status",)),
    Ref("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    Ref("networking.k8s.io/v1", "ingresses", "Ingress", True, short_names=("ing",), subresources=("status",)),
    Ref("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",)),
    Ref("node.k8s.io/v1", "runtimeclasses", "RuntimeClass", False),
    Ref("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",),
        subresources=("status",)),
    Ref("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Ref("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    Ref("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", True),
    Ref("rbac.authorization.k8s.io/v1", "roles", "Role", True),
    Ref("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", False, short_names=("pc",)),
    Ref("storage.k8s.io/v1", "csidrivers", "CSIDriver", False),
    Ref("storage.k8s.io/v1", "csinodes", "CSINode", False),
    Ref("storage.k8s.io/v1", "csistoragecapacities", "CSIStorageCapacity", True),
    Ref("storage.k8s.io/v1", "storageclasses", "StorageClass", False, short_names=("sc",)),
    Ref("storage.k8s.io/v1", "volumeattachments", "VolumeAttachment", False, subresources=("status",)),
)

_AUTHZ = 'issue 10 "Authorization and admission"'
_EXTENSION_POINTS = 'issue 11 "Extension points"'

EXCEPTIONS: dict[str, str] = {
    # Resources (group/version/plural) and subresources (.../plural/sub) not served yet, and who
    # delivers each. The test fails once one of them is served: then drop its row.
    "v1/pods/proxy": _EXTENSION_POINTS,
}


def _name(gv: str, plural: str, sub: str = "") -> str:
    return f"{gv}/{plural}/{sub}" if sub else f"{gv}/{plural}"


def _served() -> dict[str, dict[str, object]]:
    """What aggregated discovery serves: resource name -> its discovery entry."""
    cat = Catalogue.builtin()
    out: dict[str, dict[str, object]] = {}
    for core in (True, False):
        for group in discovery.aggregated(cat, core)["items"]:
            name = group["metadata"].get("name", "")
            for version in group["versions"]:
                gv = f"{name}/{version['version']}" if name else version["version"]
                for res in version["resources"]:
                    out[_name(gv, res["resource"])] = res
    return out


def _differences(ref: Ref, served: dict[str, object]) -> list[str]:
    subs = {s["subresource"] for s in served.get("subresources", ())}  # type: ignore[attr-defined]
    expected_subs = {s for s in ref.subresources if _name(ref.gv, ref.plural, s) not in EXCEPTIONS}
    want = {
        "kind": ref.kind,
        "scope": "Namespaced" if ref.namespaced else "Cluster",
        "verbs": sorted(ref.verbs),
        "shortNames": list(ref.short_names),
        "categories": list(ref.categories),
        "singularResource": ref.singular or ref.kind.lower(),
        "subresources": sorted(expected_subs),
    }
    got = {
        "kind": served["responseKind"]["kind"],  # type: ignore[index]
        "scope": served["scope"],
        "verbs": sorted(served["verbs"]),  # type: ignore[call-overload]
        "shortNames": served.get("shortNames", []),
        "categories": served.get("categories", []),
        "singularResource": served["singularResource"],
        "subresources": sorted(subs),
    }
    return [f"{_name(ref.gv, ref.plural)} {k}: served {got[k]!r}, kube-apiserver 1.32 {want[k]!r}"
            for k in want if want[k] != got[k]]


def test_reference_agrees_with_the_1_32_openapi() -> None:
    for ref in KUBE_APISERVER_1_32:
        group, version = ref.group_version
        assert schema.definition_name(group, version, ref.kind), f"{ref.gv} {ref.kind} is not a 1.32 kind"
    assert len({r.key for r in KUBE_APISERVER_1_32}) == len(KUBE_APISERVER_1_32)
    # `kubectl api-resources` on a default 1.32 cluster lists 58 (autoscaling/v1 and v2 share a row).
    assert len({(r.group_version[0], r.plural) for r in KUBE_APISERVER_1_32}) == 58


def test_every_default_resource_is_served_or_excepted() -> None:
    served = _served()
    missing = [_name(r.gv, r.plural) for r in KUBE_APISERVER_1_32
               if _name(r.gv, r.plural) not in served and _name(r.gv, r.plural) not in EXCEPTIONS]
    assert missing == [], "served neither nor listed in EXCEPTIONS with the issue that delivers it"


def test_served_resources_match_kube_apiserver() -> None:
    served = _served()
    problems = [d for r in KUBE_APISERVER_1_32 if _name(r.gv, r.plural) in served
                for d in _differences(r, served[_name(r.gv, r.plural)])]
    assert problems == []


def test_nothing_is_served_that_kube_apiserver_does_not_serve() -> None:
    reference = {_name(r.gv, r.plural) for r in KUBE_APISERVER_1_32}
    assert sorted(set(_served()) - reference) == []


def _served_names() -> set[str]:
    """Every served resource and subresource, as ``group/version/plural[/sub]``."""
    names = set()
    for name, entry in _served().items():
        names.add(name)
        names |= {f"{name}/{s['subresource']}" for s in entry.get("subresources", ())}  # type: ignore[attr-defined]
    return names


def test_exceptions_are_still_true() -> None:
    """An exception that is served now must go, so the table stays a list of what is missing."""
    served = _served_names()
    assert sorted(f"{name} ({issue})" for name, issue in EXCEPTIONS.items() if name in served) == []
    known = {_name(r.gv, r.plural) for r in KUBE_APISERVER_1_32}
    known |= {_name(r.gv, r.plural, s) for r in KUBE_APISERVER_1_32 for s in r.subresources}
    assert sorted(set(EXCEPTIONS) - known) == [], "exceptions must name something kube-apiserver 1.32 serves"
