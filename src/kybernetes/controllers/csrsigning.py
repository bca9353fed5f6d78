"""csrsigning: issues certificates for approved CSRs of the Kubernetes signers, with the cluster CA.

As kube-controller-manager's ``pkg/controller/certificates/signer`` (one controller here for the
three signers it runs in 1.32; ``kubernetes.io/legacy-unknown`` cannot be requested through v1):

* ``kubernetes.io/kube-apiserver-client``: usages ``client auth`` plus optionally ``digital
  signature`` and ``key encipherment``; any subject (it becomes the API server user: CN the name, O
  the groups);
* ``kubernetes.io/kube-apiserver-client-kubelet``: ``O=system:nodes``, ``CN=system:node:NAME``, no
  SANs, the kubelet client usages;
* ``kubernetes.io/kubelet-serving``: ``O=system:nodes``, ``CN=system:node:NAME``, DNS or IP SANs
  only, the kubelet serving usages.

A request is handled once it is Approved, not Denied, not Failed and has no certificate yet. One
that breaks its signer's rules gets a ``Failed`` condition (reason ``SignerValidationFailure``, the
rule's message) through ``/status`` and is never signed; others get ``status.certificate``.

The certificate (Kubernetes' ``PermissiveSigningPolicy``): the request's subject, SANs and public
key; key usage and extended key usage from ``spec.usages``; no other extensions; not a CA. Its
lifetime is ``spec.expirationSeconds`` bounded to [10 min, ``--cluster-signing-duration``] (default
one year, kube-controller-manager's default), backdated 5 minutes (and NotAfter with it unless the
lifetime is under 8 hours), and never past the CA's own expiry.

The CA comes from ``--cluster-signing-cert-file`` / ``--cluster-signing-key-file`` (``kyb server``
passes DATA_DIR/tls/ca.crt and ca.key), re-read when the files change. Without them the controller
signs nothing, as kube-controller-manager skips its signers then.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from kybernetes import errors
from kybernetes.api import certificates as certs
from kybernetes.api.obj import Obj
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.job_util import now_dt

log = logging.getLogger(__name__)

API = "certificates.k8s.io/v1"
PLURAL = "certificatesigningrequests"
DEFAULT_DURATION = dt.timedelta(days=365)
"""kube-controller-manager's ``--cluster-signing-duration`` default (8760h)."""
MIN_DURATION = dt.timedelta(minutes=10)
BACKDATE = dt.timedelta(minutes=5)
SHORT = dt.timedelta(hours=8)

