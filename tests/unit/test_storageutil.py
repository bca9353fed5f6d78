"""The shared PV/PVC/StorageClass rules (kybernetes.api.storageutil), table by table, against
Kubernetes' component-helpers/storage/volume and the PV controller's index and checks."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from kybernetes.api import storageutil as su

Obj = dict[str, Any]


def claim(name: str = "data", *, size: str | None = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",),
          cls: str | None = "fast", ann: dict[str, str] | None = None, **spec: Any) -> Obj:
    s: Obj = {"accessModes": list(modes), **spec}
    if size is not None:
        s["resources"] = {"requests": {"storage": size}}
    if cls is not None:
        s["storageClassName"] = cls
    return {"metadata": {"name": name, "namespace": "ns", "uid": "u-1", "annotations": dict(ann or {})}, "spec": s}


def volume(name: str, size: str = "1Gi", *, modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str = "fast",
           phase: str = "Available", labels: dict[str, str] | None = None, ref: Obj | None = None,
           host: str | None = None, **spec: Any) -> Obj:
    s: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls, **spec}
    if ref is not None:
        s["claimRef"] = ref
    if host is not None:
        s["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}
    return {"metadata": {"name": name, "labels": dict(labels or {})}, "spec": s, "status": {"phase": phase}}


TO_DATA = {"namespace": "ns", "name": "data"}


def names(pv: Obj | None) -> str | None:
    return None if pv is None else pv["metadata"]["name"]


# --- classes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("obj", "want"), [
    ({"spec": {"storageClassName": "fast"}}, "fast"),
    ({"spec": {}}, ""),
    ({}, ""),
    ({"metadata": {"annotations": {su.BETA_CLASS: "old"}}, "spec": {"storageClassName": "fast"}}, "old"),
    ({"metadata": {"annotations": {su.BETA_CLASS: ""}}, "spec": {"storageClassName": "fast"}}, ""),
    ({"metadata": {"annotations": None}, "spec": None}, ""),
])
def test_class_of_claim_and_volume(obj: Obj, want: str) -> None:
    assert su.claim_class(obj) == want
    assert su.volume_class(obj) == want


@pytest.mark.parametrize(("obj", "want"), [
    ({"spec": {}}, False),
    ({"spec": {"storageClassName": ""}}, True),
    ({"metadata": {"annotations": {su.BETA_CLASS: ""}}, "spec": {}}, True),
])
def test_claim_has_class(obj: Obj, want: bool) -> None:
    assert su.claim_has_class(obj) is want


@pytest.mark.parametrize(("annotations", "want"), [
    ({su.IS_DEFAULT: "true"}, True),
    ({su.BETA_IS_DEFAULT: "true"}, True),
    ({su.IS_DEFAULT: "True"}, False),
    ({}, False),
])
def test_is_default_storage_class(annotations: dict[str, str], want: bool) -> None:
    assert su.is_default_storage_class({"metadata": {"annotations": annotations}}) is want


def test_newest_default_wins_ties_by_name() -> None:
    def sc(name: str, ts: str, default: bool = True) -> Obj:
        return {"metadata": {"name": name, "creationTimestamp": ts,
                             "annotations": {su.IS_DEFAULT: "true"} if default else {}}}
    classes = [sc("b", "2024-01-02T00:00:00Z"), sc("a", "2024-01-02T00:00:00Z"), sc("old", "2024-01-01T00:00:00Z"),
               sc("newest-not-default", "2025-01-01T00:00:00Z", default=False)]
    assert names(su.newest_default(classes)) == "a"
    assert su.newest_default([classes[3]]) is None


@pytest.mark.parametrize(("mode", "want"), [("WaitForFirstConsumer", True), ("Immediate", False), (None, False)])
def test_is_delay_binding(mode: str | None, want: bool) -> None:
    classes = {"fast": {"metadata": {"name": "fast"}, "volumeBindingMode": mode}}
    assert su.is_delay_binding(claim(), classes) is want
    assert su.is_delay_binding(claim(cls="missing"), classes) is False


@pytest.mark.parametrize(("annotations", "want"), [
    ({su.ANN_STORAGE_PROVISIONER: "a", su.ANN_BETA_STORAGE_PROVISIONER: "b"}, "a"),
    ({su.ANN_BETA_STORAGE_PROVISIONER: "b"}, "b"),
    ({}, ""),
])
def test_claim_provisioner(annotations: dict[str, str], want: str) -> None:
    assert su.claim_provisioner(claim(ann=annotations)) == want


# --- sizes, modes, binding -----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "want"), [
    ("1Gi", Fraction(2**30)), ("1500m", Fraction(3, 2)), (None, Fraction(0)), ("bogus", Fraction(0)),
])
def test_storage_request_is_exact(size: str | None, want: Fraction) -> None:
    assert su.storage_request(claim(size=size)) == want


def test_storage_capacity_and_claim_capacity() -> None:
    assert su.storage_capacity(volume("pv", "2Gi")) == 2 * 2**30
    assert su.storage_capacity({"spec": {}}) == 0
    assert su.claim_capacity({"status": {"capacity": {"storage": "1Ki"}}}) == 1024
    assert su.claim_capacity({"status": {}}) is None


@pytest.mark.parametrize(("pv_modes", "claim_modes", "want"), [
    (("ReadWriteOnce", "ReadOnlyMany"), ("ReadWriteOnce",), True),
    (("ReadWriteOnce",), ("ReadWriteOnce", "ReadOnlyMany"), False),
    ((), (), True),
    (("ReadWriteOncePod",), ("ReadWriteOnce",), False),
])
def test_volume_serves_access_modes(pv_modes: tuple[str, ...], claim_modes: tuple[str, ...], want: bool) -> None:
    assert su.volume_serves_access_modes(volume("pv", modes=pv_modes), claim(modes=claim_modes)) is want


@pytest.mark.parametrize(("ref", "want"), [
    (None, False),
    ({"namespace": "ns", "name": "data"}, True),
    ({"namespace": "ns", "name": "data", "uid": "u-1"}, True),
    ({"namespace": "ns", "name": "data", "uid": "u-2"}, False),
    ({"namespace": "other", "name": "data"}, False),
    ({"namespace": "ns", "name": "other"}, False),
])
def test_is_volume_bound_to_claim(ref: Obj | None, want: bool) -> None:
    assert su.is_volume_bound_to_claim(volume("pv", ref=ref), claim()) is want


def test_is_volume_bound_to_claim_without_namespaces() -> None:
    assert su.is_volume_bound_to_claim({"spec": {"claimRef": {"name": "c"}}}, {"metadata": {"name": "c"}})


@pytest.mark.parametrize(("volume_name", "annotations", "want"), [
    ("pv", {su.ANN_BIND_COMPLETED: "yes"}, True),
    ("pv", {}, False),
    ("", {su.ANN_BIND_COMPLETED: "yes"}, False),
])
def test_is_claim_bound(volume_name: str, annotations: dict[str, str], want: bool) -> None:
    assert su.is_claim_bound(claim(ann=annotations, volumeName=volume_name)) is want


@pytest.mark.parametrize(("pv", "node", "want"), [
    (volume("pv"), "a", True),
    (volume("pv", host="a"), "a", True),
    (volume("pv", host="a"), "b", False),
])
def test_node_affinity_matcher(pv: Obj, node: str, want: bool) -> None:
    class Node:
        name = node
        labels = {"kubernetes.io/hostname": node}
    matcher = su.node_affinity_matcher(pv)
    assert (matcher is None or matcher(Node())) is want


@pytest.mark.parametrize(("terms", "want"), [
    (None, True),
    ([], True),
    ([{"matchLabelExpressions": [{"key": "zone", "values": ["z1", "z2"]}]}], True),
    ([{"matchLabelExpressions": [{"key": "zone", "values": ["z3"]}]}], False),
    ([{"matchLabelExpressions": [{"key": "zone", "values": ["z3"]}]},
      {"matchLabelExpressions": [{"key": "zone", "values": ["z1"]}]}], True),
    ([{"matchLabelExpressions": [{"key": "zone", "values": ["z1"]}, {"key": "rack", "values": ["r9"]}]}], False),
])
def test_topology_matches(terms: list[Obj] | None, want: bool) -> None:
    assert su.topology_matches(terms, {"zone": "z1", "rack": "r1"}) is want


# --- FindMatchingVolume --------------------------------------------------------------------------

NODE_A = {"node_fits": lambda pv: (pv["spec"].get("nodeAffinity") is None
                                   or "a" in pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
                                   ["matchExpressions"][0]["values"])}
"""The scheduler's path, for node "a"."""

