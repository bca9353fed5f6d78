"""DefaultStorageClass, DefaultIngressClass and StorageObjectInUseProtection: what each does to a new object."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.apiserver.admission.defaultingressclass import default_ingress_class
from kybernetes.apiserver.admission.defaultstorageclass import default_claim_class
from kybernetes.apiserver.admission.storageobjectinuseprotection import add_finalizer

Obj = dict[str, Any]

GA_SC = {"storageclass.kubernetes.io/is-default-class": "true"}
BETA_SC = {"storageclass.beta.kubernetes.io/is-default-class": "true"}
IC = {"ingressclass.kubernetes.io/is-default-class": "true"}


def cls(name: str, created: str, annotations: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations or {}}}


T1, T2 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


@pytest.mark.parametrize(("claim_spec", "claim_annotations", "classes", "expected"), [
    ({}, {}, [], None),
    ({}, {}, [cls("plain", T1)], None),
    ({}, {}, [cls("fast", T1, GA_SC), cls("plain", T2)], "fast"),
    ({}, {}, [cls("beta", T1, BETA_SC)], "beta"),
    ({}, {}, [cls("off", T1, {"storageclass.kubernetes.io/is-default-class": "True"})], None),
    ({}, {}, [cls("old", T1, GA_SC), cls("new", T2, GA_SC)], "new"),
    ({}, {}, [cls("b", T1, GA_SC), cls("a", T1, GA_SC)], "a"),
    ({"storageClassName": "mine"}, {}, [cls("fast", T1, GA_SC)], "mine"),
    ({"storageClassName": ""}, {}, [cls("fast", T1, GA_SC)], ""),
    ({}, {"volume.beta.kubernetes.io/storage-class": "x"}, [cls("fast", T1, GA_SC)], None),
], ids=["no-classes", "no-default", "one-default", "beta-default", "not-exactly-true", "newest-wins",
        "tie-by-name", "named-class-kept", "empty-class-kept", "beta-claim-annotation-kept"])
def test_default_storage_class(claim_spec: Obj, claim_annotations: dict[str, str], classes: list[Obj],
                               expected: str | None) -> None:
    pvc: Obj = {"metadata": {"name": "c", "annotations": claim_annotations}, "spec": dict(claim_spec)}
    default_claim_class(pvc, classes)
    assert pvc["spec"].get("storageClassName") == expected


@pytest.mark.parametrize(("ingress_spec", "ingress_annotations", "classes", "expected"), [
    ({}, {}, [], None),
    ({}, {}, [cls("nginx", T1)], None),
    ({}, {}, [cls("nginx", T1, IC)], "nginx"),
    ({}, {}, [cls("storage-style", T1, GA_SC)], None),
    ({}, {}, [cls("old", T1, IC), cls("new", T2, IC)], "new"),
    ({}, {}, [cls("b", T1, IC), cls("a", T1, IC)], "a"),
    ({"ingressClassName": "mine"}, {}, [cls("nginx", T1, IC)], "mine"),
    ({}, {"kubernetes.io/ingress.class": "legacy"}, [cls("nginx", T1, IC)], None),
], ids=["no-classes", "no-default", "one-default", "other-annotation", "newest-wins", "tie-by-name",
        "named-class-kept", "legacy-annotation-kept"])
def test_default_ingress_class(ingress_spec: Obj, ingress_annotations: dict[str, str], classes: list[Obj],
                               expected: str | None) -> None:
    ingress: Obj = {"metadata": {"name": "i", "annotations": ingress_annotations}, "spec": dict(ingress_spec)}
    default_ingress_class(ingress, classes)
    assert ingress["spec"].get("ingressClassName") == expected


@pytest.mark.parametrize(("finalizers", "finalizer", "expected"), [
    (None, "kubernetes.io/pvc-protection", ["kubernetes.io/pvc-protection"]),
    (["a"], "kubernetes.io/pv-protection", ["a", "kubernetes.io/pv-protection"]),
    (["kubernetes.io/pvc-protection"], "kubernetes.io/pvc-protection", ["kubernetes.io/pvc-protection"]),
], ids=["none-yet", "appended", "not-twice"])
def test_storage_object_in_use_protection_finalizer(finalizers: list[str] | None, finalizer: str,
                                                    expected: list[str]) -> None:
    obj: Obj = {"metadata": {"name": "x"} | ({"finalizers": finalizers} if finalizers is not None else {})}
    add_finalizer(obj, finalizer)
    assert obj["metadata"]["finalizers"] == expected
