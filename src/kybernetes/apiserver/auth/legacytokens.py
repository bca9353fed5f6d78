"""Legacy service-account tokens: the JWTs the token controller puts in Secrets
(``pkg/serviceaccount/legacy.go``'s validator, with lookup on).

A bearer token is one of these when it is signed with the service-account key, its issuer is
``kubernetes/serviceaccount`` and it carries the four ``kubernetes.io/serviceaccount/...`` claims
naming the same account as its ``sub``. It then authenticates as
``system:serviceaccount:NS:NAME`` (groups ``system:serviceaccounts``,
``system:serviceaccounts:NS``) while:

- its Secret exists, is not being deleted, and holds exactly this token in ``data.token``
  (otherwise "Token has been invalidated" / "Token does not match server's copy");
- the Secret has no ``kubernetes.io/legacy-token-invalid-since`` label (Kubernetes' message);
- its ServiceAccount exists, is not being deleted and has the claimed uid.

The Secrets and ServiceAccounts are read from the watch cache, never from the store, so a
request costs no store read. A Secret whose token authenticates gets the label
``kubernetes.io/legacy-token-last-used: YYYY-MM-DD`` (UTC) unless it already says today or
tomorrow, so at most one write per Secret per day; the write is a merge patch with the Secret's uid
(as Kubernetes' ``patchSecretWithLastUsedDate``), made in the background so the request does not
wait for it. Legacy tokens have no audience: they are good for the API server's own audiences.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hmac
import logging
from typing import Any

import jwt

from kybernetes.api.obj import Obj
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.pki import SERVICE_ACCOUNT_TOKEN_ALGORITHM

log = logging.getLogger(__name__)

LEGACY_ISSUER = "kubernetes/serviceaccount"
LAST_USED_LABEL = "kubernetes.io/legacy-token-last-used"
INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"
_CLAIM = "kubernetes.io/serviceaccount/"
_SYSTEM = RequestContext(user=User("system:apiserver", ("system:masters",)), field_manager="kube-apiserver")


class LegacyTokens:
    def __init__(self, registry: Registry, public_key: Any, api_audiences: tuple[str, ...]) -> None:
        self.registry = registry
        self.public_key = public_key
        self.api_audiences = api_audiences
        self._labelling: set[asyncio.Task[None]] = set()
        self._written: dict[str, str] = {}
        """Secret uid -> the date last written, so a burst of requests writes the label once."""

    def authenticate(self, token: str) -> User | None:
        user, _, _ = self.review(token, self.api_audiences)
        return user

    def review(self, token: str, audiences: tuple[str, ...] | list[str]) -> tuple[User | None, list[str], str]:
        """``(user, audiences, error)`` as :meth:`ServiceAccounts.review` reports them; ``error`` is
        Kubernetes' text for a legacy token of ours that is no longer valid ("" if not ours)."""
        if token.count(".") != 2:
            return None, [], ""
        try:
            claims = jwt.decode(token, self.public_key, algorithms=[SERVICE_ACCOUNT_TOKEN_ALGORITHM],
                                issuer=LEGACY_ISSUER, options={"verify_aud": False, "require": ["sub"]})
        except jwt.PyJWTError:
            return None, [], ""
        ns, sa_name, problem = _check_claims(claims)
        if problem:
            return None, [], problem
        sa_uid = claims[_CLAIM + "service-account.uid"]
        secret = self._cached("secrets", ns, claims[_CLAIM + "secret.name"])
        problem = _check_secret(secret, token, ns, sa_name)
        if problem:
            return None, [], problem
        assert secret is not None
        sa = self._cached("serviceaccounts", ns, sa_name)
        problem = _check_account(sa, ns, sa_name, sa_uid)
        if problem:
            return None, [], problem
        problem = _invalidated(secret, ns, sa_name)
        if problem:
            self._mark_used(secret)
            return None, [], problem
        auds = [a for a in audiences if a in self.api_audiences]
        if not auds:
            return None, [], f"token audiences {list(self.api_audiences)} is invalid for the target audiences {list(audiences)}"
        self._mark_used(secret)
        user = User(f"system:serviceaccount:{ns}:{sa_name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}"), sa_uid)
        return user, auds, ""

    def _cached(self, plural: str, namespace: str, name: str) -> Obj | None:
        r = self.registry.catalogue.get("", "v1", plural)
        assert r is not None
        cache = self.registry.cacher.caches.get(r.key_prefix)
        obj: Obj | None = cache.objects.get(r.key(namespace, name)) if cache is not None else None
        return obj

    def _mark_used(self, secret: Obj) -> None:
        now = dt.datetime.now(dt.UTC)
        today = now.strftime("%Y-%m-%d")
        tomorrow = (now + dt.timedelta(days=1)).strftime("%Y-%m-%d")
        meta = secret["metadata"]
        if (meta.get("labels") or {}).get(LAST_USED_LABEL) in (today, tomorrow):
            return
        if self._written.get(meta["uid"]) == today:
            return  # written already; the watch cache has not shown it yet
        if len(self._written) > 10000:
            self._written.clear()
        self._written[meta["uid"]] = today
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside the server's loop (a test): nothing to write with
        task = loop.create_task(self._label(meta, today))
        self._labelling.add(task)
        task.add_done_callback(self._labelling.discard)

    async def _label(self, meta: Obj, today: str) -> None:
        r = self.registry.catalogue.get("", "v1", "secrets")
        assert r is not None
        patch = {"metadata": {"uid": meta["uid"], "labels": {LAST_USED_LABEL: today}}}
        try:
            await self.registry.patch(r, meta["namespace"], meta["name"], "merge", patch, _SYSTEM)
        except Exception as err:  # the label is bookkeeping: never fail a request over it
            self._written.pop(meta["uid"], None)  # the next use tries again
            log.warning("failed to label legacy service account token %s/%s with last-used date: %s",
                        meta["name"], meta["namespace"], err)


