"""E2E fixtures: one ``kyb server`` (API server + scheduler + controller manager) and one
``kyb hollow-nodes`` process shared by the module, a namespace per test, and helpers to wait on
conditions and to check invariants from a live watch.

The controller manager runs with a short ``node-monitor-grace-period`` and the hollow nodes renew
their Leases every second, so that a node whose heartbeats stop is noticed in seconds rather than
the 40 s Kubernetes defaults to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.testing import KUBECTL, ServerProcess

Obj = dict[str, Any]

FLEET_PREFIX = "e2e-"
FLEET_SIZE = 4
FLEET_ZONES = ("zone-a", "zone-b", "zone-c")  # node i is in zone i % 3: e2e-0 a, e2e-1 b, e2e-2 c, e2e-3 a
NODE_MONITOR_GRACE = 6  # seconds without a lease renewal before a node is Unknown


def require_kubectl() -> None:
    if shutil.which(KUBECTL) is None and not os.path.exists(KUBECTL):
        if os.environ.get("CI"):
            pytest.fail("kubectl is required on CI")
        pytest.skip("kubectl is not installed on this machine (it is on CI)")


def wait_until(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class HollowProcess:
    """A ``kyb hollow-nodes`` child process of this test run (stopped by its own PID)."""

    def __init__(self, kubeconfig: Path, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self.args = [sys.executable, "-m", "kybernetes.cli", "hollow-nodes", "--kubeconfig", str(kubeconfig),
                     "--report-interval", "0", *args]
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class Cluster:
    """The shared server plus kubectl helpers."""

    def __init__(self, server: ServerProcess, fleet: HollowProcess) -> None:
        self.server = server
        self.fleet = fleet

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return self.server.kubectl(*args, input=input, check=check, timeout=timeout)

    def apply(self, manifest: str | Obj, namespace: str = "") -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl("apply", *(["-n", namespace] if namespace else []), "-f", "-", input=text)

    def get(self, *args: str) -> Obj:
        out: Obj = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return out

    def items(self, *args: str) -> list[Obj]:
        return list(self.get(*args).get("items") or [])

    def exists(self, *args: str) -> bool:
        res = self.kubectl("get", *args, "-o", "name", check=False)
        if res.returncode == 0:
            return True
        assert "NotFound" in res.stderr or "not found" in res.stderr, res.stderr
        return False

    def node_names(self) -> list[str]:
        return sorted(n["metadata"]["name"] for n in self.items("nodes"))

    def pods(self, namespace: str, selector: str = "") -> list[Obj]:
        return self.items("pods", "-n", namespace, *(["-l", selector] if selector else []))

    def running_pods(self, namespace: str, selector: str = "") -> list[Obj]:
        return [p for p in self.pods(namespace, selector)
                if not p["metadata"].get("deletionTimestamp") and is_ready(p)]

    def events_for(self, namespace: str, name: str) -> list[Obj]:
        return self.items("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Watcher:
    """A watch of one resource in one namespace, run on its own thread and event loop.

    Every event updates ``objects`` and then calls ``check(objects)``, which sees the set of
    objects exactly as it was after that event (one watch stream is in revision order), and may
    return a violation message; those are collected in ``violations``. ``samples`` counts events.
    Every event is also kept in ``events`` as ``(revision, type, object)`` so that several watches
    can be replayed as one history (:func:`merged_events`); what the initial list returned comes
    first, as ``LISTED`` at the list's revision.
    """

    def __init__(self, kubeconfig: Path, api_version: str, plural: str, namespace: str,
                 check: Callable[[dict[str, Obj]], str | None] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.api_version, self.plural, self.namespace = api_version, plural, namespace
        self.check = check
        self.objects: dict[str, Obj] = {}
        self.violations: list[str] = []
        self.samples = 0
        self.events: list[tuple[int, str, Obj]] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, name=f"watch-{plural}", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError(f"watch of {self.plural} did not start")
        if self.error is not None:
            raise AssertionError(f"watch of {self.plural} failed: {self.error!r}")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(10)

    def snapshot(self) -> dict[str, Obj]:
        with self._lock:
            return dict(self.objects)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._run())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the test through .error
            self.error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _run(self) -> None:
        client = Client.from_kubeconfig(self.kubeconfig, user_agent="e2e-watcher")
        try:
            listing = await client.list(self.api_version, self.plural, self.namespace)
            rv = str(listing["metadata"]["resourceVersion"])
            with self._lock:
                for item in listing.get("items") or []:
                    self.objects[item["metadata"]["name"]] = item
                    self.events.append((int(rv), "LISTED", item))
                self._evaluate()
            self._ready.set()
            while True:  # a watch may end (server timeout); go on from the last revision seen
                async for ev in client.watch(self.api_version, self.plural, self.namespace,
                                             resource_version=rv, timeout_seconds=300):
                    meta = ev.object.get("metadata") or {}
                    rv = str(meta.get("resourceVersion") or rv)
                    if ev.type == "BOOKMARK":
                        continue
                    with self._lock:
                        self.events.append((int(rv), ev.type, ev.object))
                        if ev.type == "DELETED":
                            self.objects.pop(meta["name"], None)
                        else:
                            self.objects[meta["name"]] = ev.object
                        self._evaluate()
        finally:
            await client.close()

    def _evaluate(self) -> None:
        self.samples += 1
        if self.check is not None:
            msg = self.check(self.objects)
            if msg:
                self.violations.append(msg)


def merged_events(*watchers: Watcher) -> list[tuple[int, str, str, Obj]]:
    """The events of several watches as ``(revision, plural, type, object)`` in revision order.

    kybernetes' store (like etcd) has one revision for every key, so sorting by it interleaves
    changes to different resources in the order they were committed.
    """
    out = [(rv, w.plural, typ, obj) for w in watchers for rv, typ, obj in w.events]
    out.sort(key=lambda e: e[0])
    return out


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_kubectl()
    data = tmp_path_factory.mktemp("kyb-e2e")
    srv = ServerProcess.start(
        data, "--kube-controller-manager-arg", f"node-monitor-grace-period={NODE_MONITOR_GRACE}s",
        "--kube-controller-manager-arg", "node-monitor-period=1s", control_plane=True, timeout=60)
    fleet: HollowProcess | None = None
    try:
        fleet = HollowProcess(srv.kubeconfig, data / "hollow.log", "--count", str(FLEET_SIZE),
                              "--name-prefix", FLEET_PREFIX, "--zones", ",".join(FLEET_ZONES),
                              "--lease-interval", "1", "--status-interval", "10")
        c = Cluster(srv, fleet)
        names = [f"{FLEET_PREFIX}{i}" for i in range(FLEET_SIZE)]
        wait_until(lambda: set(names) <= set(c.node_names()), 30, "the hollow nodes to register")
        c.kubectl("wait", "--for=condition=Ready", *(f"node/{n}" for n in names), "--timeout=30s")
        # Pods need the default ServiceAccount (the serviceaccount controller makes it).
        wait_until(lambda: c.exists("serviceaccount", "default", "-n", "default"), 30,
                   "the default ServiceAccount")
        yield c
    finally:
        if fleet is not None:
            fleet.stop()
        srv.stop()


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own (with its default ServiceAccount), deleted without waiting."""
    name = "e2e-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower().removeprefix("test_"))
    name = name[:60].strip("-")
    cluster.kubectl("create", "namespace", name)
    wait_until(lambda: cluster.exists("serviceaccount", "default", "-n", name), 30,
               f"the default ServiceAccount in {name}")
    yield name
    with contextlib.suppress(Exception):
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
