"""Bootstrap token authentication (``plugin/pkg/auth/authenticator/token/bootstrap``).

A bearer token of the form ``<id>.<secret>`` (6 and 16 characters of ``[a-z0-9]``) authenticates
as ``system:bootstrap:<id>`` when the Secret ``kube-system/bootstrap-token-<id>``:

- is of type ``bootstrap.kubernetes.io/token`` and not being deleted;
- has ``token-id`` = id and ``token-secret`` = secret (compared in constant time);
- has not expired (``expiration``, RFC 3339; one that does not parse counts as expired);
- says ``usage-bootstrap-authentication: "true"``;
- names in ``auth-extra-groups`` (comma-separated) only groups matching
  ``system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]``.

The groups are ``system:bootstrappers`` and the extra ones, sorted and without duplicates (Kubernetes'
``sets.String.List()``), then ``system:authenticated``. Anything else is "not a bootstrap token"
(the next authenticator may try, and a request with nothing else is 401). Secrets are read from
the watch cache only: a request never reads the store. Bootstrap tokens are audience-agnostic.
"""

from __future__ import annotations

import hmac
import time

from kybernetes import join
from kybernetes.api.obj import Obj
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.registry.store import Registry


class BootstrapTokens:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        r = registry.catalogue.get("", "v1", "secrets")
        assert r is not None
        self.secrets = r

    def authenticate(self, token: str) -> User | None:
        m = join.BOOTSTRAP_TOKEN.match(token)
        if m is None:
            return None
        token_id, token_secret = m.group(1), m.group(2)
        cache = self.registry.cacher.caches.get(self.secrets.key_prefix)
        if cache is None:
            return None
        secret: Obj | None = cache.objects.get(self.secrets.key("kube-system", join.BOOTSTRAP_SECRET_PREFIX + token_id))
        if secret is None or secret["metadata"].get("deletionTimestamp"):
            return None
        if secret.get("type") != join.BOOTSTRAP_SECRET_TYPE or not secret.get("data"):
            return None
        data = secret["data"]
        value = join.bootstrap_secret_value
        if not hmac.compare_digest(value(data, "token-secret").encode(), token_secret.encode()):
            return None
        if value(data, "token-id") != token_id or join.bootstrap_expiration(data, time.time())[1]:
            return None
        if value(data, "usage-bootstrap-authentication") != "true":
            return None
        groups = join.bootstrap_groups(data)
        if groups is None:
            return None
        return User(join.BOOTSTRAP_USER_PREFIX + token_id, tuple(groups))

    def review(self, token: str, audiences: tuple[str, ...] | list[str]) -> tuple[User | None, list[str], str]:
        """For TokenReview: good for any audience (Kubernetes' audience-agnostic wrapper)."""
        user = self.authenticate(token)
        return (user, list(audiences), "") if user is not None else (None, [], "")
