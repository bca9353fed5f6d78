"""A kybernetes cluster for a test suite: what the pytest plugin's ``kyb_cluster`` fixture returns.

:meth:`KybCluster.start` runs ``kyb server`` (API server on a fresh SQLite data dir, the scheduler,
and the controller manager with every controller: garbage collection, namespace deletion, the
workload controllers) on a free loopback port, under a :mod:`~kybernetes.testing.guardian` so that
nothing outlives the test process, however that ends. Guarantees:

- ``start`` returns as soon as the API server answers a namespaced create (a dry-run ConfigMap in
  ``default``); the controllers may still be starting. ``started_in`` is that time in seconds,
  from the call to the answer.
- ``kubeconfig`` is the cluster's admin kubeconfig (a file), ``server`` its URL; ``kubectl(...)``
  runs the stock kubectl against it; ``api()`` returns a configured official ``kubernetes`` client
  (an ``ApiClient``: pass it to ``CoreV1Api(...)`` and friends).
- ``ensure_nodes(n)`` makes at least ``n`` hollow nodes (``kyb hollow-nodes``: Node objects, Leases
  and pods that reach Running without containers) exist and be Ready; they are never removed
  before ``stop``. With ``real_node`` the cluster runs this machine's node too (root, containerd).
- ``create_namespace`` returns a fresh namespace whose ``default`` ServiceAccount exists (so a pod
  can be created in it at once); ``delete_namespace`` deletes it and everything in it, in the
  background (the namespace controller finishes the work).
- ``stop`` ends every process and removes the data dir.
- ``in_process``: the API server runs on a thread of the calling process instead of a ``kyb
  server`` child (:mod:`kybernetes.testing.inprocess`); everything above holds the same.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes.testing import ServerProcess, stop_process

READY_POLL = 0.02
NODE_READY_TIMEOUT = 60.0
HOLLOW_PREFIX = "kyb-node-"


def guarded(directory: str) -> list[str]:
    """:mod:`kybernetes.testing.guardian`'s argv prefix for this process: what follows ends when
    this process does, and ``directory`` (``-``: none) is removed then."""
    return [sys.executable, "-m", "kybernetes.testing.guardian", str(os.getpid()), directory, "--"]


@dataclass
class KybCluster:
    process: ServerProcess
    started_in: float
    real_node: bool = False
    hollow: list[subprocess.Popen[bytes]] = field(default_factory=list)
    hollow_count: int = 0

    @property
    def server(self) -> str:
        return self.process.url

    @property
    def kubeconfig(self) -> Path:
        return self.process.kubeconfig

    @property
    def data_dir(self) -> Path:
        return self.process.data_dir

    @classmethod
    def start(cls, *, real_node: bool = False, extra: tuple[str, ...] = (), timeout: float = 60.0,
              in_process: bool = False) -> KybCluster:
        """Start a cluster (see the module docstring); with ``in_process`` the API server runs on a
        thread of this process (:mod:`kybernetes.testing.inprocess`), which has no node agent to run."""
        if in_process and real_node:
            raise ValueError("the in-process mode runs no node of this machine: use the process mode for a real node")
        t0 = time.monotonic()
        data_dir = Path(tempfile.mkdtemp(prefix="kyb-test-"))
        try:
            if in_process:
                from kybernetes.testing.inprocess import InProcessServer

                proc: ServerProcess = InProcessServer.start_in_process(data_dir, *extra, timeout=timeout)
            else:
                proc = ServerProcess.start(data_dir, *extra, control_plane=True, agent=real_node,
                                           service_accounts=False, timeout=timeout, launcher=guarded(str(data_dir)),
                                           poll_interval=READY_POLL)
        except BaseException:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
            raise
        cluster = cls(proc, 0.0, real_node)
        try:
            cluster._wait_for_a_namespaced_create(t0 + timeout)
        except BaseException:
            proc.stop(15.0)
            raise
        cluster.started_in = time.monotonic() - t0
        return cluster

    def _wait_for_a_namespaced_create(self, deadline: float) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kyb-ready"}}
        while True:
            status, answer = self.process.request("POST", "/api/v1/namespaces/default/configmaps?dryRun=All", body)
            if status == 201:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no namespaced create answered: {status} {answer}\n{self.process.log()}")
            time.sleep(READY_POLL)

    # -- clients ---------------------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """The stock kubectl against this cluster; raises AssertionError on failure when ``check``."""
        return self.process.kubectl(*args, input=input, check=check, timeout=timeout)

    def api(self) -> Any:
        """An official-client ``kubernetes.client.ApiClient`` for this cluster (as its admin)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    # -- nodes and namespaces -----------------------------------------------------------------------

    def ensure_nodes(self, count: int) -> None:
        """At least ``count`` hollow nodes, all Ready (more are started as a test asks for them)."""
        if count <= self.hollow_count:
            return
        args = [sys.executable, "-m", "kybernetes.cli", "hollow-nodes", "--kubeconfig", str(self.kubeconfig),
                "--count", str(count - self.hollow_count), "--first-index", str(self.hollow_count),
                "--name-prefix", HOLLOW_PREFIX, "--report-interval", "0"]
        log = open(self.data_dir / f"hollow-{self.hollow_count}.log", "ab")  # noqa: SIM115 (the child's)
        with log:
            self.hollow.append(subprocess.Popen([*guarded("-"), *args], stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True))
        self.hollow_count = count
        self._wait_for_ready_nodes(count)

    def _wait_for_ready_nodes(self, count: int) -> None:
        deadline = time.monotonic() + NODE_READY_TIMEOUT
        while True:
            _, nodes = self.process.request("GET", "/api/v1/nodes")
            ready = [n for n in (nodes or {}).get("items") or []
                     if n["metadata"]["name"].startswith(HOLLOW_PREFIX) and any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (n.get("status") or {}).get("conditions") or [])]
            if len(ready) >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ready)} of {count} hollow nodes Ready after {NODE_READY_TIMEOUT}s")
            time.sleep(0.05)

    def create_namespace(self, hint: str = "test") -> str:
        """A fresh namespace named after ``hint``, with its ``default`` ServiceAccount."""
        base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:50] or "test"
        name = f"{base}-{secrets.token_hex(3)}"
        status, answer = self.process.request("POST", "/api/v1/namespaces",
                                              {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if status != 201:
            raise RuntimeError(f"creating namespace {name}: {status} {answer}")
        deadline = time.monotonic() + 30
        while self.process.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"namespace {name} has no default ServiceAccount after 30s")
            time.sleep(READY_POLL)
        return name

    def delete_namespace(self, name: str) -> None:
        self.process.request("DELETE", f"/api/v1/namespaces/{name}")

    def stop(self) -> None:
        for proc in self.hollow:
            stop_process(proc, 30)
        self.process.stop(60)
