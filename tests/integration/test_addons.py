"""`kyb server`'s add-ons (CoreDNS and the local-path provisioner in kube-system, as k3s deploys
them) and its default addresses.

The add-ons are applied at each start and reconciled by server-side apply; `--disable coredns`
and `--disable local-storage` leave them out. Without `--bind-address` the server serves on loopback and on the machine's
primary address, which it advertises: the kubernetes Service then has an endpoint pods can reach.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from kybernetes.images.system import system_image_name
from kybernetes.pki import primary_address
from kybernetes.testing import ServerProcess
from tests.integration.conftest import _require_kubectl


def _get(srv: ServerProcess, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(srv.kubectl("get", "-o", "json", *args).stdout)


def test_coredns_applied_and_reconciled(tmp_path: Path) -> None:
    _require_kubectl()
    srv = ServerProcess.start(tmp_path / "data", "--service-cluster-ip-range", "10.96.0.0/16",
                              "--cluster-domain", "k8s.example", addons=True)
    try:
        svc = _get(srv, "-n", "kube-system", "service", "kube-dns")
        assert svc["spec"]["clusterIP"] == "10.96.0.10"
        assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
            ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
        assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
        deploy = _get(srv, "-n", "kube-system", "deployment", "coredns", "--show-managed-fields")
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        assert [(p["name"], p["containerPort"], p["protocol"]) for p in container["ports"]] == [
            ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
        assert deploy["metadata"]["labels"]["k8s-app"] == "kube-dns"
        assert any(m["manager"] == "kybernetes-addons" and m["operation"] == "Apply"
                   for m in deploy["metadata"]["managedFields"])
        pod = deploy["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == system_image_name() and container["imagePullPolicy"] == "Never"
        assert container["args"] == ["dns", "--cluster-domain", "k8s.example", "--listen", "0.0.0.0:53"]
        assert container["livenessProbe"]["httpGet"]["port"] == 8080
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8181, "scheme": "HTTP"}
        assert pod["dnsPolicy"] == "Default" and pod["priorityClassName"] == "system-cluster-critical"
        assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in pod["tolerations"]
        assert pod["serviceAccountName"] == "coredns"
        # The DNS server's account may read what it serves, and nothing more.
        who = "--as=system:serviceaccount:kube-system:coredns"
        for verb, resource in (("watch", "endpointslices.discovery.k8s.io"), ("list", "services"),
                               ("list", "pods"), ("watch", "namespaces"), ("list", "endpoints")):
            assert srv.kubectl("auth", "can-i", verb, resource, "-A", who).stdout.strip() == "yes"
        assert srv.kubectl("auth", "can-i", "create", "services", "-A", who, check=False).stdout.strip() == "no"
        # Reconciled at the next start: a deleted Service and a changed argument come back.
        srv.kubectl("delete", "-n", "kube-system", "service", "kube-dns")
        srv.kubectl("patch", "-n", "kube-system", "deployment", "coredns", "--type=json", "-p",
                    '[{"op": "replace", "path": "/spec/template/spec/containers/0/args/2", "value": "x.example"}]')
    finally:
        srv.stop()
    srv = ServerProcess.start(tmp_path / "data", "--service-cluster-ip-range", "10.96.0.0/16",
                              "--cluster-domain", "k8s.example", addons=True)
    try:
        assert _get(srv, "-n", "kube-system", "service", "kube-dns")["spec"]["clusterIP"] == "10.96.0.10"
        deploy = _get(srv, "-n", "kube-system", "deployment", "coredns")
        assert deploy["spec"]["template"]["spec"]["containers"][0]["args"][2] == "k8s.example"
    finally:
        srv.stop()


def test_local_storage_applied_and_disable_coredns(tmp_path: Path) -> None:
    _require_kubectl()
    srv = ServerProcess.start(tmp_path / "data", "--disable", "coredns", "--disable", "metrics-server", addons=True)
    try:
        deployments = _get(srv, "-n", "kube-system", "deployments")["items"]
        assert [d["metadata"]["name"] for d in deployments] == ["local-path-provisioner"]
        assert srv.kubectl("get", "-n", "kube-system", "service", "kube-dns", check=False).returncode != 0
        (container,) = deployments[0]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == system_image_name() and container["args"] == ["local-path-provisioner"]
        # The default class, as kubectl shows it.
        out = srv.kubectl("get", "storageclass").stdout
        assert "local-path (default)" in out and "kybernetes.io/local-path" in out and "WaitForFirstConsumer" in out
        sc = _get(srv, "storageclass", "local-path")
        assert (sc["reclaimPolicy"], sc["allowVolumeExpansion"]) == ("Delete", True)
        # Least privilege: what the provisioner does, and no more.
        who = "--as=system:serviceaccount:kube-system:local-path-provisioner-service-account"
        allowed = [("create", "persistentvolumes", "-A"), ("delete", "persistentvolumes", "-A"),
                   ("watch", "persistentvolumeclaims", "-A"), ("get", "nodes", "-A"),
                   ("patch", "persistentvolumeclaims", "-A", "--subresource=status"),
                   ("watch", "storageclasses.storage.k8s.io", "-A"), ("create", "events", "-A"),
                   ("create", "pods", "-nkube-system"), ("delete", "pods", "-nkube-system")]
        refused = [("create", "pods", "-ndefault"), ("list", "secrets", "-A"),
                   ("update", "persistentvolumeclaims", "-A"), ("delete", "nodes", "-A")]
        for args in allowed:
            assert srv.kubectl("auth", "can-i", *args, who, check=False).stdout.strip() == "yes", args
        for args in refused:
            assert srv.kubectl("auth", "can-i", *args, who, check=False).stdout.strip() == "no", args
    finally:
        srv.stop()
    srv = ServerProcess.start(tmp_path / "data2", "--disable", "coredns,local-storage,metrics-server", addons=True)
    try:
        assert _get(srv, "-n", "kube-system", "deployments")["items"] == []
        assert _get(srv, "storageclasses")["items"] == []
    finally:
        srv.stop()
    # An add-on kybernetes does not have: refused before anything starts, as a usage error.
    out = subprocess.run([sys.executable, "-m", "kybernetes.cli", "server", "--data-dir", str(tmp_path / "x"),
                          "--disable", "traefik"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown add-on traefik (known: coredns, local-storage, metrics-server)" in out.stderr


def test_default_addresses_publish_the_kubernetes_endpoints(tmp_path: Path) -> None:
    _require_kubectl()
    primary = primary_address()
    if not primary:
        if os.environ.get("CI"):
            pytest.fail("CI machines have a default route")
        pytest.skip("this machine has no default route, hence no primary address to advertise")
    # "--bind-address ''" undoes the harness's loopback default: `kyb server` as a user starts it.
    srv = ServerProcess.start(tmp_path / "data", "--bind-address", "")
    try:
        eps = _get(srv, "endpoints", "kubernetes")
        assert eps["subsets"][0]["addresses"] == [{"ip": primary}]
        assert eps["subsets"][0]["ports"][0]["port"] == srv.port
        # The admin kubeconfig stays on loopback (as k3s's), and the server answers on the
        # primary address too, with a certificate for it and for the kubernetes Service's address.
        assert f"https://127.0.0.1:{srv.port}" in srv.kubeconfig.read_text()
        ctx = ssl.create_default_context(cafile=str(srv.data_dir / "tls" / "ca.crt"))
        with socket.create_connection((primary, srv.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=primary) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
        ips = {str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)}
        assert {primary, "10.43.0.1", "127.0.0.1"} <= ips
    finally:
        srv.stop()
