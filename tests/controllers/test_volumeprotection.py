"""pvc-protection and pv-protection decisions: when a protected claim or volume is in use."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.controllers.volumeprotection import (
    PV_FINALIZER,
    PVC_FINALIZER,
    claim_names,
    is_deletion_candidate,
    needs_finalizer,
    pod_uses_claim,
    volume_in_use,
)

Obj = dict[str, Any]
CLAIM: Obj = {"metadata": {"name": "data", "namespace": "ns", "uid": "c1"}}
EPHEMERAL_CLAIM: Obj = {"metadata": {"name": "p-scratch", "namespace": "ns", "uid": "c2", "ownerReferences": [
    {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "p1", "controller": True}]}}


def pod(volumes: list[Obj], node: str = "n1", namespace: str = "ns", **meta: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": namespace, "uid": "p1", **meta},
            "spec": {"nodeName": node, "volumes": volumes}}


PVC_VOL = {"name": "v", "persistentVolumeClaim": {"claimName": "data"}}
EPH_VOL = {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}


@pytest.mark.parametrize(("the_pod", "claim", "used"), [
    (pod([PVC_VOL]), CLAIM, True),
    (pod([PVC_VOL], node=""), CLAIM, False),
    (pod([PVC_VOL], namespace="other"), CLAIM, False),
    (pod([{"name": "v", "persistentVolumeClaim": {"claimName": "else"}}]), CLAIM, False),
    (pod([{"name": "v", "emptyDir": {}}]), CLAIM, False),
    (pod([PVC_VOL], deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=0), CLAIM, True),
    (pod([EPH_VOL]), EPHEMERAL_CLAIM, True),
    (pod([EPH_VOL], deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=0), EPHEMERAL_CLAIM, False),
    (pod([EPH_VOL], deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=30), EPHEMERAL_CLAIM, True),
    (pod([EPH_VOL]), {"metadata": {"name": "p-scratch", "namespace": "ns"}}, False),
], ids=["scheduled-pod-names-claim", "unscheduled-pod", "other-namespace", "other-claim", "no-claim",
        "shut-down-pod-still-names-claim", "ephemeral-claim-of-pod", "ephemeral-after-shutdown",
        "ephemeral-while-terminating", "ephemeral-name-not-owned"])
def test_pod_uses_claim(the_pod: Obj, claim: Obj, used: bool) -> None:
    assert pod_uses_claim(the_pod, claim) is used


def test_claim_names_lists_named_and_ephemeral_claims() -> None:
    assert claim_names(pod([PVC_VOL, EPH_VOL, {"name": "e", "emptyDir": {}}])) == ["data", "p-scratch"]


@pytest.mark.parametrize(("meta", "finalizer", "candidate"), [
    ({"finalizers": [PVC_FINALIZER]}, PVC_FINALIZER, False),
    ({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": [PVC_FINALIZER]}, PVC_FINALIZER, True),
    ({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["other"]}, PVC_FINALIZER, False),
    ({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": [PV_FINALIZER]}, PV_FINALIZER, True),
], ids=["not-deleted", "deleted-and-held", "held-by-another", "volume"])
def test_is_deletion_candidate(meta: Obj, finalizer: str, candidate: bool) -> None:
    assert is_deletion_candidate({"metadata": meta}, finalizer) is candidate


@pytest.mark.parametrize(("phase", "used"), [
    ("Bound", True), ("Available", False), ("Released", False), ("Pending", False), (None, False)])
def test_volume_in_use_only_while_bound(phase: str | None, used: bool) -> None:
    assert volume_in_use({"status": {"phase": phase} if phase else {}}) is used


@pytest.mark.parametrize(("meta", "needed"), [
    ({}, True), ({"finalizers": ["other"]}, True), ({"finalizers": [PVC_FINALIZER]}, False),
    ({"deletionTimestamp": "2026-01-01T00:00:00Z"}, False)],
    ids=["none", "others-only", "held", "being-deleted"])
def test_needs_finalizer(meta: Obj, needed: bool) -> None:
    assert needs_finalizer({"metadata": meta}, PVC_FINALIZER) is needed
