"""The kubelet's serving certificate (port 10250) and the CA its clients must chain to.

Given files win. Otherwise, on a server machine (the cluster CA's key at hand) a certificate from
the cluster CA, issued afresh on every start, so that the API server's streaming proxy can verify
the kubelet (the InternalIP is a SAN); elsewhere a self-signed one, kept in DATA/pki, enough for
clients that do not verify the kubelet.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kybernetes.kubelet.kubelet import Kubelet


def ensure_serving_cert(kubelet: Kubelet) -> tuple[Path, Path, Path]:
    """The kubelet's serving certificate (given, or self-signed for the node's names in DATA/pki)
    and the CA its clients' certificates must chain to (given, or the kubeconfig's cluster CA)."""
    cfg = kubelet.config
    pki = kubelet.data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    ca = cfg.client_ca_file
    if ca is None:
        cluster = kubelet.client.config
        ca = pki / "client-ca.crt"
        if cluster.ca_data:
            ca.write_bytes(cluster.ca_data)
        elif cluster.ca_file:
            ca.write_bytes(Path(cluster.ca_file).read_bytes())
    if cfg.tls_cert_file and cfg.tls_private_key_file:
        return cfg.tls_cert_file, cfg.tls_private_key_file, ca
    cert, key = pki / "kubelet.crt", pki / "kubelet.key"
    dns = list(dict.fromkeys([kubelet.node_name, kubelet.hostname, "localhost"]))
    ips = [i for i in dict.fromkeys([kubelet.host_ip, "127.0.0.1"]) if is_valid_ip(i)]
    ca_dir = cfg.cluster_ca_dir
    if ca_dir is not None and (ca_dir / "ca.key").exists():
        # On a server machine (k3s-style): a certificate from the cluster CA, which the API server's
        # streaming proxy verifies (with the InternalIP as a SAN), issued afresh on every start.
        from cryptography import x509

        from kybernetes.pki import PKI, load_key

        authority = PKI(ca_dir, x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes()),
                        load_key(ca_dir / "ca.key"))
        cert_pem, key_pem = authority.issue(f"system:node:{kubelet.node_name}", organizations=("system:nodes",),
                                            dns_names=tuple(dns), ip_addresses=tuple(ips), server=True)
        key.write_bytes(key_pem)
        os.chmod(key, 0o600)
        cert.write_bytes(cert_pem)
    elif not cert.exists() or not key.exists():
        _self_signed(cert, key, kubelet.node_name, dns, ips)
    return cert, key, ca


def _self_signed(cert_path: Path, key_path: Path, cn: str, dns: list[str], ips: list[str]) -> None:
    """A self-signed serving certificate: enough for clients that do not verify the kubelet."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{cn}@kubelet")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns if n]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def is_valid_ip(value: str) -> bool:
    """Whether ``value`` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


__all__ = [
    "ensure_serving_cert",
    "is_valid_ip",
]
