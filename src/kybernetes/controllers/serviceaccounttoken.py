"""The token controller (kube-controller-manager's ``serviceaccount-token``, ``pkg/controller/serviceaccount/tokens_controller.go``).

Legacy, long-lived service-account tokens kept in Secrets. For every Secret of type
``kubernetes.io/service-account-token``:

- whose ServiceAccount (annotation ``kubernetes.io/service-account.name``) exists, and has the uid
  of annotation ``kubernetes.io/service-account.uid`` when that is set: missing ``token``,
  ``ca.crt`` (the ``--root-ca-file``, when given) and ``namespace`` data are filled in, and the uid
  annotation is set. The token is a JWT signed with the ``--service-account-private-key-file`` key,
  issuer ``kubernetes/serviceaccount`` and Kubernetes' legacy claims (:func:`legacy_claims`: the
  subject and four ``kubernetes.io/serviceaccount/...`` claims, no expiry, no audience). Data that
  is already there is left as it is (Kubernetes only fills what is missing).
- whose ServiceAccount does not exist, or is another object (uid mismatch): the Secret is deleted
  (with a uid precondition, so a Secret re-created under the same name is not hit).

Deleting a ServiceAccount deletes its token Secrets (those naming it and its uid); deleting a
token Secret removes it from its account's ``secrets`` list. Without a key
file the controller does not run at all, as in Kubernetes (it is only started with one).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.client.informer import key_of
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.pki import sign_service_account_token

log = logging.getLogger(__name__)

TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
LEGACY_ISSUER = "kubernetes/serviceaccount"


def legacy_claims(sa: Obj, secret_name: str) -> Obj:
    """``serviceaccount.LegacyClaims`` plus the issuer the legacy token generator adds."""
    meta = sa["metadata"]
    return {
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": meta["namespace"],
        "kubernetes.io/serviceaccount/secret.name": secret_name,
        "kubernetes.io/serviceaccount/service-account.name": meta["name"],
        "kubernetes.io/serviceaccount/service-account.uid": meta["uid"],
        "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}",
    }


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


class TokensController(Controller):
    """Fills in or deletes ``kubernetes.io/service-account-token`` Secrets (keyed ``ns/name``)."""

    name = "serviceaccount-token"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        key_file = ctx.option("service-account-private-key-file", None)
        self.key_pem: bytes | None = Path(key_file).read_bytes() if key_file else None
        root_ca = ctx.option("root-ca-file", None)
        self.root_ca: bytes = Path(root_ca).read_bytes() if root_ca else b""
        self.secrets = self.informer("v1", "secrets")
        self.serviceaccounts = self.informer("v1", "serviceaccounts")
        if self.key_pem is None:
            log.warning("serviceaccount-token: no --service-account-private-key-file; not running")
            return
        self.secrets.add_handler(on_add=self._secret_changed, on_update=lambda _o, new: self._secret_changed(new),
                                 on_delete=self._secret_deleted)
        self.serviceaccounts.add_handler(on_delete=self._sa_deleted)
        self._deleted: dict[str, tuple[str, str]] = {}
        """Deleted token Secrets (key -> account name, uid) whose reference is still to remove."""

    def _secret_changed(self, secret: Obj) -> None:
        if secret.get("type") == TOKEN_TYPE:
            self.queue.add(key_of(secret))

    def _secret_deleted(self, secret: Obj) -> None:
        if secret.get("type") == TOKEN_TYPE:
            annotations = secret["metadata"].get("annotations") or {}
            self._deleted[key_of(secret)] = (annotations.get(SA_NAME_ANNOTATION, ""),
                                             annotations.get(SA_UID_ANNOTATION, ""))
            self.queue.add(key_of(secret))

    def _sa_deleted(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        for secret in self.secrets.store.list():
            smeta = secret.get("metadata") or {}
            annotations = smeta.get("annotations") or {}
            if (secret.get("type") == TOKEN_TYPE and smeta.get("namespace") == meta.get("namespace")
                    and annotations.get(SA_NAME_ANNOTATION) == meta.get("name")):
                self.queue.add(key_of(secret))

    async def run(self) -> None:
        if self.key_pem is not None:
            await super().run()

    async def sync(self, key: str) -> None:
        secret = self.secrets.store.get(key)
        namespace, name = split_key(key)
        if secret is None and key in self._deleted:
            await self._remove_reference(namespace, name, *self._deleted[key])
            self._deleted.pop(key, None)
            return
        if secret is None or secret.get("type") != TOKEN_TYPE:
            return
        annotations = secret["metadata"].get("annotations") or {}
        sa = await self._service_account(namespace, annotations.get(SA_NAME_ANNOTATION, ""),
                                         annotations.get(SA_UID_ANNOTATION, ""))
        if sa is None:
            log.info("deleting secret %s because its service account does not exist", key)
            try:
                await self.client.delete("v1", "secrets", name, namespace,
                                         preconditions={"uid": secret["metadata"]["uid"]})
            except (errors.NotFound, errors.Conflict):
                pass  # gone already, or another Secret by now (its own event brings it here)
            return
        await self._fill_in(namespace, name, secret["metadata"]["uid"], sa)

    async def _remove_reference(self, namespace: str, secret_name: str, sa_name: str, sa_uid: str) -> None:
        """``removeSecretReference``: drop the deleted Secret from its account's ``secrets``."""
        sa = self.serviceaccounts.store.get(f"{namespace}/{sa_name}")
        if sa is None or (sa_uid and sa["metadata"].get("uid") != sa_uid):
            return
        refs = sa.get("secrets") or []
        kept = [r for r in refs if not (isinstance(r, dict) and r.get("name") == secret_name)]
        if len(kept) == len(refs):
            return
        try:  # a Conflict fails the sync: the queue retries it with the account as the cache then has it
            await self.client.update("v1", "serviceaccounts", dict(sa, secrets=kept), namespace)
        except errors.NotFound:
            pass

    async def _service_account(self, namespace: str, name: str, uid: str) -> Obj | None:
        """The account from the cache, else the API (the Secret may have been seen first), if its
        uid is ``uid`` (when given) and it is not being deleted."""
        sa = self.serviceaccounts.store.get(f"{namespace}/{name}")
        if sa is None and name:
            try:
                sa = await self.client.get("v1", "serviceaccounts", name, namespace)
            except errors.NotFound:
                return None
        if sa is None or (uid and sa["metadata"].get("uid") != uid) or sa["metadata"].get("deletionTimestamp"):
            return None
        return sa

    async def _fill_in(self, namespace: str, name: str, uid: str, sa: Obj) -> None:
        """``generateTokenIfNeeded``: on the live Secret, add what is missing, in one update."""
        assert self.key_pem is not None
        try:
            live = await self.client.get("v1", "secrets", name, namespace)
        except errors.NotFound:
            return
        if live["metadata"].get("uid") != uid:
            return  # another Secret of that name: its own event brings it here
        data = dict(live.get("data") or {})
        needs_ca = not data.get("ca.crt") and bool(self.root_ca)
        needs_namespace = not data.get("namespace")
        needs_token = not data.get("token")
        if not (needs_ca or needs_namespace or needs_token):
            return
        if needs_ca:
            data["ca.crt"] = _b64(self.root_ca)
        if needs_namespace:
            data["namespace"] = _b64(namespace)
        if needs_token:
            data["token"] = _b64(sign_service_account_token(self.key_pem, legacy_claims(sa, name)))
        live["data"] = data
        annotations = live["metadata"].setdefault("annotations", {})
        annotations[SA_NAME_ANNOTATION] = sa["metadata"]["name"]
        annotations[SA_UID_ANNOTATION] = sa["metadata"]["uid"]
        try:
            await self.client.update("v1", "secrets", live, namespace)
        except errors.Conflict:
            self.queue.add_after(f"{namespace}/{name}", 0.5)  # changed under us: look again
        except errors.NotFound:
            pass


CONTROLLERS: list[type[Controller]] = [TokensController]
