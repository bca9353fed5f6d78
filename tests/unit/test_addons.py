"""The add-on objects `kyb server` applies, and the cluster DNS address they and the kubelets share."""

from __future__ import annotations

import pytest

from kybernetes.addons import AddonSettings, addon_objects
from kybernetes.api.clusterdns import cluster_dns_ip


def test_cluster_dns_ip() -> None:
    assert cluster_dns_ip("10.43.0.0/16") == "10.43.0.10"
    assert cluster_dns_ip("10.96.0.0/12") == "10.96.0.10"
    assert cluster_dns_ip("10.43.0.0/16,fd00::/108") == "10.43.0.10"
    assert cluster_dns_ip("fd00:10:96::/112") == "fd00:10:96::a"
    with pytest.raises(ValueError, match="no 10th address"):
        cluster_dns_ip("10.43.0.0/29")


def test_coredns_objects() -> None:
    objs = addon_objects(AddonSettings("10.96.0.0/12", "k8s.example", image="example/system:1"),
                         ["local-storage", "metrics-server"])
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "coredns"), ("ClusterRole", "system:coredns"), ("ClusterRoleBinding", "system:coredns"),
        ("Deployment", "coredns"), ("Service", "kube-dns")]
    deploy, svc = objs[3], objs[4]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "example/system:1"
    assert container["args"] == ["dns", "--cluster-domain", "k8s.example", "--listen", "0.0.0.0:53"]
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert deploy["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    assert addon_objects(AddonSettings(), ["coredns", "local-storage", "metrics-server"]) == []
    with pytest.raises(ValueError, match=r"unknown add-on traefik \(known: coredns, local-storage, metrics-server\)"):
        addon_objects(AddonSettings(), ["traefik"])


def test_local_storage_objects() -> None:
    objs = addon_objects(AddonSettings(image="example/system:1"), ["coredns", "metrics-server"])
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "local-path-provisioner-service-account"),
        ("ClusterRole", "kybernetes:local-path-provisioner"),
        ("ClusterRoleBinding", "kybernetes:local-path-provisioner"),
        ("Role", "local-path-provisioner"), ("RoleBinding", "local-path-provisioner"),
        ("Deployment", "local-path-provisioner"), ("StorageClass", "local-path")]
    deploy, sc = objs[5], objs[6]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "example/system:1" and container["args"] == ["local-path-provisioner"]
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "local-path-provisioner-service-account"
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert (sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"], sc["allowVolumeExpansion"]) == (
        "kybernetes.io/local-path", "WaitForFirstConsumer", "Delete", True)
    assert "parameters" not in sc  # the node's own root, not one path for every node


def test_metrics_server_objects() -> None:
    objs = addon_objects(AddonSettings(image="example/system:1"), ["coredns", "local-storage"])
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "metrics-server"), ("ClusterRole", "system:aggregated-metrics-reader"),
        ("ClusterRole", "system:metrics-server"), ("RoleBinding", "metrics-server-auth-reader"),
        ("ClusterRoleBinding", "metrics-server:system:auth-delegator"),
        ("ClusterRoleBinding", "system:metrics-server"), ("Service", "metrics-server"),
        ("Deployment", "metrics-server"), ("APIService", "v1beta1.metrics.k8s.io")]
    (container,) = objs[7]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "example/system:1"
    assert container["args"][0] == "metrics-server" and "--kubelet-use-node-status-port" in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "scheme": "HTTPS", "port": "https"}
    api = objs[8]["spec"]
    assert api["service"] == {"name": "metrics-server", "namespace": "kube-system", "port": 443}
    assert (api["group"], api["version"], api["insecureSkipTLSVerify"]) == ("metrics.k8s.io", "v1beta1", True)
    svc = objs[6]["spec"]
    assert svc["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]
    assert svc["selector"] == objs[7]["spec"]["selector"]["matchLabels"] == {"k8s-app": "metrics-server"}
    reader = objs[1]["metadata"]["labels"]
    assert reader["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
