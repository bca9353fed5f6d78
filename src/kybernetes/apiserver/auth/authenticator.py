"""Authentication: who is asking.

The authenticators, tried in order, as kube-apiserver does:

- **request headers** from a front proxy (:mod:`.requestheader`): a client certificate of the
  request-header CA with an allowed name asserts the user in ``X-Remote-*`` headers;
- **x509 client certificates** verified against the cluster CA during the TLS handshake:
  CN is the user name, each O is a group (``O=system:masters`` for the admin). When the
  request-header CA is trusted in the handshake too, a certificate counts here only if the cluster
  CA issued it.
- **bearer tokens** from a static token file (``token,user,uid,"group1,group2"`` per line, the
  format of kube-apiserver's ``--token-auth-file``).

Every authenticated user is also in ``system:authenticated``. A request with neither is
``system:anonymous`` in ``system:unauthenticated`` when anonymous requests are on
(``--anonymous-auth``, as kube-apiserver: on unless an AlwaysAllow authorizer is configured), and
401 otherwise; credentials that no authenticator accepts are always 401.
"""

from __future__ import annotations

import csv
import hmac
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes import errors
from kybernetes.apiserver.auth.requestheader import Issuers, RequestHeaderAuthenticator
from kybernetes.apiserver.registry.request import User

ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
"""Who a request without credentials is, when anonymous requests are allowed (``--anonymous-auth``)."""

RELOAD_CHECK_INTERVAL = 1.0
"""Seconds between checks of the token file's mtime."""


@dataclass
class TokenFile:
    path: Path | None
    tokens: dict[str, User] = field(default_factory=dict)
    _mtime: float = -1.0
    _checked: float = float("-inf")

    def lookup(self, token: str) -> User | None:
        now = time.monotonic()
        if now - self._checked >= RELOAD_CHECK_INTERVAL:
            # At most one stat a second, not two per request: edits still apply within a second.
            self._checked = now
            self._reload()
        for t, user in self.tokens.items():
            if hmac.compare_digest(t, token):
                return user
        return None

    def _reload(self) -> None:
        if self.path is None or not self.path.exists():
            return
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        self._mtime = mtime
        tokens: dict[str, User] = {}
        for row in csv.reader(io.StringIO(self.path.read_text())):
            if len(row) < 2 or row[0].startswith("#"):
                continue
            groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g)
            user = _authenticated(User(row[1].strip(), groups, row[2].strip() if len(row) > 2 else ""))
            assert user is not None
            tokens[row[0].strip()] = user
        self.tokens = tokens


def user_from_peercert(cert: dict[str, Any] | None) -> User | None:
    """The user of a client certificate as Python's ssl module decodes a verified peer cert."""
    if not cert:
        return None
    cn = ""
    orgs: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return User(cn, tuple(orgs))


class Authenticator:
    def __init__(self, token_file: TokenFile) -> None:
        self.token_file = token_file
        self.extra_token_authenticators: list[Any] = []
        self.review_authenticators: list[Any] = []
        """``(token, audiences) -> (user, audiences, error)``: the same authenticators as
        ``extra_token_authenticators``, for TokenReview."""
        self.request_header: RequestHeaderAuthenticator | None = None
        self.client_ca: Issuers | None = None
        """The cluster CA, when certificates of another CA (the request-header one) pass the handshake."""
        # A verified certificate's subject always names the same user: remember it (bounded).
        self._by_subject: dict[Any, User] = {}

    def cert_user(self, peercert: dict[str, Any] | None, der: bytes | None) -> User | None:
        """The user of a client certificate issued by the cluster CA (``der``: the certificate;
        needed when another CA's certificates also pass the handshake), else None."""
        if not peercert:
            return None
        if self.client_ca is not None and not (der and self.client_ca.issued(der)):
            return None  # another CA's certificate: kube-apiserver's x509 verify fails
        subject = peercert.get("subject")  # ssl gives nested tuples: hashable
        hit = self._by_subject.get(subject)
        if hit is None:
            hit = _authenticated(user_from_peercert(peercert))
            if hit is None:
                return None
            if len(self._by_subject) >= 1024:
                self._by_subject.clear()
            self._by_subject[subject] = hit
        return hit

    def review_token(self, token: str, audiences: tuple[str, ...] | list[str]) -> tuple[User | None, list[str], str]:
        """``(user, audiences, error)`` for a bearer token, as a TokenReview reports it: token-file
        tokens are good for any audience (Kubernetes' audience-agnostic wrapper); the others
        (``review_authenticators``) check the audience themselves."""
        user = self.token_file.lookup(token)
        if user is not None:
            return user, list(audiences), ""
        errors_seen = ""
        for review in self.review_authenticators:
            found, auds, error = review(token, audiences)
            if found is not None:
                return _authenticated(found), auds, ""
            errors_seen = errors_seen or error
        return None, [], errors_seen

    def authenticate(self, peercert: dict[str, Any] | None, authorization: str | None, *,
                     anonymous: bool = False, headers: Mapping[str, str] | None = None,
                     der: bytes | None = None) -> User:
        """The user of a request: the one a front proxy's certificate asserts in ``headers``, else
        its client certificate's (``der``: that certificate), else its bearer token's. A request
        with none is ``system:anonymous`` (in ``system:unauthenticated``) when ``anonymous``;
        otherwise, and whenever credentials are presented that no authenticator accepts, 401."""
        rejected = False  # an authenticator failed the credentials (kube-apiserver's union error)
        if self.request_header is not None and peercert:
            try:
                user = _authenticated(self.request_header.authenticate(peercert, der, headers or {}))
            except errors.Unauthorized:
                user, rejected = None, True  # the union goes on; 401 unless a later one accepts
            if user is not None:
                return user
        user = self.cert_user(peercert, der)
        if user is not None:
            return user
        if self.client_ca is not None and peercert:
            rejected = True  # x509: "certificate signed by unknown authority"
        token = bearer_token(authorization)
        if token:
            user = self.token_file.lookup(token)
            for extra in self.extra_token_authenticators:
                if user is not None:
                    break
                user = extra(token)
            user = _authenticated(user)
            if user is not None:
                return user
        elif anonymous and not rejected:
            return ANONYMOUS
        raise errors.Unauthorized("Unauthorized")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header, as kube-apiserver's bearer-token
    authenticator reads it: empty for another scheme or an empty token (no credentials, which
    leaves the request to anonymous authentication), anything after the token ignored."""
    parts = (authorization or "").strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return ""
    return parts[1]


def _authenticated(user: User | None) -> User | None:
    """Every authenticated user is also in ``system:authenticated``."""
    if user is None or "system:authenticated" in user.groups:
        return user
    return User(user.name, (*user.groups, "system:authenticated"), user.uid, user.extra)
