"""The calibration figure every benchmark prints: how fast this machine runs API-server-like work.

Absolute figures differ about 3x between machines of the same kind (and a shared machine from one
minute to the next), so each benchmark also prints :func:`calibrate`: the CPU milliseconds one core
takes for a fixed workload shaped like the API server's per-object work, on a typical Pod of about
3 KB: decode its JSON, walk it as validation does (every key and value visited, names checked
against a DNS-label pattern, quantities parsed), deep-copy it as a write does, and encode it again,
:data:`REPEAT` times. CPU time of this thread only (``time.thread_time``), the best of
:data:`TRIES` runs (the least disturbed by other load), so it measures the core, not the queue.

A CPU-per-unit figure divided by the calibration gives *calibration units* (``cu``): the same code
on a faster or quieter machine gives about the same number of units, which makes runs on different
machines comparable. ``python -m bench.calibration`` prints the figure alone.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import orjson

REPEAT = 2_000
TRIES = 5
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")


def typical_pod(i: int = 0) -> dict[str, Any]:
    """A Pod as a Deployment's ReplicaSet writes it: labels, owner, one container with resources,
    env, ports, probes, mounts, and a scheduled, running status."""
    name = f"web-7d4b9c8f5-{i:05d}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"5b1c2d3e-0000-4000-8000-{i:012d}",
                     "resourceVersion": str(1000 + i), "creationTimestamp": "2026-12-07T10:00:00Z",
                     "labels": {"app": "web", "pod-template-hash": "7d4b9c8f5", "tier": "frontend"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f5",
                                          "uid": "9a8b7c6d-0000-4000-8000-000000000001", "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"containers": [{
            "name": "web", "image": "registry.example/web:1.2.3", "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": f"VAR_{k}", "value": f"value-{k}"} for k in range(8)],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "500m", "memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                               "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                              "readOnly": True}],
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "nodeName": f"node-{i % 100}", "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]},
        "status": {"phase": "Running", "podIP": f"10.42.0.{i % 250}", "hostIP": "192.168.1.10", "qosClass": "Burstable",
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": "2026-12-07T10:00:01Z"}
                                  for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                   "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0, "started": True,
                                          "image": "registry.example/web:1.2.3", "imageID": "sha256:" + "ab" * 32,
                                          "containerID": "containerd://" + "cd" * 32,
                                          "state": {"running": {"startedAt": "2026-12-07T10:00:01Z"}}}]},
    }


def _walk(value: Any) -> int:
    """Visit every key and value as a validator does; returns how many checks passed."""
    ok = 0
    if isinstance(value, dict):
        for key, item in value.items():
            ok += bool(_LABEL.match(key.lower().replace("_", "-")))
            ok += _walk(item)
    elif isinstance(value, list):
        for item in value:
            ok += _walk(item)
    elif isinstance(value, str):
        ok += bool(_QUANTITY.match(value)) + bool(_LABEL.match(value))
    return ok


def workload(repeat: int = REPEAT) -> int:
    raw = orjson.dumps(typical_pod())
    checks = 0
    for _ in range(repeat):
        pod = orjson.loads(raw)
        checks += _walk(pod)
        written = copy.deepcopy(pod)
        written["metadata"]["resourceVersion"] = "2"
        raw = orjson.dumps(written)
    return checks


def calibrate() -> float:
    """CPU milliseconds for :data:`REPEAT` rounds of :func:`workload` on one core (best of :data:`TRIES`)."""
    best = float("inf")
    for _ in range(TRIES):
        t0 = time.thread_time()
        workload()
        best = min(best, time.thread_time() - t0)
    return best * 1000


def units(cpu_ms: float, calibration_ms: float) -> float:
    """A CPU figure in calibration units (cpu_ms / calibration_ms)."""
    return cpu_ms / calibration_ms


if __name__ == "__main__":
    print(f"calibration: {calibrate():.1f} ms ({REPEAT} rounds of decode, validate-like walk, copy and encode "
          f"of a typical Pod on one core; best of {TRIES})")
