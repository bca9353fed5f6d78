"""Service accounts in the API server: bound tokens (TokenRequest) and their authentication.

(The ``ServiceAccount`` admission plugin, which gives pods their account and token volume, is
:mod:`kybernetes.apiserver.admission.serviceaccount`.)

- **TokenRequest** (``POST serviceaccounts/NAME/token``): a JWT signed with the cluster's service
  account key (ES256), for the given audiences and lifetime, optionally bound to a pod (the token
  dies with the pod).
- **Authentication**: a bearer JWT issued here is valid while it has not expired, names an
  accepted audience, and its ServiceAccount (and bound pod) still exist with the same uid. The
  user is ``system:serviceaccount:NS:NAME`` in groups ``system:serviceaccounts`` and
  ``system:serviceaccounts:NS``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import format_rfc3339
from kybernetes.apiserver.registry.objutil import decode
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.httpserver.messages import Response
from kybernetes.pki import service_account_key_id

ISSUER = "https://kubernetes.default.svc.cluster.local"
OIDC_CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
API_AUDIENCES = (ISSUER, "https://kubernetes.default.svc", "kubernetes")
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_EXPIRATION = 3607  # what Kubernetes puts in the projected volume
MIN_EXPIRATION = 600
MAX_EXPIRATION = 48 * 3600
INVALIDATED = "service account token has been invalidated"
"""pkg/serviceaccount/claims.go's error for a token whose account or pod is gone."""


async def cached_service_account(registry: Registry, namespace: str, name: str) -> Obj | None:
    """A ServiceAccount as the watch cache has it (None if it does not exist)."""
    r = registry.catalogue.get("", "v1", "serviceaccounts")
    assert r is not None
    cache = await registry.cacher.cache_for(r.key_prefix)
    obj: Obj | None = cache.objects.get(r.key(namespace, name))
    return obj


async def live_service_account(registry: Registry, namespace: str, name: str) -> Obj | None:
    """A ServiceAccount from the watch cache, or, when the cache misses, from the store itself
    (the admission plugin's ``getServiceAccount``: the cache may not have seen an account created a
    moment ago). ``default`` is looked up 10 times, 100-200 ms apart, since the serviceaccount
    controller creates it right after its namespace; any other name once. None if it does not exist."""
    found = await cached_service_account(registry, namespace, name)
    if found is not None:
        return found
    r = registry.catalogue.get("", "v1", "serviceaccounts")
    assert r is not None
    attempts = 10 if name == "default" else 1
    interval = random.uniform(0.1, 0.2)
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(interval)
        kv = await registry.store.get(r.key(namespace, name))
        if kv is not None:
            return decode(kv.value, kv.mod_revision)
    return None


