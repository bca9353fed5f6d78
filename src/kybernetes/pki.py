"""The cluster's PKI: a CA made on first start, serving and client certificates, kubeconfigs.

Layout under ``DATA_DIR/tls`` (kept across restarts, so clients stay valid):

    ca.crt / ca.key                 the cluster CA (EC P-256, 10 years)
    serving.crt / serving.key       the API server's certificate: localhost, 127.0.0.1, ::1, the host
                                    name and every address of this machine, plus extra SANs asked for
    admin.crt / admin.key           CN=system:admin, O=system:masters (the admin kubeconfig)
    front-proxy-ca.crt / .key       the front-proxy CA (kubeadm's): only the aggregation layer's client
                                    certificate comes from it, so aggregated API servers trust that
                                    certificate, and no cluster client's, to assert a user in headers
    front-proxy-client.crt / .key   CN=front-proxy-client, from the front-proxy CA
    service-account.key             the key service-account tokens are signed with

The serving certificate is re-issued when its SANs no longer cover what is asked for (a new
address), so a restart on another network does not break TLS.

Below every component: the API server makes and serves the cluster PKI, the agent writes
kubeconfigs, the kubelet issues its own serving certificate from a CA it is given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybernetes.fileutil import write_atomic

_TEN_YEARS = dt.timedelta(days=3650)
_ONE_YEAR = dt.timedelta(days=365)
FRONT_PROXY_CLIENT = "front-proxy-client"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The EC key at ``path``, made (0600) if missing or unreadable: a node's renewal keeps its key."""
    if path.exists():
        with contextlib.suppress(ValueError, TypeError):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return key
    key = ec.generate_private_key(ec.SECP256R1())
    write_atomic(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()), 0o600)
    return key


def machine_addresses() -> list[str]:
    """Loopback plus the addresses this host's name resolves to (no network traffic)."""
    addrs = {"127.0.0.1", "::1"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addrs.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(addrs)


def primary_address() -> str:
    """This machine's primary IPv4 address: the source address of its default route (the address
    k3s advertises), read from the routing table with `ip` (nothing is sent); "" without one."""
    try:
        routes = json.loads(subprocess.run(["ip", "-4", "-j", "route", "show", "default"], capture_output=True,
                                           text=True, timeout=10, check=True).stdout or "[]")
        if not routes:
            return ""
        if routes[0].get("prefsrc"):
            return str(routes[0]["prefsrc"])
        links = json.loads(subprocess.run(["ip", "-4", "-j", "addr", "show", "dev", routes[0]["dev"]],
                                          capture_output=True, text=True, timeout=10, check=True).stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return ""
    for link in links:
        for addr in link.get("addr_info") or []:
            if addr.get("family") == "inet" and addr.get("scope") == "global":
                return str(addr["local"])
    return ""


@dataclass
class PKI:
    dir: Path
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    ca_name: str = "ca"
    """The CA's file names in ``dir``: ``<ca_name>.crt`` and ``<ca_name>.key``."""

    @property
    def ca_path(self) -> Path:
        return self.dir / f"{self.ca_name}.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.dir / f"{self.ca_name}.key"

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, data_dir: Path, ca_name: str = "ca", common_name: str = "kybernetes-ca") -> PKI:
        """The CA ``ca_name`` in ``data_dir/tls``, made on first use (CN ``<common_name>@<time>``)."""
        d = data_dir / "tls"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        crt, key = d / f"{ca_name}.crt", d / f"{ca_name}.key"
        if crt.exists() and key.exists():
            return cls(d, x509.load_pem_x509_certificate(crt.read_bytes()), load_key(key), ca_name)
        ca_key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name}@{int(_now().timestamp())}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + _TEN_YEARS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_atomic(key, _key_pem(ca_key))
        write_atomic(crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cls(d, cert, ca_key, ca_name)

    def issue(
        self,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
        lifetime: dt.timedelta = _ONE_YEAR,
    ) -> tuple[bytes, bytes]:
        """A new certificate and key signed by the CA, both PEM."""
        key = _new_key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self.ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def ensure(self, name: str, **kw: object) -> tuple[Path, Path]:
        """Issue ``name.crt``/``name.key`` unless present and still covering the asked SANs."""
        crt, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        if crt.exists() and key.exists() and self._covers(crt, kw):
            return crt, key
        cert_pem, key_pem = self.issue(**kw)  # type: ignore[arg-type]
        write_atomic(key, key_pem)
        write_atomic(crt, cert_pem, 0o644)
        return crt, key

    @staticmethod
    def _covers(crt: Path, kw: dict[str, object]) -> bool:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        if cert.not_valid_after_utc < _now() + dt.timedelta(days=30):
            return False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have_dns = set(san.get_values_for_type(x509.DNSName))
            have_ip = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
        except x509.ExtensionNotFound:
            have_dns, have_ip = set(), set()
        want_dns = set(kw.get("dns_names", ()))  # type: ignore[call-overload]
        want_ip = {str(ipaddress.ip_address(a)) for a in kw.get("ip_addresses", ())}  # type: ignore[attr-defined]
        return want_dns <= have_dns and want_ip <= have_ip

    def serving(self, extra_sans: tuple[str, ...] = ()) -> tuple[Path, Path]:
        dns = {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local", socket.gethostname()}
        ips = set(machine_addresses())
        for s in extra_sans:
            try:
                ips.add(str(ipaddress.ip_address(s)))
            except ValueError:
                dns.add(s)
        return self.ensure(
            "serving", common_name="kube-apiserver", dns_names=tuple(sorted(dns)),
            ip_addresses=tuple(sorted(ips)), server=True,
        )

    def admin(self) -> tuple[Path, Path]:
        return self.ensure("admin", common_name="system:admin", organizations=("system:masters",), client=True)

    def front_proxy(self) -> tuple[PKI, Path, Path]:
        """The front-proxy CA and its client certificate (CN ``front-proxy-client``, kubeadm's),
        which the aggregation layer presents to aggregated API servers."""
        ca = PKI.load_or_create(self.dir.parent, "front-proxy-ca", "front-proxy-ca")
        crt, key = ca.ensure("front-proxy-client", common_name=FRONT_PROXY_CLIENT, client=True)
        return ca, crt, key

    def service_account_key(self) -> Path:
        path = self.dir / "service-account.key"
        if not path.exists():
            write_atomic(path, _key_pem(_new_key()))
        return path


def kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, *, user: str = "admin",
               cluster: str = "kybernetes") -> dict[str, object]:
    import base64

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }


def write_kubeconfig(path: Path, config: dict[str, object]) -> None:
    write_atomic(path, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)


# --- service-account tokens: what the API server (TokenRequest, verification) and the token
# controller (legacy Secrets) share, so both name the signing key the same way ---------------

SERVICE_ACCOUNT_TOKEN_ALGORITHM = "ES256"


def service_account_key_id(key_pem: bytes) -> str:
    """The ``kid`` header of tokens signed with the service-account key ``key_pem``."""
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_OID, key_pem.decode()).hex[:16]


def sign_service_account_token(key_pem: bytes, claims: dict[str, object]) -> str:
    """``claims`` as a JWT signed with the service-account key (ES256, its ``kid``)."""
    import jwt

    key = serialization.load_pem_private_key(key_pem, password=None)
    return jwt.encode(claims, key, algorithm=SERVICE_ACCOUNT_TOKEN_ALGORITHM,  # type: ignore[arg-type]
                      headers={"kid": service_account_key_id(key_pem)})
