"""The REST client against a real API server: verbs, error classes, watch, kubeconfig loading."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kybernetes import errors
from kybernetes.client.kubeconfig import ConfigError, in_cluster_config, load_kubeconfig
from kybernetes.client.rest import Client, WatchEvent, error_from_status, resource_path
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def test_crud_round_trip(client: Client) -> None:
    created = await client.create("v1", "configmaps", cm("crud", a="1"), "default")
    assert created["metadata"]["uid"]
    got = await client.get("v1", "configmaps", "crud", "default")
    assert got["data"] == {"a": "1"}

    got["data"]["b"] = "2"
    updated = await client.update("v1", "configmaps", got)
    assert updated["data"] == {"a": "1", "b": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    merged = await client.patch("v1", "configmaps", "crud", {"data": {"c": "3"}}, "default")
    assert merged["data"] == {"a": "1", "b": "2", "c": "3"}
    jp = await client.patch("v1", "configmaps", "crud", [{"op": "remove", "path": "/data/a"}], "default",
                            patch_type="json")
    assert "a" not in jp["data"]
    sm = await client.patch("v1", "configmaps", "crud", {"metadata": {"labels": {"x": "y"}}}, "default",
                            patch_type="strategic")
    assert sm["metadata"]["labels"] == {"x": "y"}
    applied = await client.patch("v1", "configmaps", "crud", cm("crud", d="4"), "default", patch_type="apply",
                                 field_manager="test", force=True)
    assert applied["data"]["d"] == "4"

    listed = await client.list("v1", "configmaps", "default", label_selector="x=y")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["crud"]
    assert listed["items"][0]["kind"] == "ConfigMap"  # filled in from the list's kind
    assert listed["items"][0]["apiVersion"] == "v1"

    await client.delete("v1", "configmaps", "crud", "default")
    with pytest.raises(errors.NotFound):
        await client.get("v1", "configmaps", "crud", "default")


async def test_dry_run_writes_nothing(client: Client) -> None:
    out = await client.create("v1", "configmaps", cm("dry"), "default", dry_run=True)
    assert out["metadata"]["name"] == "dry"
    with pytest.raises(errors.NotFound):
        await client.get("v1", "configmaps", "dry", "default")


async def test_error_classes(client: Client) -> None:
    with pytest.raises(errors.NotFound) as nf:
        await client.get("v1", "configmaps", "missing", "default")
    assert nf.value.code == 404 and nf.value.details and nf.value.details["name"] == "missing"

    await client.create("v1", "configmaps", cm("dup"), "default")
    with pytest.raises(errors.AlreadyExists) as ae:
        await client.create("v1", "configmaps", cm("dup"), "default")
    assert ae.value.code == 409 and ae.value.reason == "AlreadyExists"

    stale = await client.get("v1", "configmaps", "dup", "default")
    await client.patch("v1", "configmaps", "dup", {"data": {"k": "v"}}, "default")
    with pytest.raises(errors.Conflict) as cf:
        await client.update("v1", "configmaps", stale)
    assert not isinstance(cf.value, errors.AlreadyExists) and cf.value.reason == "Conflict"

    with pytest.raises(errors.Conflict):
        await client.delete("v1", "configmaps", "dup", "default", preconditions={"uid": "not-the-uid"})

    with pytest.raises(errors.Invalid) as inv:
        await client.create("v1", "configmaps", cm("Not_Valid"), "default")
    assert inv.value.code == 422
    assert any(c.get("field") == "metadata.name" for c in inv.value.causes)

    with pytest.raises(errors.NotFound):
        await client.create("v1", "configmaps", cm("x"), "no-such-namespace")
    with pytest.raises(errors.StatusError):
        await client.patch("v1", "configmaps", "dup", "{not json", "default")


async def test_namespaced_and_cluster_scoped_paths(client: Client) -> None:
    assert resource_path("v1", "pods", "ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert resource_path("apps/v1", "deployments") == "/apis/apps/v1/deployments"
    assert resource_path("v1", "namespaces", "", "default") == "/api/v1/namespaces/default"
    ns = await client.get("v1", "namespaces", "default")
    assert ns["metadata"]["name"] == "default"
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "rest-other"}})
    await client.create("v1", "configmaps", cm("everywhere"), "rest-other")
    everything = await client.list("v1", "configmaps")
    assert ("rest-other", "everywhere") in {(i["metadata"]["namespace"], i["metadata"]["name"])
                                            for i in everything["items"]}


async def test_subresources(client: Client) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sub"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await client.create("v1", "pods", pod, "default")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "sub"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    await client.create("v1", "pods", binding, "default", subresource="binding", name="sub")
    bound = await client.get("v1", "pods", "sub", "default")
    assert bound["spec"]["nodeName"] == "node-a"

    bound["status"] = {"phase": "Running"}
    after = await client.update("v1", "pods", bound, subresource="status")
    assert after["status"]["phase"] == "Running"
    status = await client.get("v1", "pods", "sub", "default", subresource="status")
    assert status["status"]["phase"] == "Running"
    await client.delete("v1", "pods", "sub", "default", grace_period_seconds=0)


async def test_list_all_follows_continue(client: Client) -> None:
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "rest-pages"}})
    await asyncio.gather(*(client.create("v1", "configmaps", cm(f"p{i:02d}"), "rest-pages") for i in range(23)))
    page = await client.list("v1", "configmaps", "rest-pages", limit=5)
    assert len(page["items"]) == 5 and page["metadata"].get("continue")
    items, rv = await client.list_all("v1", "configmaps", "rest-pages", page_size=5)
    names = sorted(i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith("p"))
    assert names == [f"p{i:02d}" for i in range(23)]
    assert int(rv) > 0


async def test_watch_from_resource_version(client: Client) -> None:
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "rest-watch"}})
    first = await client.create("v1", "configmaps", cm("w1"), "rest-watch")
    rv = first["metadata"]["resourceVersion"]
    await client.create("v1", "configmaps", cm("w2"), "rest-watch")
    await client.patch("v1", "configmaps", "w1", {"data": {"k": "v"}}, "rest-watch")
    await client.delete("v1", "configmaps", "w2", "rest-watch")

    seen: list[tuple[str, str]] = []

    async def collect() -> None:
        async for ev in client.watch("v1", "configmaps", "rest-watch", resource_version=rv, timeout_seconds=30):
            assert isinstance(ev, WatchEvent)
            if ev.type != "BOOKMARK":
                seen.append((ev.type, ev.object["metadata"]["name"]))
            if len(seen) == 3:
                return

    await asyncio.wait_for(collect(), 20)
    # Changes after rv only, in order; the create of w1 itself is not repeated.
    assert seen == [("ADDED", "w2"), ("MODIFIED", "w1"), ("DELETED", "w2")]


async def test_watch_ends_at_timeout_seconds(client: Client) -> None:
    listed = await client.list("v1", "configmaps", "default")
    events = [ev async for ev in client.watch("v1", "configmaps", "default",
                                              resource_version=listed["metadata"]["resourceVersion"],
                                              timeout_seconds=1)]
    assert all(ev.type == "BOOKMARK" for ev in events)


def test_error_from_status_mapping() -> None:
    def status(code: int, reason: str) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                "message": "m", "details": {"name": "n"}}

    assert type(error_from_status(status(410, "Expired"))) is errors.Expired
    assert type(error_from_status(status(410, "Gone"))) is errors.Gone
    assert type(error_from_status(status(409, "AlreadyExists"))) is errors.AlreadyExists
    assert type(error_from_status(status(409, "Conflict"))) is errors.Conflict
    assert type(error_from_status(status(429, "TooManyRequests"))) is errors.TooManyRequests
    odd = error_from_status(status(500, "ServerTimeout"))
    assert isinstance(odd, errors.InternalError) and odd.reason == "ServerTimeout" and odd.code == 500
    inv = error_from_status({**status(422, "Invalid"),
                             "details": {"kind": "Pod", "name": "p", "causes": [{"field": "spec"}]}})
    assert isinstance(inv, errors.Invalid) and inv.causes == [{"field": "spec"}]
    assert inv.details and inv.details["kind"] == "Pod"
    plain = error_from_status(b"<html>bad gateway</html>", 502)
    assert isinstance(plain, errors.InternalError) and plain.code == 502
    assert type(error_from_status("nope", 404)) is errors.NotFound


async def test_retries_on_503_with_retry_after(tmp_path: Path) -> None:
    """A 503 with Retry-After is retried; a POST that got a 500 is not."""
    from aiohttp import web

    calls = {"get": 0, "post": 0}

    async def get(request: web.Request) -> web.Response:
        calls["get"] += 1
        if calls["get"] < 3:
            return web.json_response({"kind": "Status", "code": 503, "reason": "ServiceUnavailable",
                                      "message": "busy"}, status=503, headers={"Retry-After": "0"})
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": "x"}})

    async def post(request: web.Request) -> web.Response:
        calls["post"] += 1
        return web.json_response({"kind": "Status", "code": 500, "reason": "InternalError",
                                  "message": "boom"}, status=500)

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/default/configmaps/x", get)
    app.router.add_post("/api/v1/namespaces/default/configmaps", post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        kc = tmp_path / "kc"
        kc.write_text(yaml.safe_dump({
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x"}))
        async with Client.from_kubeconfig(kc) as c:
            assert (await c.get("v1", "configmaps", "x", "default"))["metadata"]["name"] == "x"
            assert calls["get"] == 3
            with pytest.raises(errors.InternalError):
                await c.create("v1", "configmaps", cm("x"), "default")
            assert calls["post"] == 1
    finally:
        await runner.cleanup()


async def test_connection_refused_is_connection_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kybernetes.client.rest as rest

    monkeypatch.setattr(rest, "MAX_RETRIES", 1)
    monkeypatch.setattr(rest, "BACKOFF_BASE", 0.01)
    from kybernetes.client.kubeconfig import ClusterConfig
    from kybernetes.testing import free_port

    async with Client(ClusterConfig(server=f"http://127.0.0.1:{free_port()}")) as c:
        with pytest.raises(ConnectionError):
            await c.get("v1", "namespaces", "default")


def test_kubeconfig_files_tokens_and_contexts(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "tok").write_text("secret-1\n")
    kc = tmp_path / "config"
    kc.write_text(yaml.safe_dump({
        "clusters": [{"name": "a", "cluster": {"server": "https://a:6443/", "certificate-authority": "ca.crt"}},
                     {"name": "b", "cluster": {"server": "https://b", "insecure-skip-tls-verify": True,
                                               "certificate-authority-data": base64.b64encode(b"pem").decode()}}],
        "users": [{"name": "ua", "user": {"tokenFile": "tok"}}, {"name": "ub", "user": {"token": "lit"}}],
        "contexts": [{"name": "ca", "context": {"cluster": "a", "user": "ua", "namespace": "team"}},
                     {"name": "cb", "context": {"cluster": "b", "user": "ub"}}],
        "current-context": "ca"}))
    a = load_kubeconfig(kc)
    assert a.server == "https://a:6443" and a.ca_file == str(tmp_path / "ca.crt")
    assert a.namespace == "team" and a.bearer_token() == "secret-1"
    b = load_kubeconfig(kc, context="cb")
    assert b.insecure and b.ca_data == b"pem" and b.bearer_token() == "lit" and b.namespace == "default"
    with pytest.raises(ConfigError):
        load_kubeconfig(kc, context="nope")
    with pytest.raises(ConfigError):
        load_kubeconfig(tmp_path / "missing")


def test_kubeconfig_env_and_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       server: ServerProcess) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{server.kubeconfig}")
    cfg = load_kubeconfig()
    assert cfg.server == server.url and cfg.cert_data and cfg.key_data
    assert cfg.ssl_context() is not None

    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("tok")
    (sa / "namespace").write_text("kube-system")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError):
        in_cluster_config(sa)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.43.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    ic = in_cluster_config(sa)
    assert ic.server == "https://10.43.0.1:443" and ic.namespace == "kube-system"
    assert ic.bearer_token() == "tok"


async def test_bearer_token_from_token_file_is_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kybernetes.client.kubeconfig as kubeconfig

    monkeypatch.setattr(kubeconfig, "TOKEN_REFRESH", 0.0)
    tok = tmp_path / "token"
    tok.write_text("one")
    cfg = kubeconfig.ClusterConfig(server="https://x", token_file=str(tok))
    assert cfg.bearer_token() == "one"
    tok.write_text("two")
    assert cfg.bearer_token() == "two"
    tok.unlink()
    assert cfg.bearer_token() == "two"  # a failed read keeps the last good token


async def test_apply_that_creates_is_one_write(client: Client) -> None:
    """A server-side apply that creates its object writes it once, Apply entry included: a second
    write (managedFields fixed up after the create) could race another writer into a 500."""
    listed = await client.list("v1", "configmaps", "default")
    applied = await client.patch("v1", "configmaps", "applied-once", cm("applied-once", d="1"), "default",
                                 patch_type="apply", field_manager="tester")
    await client.create("v1", "configmaps", cm("after-apply"), "default")
    seen: list[tuple[str, str]] = []

    async def collect() -> None:
        async for ev in client.watch("v1", "configmaps", "default",
                                     resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=30):
            if ev.type != "BOOKMARK":
                seen.append((ev.type, ev.object["metadata"]["name"]))
            if seen and seen[-1][1] == "after-apply":
                return

    await asyncio.wait_for(collect(), 20)
    assert seen == [("ADDED", "applied-once"), ("ADDED", "after-apply")]
    assert [(f["manager"], f["operation"]) for f in applied["metadata"]["managedFields"]] == [("tester", "Apply")]


class _TokenSource:
    """A token source that records its resets (the client's half of the contract, not the renewal)."""

    def __init__(self, token: str) -> None:
        self.current = token
        self.resets: list[float] = []

    async def token(self) -> str:
        return self.current

    def reset_older_than(self, start: float) -> None:
        self.resets.append(start)


async def test_a_401_resets_the_token_source(client: Client, server: ServerProcess) -> None:
    """A request, a list, a watch start or a stream answered 401 raises Unauthorized and resets the
    token source with the request's start; a request with a good token (or refused otherwise) does not."""
    source = _TokenSource("not-a-token")
    async with Client(dataclasses.replace(client.config, cert_data=None, cert_file=None, key_data=None, key_file=None),
                      token_source=source) as c:
        before = time.monotonic()
        with pytest.raises(errors.Unauthorized):
            await c.get("v1", "namespaces", "default")
        assert len(source.resets) == 1 and before <= source.resets[0] <= time.monotonic()
        with pytest.raises(errors.Unauthorized):
            await c.list("v1", "configmaps", "default")
        with pytest.raises(errors.Unauthorized):
            async for _ in c.watch("v1", "configmaps", "default"):
                pass
        with pytest.raises(errors.Unauthorized):
            async with c.stream("/api/v1/namespaces/default/configmaps"):
                pass
        assert len(source.resets) == 4

        await client.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                      "metadata": {"name": "reset"}}, "default")
        review = await client.create("v1", "serviceaccounts", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
            "default", subresource="token", name="reset")
        source.current = review["status"]["token"]
        with pytest.raises(errors.Forbidden):  # authenticated, not authorized: no reset
            await c.get("v1", "namespaces", "default")
        who = await c.create("authentication.k8s.io/v1", "selfsubjectreviews", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        assert who["status"]["userInfo"]["username"] == "system:serviceaccount:default:reset"
        assert len(source.resets) == 4
