"""Delegated authentication and authorization (client/delegatedauth.py) against a real API server:
what the kubelet and metrics-server ask with TokenReview and SubjectAccessReview, and how long they
trust an answer with the kubelet's TTLs (a fake clock stands in for time)."""

from __future__ import annotations

import time
import uuid

from kybernetes.client import Client
from kybernetes.client.delegatedauth import KUBELET_TTLS, DelegatedAuth, User
from kybernetes.testing import ServerProcess


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_token_review_and_subject_access_review(server: ServerProcess) -> None:
    name = f"delegated-{uuid.uuid4().hex[:6]}"
    server.kubectl("create", "serviceaccount", name)
    token = server.kubectl("create", "token", name).stdout.strip()
    clock = Clock()
    async with Client.from_kubeconfig(server.kubeconfig) as client:
        auth = DelegatedAuth(client, KUBELET_TTLS, clock=clock)
        user = await auth.authenticate_token(token)
        assert user is not None and user.name == f"system:serviceaccount:default:{name}"
        assert "system:serviceaccounts:default" in user.groups and user.uid
        assert await auth.authenticate_token("not-a-token") is None

        pods = {"verb": "list", "group": "", "version": "v1", "resource": "pods", "namespace": "default"}
        assert not (await auth.authorize(user, resource=pods)).allowed
        server.kubectl("create", "rolebinding", name, "--clusterrole=view", f"--serviceaccount=default:{name}")
        server.wait_allowed("list", "pods", user.name, namespace="default")
        # A denial is trusted for 30 s, then asked again.
        assert not (await auth.authorize(user, resource=pods)).allowed
        clock.now += 31
        assert (await auth.authorize(user, resource=pods)).allowed
        # An approval is trusted for 5 minutes, even after the grant is gone.
        server.kubectl("delete", "rolebinding", name)
        deadline = time.monotonic() + 15
        while server.kubectl("auth", "can-i", "list", "pods", f"--as={user.name}", check=False).stdout.strip() != "no":
            assert time.monotonic() < deadline, "the grant is still in force"
            time.sleep(0.1)
        clock.now += 299
        assert (await auth.authorize(user, resource=pods)).allowed
        clock.now += 2
        assert not (await auth.authorize(user, resource=pods)).allowed

        # Non-resource requests: discovery is everyone's, /metrics is not.
        assert (await auth.authorize(user, non_resource={"path": "/apis", "verb": "get"})).allowed
        assert not (await auth.authorize(user, non_resource={"path": "/metrics", "verb": "get"})).allowed
        assert (await auth.authorize(User("admin", ("system:masters",)),
                                     non_resource={"path": "/metrics", "verb": "get"})).allowed
