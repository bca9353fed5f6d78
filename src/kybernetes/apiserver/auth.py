"""Authentication: who is asking. (Authorization, RBAC, comes later; every user may do everything.)

Two authenticators, tried in order, as kube-apiserver does:

- **x509 client certificates** verified against the cluster CA during the TLS handshake:
  CN is the user name, each O is a group (``O=system:masters`` for the admin).
- **bearer tokens** from a static token file (``token,user,uid,"group1,group2"`` per line, the
  format of kube-apiserver's ``--token-auth-file``).

Every authenticated user is also in ``system:authenticated``. A request with neither gets 401.
"""

from __future__ import annotations

import csv
import hmac
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes import errors
from kybernetes.apiserver.registry.store import User

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
            tokens[row[0].strip()] = User(row[1].strip(), groups, row[2].strip() if len(row) > 2 else "")
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

    def authenticate(self, peercert: dict[str, Any] | None, authorization: str | None) -> User:
        user = user_from_peercert(peercert)
        if user is None and authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                token = token.strip()
                user = self.token_file.lookup(token)
                for extra in self.extra_token_authenticators:
                    if user is not None:
                        break
                    user = extra(token)
        if user is None:
            raise errors.Unauthorized("Unauthorized")
        if "system:authenticated" not in user.groups:
            user = User(user.name, (*user.groups, "system:authenticated"), user.uid, user.extra)
        return user
