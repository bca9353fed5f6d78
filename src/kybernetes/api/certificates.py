"""certificates.k8s.io facts shared by the API server and the controllers: Kubernetes'
``pkg/apis/certificates`` helpers.

* the well-known signer names, key usages and condition types of ``certificates.k8s.io/v1``;
* :func:`pem_decode`, Go's ``encoding/pem.Decode`` (the first well-formed block, skipping text
  around it; a block whose base64 does not decode is skipped, as Go does);
* :func:`parse_csr`, Kubernetes' ``ParseCSR``: the first PEM block must be a
  ``CERTIFICATE REQUEST`` holding a PKCS#10 request, whose signature :func:`check_signature` checks;
* :func:`validate_kubelet_serving_csr` and :func:`validate_kubelet_client_csr`, the subject,
  SAN and usage rules of the two kubelet signers, with Kubernetes' error texts;
* :class:`CSRInfo`, what those rules read from a request (subject and SANs).

Errors are :class:`CSRError` with Go's message (the text clients see in a 422 or a Failed
condition). Where Go's x509 parser reports a malformed request in words Python's parser does not
give, the message is Go's most general one (``x509: malformed certificate request``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from kybernetes.api import gobytes

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"

USAGES = (
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
)
"""Every ``spec.usages`` value Kubernetes knows (``KeyUsage`` constants)."""

CSR_BLOCK = "CERTIFICATE REQUEST"
CERT_BLOCK = "CERTIFICATE"


class CSRError(ValueError):
    """A request that cannot be parsed or does not meet a signer's rules; ``str`` is Go's text."""


def decode_bytes(value: object) -> bytes:
    """A ``[]byte`` field (``spec.request``, ``status.certificate``) as Go's JSON decoder reads it
    (``api/gobytes``); raises :class:`CSRError` with Go's decoding error."""
    if value is None:
        return b""
    try:
        return gobytes.decode(str(value))
    except gobytes.CorruptInputError as e:
        raise CSRError(str(e)) from None


# --- PEM, as Go's encoding/pem decodes it --------------------------------------------------------

_PEM_START = b"\n-----BEGIN "
_PEM_END = b"\n-----END "
_PEM_EOL = b"-----"


@dataclass
class PemBlock:
    type: str
    headers: dict[str, str] = field(default_factory=dict)
    bytes: bytes = b""


def _get_line(data: bytes) -> tuple[bytes, bytes]:
    """The first ``\\n``- or ``\\r\\n``-ended line without trailing blanks, and what follows it."""
    i = data.find(b"\n")
    if i < 0:
        return data.rstrip(b" \t"), b""
    end = i - 1 if i > 0 and data[i - 1:i] == b"\r" else i
    return data[:end].rstrip(b" \t"), data[i + 1:]


def _std_b64(data: bytes) -> bytes | None:
    """Go's ``base64.StdEncoding.Decode``: CR and LF are skipped, anything else must be exact."""
    try:
        return gobytes.decode(data)
    except gobytes.CorruptInputError:
        return None


def pem_decode(data: bytes) -> tuple[PemBlock | None, bytes]:
    """Go's ``pem.Decode``: the next PEM block in ``data`` and the bytes after it, or (None, data)."""
    rest = data
    while True:
        if rest.startswith(_PEM_START[1:]):
            rest = rest[len(_PEM_START) - 1:]
        else:
            at = rest.find(_PEM_START)
            if at < 0:
                return None, data
            rest = rest[at + len(_PEM_START):]
        type_line, rest = _get_line(rest)
        if not type_line.endswith(_PEM_EOL):
            continue
        type_line = type_line[: -len(_PEM_EOL)]
        block = PemBlock(type_line.decode("latin-1"))
        while True:
            if not rest:
                return None, data
            line, after = _get_line(rest)
            key, colon, val = line.partition(b":")
            if not colon:
                break
            block.headers[key.strip().decode("latin-1")] = val.strip().decode("latin-1")
            rest = after
        if not block.headers and rest.startswith(_PEM_END[1:]):
            end, trailer_at = 0, len(_PEM_END) - 1
        else:
            end = rest.find(_PEM_END)
            trailer_at = end + len(_PEM_END)
        if end < 0:
            continue
        trailer_len = len(type_line) + len(_PEM_EOL)
        trailer = rest[trailer_at:trailer_at + trailer_len]
        if len(trailer) < trailer_len or not trailer.startswith(type_line) or not trailer.endswith(_PEM_EOL):
            continue
        if _get_line(rest[trailer_at + trailer_len:])[0]:
            continue
        decoded = _std_b64(rest[:end].replace(b" ", b"").replace(b"\t", b""))
        if decoded is None:
            continue
        block.bytes = decoded
        _, after_end = _get_line(rest[end + len(_PEM_END) - 1:])
        return block, after_end


# --- certificate requests ------------------------------------------------------------------------


@dataclass
class CSRInfo:
    """What the signers' rules read from a PKCS#10 request, in Go's ``x509.CertificateRequest`` terms."""

    request: x509.CertificateSigningRequest
    common_name: str
    organizations: list[str]
    dns_names: list[str]
    ip_addresses: list[str]
    emails: list[str]
    uris: list[str]