FIND_CASES = [
    # (case, claim, volumes in order, keyword arguments, the volume found)
    ("smallest that fits", claim(), [volume("big", "5Gi"), volume("small", "2Gi"), volume("tiny", "1Mi")],
     {}, "small"),
    ("equal sizes: the first", claim(), [volume("b"), volume("a")], {}, "b"),
    ("sizes compare exactly", claim(size="1500m"), [volume("one", "1"), volume("two", "2")], {}, "two"),
    ("pre-bound wins over smaller", claim(), [volume("small"), volume("mine", "9Gi", ref=TO_DATA)], {}, "mine"),
    ("pre-bound: class, phase, selector not checked", claim(selector={"matchLabels": {"x": "y"}}),
     [volume("mine", cls="other", phase="Pending", ref=TO_DATA)], {}, "mine"),
    ("pre-bound but too small", claim(), [volume("mine", "1Mi", ref=TO_DATA)], {}, None),
    ("another claim's", claim(), [volume("theirs", ref={"namespace": "ns", "name": "x"})], {}, None),
    ("not Available", claim(), [volume("pv", phase="Released")], {}, None),
    ("other class", claim(), [volume("pv", cls="slow")], {}, None),
    ("no class matches no class", claim(cls=None), [volume("pv", cls="")], {}, "pv"),
    ("beta class annotation", claim(cls=None, ann={su.BETA_CLASS: "fast"}), [volume("pv")], {}, "pv"),
    ("selector", claim(selector={"matchLabels": {"tier": "gold"}}),
     [volume("plain"), volume("gold", "9Gi", labels={"tier": "gold"})], {}, "gold"),
    ("empty selector selects all", claim(selector={}), [volume("pv")], {}, "pv"),
    ("malformed selector matches nothing", claim(selector={"matchLabels": ["x"]}), [volume("pv", ref=TO_DATA)],
     {}, None),
    ("volumeMode unset is Filesystem", claim(), [volume("pv", volumeMode="Filesystem")], {}, "pv"),
    ("volumeMode differs", claim(volumeMode="Block"), [volume("pv")], {}, None),
    ("being deleted", claim(), [{**volume("pv"), "metadata": {"name": "pv", "deletionTimestamp": "t"}}], {}, None),
    ("excluded", claim(), [volume("taken"), volume("free", "2Gi")], {"excluded": {"taken"}}, "free"),
    ("delay binding, no node: only pre-bound", claim(), [volume("pv")], {"delay_binding": True}, None),
    ("delay binding, no node, pre-bound", claim(), [volume("pv", ref=TO_DATA)], {"delay_binding": True}, "pv"),
    ("no node: access modes are the caller's", claim(modes=("ReadWriteMany",)), [volume("pv")], {}, "pv"),
    ("node: access modes checked", claim(modes=("ReadWriteMany",)), [volume("pv")], NODE_A, None),
    ("node: delay binding ignored", claim(), [volume("pv")], {**NODE_A, "delay_binding": True}, "pv"),
    ("node: affinity elsewhere", claim(), [volume("b", host="b"), volume("a", "9Gi", host="a")], NODE_A, "a"),
    ("node: pre-bound elsewhere means no match", claim(),
     [volume("a", host="a"), volume("mine", ref=TO_DATA, host="b")], NODE_A, None),
]


