"""Pure helpers of node credentials: bootstrap token Secret data (cluster-bootstrap's rules), the
kubeadm CA hash, client-go's rotation deadline, and controllers that are off by default."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybernetes import join
from kybernetes.controllers.manager import all_controllers, select
from kybernetes.kubelet.certificate import rotation_deadline


def _data(**values: str) -> dict[str, object]:
    return {k.replace("_", "-"): base64.b64encode(v.encode()).decode() for k, v in values.items()}


def test_bootstrap_token_format() -> None:
    assert join.parse_bootstrap_token("abcdef.0123456789abcdef") == ("abcdef", "0123456789abcdef")
    for bad in ("ABCDEF.0123456789abcdef", "abcde.0123456789abcdef", "abcdef.0123456789abcde", "abcdef0123456789abcdef"):
        with pytest.raises(ValueError, match="was not of the form"):
            join.parse_bootstrap_token(bad)


def test_bootstrap_expiration() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    assert join.bootstrap_expiration(_data(), now) == (0.0, False)
    assert join.bootstrap_expiration(_data(expiration="2026-01-01T00:01:00Z"), now) == (60.0, False)
    assert join.bootstrap_expiration(_data(expiration="2026-01-01T01:00:00+01:00"), now) == (0.0, True)
    assert join.bootstrap_expiration(_data(expiration="2025-12-31T23:59:59Z"), now) == (0.0, True)
    for unparseable in ("tomorrow", "2026-01-02", "2026-01-02T00:00:00"):  # Go's RFC3339 wants a zone
        assert join.bootstrap_expiration(_data(expiration=unparseable), now) == (0.0, True)


def test_bootstrap_groups() -> None:
    assert join.bootstrap_groups(_data()) == ["system:bootstrappers"]
    groups = _data(auth_extra_groups="system:bootstrappers:z, system:bootstrappers:a,system:bootstrappers:a")
    assert join.bootstrap_groups(groups) == ["system:bootstrappers", "system:bootstrappers:a",
                                             "system:bootstrappers:z"]
    assert join.bootstrap_groups(_data(auth_extra_groups="system:masters")) is None
    for bad in ("system:bootstrappers:x-", "system:bootstrappers", "system:bootstrappers:a,,system:bootstrappers:b"):
        assert join.bootstrap_groups(_data(auth_extra_groups=bad)) is None


def _cert(not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(not_before).not_valid_after(not_after).sign(key, hashes.SHA256()))


def test_ca_public_key_hash_is_kubeadms() -> None:
    cert = _cert(dt.datetime(2026, 1, 1), dt.datetime(2027, 1, 1))
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert join.ca_public_key_hash(pem) == "sha256:" + hashlib.sha256(spki).hexdigest()


def test_rotation_deadline_is_70_to_90_percent_of_the_lifetime() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = _cert(start, start + dt.timedelta(days=100))
    assert rotation_deadline(cert, lambda: 0.0) == start + dt.timedelta(days=70)
    assert rotation_deadline(cert, lambda: 1.0) == start + dt.timedelta(days=90)
    assert rotation_deadline(cert, lambda: 0.5) == start + dt.timedelta(days=80)


def test_tokencleaner_is_off_by_default_as_in_kubernetes() -> None:
    available = all_controllers()
    assert "tokencleaner" in available and "serviceaccount-token" in available
    assert "tokencleaner" not in [c.name for c in select(available, ["*"])]
    chosen = [c.name for c in select(available, ["*", "tokencleaner"])]
    assert "tokencleaner" in chosen and "serviceaccount-token" in chosen
    assert "tokencleaner" not in [c.name for c in select(available, ["*", "tokencleaner", "-tokencleaner"])]
