"""certificates.k8s.io: PEM/CSR parsing as Go does it, the CSR strategy's validation and update
rules, the printer, and the signers' rules and certificates (with keys generated here)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybernetes import errors
from kybernetes.api import certificates as certs
from kybernetes.api.validation import Path
from kybernetes.apiserver.printers import certificates as printer
from kybernetes.apiserver.registry.certificates import STRATEGIES, validate_signer_name
from kybernetes.controllers import csrapproving, csrcleaner, csrsigning

Obj = dict[str, Any]
STRATEGY = STRATEGIES[("certificates.k8s.io", "CertificateSigningRequest")]


def make_csr(cn: str = "alice", orgs: tuple[str, ...] = (), dns: tuple[str, ...] = (), ips: tuple[str, ...] = (),
             emails: tuple[str, ...] = (), rsa_key: bool = False) -> bytes:
    key: Any = rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.RFC822Name(e) for e in emails]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


PEM = make_csr()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr(**spec: Any) -> Obj:
    body: Obj = {"request": b64(PEM), "signerName": certs.KUBE_APISERVER_CLIENT, "usages": ["client auth"]}
    body.update(spec)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "x"}, "spec": {k: v for k, v in body.items() if v is not None}}


def error_of(fn: Any, *args: Any) -> str:
    """The text of the CSRError ``fn(*args)`` raises."""
    with pytest.raises(certs.CSRError) as e:
        fn(*args)
    return str(e.value)


def errs_of(obj: Obj) -> list[str]:
    obj = copy.deepcopy(obj)
    STRATEGY.prepare_for_create(obj)
    return [str(e) for e in STRATEGY.validate(obj)]


# --- Go's PEM and CSR parsing --------------------------------------------------------------------


def test_pem_decode_skips_text_and_broken_blocks_like_go() -> None:
    good = PEM.decode()
    text = "explanatory text\n-----BEGIN CERTIFICATE REQUEST-----\n!!!notbase64\n-----END CERTIFICATE REQUEST-----\n" + good
    block, rest = certs.pem_decode(text.encode())
    assert block is not None and block.type == "CERTIFICATE REQUEST" and rest == b""
    assert certs.pem_decode(b"no pem here") == (None, b"no pem here")
    with_headers = good.replace("REQUEST-----\n", "REQUEST-----\nProc-Type: 4,ENCRYPTED\n\n", 1)
    block, _ = certs.pem_decode(with_headers.encode())
    assert block is not None and block.headers == {"Proc-Type": "4,ENCRYPTED"}
    crlf = good.replace("\n", "\r\n").encode()
    assert certs.pem_decode(crlf)[0] is not None


def test_parse_csr_and_signature_errors_are_gos() -> None:
    assert error_of(certs.parse_csr, b"hello") == "PEM block type must be CERTIFICATE REQUEST"
    cert_block = PEM.replace(b"CERTIFICATE REQUEST", b"CERTIFICATE")
    assert error_of(certs.parse_csr, cert_block) == "PEM block type must be CERTIFICATE REQUEST"
    block, _ = certs.pem_decode(PEM)
    assert block is not None
    der = bytearray(block.bytes)
    der[-5] ^= 0xFF  # inside the signature
    tampered = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)) + b"-----END CERTIFICATE REQUEST-----\n"
    info = certs.parse_csr(tampered)
    assert error_of(certs.check_signature, info) == "x509: ECDSA verification failure"
    certs.check_signature(certs.parse_csr(PEM))


def test_decode_bytes_skips_line_breaks_and_reports_the_bad_byte() -> None:
    wrapped = "\n".join(b64(PEM)[i:i + 76] for i in range(0, len(b64(PEM)), 76))
    assert certs.decode_bytes(wrapped) == PEM
    assert error_of(certs.decode_bytes, "abc*def=") == "illegal base64 data at input byte 3"


# --- validation ------------------------------------------------------------------------------------

NOT_A_CSR = b64(b"hi")
CASES: list[tuple[str, Obj, list[str]]] = [
    ("valid", csr(), []),
    ("not a CSR", csr(request=NOT_A_CSR),
     ["spec.request: Invalid value: []byte{0x68, 0x69}: PEM block type must be CERTIFICATE REQUEST"]),
    ("no request", csr(request=None),
     ["spec.request: Invalid value: []byte(nil): PEM block type must be CERTIFICATE REQUEST"]),
    ("no usages", csr(usages=[]), ["spec.usages: Required value"]),
    ("unknown usage", csr(usages=["client auth", "flying"]),
     ['spec.usages[1]: Unsupported value: "flying": supported values: ' + ", ".join(f'"{u}"' for u in sorted(certs.USAGES))]),
    ("duplicate usage", csr(usages=["client auth", "client auth"]), ['spec.usages[1]: Duplicate value: "client auth"']),
    ("no signer", csr(signerName=None), ["spec.signerName: Required value"]),
    ("signer without path", csr(signerName="example.com"),
     ["spec.signerName: Invalid value: \"example.com\": must be a fully qualified domain and path of the form "
      "'example.com/signer-name'"]),
    ("signer domain one label", csr(signerName="example/x"),
     ['spec.signerName: Invalid value: "example": should be a domain with at least two segments separated by dots']),
    ("legacy signer", csr(signerName=certs.LEGACY_UNKNOWN),
     ['spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": the legacy signerName is not allowed via this API version']),
    ("short expiration", csr(expirationSeconds=599),
     ["spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)"]),
    ("ten minutes", csr(expirationSeconds=600), []),
]


@pytest.mark.parametrize(("name", "obj", "want"), CASES, ids=[c[0] for c in CASES])
def test_create_validation(name: str, obj: Obj, want: list[str]) -> None:
    assert errs_of(obj) == want


def test_signer_name_label_errors() -> None:
    got = [str(e) for e in validate_signer_name(Path("spec", "signerName"), "Example.com/a_b")]
    assert got[0].startswith('spec.signerName: Invalid value: "Example.com": validating label "Example": a lowercase RFC 1123 label')
    assert got[1].startswith('spec.signerName: Invalid value: "a_b": validating label "a_b": a lowercase RFC 1123 subdomain')


def test_create_drops_requestor_and_status() -> None:
    obj = csr(username="mallory", groups=["system:masters"], uid="1", extra={"a": ["b"]})
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    STRATEGY.prepare_for_create(obj)
    assert obj["status"] == {} and not {"username", "groups", "uid", "extra"} & set(obj["spec"])


def test_bad_base64_is_a_400() -> None:
    with pytest.raises(errors.BadRequest, match="cannot be handled as a CertificateSigningRequest: illegal base64"):
        errs_of(csr(request="not base64!"))


# --- updates: main resource, /status, /approval ----------------------------------------------------


def stored(conditions: list[Obj] | None = None, certificate: str = "") -> Obj:
    obj = csr(username="alice")
    obj["metadata"].update(uid="u", creationTimestamp="2024-01-01T00:00:00Z", resourceVersion="5")
    obj["status"] = {k: v for k, v in (("conditions", conditions), ("certificate", certificate)) if v}
    return obj


APPROVED = {"type": "Approved", "status": "True", "reason": "R", "lastUpdateTime": "2024-01-01T00:00:00Z",
            "lastTransitionTime": "2024-01-01T00:00:00Z"}


def write(sub: str, old: Obj, status: Obj) -> tuple[Obj, list[str]]:
    new = copy.deepcopy(old)
    new["status"] = status
    new["spec"]["usages"] = ["any"]  # spec never changes through any path
    if sub == "status":
        STRATEGY.prepare_for_status_update(new, old)
        errs = STRATEGY.validate_status_update(new, old)
    elif sub == "approval":
        STRATEGY.prepare_for_subresource_update(sub, new, old)
        errs = STRATEGY.validate_subresource_update(sub, new, old)
    else:
        STRATEGY.prepare_for_update(new, old)
        errs = STRATEGY.validate_update(new, old)
    assert new["spec"] == old["spec"]
    return new, [str(e) for e in errs]


def a_cert() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return b64(cert.public_bytes(serialization.Encoding.PEM))


def test_main_update_keeps_spec_and_status() -> None:
    old = stored()
    new, errs = write("", old, {"conditions": [APPROVED]})
    assert errs == [] and new["status"] == old["status"]


def test_approval_sets_conditions_only_and_fills_times() -> None:
    old = stored()
    new, errs = write("approval", old, {"conditions": [{"type": "Approved", "status": "True"}], "certificate": a_cert()})
    assert errs == []
    assert "certificate" not in new["status"]
    cond = new["status"]["conditions"][0]
    assert cond["lastUpdateTime"] and cond["lastTransitionTime"]
    _, errs = write("approval", stored([APPROVED]), {"conditions": [APPROVED, {"type": "Denied", "status": "True"}]})
    assert errs == ['status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions are mutually exclusive']
    _, errs = write("approval", stored([APPROVED]), {})
    assert errs == ['status.conditions: Forbidden: updates may not remove a condition of type "Approved"']
    _, errs = write("approval", stored(), {"conditions": [{"type": "Approved", "status": "False"}]})
    assert errs == ['status.conditions[0].status: Unsupported value: "False": supported values: "True"']


def test_status_sets_certificate_once_and_never_approval() -> None:
    cert = a_cert()
    new, errs = write("status", stored([APPROVED]), {"conditions": [APPROVED], "certificate": cert})
    assert errs == [] and new["status"]["certificate"] == cert
    _, errs = write("status", stored([APPROVED], cert), {"conditions": [APPROVED], "certificate": a_cert()})
    assert errs == ["status.certificate: Forbidden: updates may not modify existing certificate content"]
    _, errs = write("status", stored(), {"conditions": [{"type": "Approved", "status": "True"}]})
    assert errs == ['status.conditions: Forbidden: updates may not add a condition of type "Approved"']
    # An Approved condition rewritten through /status is put back as stored.
    changed = dict(APPROVED, reason="Other")
    new, errs = write("status", stored([APPROVED]), {"conditions": [changed]})
    assert errs == [] and new["status"]["conditions"] == [APPROVED]
    _, errs = write("approval", stored([APPROVED]), {"conditions": [APPROVED], "certificate": cert})
    assert errs == []
    _, errs = write("status", stored([APPROVED]), {"conditions": [APPROVED], "certificate": b64(b"junk")})
    assert errs == ['status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block']
    wrong = b64(PEM)
    _, errs = write("status", stored([APPROVED]), {"conditions": [APPROVED], "certificate": wrong})
    assert errs == ['status.certificate: Invalid value: "<certificate data>": only CERTIFICATE PEM blocks are allowed, '
                    'found "CERTIFICATE REQUEST"']


def test_main_update_cannot_set_certificate() -> None:
    new = stored([APPROVED])
    new["status"]["certificate"] = a_cert()
    errs = [str(e) for e in STRATEGY.validate_update(new, stored([APPROVED]))]
    assert errs == ["status.certificate: Forbidden: updates may not set certificate content"]


# --- printer ---------------------------------------------------------------------------------------


def test_printer_cells() -> None:
    now = dt.datetime(2024, 1, 1, 0, 5, tzinfo=dt.UTC)
    obj = stored([APPROVED], a_cert())
    obj["spec"]["expirationSeconds"] = 3600
    assert printer._csr_cells(obj, now) == ["x", "5m", certs.KUBE_APISERVER_CLIENT, "alice", "60m", "Approved,Issued"]
    obj = stored([{"type": "Denied", "status": "True"}, {"type": "Failed", "status": "True"}])
    obj["spec"].pop("signerName")
    assert printer._csr_cells(obj, now)[2:] == ["<none>", "alice", "<none>", "Denied,Failed"]
    assert printer.csr_condition(stored()) == "Pending"


# --- the signers' rules and the certificates they issue ------------------------------------------

NODE = ("system:nodes",)
SERVING_USAGES = ["digital signature", "key encipherment", "server auth"]
RULES: list[tuple[str, str, bytes, list[str], str]] = [
    ("serving ok", certs.KUBELET_SERVING, make_csr("system:node:n1", NODE, dns=("n1",), ips=("10.0.0.1",)), SERVING_USAGES, ""),
    ("serving ec without key encipherment", certs.KUBELET_SERVING, make_csr("system:node:n1", NODE, ips=("10.0.0.1",)),
     ["digital signature", "server auth"], ""),
    ("serving wrong O", certs.KUBELET_SERVING, make_csr("system:node:n1", ("devs",), dns=("n1",)), SERVING_USAGES,
     "subject organization is not system:nodes"),
    ("serving wrong CN", certs.KUBELET_SERVING, make_csr("n1", NODE, dns=("n1",)), SERVING_USAGES,
     "subject common name does not begin with system:node:"),
    ("serving no SAN", certs.KUBELET_SERVING, make_csr("system:node:n1", NODE), SERVING_USAGES,
     "DNS or IP subjectAltName is required"),
    ("serving email SAN", certs.KUBELET_SERVING, make_csr("system:node:n1", NODE, dns=("n1",), emails=("a@b.c",)),
     SERVING_USAGES, "Email subjectAltNames are not allowed"),
    ("serving client usage", certs.KUBELET_SERVING, make_csr("system:node:n1", NODE, dns=("n1",)), ["client auth"],
     "usages did not match [digital signature key encipherment server auth]"),
    ("kubelet client ok", certs.KUBE_APISERVER_CLIENT_KUBELET, make_csr("system:node:n1", NODE),
     ["digital signature", "client auth"], ""),
    ("kubelet client with SAN", certs.KUBE_APISERVER_CLIENT_KUBELET, make_csr("system:node:n1", NODE, ips=("10.0.0.1",)),
     ["digital signature", "client auth"], "IP subjectAltNames are not allowed"),
    ("apiserver client ok", certs.KUBE_APISERVER_CLIENT, make_csr("bob", ("devs",)), ["client auth", "digital signature"], ""),
    ("apiserver client server usage", certs.KUBE_APISERVER_CLIENT, make_csr("bob"), ["client auth", "server auth"],
     "invalid usage for client certificate: server auth"),
    ("apiserver client no client auth", certs.KUBE_APISERVER_CLIENT, make_csr("bob"), ["digital signature"],
     "missing required usage for client certificate: client auth"),
]


@pytest.mark.parametrize(("name", "signer", "pem", "usages", "want"), RULES, ids=[r[0] for r in RULES])
def test_signer_rules(name: str, signer: str, pem: bytes, usages: list[str], want: str) -> None:
    info = certs.parse_csr(pem)
    if want:
        assert error_of(csrsigning.check_signer_rules, signer, info, usages) == want
    else:
        assert csrsigning.check_signer_rules(signer, info, usages)
    assert not csrsigning.check_signer_rules("example.com/other", info, usages)


def make_ca(not_after: dt.timedelta = dt.timedelta(days=3650)) -> csrsigning.CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return csrsigning.CertificateAuthority(cert, key)


def test_signed_certificate_follows_the_permissive_policy() -> None:
    ca = make_ca()
    info = certs.parse_csr(make_csr("system:node:n1", NODE, dns=("n1",), ips=("10.0.0.1",)))
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    pem = ca.sign(info, SERVING_USAGES, dt.timedelta(days=365), now)
    cert = x509.load_pem_x509_certificate(pem)
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject == info.request.subject and cert.issuer == ca.cert.subject
    assert cert.not_valid_before_utc == now - csrsigning.BACKDATE
    assert cert.not_valid_after_utc == now + dt.timedelta(days=365) - csrsigning.BACKDATE
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment and not ku.value.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["n1"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    short = x509.load_pem_x509_certificate(ca.sign(info, SERVING_USAGES, dt.timedelta(hours=1), now))
    assert short.not_valid_after_utc == now + dt.timedelta(hours=1)  # short-lived: NotAfter not backdated


def test_lifetime_is_bounded_and_capped_by_the_ca() -> None:
    year = csrsigning.DEFAULT_DURATION
    assert csrsigning.lifetime(None, year) == year
    assert csrsigning.lifetime(3600, year) == dt.timedelta(hours=1)
    assert csrsigning.lifetime(10 * 365 * 86400, year) == year
    assert csrsigning.lifetime(60, year) == dt.timedelta(minutes=10)
    ca = make_ca(not_after=dt.timedelta(days=2))
    info = certs.parse_csr(make_csr("bob"))
    cert = x509.load_pem_x509_certificate(ca.sign(info, ["client auth"], year, dt.datetime.now(dt.UTC)))
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


# --- approver and cleaner decisions --------------------------------------------------------------


def test_approver_recognizes_node_client_requests_and_authorizes_by_group() -> None:
    pem = make_csr("system:node:n1", NODE)
    obj = csr(request=b64(pem), signerName=certs.KUBE_APISERVER_CLIENT_KUBELET, usages=["digital signature", "client auth"])
    info = certs.parse_csr(pem)
    obj["spec"]["username"] = "system:node:n1"
    assert csrapproving.recognize(obj, info) == ["selfnodeclient", "nodeclient"]
    obj["spec"]["username"] = "system:bootstrap:abcdef"
    assert csrapproving.recognize(obj, info) == ["nodeclient"]
    assert csrapproving.recognize(dict(obj, spec=dict(obj["spec"], signerName=certs.KUBE_APISERVER_CLIENT)), info) == []
    assert csrapproving.authorized({"groups": ["system:nodes"]}, "selfnodeclient")
    assert not csrapproving.authorized({"groups": ["system:nodes"]}, "nodeclient")
    assert csrapproving.authorized({"groups": ["system:bootstrappers:kubeadm:default-node-token"]}, "nodeclient")
    assert csrapproving.authorized({"groups": ["system:masters"]}, "nodeclient")
    assert not csrapproving.authorized({"groups": ["system:authenticated"]}, "selfnodeclient")


def test_cleaner_deadlines() -> None:
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    pending = stored()
    assert csrcleaner.deadline(pending) == (t0 + dt.timedelta(hours=24), "pending and unhandled")
    denied = stored([{"type": "Denied", "status": "True", "lastUpdateTime": "2024-01-01T02:00:00Z"}])
    assert csrcleaner.deadline(denied) == (t0 + dt.timedelta(hours=3), "denied")
    assert csrcleaner.deadline(stored([APPROVED])) is None  # approved, not issued yet: kept
    issued = stored([APPROVED], a_cert())  # the certificate expires in a day, after the 1 h rule
    assert csrcleaner.deadline(issued) == (t0 + dt.timedelta(hours=1), "approved and issued")


# --- wire: protobuf bodies and discovery -----------------------------------------------------------


def test_protobuf_body_decodes_to_the_json_form() -> None:
    from kybernetes.apiserver.transport.protobuf import decode_k8s_protobuf, encode_k8s_protobuf

    obj = csr(expirationSeconds=600, username="u", groups=["g"], extra={"scopes": ["a", "b"]})
    obj["status"] = {"conditions": [dict(APPROVED, message="ok")], "certificate": a_cert()}
    assert decode_k8s_protobuf(encode_k8s_protobuf(copy.deepcopy(obj))) == obj


def test_discovery_lists_approval_with_its_verbs() -> None:
    from kybernetes.api.resources import Catalogue
    from kybernetes.apiserver.transport import discovery

    doc = discovery.resource_list(Catalogue.builtin(), "certificates.k8s.io", "v1")
    verbs = {r["name"]: r["verbs"] for r in doc["resources"]}
    assert verbs["certificatesigningrequests/approval"] == ["get", "patch", "update"]
    assert verbs["certificatesigningrequests/status"] == ["get", "patch", "update"]
    groups = list(Catalogue.builtin().groups())
    assert groups.index("batch") + 1 == groups.index("certificates.k8s.io")


def test_openapi_has_the_approval_operations() -> None:
    import json

    from kybernetes.api.resources import Catalogue
    from kybernetes.apiserver.transport.openapi import OpenAPIService

    svc = OpenAPIService(Catalogue.builtin(), lambda *a: None, lambda: 0)
    doc = svc.document("apis/certificates.k8s.io/v1")
    assert doc is not None
    ops = json.loads(doc.body)["paths"]["/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"]
    assert {m: o["operationId"] for m, o in ops.items() if m != "parameters"} == {
        "get": "readCertificatesV1CertificateSigningRequestApproval",
        "put": "replaceCertificatesV1CertificateSigningRequestApproval",
        "patch": "patchCertificatesV1CertificateSigningRequestApproval"}