@pytest.mark.parametrize(("case", "pvc", "volumes", "kwargs", "want"), FIND_CASES, ids=[c[0] for c in FIND_CASES])
def test_find_matching_volume(case: str, pvc: Obj, volumes: list[Obj], kwargs: dict[str, Any],
                              want: str | None) -> None:
    assert names(su.find_matching_volume(pvc, volumes, **kwargs)) == want


@pytest.mark.parametrize(("pvc", "volumes", "want"), [
    # The smallest set of access modes that contains the claim's comes first, whatever the sizes.
    (claim(), [volume("rwo-rox", "1Gi", modes=("ReadWriteOnce", "ReadOnlyMany")),
               volume("rwo", "9Gi", modes=("ReadWriteOnce",))], "rwo"),
    (claim(), [volume("rwo-rox", "1Gi", modes=("ReadWriteOnce", "ReadOnlyMany")),
               volume("rwo", "1Mi", modes=("ReadWriteOnce",))], "rwo-rox"),
    (claim(modes=("ReadWriteMany",)), [volume("rwo")], None),
    # Within a set, by name: equal sizes give the first name.
    (claim(), [volume("b"), volume("a")], "a"),
])
def test_find_best_match(pvc: Obj, volumes: list[Obj], want: str | None) -> None:
    assert names(su.find_best_match(pvc, volumes, delay_binding=False)) == want


