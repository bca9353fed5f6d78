"""Micro-benchmark: the cost of writing JSON as kube-apiserver does (kybernetes.api.gojson).

Run from the repository root::

    .venv/bin/python -m bench.encoding

1,000 realistic Pods (defaulted by the Pod strategy, with status, labels, annotations and a
managedFields entry) are encoded the way the API server did before (plain ``orjson.dumps``, the
stored form without ``resourceVersion``) and the way it does now (``gojson.dumps``: trailing
newline, Go's HTML escapes; the stored form after ``order_fields``). Each figure is the median
of 21 runs (before and after alternately, CPU time), in milliseconds for all 1,000 pods:

* LIST: one ``PodList`` body of all of them;
* GET: each pod as its own body;
* watch: each pod as one watch event line;
* store write, client order: ``registry.objutil.encode`` of an object whose keys come in the order a
  client sent them (kubectl: apiVersion, kind, metadata{name, namespace, labels}, ...), i.e.
  the first write, which reorders;
* store write, in order: the same for an object already in Go's order (every later write).

Reads (LIST, GET, watch) serve the stored order, so field order costs them nothing.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from kybernetes.api import gojson
from kybernetes.apiserver.registry import pods
from kybernetes.apiserver.registry.objutil import encode as encode_now

Obj = dict[str, Any]
N = 1000
RUNS = 21


def client_pod(i: int) -> Obj:
    """A Pod as kubectl sends it, then what the server adds, in the order it adds it."""
    pod: Obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"web-{i:04d}", "namespace": "default",
                     "labels": {"app": "web", "pod-template-hash": "5d4f8b7c9d"},
                     "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-07T04:00:00Z"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    }
    strategy = pods.PodStrategy()
    strategy.prepare_for_create(pod)
    strategy.default(pod)
    meta = pod["metadata"]
    meta["uid"] = f"6f1c2a9e-0000-4000-8000-{i:012d}"
    meta["creationTimestamp"] = "2026-12-07T04:00:00Z"
    meta["managedFields"] = [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                              "time": "2026-12-07T04:00:00Z", "fieldsType": "FieldsV1",
                              "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                           "f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}}}}}}]
    pod["status"] = {"phase": "Running", "podIP": f"10.42.{i // 250}.{i % 250 + 2}", "hostIP": "192.168.1.10",
                     "conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                                     "lastTransitionTime": "2026-12-07T04:00:01Z"}
                                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                     "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0, "image": "nginx:1.27",
                                            "state": {"running": {"startedAt": "2026-12-07T04:00:01Z"}}}]}
    return pod


def encode_before(obj: Obj) -> bytes:
    """registry.objutil.encode before field order: the stored form without resourceVersion."""
    meta = obj.get("metadata")
    if meta and "resourceVersion" in meta:
        meta = dict(meta)
        del meta["resourceVersion"]
        obj = {**obj, "metadata": meta}
    return orjson.dumps(obj)


def compare(before: Callable[[Any], Any], after: Callable[[Any], Any],
            setup: Callable[[], Any] = lambda: None) -> tuple[float, float]:
    """Median CPU milliseconds of ``before`` and ``after``, run alternately (the machine is shared:
    interleaving makes both see the same neighbours; CPU time ignores time spent descheduled)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(RUNS):
        for fn, out in ((before, times[0]), (after, times[1])):
            arg = setup()
            t0 = time.process_time()
            fn(arg)
            out.append((time.process_time() - t0) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    items = [client_pod(i) for i in range(N)]
    for p in items:
        p["metadata"]["resourceVersion"] = "12345"
    ordered = copy.deepcopy(items)
    for p in ordered:
        gojson.order_fields(p)
    body = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "12345"}, "items": ordered}
    rows: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any], Callable[[], Any]]] = [
        ("LIST (one PodList body)", lambda _: orjson.dumps(body), lambda _: gojson.dumps(body), lambda: None),
        ("GET (1,000 bodies)", lambda _: [orjson.dumps(p) for p in ordered],
         lambda _: [gojson.dumps(p) for p in ordered], lambda: None),
        ("watch (1,000 event lines)",
         lambda _: [orjson.dumps({"type": "MODIFIED", "object": p}) + b"\n" for p in ordered],
         lambda _: [gojson.dumps({"type": "MODIFIED", "object": p}) for p in ordered], lambda: None),
        ("store write, client order", lambda objs: [encode_before(o) for o in objs],
         lambda objs: [encode_now(o) for o in objs], lambda: copy.deepcopy(items)),
        ("store write, in order", lambda objs: [encode_before(o) for o in objs],
         lambda objs: [encode_now(o) for o in objs], lambda: copy.deepcopy(ordered)),
    ]
    print(f"{'median CPU ms for 1,000 pods':34} {'before':>8} {'after':>8} {'delta':>8}")
    for name, before, after, setup in rows:
        b, a = compare(before, after, setup)
        print(f"{name:34} {b:8.2f} {a:8.2f} {a - b:+8.2f}")
    size = len(gojson.dumps(body))
    print(f"PodList body: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
