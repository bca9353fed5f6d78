"""Request-header authentication: a front proxy asserting the user in headers (kube-apiserver's
``--requestheader-*`` flags, k8s.io/apiserver's ``headerrequest`` authenticator).

Contract, as kube-apiserver's, for a request on a connection with a client certificate:

* the identity in the headers counts only if the certificate was issued by the request-header CA
  (``--requestheader-client-ca-file``; checked by its signature, so it must be issued directly by
  one of that file's certificates) and, when ``--requestheader-allowed-names`` is not empty, its
  common name is one of those names; a certificate of that CA with another name makes the
  request fail (401), whatever else it carries, as the union authenticator's error does when no
  later authenticator accepts the request;
* the user name is the first non-empty value among the username headers (``X-Remote-User``); the
  groups are every non-empty value of the group headers, in order (``X-Remote-Group``); each header
  starting with an extra prefix (``X-Remote-Extra-``) adds its values to the extra key made of the
  rest of its name, lower-cased then percent-decoded (``unescapeExtraKey``);
* without a user name the request is not authenticated this way and goes on to the other
  authenticators (whose x509 one accepts only certificates of the cluster CA, so a request-header
  certificate alone is no identity).

Which CA issued a certificate is remembered per certificate (bounded), so a connection's requests
cost a dictionary lookup.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from kybernetes import errors
from kybernetes.apiserver.registry.request import User

CACHE_SIZE = 1024


@dataclass(frozen=True)
class RequestHeaderConfig:
    ca_pem: bytes
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_headers_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)


class Issuers:
    """Whether a DER certificate was issued (directly) by one of a bundle's CA certificates."""

    def __init__(self, pem: bytes) -> None:
        self.cas = x509.load_pem_x509_certificates(pem) if pem.strip() else []
        self._seen: dict[bytes, bool] = {}

    def issued(self, der: bytes) -> bool:
        hit = self._seen.get(der)
        if hit is None:
            hit = self._check(der)
            if len(self._seen) >= CACHE_SIZE:
                self._seen.clear()
            self._seen[der] = hit
        return hit

    def _check(self, der: bytes) -> bool:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return False
        for ca in self.cas:
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False


def common_name(peercert: Mapping[str, object] | None) -> str:
    for rdn in (peercert or {}).get("subject", ()):  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class RequestHeaderAuthenticator:
    def __init__(self, config: RequestHeaderConfig) -> None:
        self.config = config
        self.issuers = Issuers(config.ca_pem)
        self._username = tuple(h.lower() for h in config.username_headers)
        self._groups = tuple(h.lower() for h in config.group_headers)
        self._prefixes = tuple(p.lower() for p in config.extra_headers_prefixes)

    def authenticate(self, peercert: Mapping[str, object] | None, der: bytes | None,
                     headers: Mapping[str, str]) -> User | None:
        """The user the headers assert, None when this authenticator does not apply (no
        certificate of the request-header CA, or no user name); 401 for a certificate of that CA
        whose name is not allowed."""
        if not der or not self.issuers.issued(der):
            return None
        allowed = self.config.allowed_names
        if allowed and common_name(peercert) not in allowed:
            raise errors.Unauthorized("Unauthorized")
        return user_from_headers(headers, self._username, self._groups, self._prefixes)


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(name, [])]
    value = headers.get(name)
    return [value] if value is not None else []


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unescape_extra_key(key: str) -> str:
    """``unescapeExtraKey``: percent-decoded, or left as it is when an escape is malformed (Go's
    ``url.PathUnescape`` fails on the whole key then)."""
    return key if _BAD_ESCAPE.search(key) else urllib.parse.unquote(key, errors="surrogateescape")


def user_from_headers(headers: Mapping[str, str], username: Iterable[str], groups: Iterable[str],
                      prefixes: Iterable[str]) -> User | None:
    """The user named in ``headers`` (header names lower-case), None without a user name."""
    name = next((v for h in username for v in _values(headers, h)[:1] if v), "")
    if not name:
        return None
    group_values = tuple(v for h in groups for v in _values(headers, h) if v)
    extra: dict[str, list[str]] = {}
    for prefix in prefixes:
        for header in dict.fromkeys(k.lower() for k in headers):
            if header.startswith(prefix):
                key = unescape_extra_key(header[len(prefix):])
                extra.setdefault(key, []).extend(_values(headers, header))
    return User(name, group_values, extra=extra)
