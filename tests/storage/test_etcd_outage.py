"""An etcd outage while ``kyb server`` runs: 503s with Retry-After, readiness false, and recovery
without a restart (the same server process serves again; a watch opened before sees later writes)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import EtcdCluster, ServerProcess

from .test_etcd_server import _require_tools

pytest.importorskip("kubernetes")
from kubernetes import client, config
from kubernetes.client.rest import ApiException

UNAVAILABLE = "The {op} operation against configmaps could not be completed at this time, please try again."


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A private etcd (this test kills it, so not the session's)."""
    c = EtcdCluster(tmp_path / "etcd")
    c.start()
    try:
        asyncio.run(c.wait_healthy())
        yield c
    finally:
        c.stop()


@pytest.fixture
def server(cluster: EtcdCluster, tmp_path: Path) -> Iterator[ServerProcess]:
    _require_tools()
    srv = ServerProcess.start(
        tmp_path / "data", "--datastore-endpoint", cluster.endpoints, "--datastore-cafile", cluster.tls.cafile,
        "--datastore-certfile", cluster.tls.certfile, "--datastore-keyfile", cluster.tls.keyfile, timeout=60.0,
    )
    try:
        yield srv
    finally:
        srv.stop()


def _client(server: ServerProcess, **settings: Any) -> Any:
    """An official client of the admin's kubeconfig, with ``settings`` on its Configuration."""
    conf = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig), client_configuration=conf)
    for k, val in settings.items():
        setattr(conf, k, val)
    return client.ApiClient(conf)


def _readyz(api: Any, path: str = "/readyz", query: str = "") -> tuple[int, str]:
    """GET a health endpoint as the admin (the official client's own transport): status and body."""
    resp = api.call_api("GET", api.configuration.host + path + query, _request_timeout=10)
    resp.read()
    return resp.status, bytes(resp.data).decode()


