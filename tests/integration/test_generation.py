"""A Deployment's generation with the real controller manager, across a server restart.

kube-apiserver 1.32 with kube-controller-manager: after ``kubectl apply`` the Deployment carries
``deployment.kubernetes.io/revision: "1"``, ``observedGeneration: 1`` and ``generation: 1`` (the
controller writes the revision through ``/status``, which never moves the generation), and a
restart changes none of that.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kybernetes.testing import ServerProcess

MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: c, image: "busybox:1.36", args: [sleep, "3600"]}}]
"""


def get(srv: ServerProcess, name: str) -> dict[str, Any]:
    return json.loads(srv.kubectl("get", "deployment", name, "-o", "json").stdout)  # type: ignore[no-any-return]


def wait_synced(srv: ServerProcess, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """The Deployment once the controller has given it a revision and observed its generation."""
    deadline = time.monotonic() + timeout
    while True:
        d = get(srv, name)
        revision = (d["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        observed = (d.get("status") or {}).get("observedGeneration")
        if revision and observed == d["metadata"].get("generation"):
            return d
        assert time.monotonic() < deadline, f"deployment {name} not synced: {json.dumps(d)}\n{srv.log()}"
        time.sleep(0.2)


def test_applied_deployment_stays_at_generation_1_across_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProcess.start(data, control_plane=True)
    try:
        srv.kubectl("apply", "-f", "-", input=MANIFEST.format(name="web"))
        d = wait_synced(srv, "web")
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        assert d["metadata"]["generation"] == 1
        assert d["status"]["observedGeneration"] == 1
        # Applying the same manifest again changes nothing.
        srv.kubectl("apply", "-f", "-", input=MANIFEST.format(name="web"))
        assert get(srv, "web")["metadata"]["generation"] == 1
    finally:
        srv.stop()

    srv = ServerProcess.start(data, control_plane=True)
    try:
        srv.kubectl("apply", "-f", "-", input=MANIFEST.format(name="after-restart"))
        assert wait_synced(srv, "after-restart")["metadata"]["generation"] == 1
        assert get(srv, "web")["metadata"]["generation"] == 1
        # A scale is a new spec: exactly one more. The controller syncs one key at a time, so its
        # sync of the scaled object comes after whatever it did with it on start-up.
        srv.kubectl("scale", "deployment", "web", "--replicas=3")
        d = wait_synced(srv, "web")
        assert d["metadata"]["generation"] == 2
        assert d["status"]["observedGeneration"] == 2
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    finally:
        srv.stop()
