"""The names a pod references (``kybernetes.api.podrefs``), as Kubernetes' VisitPodSecretNames and
VisitPodConfigmapNames find them: every container list, env and envFrom, every volume source that
names a secret, projected sources; malformed parts read as empty."""

from __future__ import annotations

from typing import Any

from kybernetes.api import podrefs


def _pod() -> dict[str, Any]:
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
           {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}]
    return {"metadata": {"name": "web"}, "spec": {
        "imagePullSecrets": [{"name": "pull"}, {}],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-from"}}]}],
        "containers": [{"name": "c", "env": env, "envFrom": [{"configMapRef": {"name": "cm-from"}}]}],
        "ephemeralContainers": [{"name": "e", "env": [{"name": "C", "valueFrom": {
            "secretKeyRef": {"name": "eph-secret"}}}]}],
        "volumes": [
            {"name": "s", "secret": {"secretName": "vol-secret"}},
            {"name": "az", "azureFile": {"secretName": "az-secret", "shareName": "x"}},
            {"name": "ceph", "cephfs": {"monitors": ["m"], "secretRef": {"name": "ceph-secret"}}},
            {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}},
            {"name": "rbd", "rbd": {"image": "i", "secretRef": {"name": "rbd-secret"}}},
            {"name": "flex", "flexVolume": {"driver": "d", "secretRef": None}},
            {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                    {"configMap": {"name": "proj-cm"}},
                                                    {"serviceAccountToken": {"path": "t"}}]}},
            {"name": "cm", "configMap": {"name": "vol-cm"}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
            "not a volume",
        ]}}


def test_secret_names_from_every_place_a_pod_names_one() -> None:
    assert podrefs.secret_names(_pod()) == {
        "pull", "init-from", "env-secret", "eph-secret", "vol-secret", "az-secret", "ceph-secret",
        "csi-secret", "rbd-secret", "proj-secret"}


def test_configmap_and_claim_names() -> None:
    assert podrefs.configmap_names(_pod()) == {"env-cm", "cm-from", "proj-cm", "vol-cm"}
    assert podrefs.claim_names(_pod()) == {"data", "web-scratch"}


def test_malformed_parts_read_as_empty() -> None:
    assert podrefs.secret_names({"spec": {"volumes": [{"secret": "x"}, {"csi": []}, None], "containers": 3}}) == set()
    assert podrefs.secret_names({"spec": None}) == set()