class Watch:
    """A configmap watch by the official client, read on a thread; resumes by resourceVersion if
    the stream ends (as client-go's reflector does), counting the resumptions."""

    def __init__(self, api: Any, rv: str) -> None:
        self.core = client.CoreV1Api(api)
        self.rv = rv
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.resumed = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                resp = self.core.list_namespaced_config_map(
                    "default", watch=True, resource_version=self.rv, allow_watch_bookmarks=False,
                    timeout_seconds=120, _preload_content=False, _request_timeout=(5, 130))
                for line in resp:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    self.events.put(ev)
                    if ev["type"] == "ERROR":
                        return
                    self.rv = ev["object"]["metadata"]["resourceVersion"]
            except Exception as e:  # the stream broke: resume from the last resourceVersion seen
                if self.stopped.is_set():
                    return
                self.events.put({"type": "BROKEN", "object": {"message": str(e)}})
                time.sleep(0.5)
            self.resumed += 1

    def wait_for(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(ev["type"])
            assert ev["type"] != "ERROR", f"the watch ended with {ev}"
            if ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == name:
                return ev
        raise AssertionError(f"no ADDED {name} within {timeout}s; saw {seen}")


def _until(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_etcd_outage_and_recovery(server: ServerProcess, cluster: EtcdCluster) -> None:
    api = config.new_client_from_config(config_file=str(server.kubeconfig))
    core = client.CoreV1Api(api)
    try:
        before = core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
        status, text = _readyz(api, query="?verbose")
        assert status == 200 and "[+]etcd ok\n" in text and text.endswith("readyz check passed\n"), text
        watch = Watch(api, before.metadata.resource_version)

        member = cluster.members[0]
        cluster.kill(member)

        # readiness false while the store is away, in kube-apiserver's words
        status, text = _until(lambda: (r := _readyz(api, query="?verbose"))[0] == 500 and r, 30, "/readyz to fail")
        assert "[-]etcd failed: reason withheld\n" in text and text.endswith("readyz check failed\n"), text
        assert _readyz(api, "/readyz/etcd")[0] == 500
        assert _readyz(api, "/livez", "?verbose")[0] == 500

        # requests: 503 + Retry-After, a Status naming the operation, never a 500 nor a hang. One
        # request each: the official client's urllib3 retries a 503 with Retry-After three times.
        once = _client(server, retries=False)
        plain = client.CoreV1Api(once)
        for op, call in (
            ("list", lambda: plain.list_namespaced_config_map("default", _request_timeout=30)),
            ("get", lambda: plain.read_namespaced_config_map("before", "default", _request_timeout=30)),
            ("create", lambda: plain.create_namespaced_config_map(
                "default", {"metadata": {"name": "during"}}, _request_timeout=30)),
        ):
            try:
                call()
            except ApiException as exc:
                e = exc
            except Exception as exc:  # no answer: what the server was doing is in its log
                raise AssertionError(f"{op}: {exc!r}; the server's log ends:\n{server.log()}") from None
            else:
                raise AssertionError(f"{op} succeeded while etcd was down")
            assert e.status == 503, (op, e.status, e.body)
            assert e.headers["Retry-After"] == "2"
            body = json.loads(e.body)
            assert (body["reason"], body["code"], body["message"]) == ("ServiceUnavailable", 503, UNAVAILABLE.format(op=op))
            assert body["details"] == {"name": op, "kind": "configmaps", "retryAfterSeconds": 2}
        once.close()
        res = server.kubectl("get", "configmap", "before", check=False, timeout=120)
        assert res.returncode != 0
        assert res.stderr.strip().endswith(UNAVAILABLE.format(op="get")), res.stderr

        # etcd back on the same ports and data dir: the same server recovers
        cluster.start_member(member)
        asyncio.run(cluster.wait_healthy())
        _until(lambda: _readyz(api)[0] == 200, 30, "/readyz to pass again")
        status, text = _readyz(api, query="?verbose")
        assert status == 200 and "[+]etcd ok\n" in text, text
        assert core.read_namespaced_config_map("before", "default").metadata.name == "before"
        core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
        assert server.kubectl("get", "configmap", "after", "-o", "name").stdout.strip() == "configmap/after"
        with pytest.raises(ApiException) as exc:
            core.read_namespaced_config_map("during", "default")
        assert exc.value.status == 404  # the create refused during the outage wrote nothing

        # the watch opened before the outage sees the write made after it
        ev = watch.wait_for("after", 30)
        assert int(ev["object"]["metadata"]["resourceVersion"]) > int(before.metadata.resource_version)
        watch.stopped.set()
        assert server.proc.poll() is None  # recovered without a restart
    finally:
        api.close()


def test_a_frozen_etcd_is_a_503_within_the_deadline(server: ServerProcess, cluster: EtcdCluster) -> None:
    """etcd stopped (SIGSTOP: connections open, no answers): no request hangs; each ends as a 503
    once the store's deadline passes, the probe fails within its own, and all recovers on SIGCONT."""
    api = config.new_client_from_config(config_file=str(server.kubeconfig))
    core = client.CoreV1Api(api)
    proc = cluster.members[0].proc
    assert proc is not None
    try:
        core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            # A Range answered just as etcd stopped may still pass one probe; the next must fail.
            started = time.monotonic()
            status, text = _until(lambda: (r := _readyz(api, query="?verbose"))[0] != 200 and r, 8,
                                  "/readyz to fail")
            assert status == 500 and "[-]etcd failed: reason withheld\n" in text, text
            assert time.monotonic() - started < 8
            started = time.monotonic()
            with pytest.raises(ApiException) as exc:
                core.create_namespaced_config_map("default", {"metadata": {"name": "frozen"}}, _request_timeout=60)
            assert exc.value.status == 503, exc.value.body
            assert exc.value.headers["Retry-After"] == "2"
            assert time.monotonic() - started < 40
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        _until(lambda: _readyz(api)[0] == 200, 30, "/readyz to pass again")
        core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
        assert core.read_namespaced_config_map("after", "default").metadata.name == "after"
    finally:
        api.close()


def test_lost_quorum_is_a_503_and_heals_without_a_restart(tmp_path: Path) -> None:
    """Three etcd members, two of them killed: the one left has no quorum, so etcd answers writes
    only when its deadline passed ("context deadline exceeded", UNKNOWN on etcd 3.4). That is an
    outage like an unreachable store: a 503 with Retry-After, readiness false, a warning (not a
    traceback) from the watch cache; once the members are back, writes succeed in the same process."""
    _require_tools()
    cluster = EtcdCluster(tmp_path / "etcd", size=3)
    cluster.start()
    srv: ServerProcess | None = None
    try:
        asyncio.run(cluster.wait_healthy())
        srv = ServerProcess.start(
            tmp_path / "data", "--datastore-endpoint", cluster.endpoints, "--datastore-cafile",
            cluster.tls.cafile, "--datastore-certfile", cluster.tls.certfile, "--datastore-keyfile",
            cluster.tls.keyfile, timeout=60.0,
        )
        api = config.new_client_from_config(config_file=str(srv.kubeconfig))
        core = client.CoreV1Api(api)
        try:
            core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
            stopped = cluster.members[1:]
            for m in stopped:
                cluster.kill(m)
            with pytest.raises(ApiException) as exc:
                core.create_namespaced_config_map("default", {"metadata": {"name": "during"}}, _request_timeout=90)
            e = exc.value
            assert e.status == 503, (e.status, e.body)
            assert e.headers["Retry-After"] == "2"
            assert json.loads(e.body)["message"] == UNAVAILABLE.format(op="create")
            _status, text = _until(lambda: (r := _readyz(api, query="?verbose"))[0] == 500 and r, 30, "/readyz to fail")
            assert "[-]etcd failed: reason withheld\n" in text, text

            for m in stopped:
                cluster.start_member(m)
            asyncio.run(cluster.wait_healthy())
            _until(lambda: _readyz(api)[0] == 200, 60, "/readyz to pass again")
            _until(lambda: _create_ok(core, "after"), 60, "a write to succeed again")
            assert core.read_namespaced_config_map("after", "default").metadata.name == "after"
            assert srv.proc.poll() is None  # recovered without a restart
            log = srv.log()
            assert "Traceback" not in log and "store watch failed" not in log, log[-5000:]
            assert "StoreError" not in log, log[-5000:]
        finally:
            api.close()
    finally:
        if srv is not None:
            srv.stop()
        cluster.stop()


def _create_ok(core: Any, name: str) -> bool:
    try:
        core.create_namespaced_config_map("default", {"metadata": {"name": name}}, _request_timeout=30)
    except ApiException as e:
        if e.status == 503:
            return False
        raise
    return True