class ServiceAccounts:
    def __init__(self, registry: Registry, key_path: Path) -> None:
        self.registry = registry
        pem = key_path.read_bytes()
        self._private = serialization.load_pem_private_key(pem, password=None)
        self._public = self._private.public_key()
        self._kid = service_account_key_id(pem)

    @property
    def public_key(self) -> Any:
        """The key tokens signed with the service-account key are verified with."""
        return self._public

    async def _service_account(self, namespace: str, name: str) -> Obj | None:
        return await cached_service_account(self.registry, namespace, name)

    async def _pod(self, namespace: str, name: str) -> Obj | None:
        r = self.registry.catalogue.get("", "v1", "pods")
        assert r is not None
        cache = await self.registry.cacher.cache_for(r.key_prefix)
        obj: Obj | None = cache.objects.get(r.key(namespace, name))
        return obj

    # --- TokenRequest ----------------------------------------------------------------------

    async def token_request(self, namespace: str, name: str, body: Any, ctx: RequestContext) -> Obj:
        if not isinstance(body, dict):
            raise errors.BadRequest("body must be a TokenRequest")
        sa = await self._service_account(namespace, name)
        if sa is None:
            raise errors.NotFound.of("serviceaccounts", name)
        spec = body.get("spec") or {}
        audiences = [str(a) for a in spec.get("audiences") or []] or list(API_AUDIENCES[:1])
        expiration = spec.get("expirationSeconds", 3600)
        if not isinstance(expiration, int) or expiration < MIN_EXPIRATION:
            raise errors.Invalid("TokenRequest", name, [{
                "reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                "message": f"Invalid value: {expiration}: may not specify a duration less than 10 minutes"}],
                group="authentication.k8s.io")
        expiration = min(expiration, MAX_EXPIRATION)
        now = int(time.time())
        claims: Obj = {
            "iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{name}", "aud": audiences,
            "iat": now, "nbf": now, "exp": now + expiration, "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace,
                              "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}},
        }
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict) and ref.get("name"):
            if ref.get("kind") != "Pod":
                raise errors.BadRequest(f"cannot bind a token to a {ref.get('kind')}; only Pod is supported")
            pod = await self._pod(namespace, ref["name"])
            if pod is None or (ref.get("uid") and pod["metadata"]["uid"] != ref["uid"]):
                raise errors.NotFound.of("pods", str(ref["name"]))
            claims["kubernetes.io"]["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                claims["kubernetes.io"]["node"] = {"name": node}
        token = jwt.encode(claims, self._private, algorithm="ES256", headers={"kid": self._kid})  # type: ignore[arg-type]
        out = copy.deepcopy(body)
        out.update({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1"})
        out.setdefault("metadata", {}).update({"name": name, "namespace": namespace,
                                               "creationTimestamp": None})
        out["spec"] = dict(spec, audiences=audiences, expirationSeconds=expiration)
        exp_at = format_rfc3339(now + expiration)
        out["status"] = {"token": token, "expirationTimestamp": exp_at}
        return out

    # --- authentication --------------------------------------------------------------------

    def authenticate(self, token: str) -> User | None:
        """The user of a token issued here for one of the API's audiences, or None."""
        user, _, _ = self.review(token, API_AUDIENCES)
        return user

    def review(self, token: str, audiences: tuple[str, ...] | list[str]) -> tuple[User | None, list[str], str]:
        """``(user, audiences, error)`` for ``token``: synchronous check of signature, expiry and
        that it names one of ``audiences``; object liveness is checked from the watch cache without
        waiting (a token for an object the cache has not seen is refused). ``error`` is
        Kubernetes' text for a token of ours that is no longer valid ("" for one that is not ours)."""
        if token.count(".") != 2:
            return None, [], ""
        try:
            claims = jwt.decode(token, self._public, algorithms=["ES256"], audience=list(audiences),  # type: ignore[arg-type]
                                issuer=ISSUER, options={"require": ["exp", "iat", "sub"]}, leeway=5)
        except jwt.ExpiredSignatureError:
            return None, [], "service account token has expired"
        except jwt.PyJWTError:
            return None, [], ""
        k8s = claims.get("kubernetes.io") or {}
        ns = k8s.get("namespace", "")
        sa = k8s.get("serviceaccount") or {}
        # pkg/serviceaccount/claims.go: a deleted (or recreated) account or pod invalidates the token.
        if not self._alive("serviceaccounts", ns, sa.get("name", ""), sa.get("uid", "")):
            return None, [], INVALIDATED
        pod = k8s.get("pod")
        extra: dict[str, list[str]] = {}
        if pod:
            if not self._alive("pods", ns, pod.get("name", ""), pod.get("uid", "")):
                return None, [], INVALIDATED
            extra["authentication.kubernetes.io/pod-name"] = [pod.get("name", "")]
            extra["authentication.kubernetes.io/pod-uid"] = [pod.get("uid", "")]
        node = k8s.get("node") or {}
        if node.get("name"):
            extra["authentication.kubernetes.io/node-name"] = [node["name"]]
        if claims.get("jti"):
            # ServiceAccountTokenJTI (on by default since 1.30): the token's id, for audit.
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims['jti']}"]
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else list(aud or [])
        user = User(f"system:serviceaccount:{ns}:{sa.get('name')}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}"), sa.get("uid", ""), extra)
        return user, [a for a in audiences if a in token_auds], ""

    def jwks(self) -> Obj:
        """The JSON Web Key Set of the public key tokens are verified with (``/openid/v1/jwks``)."""
        assert isinstance(self._public, ec.EllipticCurvePublicKey)
        numbers = self._public.public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

        return {"keys": [{"use": "sig", "kty": "EC", "kid": self._kid, "crv": "P-256", "alg": "ES256",
                          "x": b64(numbers.x), "y": b64(numbers.y)}]}

    def issuer_discovery(self, path: str, server_url: str) -> Response:
        """Service-account issuer discovery, as kube-apiserver serves it: the OpenID provider
        configuration (``OIDC_CONFIGURATION_PATH``) and the key set (``JWKS_PATH``) a workload
        verifies service-account tokens with offline."""
        if path == OIDC_CONFIGURATION_PATH:
            # No --service-account-jwks-uri: the keys are where this server is (its external address).
            body: Obj = {"issuer": ISSUER, "jwks_uri": server_url + JWKS_PATH,
                         "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                         "id_token_signing_alg_values_supported": ["ES256"]}
            content_type = "application/json"
        else:
            body, content_type = self.jwks(), "application/jwk-set+json"
        return Response(body=json.dumps(body, separators=(",", ":")).encode(),
                        headers={"Content-Type": content_type, "Cache-Control": "public, max-age=3600"})

    def _alive(self, plural: str, namespace: str, name: str, uid: str) -> bool:
        r = self.registry.catalogue.get("", "v1", plural)
        assert r is not None
        cache = self.registry.cacher.caches.get(r.key_prefix)
        if cache is None:
            return False
        obj = cache.objects.get(r.key(namespace, name))
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        return bool(meta.get("uid") == uid and not meta.get("deletionTimestamp"))
