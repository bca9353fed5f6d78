"""CertificateSigningRequests end to end: a real ``kyb server`` with its controller manager, the
official Python client and kubectl.

A user asks for a client certificate, an admin approves it with ``kubectl certificate approve``,
the csrsigning controller issues it, and the certificate then authenticates to the API server as
the CN and O it asked for. A kubelet-serving request with a wrong subject gets a Failed condition;
``kubectl certificate deny`` denies; a node renewing its own client certificate is approved by the
csrapproving controller without anyone's help.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes.client.rest import ApiException

from kybernetes.testing import ServerProcess
from tests.integration.conftest import _require_kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """API server, scheduler and controller manager (no node: nothing here needs pods)."""
    _require_kubectl()
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-certs"), control_plane=True)
    try:
        yield srv
    finally:
        srv.stop()


def certificates_api(kubeconfig: Path | None = None, *, host: str = "", ca: str = "", cert: str = "",
                     key: str = "") -> kubernetes.client.CertificatesV1Api:
    """The official client, from a kubeconfig or from a client certificate and key files."""
    if kubeconfig is not None:
        return kubernetes.client.CertificatesV1Api(kubernetes.config.new_client_from_config(str(kubeconfig)))
    conf = kubernetes.client.Configuration()
    conf.host, conf.ssl_ca_cert, conf.cert_file, conf.key_file = host, ca, cert, key
    return kubernetes.client.CertificatesV1Api(kubernetes.client.ApiClient(conf))


def new_request(tmp: Path, name: str, cn: str, orgs: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> bytes:
    """A PKCS#10 request; its key is written to ``tmp/name.key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def create(api: kubernetes.client.CertificatesV1Api, name: str, pem: bytes, signer: str, usages: list[str],
           expiration: int | None = None) -> Any:
    body = kubernetes.client.V1CertificateSigningRequest(
        metadata=kubernetes.client.V1ObjectMeta(name=name),
        spec=kubernetes.client.V1CertificateSigningRequestSpec(
            request=base64.b64encode(pem).decode(), signer_name=signer, usages=usages,
            expiration_seconds=expiration, username="someone-else", groups=["system:masters"]))
    return api.create_certificate_signing_request(body)