def parse_csr(pem: bytes) -> CSRInfo:
    """Kubernetes' ``ParseCSR``; raises :class:`CSRError` with Go's text. The signature is not checked."""
    block, _ = pem_decode(pem)
    if block is None or block.type != CSR_BLOCK:
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        req = x509.load_der_x509_csr(block.bytes)
        subject = req.subject
        sans = _sans(req)
    except (ValueError, UnsupportedAlgorithm):
        raise CSRError("x509: malformed certificate request") from None
    return CSRInfo(
        request=req,
        common_name=next((str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)), ""),
        organizations=[str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)],
        dns_names=sans.get_values_for_type(x509.DNSName) if sans else [],
        ip_addresses=[str(a) for a in sans.get_values_for_type(x509.IPAddress)] if sans else [],
        emails=sans.get_values_for_type(x509.RFC822Name) if sans else [],
        uris=sans.get_values_for_type(x509.UniformResourceIdentifier) if sans else [],
    )


def _sans(req: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def check_signature(info: CSRInfo) -> None:
    """Go's ``CertificateRequest.CheckSignature``: raises :class:`CSRError` with Go's text."""
    try:
        valid = info.request.is_signature_valid
    except (ValueError, UnsupportedAlgorithm, InvalidSignature):
        valid = False
    if valid:
        return
    key = info.request.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        raise CSRError("crypto/rsa: verification error")
    if isinstance(key, ed25519.Ed25519PublicKey):
        raise CSRError("x509: Ed25519 verification failure")
    if isinstance(key, ec.EllipticCurvePublicKey):
        raise CSRError("x509: ECDSA verification failure")
    raise CSRError("x509: cannot verify signature: algorithm unimplemented")


def parse_certificates(pem: bytes) -> None:
    """Kubernetes' ``validateCertificate`` of ``status.certificate``: one or more CERTIFICATE blocks.

    Empty content is valid (no certificate yet). Raises :class:`CSRError` with Kubernetes' text.
    """
    if not pem:
        return
    blocks = 0
    while True:
        block, rest = pem_decode(pem)
        if block is None:
            break
        if block.type != CERT_BLOCK:
            raise CSRError(f'only CERTIFICATE PEM blocks are allowed, found "{block.type}"')
        if block.headers:
            raise CSRError("no PEM block headers are permitted")
        blocks += 1
        try:
            x509.load_der_x509_certificate(block.bytes)
        except ValueError:
            raise CSRError("x509: malformed certificate") from None
        pem = rest
    if blocks == 0:
        raise CSRError("must contain at least one CERTIFICATE PEM block")


# --- the kubelet signers' rules ------------------------------------------------------------------

_SERVING_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
_SERVING_USAGES_NO_RSA = frozenset({"digital signature", "server auth"})
_CLIENT_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})
_CLIENT_USAGES_NO_RSA = frozenset({"digital signature", "client auth"})


def _go_list(values: frozenset[str]) -> str:
    """Go's ``%v`` of a sorted string slice."""
    return "[" + " ".join(sorted(values)) + "]"


def validate_kubelet_serving_csr(info: CSRInfo, usages: list[str]) -> None:
    """``ValidateKubeletServingCSR``: O=system:nodes, DNS/IP SANs only, CN system:node:NAME."""
    if info.organizations != ["system:nodes"]:
        raise CSRError("subject organization is not system:nodes")
    if not info.dns_names and not info.ip_addresses:
        raise CSRError("DNS or IP subjectAltName is required")
    if info.emails:
        raise CSRError("Email subjectAltNames are not allowed")
    if info.uris:
        raise CSRError("URI subjectAltNames are not allowed")
    if set(usages) not in (_SERVING_USAGES, _SERVING_USAGES_NO_RSA):
        raise CSRError(f"usages did not match {_go_list(_SERVING_USAGES)}")
    if not info.common_name.startswith("system:node:"):
        raise CSRError("subject common name does not begin with system:node:")


def validate_kubelet_client_csr(info: CSRInfo, usages: list[str]) -> None:
    """``ValidateKubeletClientCSR``: O=system:nodes, no SANs, CN system:node:NAME."""
    if info.organizations != ["system:nodes"]:
        raise CSRError("subject organization is not system:nodes")
    if info.dns_names:
        raise CSRError("DNS subjectAltNames are not allowed")
    if info.emails:
        raise CSRError("Email subjectAltNames are not allowed")
    if info.ip_addresses:
        raise CSRError("IP subjectAltNames are not allowed")
    if info.uris:
        raise CSRError("URI subjectAltNames are not allowed")
    if not info.common_name.startswith("system:node:"):
        raise CSRError("subject common name does not begin with system:node:")
    if set(usages) not in (_CLIENT_USAGES, _CLIENT_USAGES_NO_RSA):
        raise CSRError(f"usages did not match {_go_list(_CLIENT_USAGES)}")


def validate_kube_apiserver_client_usages(usages: list[str]) -> None:
    """The kube-apiserver-client signer's usages: client auth, optionally the two key usages."""
    for u in usages:
        if u not in ("digital signature", "key encipherment", "client auth"):
            raise CSRError(f"invalid usage for client certificate: {u}")
    if "client auth" not in usages:
        raise CSRError("missing required usage for client certificate: client auth")


def has_condition(csr: dict[str, object], type_: str) -> bool:
    """True if ``status.conditions`` has a condition of this type with status True."""
    status = csr.get("status")
    conds = status.get("conditions") if isinstance(status, dict) else None
    return any(isinstance(c, dict) and c.get("type") == type_ and c.get("status") == "True"
               for c in conds or [])