_KEY_USAGE_BITS = {
    "signing": "digital_signature", "digital signature": "digital_signature",
    "content commitment": "content_commitment", "key encipherment": "key_encipherment",
    "key agreement": "key_agreement", "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign", "crl sign": "crl_sign", "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
# In Go's x509.ExtKeyUsage order, which is the order Kubernetes writes them in.
_EXT_KEY_USAGES = (
    ("any", ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE),
    ("server auth", ExtendedKeyUsageOID.SERVER_AUTH),
    ("client auth", ExtendedKeyUsageOID.CLIENT_AUTH),
    ("code signing", ExtendedKeyUsageOID.CODE_SIGNING),
    ("email protection", ExtendedKeyUsageOID.EMAIL_PROTECTION),
    ("s/mime", ExtendedKeyUsageOID.EMAIL_PROTECTION),
    ("ipsec end system", x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5")),
    ("ipsec tunnel", x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6")),
    ("ipsec user", x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7")),
    ("timestamping", ExtendedKeyUsageOID.TIME_STAMPING),
    ("ocsp signing", ExtendedKeyUsageOID.OCSP_SIGNING),
    ("microsoft sgc", x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3")),
    ("netscape sgc", x509.ObjectIdentifier("2.16.840.1.113730.4.1")),
)


def check_signer_rules(signer: str, info: certs.CSRInfo, usages: list[str]) -> bool:
    """True if this controller signs for ``signer``; raises :class:`CSRError` if a rule is broken."""
    if signer == certs.KUBE_APISERVER_CLIENT:
        certs.validate_kube_apiserver_client_usages(usages)
    elif signer == certs.KUBE_APISERVER_CLIENT_KUBELET:
        certs.validate_kubelet_client_csr(info, usages)
    elif signer == certs.KUBELET_SERVING:
        certs.validate_kubelet_serving_csr(info, usages)
    else:
        return False
    return True


def lifetime(expiration_seconds: Any, max_ttl: dt.timedelta) -> dt.timedelta:
    """The signer's ``duration``: the request's, at least 10 minutes, at most ``max_ttl``."""
    if not isinstance(expiration_seconds, int):
        return max_ttl
    return max(MIN_DURATION, min(dt.timedelta(seconds=expiration_seconds), max_ttl))


@dataclass
class CertificateAuthority:
    cert: x509.Certificate
    key: Any

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> CertificateAuthority:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        return cls(x509.load_pem_x509_certificate(cert_file.read_bytes()), key)

    def _hash(self) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return None
        if isinstance(self.key, ec.EllipticCurvePrivateKey) and self.key.curve.key_size > 256:
            return hashes.SHA384() if self.key.curve.key_size <= 384 else hashes.SHA512()
        return hashes.SHA256()

    def sign(self, info: certs.CSRInfo, usages: list[str], ttl: dt.timedelta, now: dt.datetime) -> bytes:
        """A PEM certificate for the request under Kubernetes' permissive signing policy."""
        ca_not_after = self.cert.not_valid_after_utc
        if not now < ca_not_after:
            raise certs.CSRError(f"refusing to sign a certificate that expired in the past: NotAfter={ca_not_after}")
        not_before = now - BACKDATE
        not_after = min(now + ttl if ttl < SHORT else now + ttl - BACKDATE, ca_not_after)
        req = info.request
        b = (x509.CertificateBuilder()
             .subject_name(req.subject)
             .issuer_name(self.cert.subject)
             .public_key(req.public_key())  # type: ignore[arg-type]
             .serial_number(secrets.randbits(128) or 1)
             .not_valid_before(not_before)
             .not_valid_after(not_after)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        bits = {_KEY_USAGE_BITS[u] for u in usages if u in _KEY_USAGE_BITS}
        if bits:
            b = b.add_extension(_key_usage(bits), critical=True)
        ekus = list(dict.fromkeys(oid for name, oid in _EXT_KEY_USAGES if name in usages))
        if ekus:
            b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        sans = _sans(info)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=not list(req.subject))
        try:
            ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        except x509.ExtensionNotFound:
            pass
        return b.sign(self.key, self._hash()).public_bytes(serialization.Encoding.PEM)


def _key_usage(bits: set[str]) -> x509.KeyUsage:
    # Go writes encipherOnly/decipherOnly on their own; X.509 (and cryptography) give them
    # meaning only with keyAgreement, so without it they are left out.
    agreement = "key_agreement" in bits
    return x509.KeyUsage(
        digital_signature="digital_signature" in bits, content_commitment="content_commitment" in bits,
        key_encipherment="key_encipherment" in bits, data_encipherment="data_encipherment" in bits,
        key_agreement=agreement, key_cert_sign="key_cert_sign" in bits, crl_sign="crl_sign" in bits,
        encipher_only=agreement and "encipher_only" in bits, decipher_only=agreement and "decipher_only" in bits)


def _sans(info: certs.CSRInfo) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = [x509.DNSName(n) for n in info.dns_names]
    out += [x509.IPAddress(ipaddress.ip_address(a)) for a in info.ip_addresses]
    out += [x509.RFC822Name(e) for e in info.emails]
    out += [x509.UniformResourceIdentifier(u) for u in info.uris]
    return out


def is_approved(csr: Obj) -> bool:
    """``IsCertificateRequestApproved``: Approved and not Denied."""
    conds = [c.get("type") for c in (csr.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
    return certs.APPROVED in conds and certs.DENIED not in conds


class CSRSigningController(Controller):
    name = "certificatesigningrequest-signing-controller"
    queue_name = "certificate"
    service_account = "certificate-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        cert_file, key_file = ctx.option("cluster-signing-cert-file", None), ctx.option("cluster-signing-key-file", None)
        self.files = (Path(cert_file), Path(key_file)) if cert_file and key_file else None
        self.max_ttl = dt.timedelta(seconds=float(ctx.option("cluster-signing-duration", DEFAULT_DURATION.total_seconds())))
        self._ca: tuple[tuple[float, float], CertificateAuthority] | None = None
        if self.files is None:
            log.warning("no --cluster-signing-cert-file/--cluster-signing-key-file: CSRs will not be signed")
            return
        self.csrs = self.informer(API, PLURAL)
        self.csrs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))

    def authority(self) -> CertificateAuthority:
        """The CA from its files, re-read when either changed."""
        assert self.files is not None
        stamp = (os.stat(self.files[0]).st_mtime, os.stat(self.files[1]).st_mtime)
        if self._ca is None or self._ca[0] != stamp:
            self._ca = (stamp, CertificateAuthority.load(*self.files))
        return self._ca[1]

    async def sync(self, key: str) -> None:
        csr = self.csrs.store.get(key)
        status = (csr or {}).get("status") or {}
        if csr is None or status.get("certificate") or not is_approved(csr) or certs.has_condition(csr, certs.FAILED):
            return
        spec = csr.get("spec") or {}
        signer, usages = spec.get("signerName"), list(spec.get("usages") or [])
        if signer not in (certs.KUBE_APISERVER_CLIENT, certs.KUBE_APISERVER_CLIENT_KUBELET, certs.KUBELET_SERVING):
            return
        info = certs.parse_csr(certs.decode_bytes(spec.get("request")))
        try:
            check_signer_rules(signer, info, usages)
        except certs.CSRError as e:
            await self._write_status(csr, {"conditions": [*status.get("conditions", []), {
                "type": certs.FAILED, "status": "True", "reason": "SignerValidationFailure", "message": str(e),
                "lastUpdateTime": now_dt(self.ctx.clock).strftime("%Y-%m-%dT%H:%M:%SZ")}]})
            log.info("csr %s failed %s's rules: %s", key, signer, e)
            return
        ttl = lifetime(spec.get("expirationSeconds"), self.max_ttl)
        pem = self.authority().sign(info, usages, ttl, now_dt(self.ctx.clock))
        await self._write_status(csr, {"certificate": base64.b64encode(pem).decode()})
        log.info("signed csr %s for %s (%s)", key, info.common_name, signer)

    async def _write_status(self, csr: Obj, changes: Obj) -> None:
        new = dict(csr, status={**(csr.get("status") or {}), **changes})
        try:
            await self.client.update(API, PLURAL, new, subresource="status")
        except errors.NotFound:
            pass


CONTROLLERS: list[type[Controller]] = [CSRSigningController]

__all__ = ["CONTROLLERS", "CSRSigningController", "CertificateAuthority", "check_signer_rules", "is_approved",
           "lifetime"]
