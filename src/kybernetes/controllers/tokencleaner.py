"""tokencleaner (kube-controller-manager's ``pkg/controller/bootstrap/tokencleaner.go``): deletes
expired bootstrap tokens.

Watches the Secrets of type ``bootstrap.kubernetes.io/token`` in ``kube-system``. One past its
``expiration`` (or whose expiration does not parse) is deleted, with a uid precondition so a
Secret re-created under that name is not hit; one that has not expired yet is looked at again
when it will have. Off by default, as in Kubernetes: ``--controllers=*,tokencleaner`` turns it on
(``kyb server`` does, as kubeadm does).
"""

from __future__ import annotations

import logging
import time

from kybernetes import errors, join
from kybernetes.controllers.base import Controller, ControllerContext, split_key

log = logging.getLogger(__name__)


class TokenCleaner(Controller):
    name = "tokencleaner"
    queue_name = "token_cleaner"
    service_account = "token-cleaner"
    workers = 1
    disabled_by_default = True

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.secrets = self.informer("v1", "secrets", "kube-system",
                                     field_selector=f"type={join.BOOTSTRAP_SECRET_TYPE}")
        self.secrets.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new))

    async def sync(self, key: str) -> None:
        secret = self.secrets.store.get(key)
        if secret is None:
            return
        left, expired = join.bootstrap_expiration(secret.get("data") or {}, time.time())
        if expired:
            namespace, name = split_key(key)
            log.info("deleting expired bootstrap token secret %s", key)
            uid = secret["metadata"].get("uid")
            try:
                await self.client.delete("v1", "secrets", name, namespace,
                                         preconditions={"uid": uid} if uid else None)
            except (errors.NotFound, errors.Conflict):
                pass  # already gone, or another Secret by now
        elif left > 0:
            self.queue.add_after(key, left)


CONTROLLERS: list[type[Controller]] = [TokenCleaner]