@pytest.mark.parametrize(("pv", "pvc", "want"), [
    (volume("pv"), claim(), ""),
    ({**volume("pv"), "metadata": {"name": "pv", "deletionTimestamp": "t"}}, claim(),
     'the volume is marked for deletion "pv"'),
    (volume("pv", "1Mi"), claim(), "requested PV is too small"),
    # Whole bytes, rounded up (Quantity.Value): 1.5 is 2 here, unlike in FindMatchingVolume.
    (volume("pv", "1500m"), claim(size="2"), ""),
    (volume("pv", cls="slow"), claim(), "storageClassName does not match"),
    (volume("pv", volumeMode="Block"), claim(), "incompatible volumeMode"),
    (volume("pv"), claim(modes=("ReadWriteMany",)), "incompatible accessMode"),
])
def test_volume_satisfies_claim(pv: Obj, pvc: Obj, want: str) -> None:
    assert su.volume_satisfies_claim(pv, pvc) == want


# --- a pod's claims ------------------------------------------------------------------------------

POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "pod-uid"}, "spec": {"volumes": [
    {"name": "data", "persistentVolumeClaim": {"claimName": "shared"}},
    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
    {"name": "tmp", "emptyDir": {}},
]}}


def test_pod_claims_name_ephemeral_claims_pod_dash_volume() -> None:
    assert su.pod_claims(POD) == [("shared", False), ("web-scratch", True)]
    assert su.pod_claims({"spec": {"volumes": None}}) == []


def owned(uid: str, *, controller: bool = True, namespace: str = "ns") -> Obj:
    return {"metadata": {"name": "web-scratch", "namespace": namespace,
                         "ownerReferences": [{"kind": "Pod", "name": "web", "uid": uid, "controller": controller}]}}


NOT_OWNER = "PVC ns/web-scratch was not created for pod ns/web (pod is not owner)"


@pytest.mark.parametrize(("pvc", "want"), [
    (owned("pod-uid"), ""),
    (owned("other-uid"), NOT_OWNER),
    (owned("pod-uid", controller=False), NOT_OWNER),
    (owned("pod-uid", namespace="elsewhere"), "PVC elsewhere/web-scratch was not created for pod ns/web "
                                              "(pod is not owner)"),
    ({"metadata": {"name": "web-scratch", "namespace": "ns"}}, NOT_OWNER),
])
def test_volume_is_for_pod(pvc: Obj, want: str) -> None:
    assert su.volume_is_for_pod(POD, pvc) == want