def _check_claims(claims: Obj) -> tuple[str, str, str]:
    """``(namespace, account, error)`` from the legacy claims, Kubernetes' errors in its order."""
    for claim, what in (("namespace", "namespace"), ("secret.name", "secretName"),
                        ("service-account.name", "serviceAccountName"),
                        ("service-account.uid", "serviceAccountUID")):
        if not claims.get(_CLAIM + claim):
            return "", "", f"{what} claim is missing"
    ns, name = claims[_CLAIM + "namespace"], claims[_CLAIM + "service-account.name"]
    parts = str(claims.get("sub", "")).split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"] or parts[2:] != [ns, name]:
        return "", "", "sub claim is invalid"
    return ns, name, ""


def _check_secret(secret: Obj | None, token: str, ns: str, sa_name: str) -> str:
    if secret is None or secret["metadata"].get("deletionTimestamp"):
        return "Token has been invalidated"
    stored = (secret.get("data") or {}).get("token") or ""
    try:
        stored_bytes = base64.b64decode(stored)
    except ValueError:
        stored_bytes = b""
    if not hmac.compare_digest(stored_bytes, token.encode()):
        return "Token does not match server's copy"
    return ""


def _invalidated(secret: Obj, ns: str, sa_name: str) -> str:
    if (secret["metadata"].get("labels") or {}).get(INVALID_SINCE_LABEL):
        name = secret["metadata"]["name"]
        return (f"the token in secret {ns}/{name} for service account {ns}/{sa_name} has been marked invalid. "
                "Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the "
                f"'{INVALID_SINCE_LABEL}' label from the secret to temporarily allow use of this token")
    return ""


def _check_account(sa: Obj | None, ns: str, name: str, uid: str) -> str:
    if sa is None:
        return f'serviceaccounts "{name}" not found'
    if sa["metadata"].get("deletionTimestamp"):
        return f"ServiceAccount {ns}/{name} has been deleted"
    if sa["metadata"].get("uid") != uid:
        return f"ServiceAccount UID ({sa['metadata'].get('uid')}) does not match claim ({uid})"
    return ""