def wait_for(api: kubernetes.client.CertificatesV1Api, name: str, done: Callable[[Any], bool], what: str,
             timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        csr = api.read_certificate_signing_request(name)
        if done(csr):
            return csr
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {csr.status}")
        time.sleep(0.2)


def condition(csr: Any, type_: str) -> Any:
    return next((c for c in csr.status.conditions or [] if c.type == type_), None)


def get_row(cluster: ServerProcess, name: str) -> list[str]:
    lines = cluster.kubectl("get", "csr", name).stdout.splitlines()
    assert lines[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    return lines[1].split()


def issued_certificate(api: kubernetes.client.CertificatesV1Api, name: str) -> x509.Certificate:
    csr = wait_for(api, name, lambda c: bool(c.status.certificate), "the certificate")
    return x509.load_pem_x509_certificate(base64.b64decode(csr.status.certificate))


def test_client_certificate_is_issued_and_authenticates(cluster: ServerProcess, tmp_path: Path) -> None:
    admin = certificates_api(cluster.kubeconfig)
    pem = new_request(tmp_path, "carol", "carol", ("devs", "qa"))
    created = create(admin, "carol", pem, "kubernetes.io/kube-apiserver-client",
                     ["digital signature", "client auth"], expiration=3600)
    # The requestor is whoever asked (the admin), not what the client wrote in the spec.
    assert created.spec.username == "system:admin"
    assert "system:masters" in created.spec.groups and created.status.conditions is None
    assert get_row(cluster, "carol")[2:] == ["kubernetes.io/kube-apiserver-client", "system:admin", "60m", "Pending"]

    out = cluster.kubectl("certificate", "approve", "carol").stdout
    assert out.strip() == "certificatesigningrequest.certificates.k8s.io/carol approved"
    cert = issued_certificate(admin, "carol")
    approved = condition(admin.read_certificate_signing_request("carol"), "Approved")
    assert approved.reason == "KubectlApprove" and approved.last_update_time is not None
    assert get_row(cluster, "carol")[-1] == "Approved,Issued"
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life == dt.timedelta(hours=1, minutes=5)  # backdated 5 minutes, NotAfter not (short-lived)

    # The certificate works as a TLS client certificate: its CN and O are the user the API server
    # sees, which a CSR created with it records (once RBAC lets carol's group ask for certificates).
    cluster.kubectl("create", "clusterrole", "csr-creator", "--verb=create",
                    "--resource=certificatesigningrequests.certificates.k8s.io")
    cluster.kubectl("create", "clusterrolebinding", "devs-csr", "--clusterrole=csr-creator", "--group=devs")
    cluster.wait_allowed("create", "certificatesigningrequests.certificates.k8s.io", "carol", groups=("devs",))
    (tmp_path / "carol.crt").write_bytes(base64.b64decode(admin.read_certificate_signing_request("carol").status.certificate))
    carol = certificates_api(host=cluster.url, ca=str(cluster.data_dir / "tls" / "ca.crt"),
                             cert=str(tmp_path / "carol.crt"), key=str(tmp_path / "carol.key"))
    mine = create(carol, "carol-asks", new_request(tmp_path, "x", "x"), "example.com/custom", ["client auth"])
    assert mine.spec.username == "carol"
    assert mine.spec.groups == ["devs", "qa", "system:authenticated"]


def test_kubelet_serving_request_with_wrong_subject_fails(cluster: ServerProcess, tmp_path: Path) -> None:
    admin = certificates_api(cluster.kubeconfig)
    pem = new_request(tmp_path, "bad", "system:node:n1", ("devs",), dns=("n1",))
    create(admin, "bad-serving", pem, "kubernetes.io/kubelet-serving",
           ["digital signature", "key encipherment", "server auth"])
    cluster.kubectl("certificate", "approve", "bad-serving")
    csr = wait_for(admin, "bad-serving", lambda c: condition(c, "Failed") is not None, "a Failed condition")
    failed = condition(csr, "Failed")
    assert (failed.status, failed.reason, failed.message) == (
        "True", "SignerValidationFailure", "subject organization is not system:nodes")
    assert not csr.status.certificate
    assert get_row(cluster, "bad-serving")[-1] == "Approved,Failed"


def test_deny(cluster: ServerProcess, tmp_path: Path) -> None:
    admin = certificates_api(cluster.kubeconfig)
    create(admin, "dave", new_request(tmp_path, "dave", "dave"), "kubernetes.io/kube-apiserver-client", ["client auth"])
    out = cluster.kubectl("certificate", "deny", "dave").stdout
    assert out.strip() == "certificatesigningrequest.certificates.k8s.io/dave denied"
    csr = admin.read_certificate_signing_request("dave")
    denied = condition(csr, "Denied")
    assert (denied.status, denied.reason) == ("True", "KubectlDeny")
    assert get_row(cluster, "dave")[-1] == "Denied"
    # Approval after a denial is refused by the API server, whatever the client does.
    csr.status.conditions.append(kubernetes.client.V1CertificateSigningRequestCondition(type="Approved", status="True"))
    with pytest.raises(ApiException) as e:
        admin.replace_certificate_signing_request_approval("dave", csr)
    assert e.value.status == 422
    assert "Approved and Denied conditions are mutually exclusive" in e.value.body


def test_system_masters_client_certificates_are_refused(cluster: ServerProcess, tmp_path: Path) -> None:
    admin = certificates_api(cluster.kubeconfig)
    with pytest.raises(ApiException) as e:
        create(admin, "root", new_request(tmp_path, "root", "root", ("system:masters",)),
               "kubernetes.io/kube-apiserver-client", ["client auth"])
    assert e.value.status == 403
    assert json.loads(e.value.body)["message"] == (
        'certificatesigningrequests.certificates.k8s.io "root" is forbidden: use of '
        "kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed")


def test_node_renewing_its_client_certificate_is_auto_approved(cluster: ServerProcess, tmp_path: Path) -> None:
    admin = certificates_api(cluster.kubeconfig)
    # A node identity, obtained through the kube-apiserver-client signer.
    create(admin, "n7-bootstrap", new_request(tmp_path, "n7", "system:node:n7", ("system:nodes",)),
           "kubernetes.io/kube-apiserver-client", ["client auth"])
    cluster.kubectl("certificate", "approve", "n7-bootstrap")
    cert = issued_certificate(admin, "n7-bootstrap")
    (tmp_path / "n7.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    node = certificates_api(host=cluster.url, ca=str(cluster.data_dir / "tls" / "ca.crt"),
                            cert=str(tmp_path / "n7.crt"), key=str(tmp_path / "n7.key"))
    create(node, "n7-renew", new_request(tmp_path, "n7b", "system:node:n7", ("system:nodes",)),
           "kubernetes.io/kube-apiserver-client-kubelet", ["digital signature", "client auth"])
    renewed = issued_certificate(admin, "n7-renew")
    approved = condition(admin.read_certificate_signing_request("n7-renew"), "Approved")
    assert (approved.reason, approved.message) == (
        "AutoApproved", "Auto approving self kubelet client certificate after SubjectAccessReview.")
    assert renewed.subject.rfc4514_string() == "CN=system:node:n7,O=system:nodes"
