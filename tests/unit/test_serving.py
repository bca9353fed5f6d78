"""kybernetes.serving's parts that need no cluster: always-allowed paths and groups, the caching of
reviews, the self-signed certificate, the flags; and a ComponentServer on loopback answering health
checks to anonymous callers and 403 to them on /metrics when no API server is there to ask."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import click
from click.testing import CliRunner
from cryptography import x509

from kybernetes.client.delegatedauth import Decision, User
from kybernetes.serving import (
    ComponentServer,
    SecureServingOptions,
    secure_serving_flags,
    self_signed,
)
from kybernetes.serving.delegated import ComponentAuth
from kybernetes.testing import free_port


def test_always_allowed_paths_are_exact_or_star_prefixes() -> None:
    auth = ComponentAuth(None)
    assert auth.always_allowed("/healthz") and auth.always_allowed("/readyz") and auth.always_allowed("/livez")
    assert not auth.always_allowed("/readyz/leaderElection")  # a named check is reviewed, as in Kubernetes
    assert not auth.always_allowed("/healthzz") and not auth.always_allowed("/metrics")
    assert ComponentAuth(None, always_allow_paths=("/debug/*",)).always_allowed("/debug/pprof")


class Reviews:
    """Just enough of Client: answers reviews and counts them."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed
        self.calls: list[str] = []
        self.broken = False

    async def create(self, api_version: str, plural: str, body: dict[str, Any], namespace: str = "") -> dict[str, Any]:
        self.calls.append(plural)
        if self.broken:
            raise ConnectionError("connection refused")
        if plural == "tokenreviews":
            ok = body["spec"]["token"] == "good"
            return {"status": {"authenticated": ok, "user": {"username": "jane", "groups": ["devs"]}}}
        assert body["spec"]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
        return {"status": {"allowed": self.allowed, "reason": "" if self.allowed else "no rule"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_reviews_are_cached_and_masters_skip_them() -> None:
    client = Reviews(allowed=False)
    clock = Clock()
    auth = ComponentAuth(client, clock=clock)  # type: ignore[arg-type]
    user = await auth.authenticate_token("good")
    assert user == User("jane", ("devs", "system:authenticated"))
    assert await auth.authenticate_token("bad") is None
    assert await auth.authenticate_token("good") == user and await auth.authenticate_token("bad") is None
    assert client.calls == ["tokenreviews", "tokenreviews"]
    assert await auth.authorize_path(user, "get", "/metrics") == Decision(False, "no rule")
    assert await auth.authorize_path(user, "get", "/metrics") == Decision(False, "no rule")
    assert client.calls.count("subjectaccessreviews") == 1
    assert await auth.authorize_path(User("root", ("system:masters",)), "get", "/metrics") == Decision(True)
    assert await auth.authorize_path(user, "get", "/livez") == Decision(True)
    assert client.calls.count("subjectaccessreviews") == 1
    # k8s.io/apiserver's delegating TTL: 10 s for tokens and decisions alike; a failed review is not cached.
    clock.now += 11
    client.broken = True
    assert await auth.authenticate_token("good") is None
    assert await auth.authorize_path(user, "get", "/metrics") == Decision(False)
    client.broken = False
    assert await auth.authenticate_token("good") == user
    assert await auth.authorize_path(user, "get", "/metrics") == Decision(False, "no rule")
    assert client.calls.count("tokenreviews") == 4 and client.calls.count("subjectaccessreviews") == 3


def test_self_signed_certificate_names_localhost() -> None:
    cert_pem, key_pem = self_signed()
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.issuer != cert.subject  # signed by a CA of its own, as Kubernetes' self-signed pair
    assert b"PRIVATE KEY" in key_pem


def test_flags() -> None:
    seen: list[SecureServingOptions] = []

    @click.command()
    @secure_serving_flags(10259)
    def cmd(serving: SecureServingOptions) -> None:
        seen.append(serving)

    assert CliRunner().invoke(cmd, []).exit_code == 0
    assert seen[-1] == SecureServingOptions(10259)
    res = CliRunner().invoke(cmd, ["--secure-port", "0", "--authorization-always-allow-paths", "/a,/b"])
    assert res.exit_code == 0 and seen[-1].secure_port == 0 and seen[-1].always_allow_paths == ("/a", "/b")
    res = CliRunner().invoke(cmd, ["--tls-cert-file", "x.crt"])
    assert res.exit_code == 2 and "--tls-cert-file and --tls-private-key-file go together" in res.output


async def test_component_server_on_loopback() -> None:
    async def broken() -> None:
        raise RuntimeError("it broke")

    server = ComponentServer(SecureServingOptions(0), None)
    assert await server.start() == 0  # --secure-port 0: none
    server = ComponentServer(SecureServingOptions(free_port(), bind_address="127.0.0.1"), None,
                             readyz_checks={"broken": broken})
    port = await server.start()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        assert await asyncio.to_thread(get, "/healthz") == (200, "ok")
        status, body = await asyncio.to_thread(get, "/readyz")
        assert status == 500 and body == "[+]ping ok\n[-]broken failed: reason withheld\nreadyz check failed\n"
        status, body = await asyncio.to_thread(get, "/metrics")
        assert status == 403
        assert json.loads(body)["message"] == 'forbidden: User "system:anonymous" cannot get path "/metrics"'
        assert (await asyncio.to_thread(get, "/nope"))[0] == 403  # authorization comes first, as in Kubernetes
        assert server.slis.registry.get_sample_value("kubernetes_healthcheck", {"name": "broken", "type": "readyz"}) == 0
        assert server.slis.registry.get_sample_value("kubernetes_healthcheck", {"name": "ping", "type": "healthz"}) == 1
        assert server.slis.registry.get_sample_value("kubernetes_healthchecks_total",
                                             {"name": "broken", "type": "readyz", "status": "error"}) == 1
    finally:
        await server.stop()

