"""LimitRanger's decisions as pure functions: a LimitRange and a pod (or claim) in, the defaults
applied or the refusal out, with Kubernetes' 1.32 wording (plugin/pkg/admission/limitranger)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kybernetes.apiserver.admission.limitranger import (
    ANNOTATION,
    aggregate,
    apply_defaults,
    pod_violations,
    pvc_violations,
)


def lr(*items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "lr", "namespace": "ns"}, "spec": {"limits": list(items)}}


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    return {"metadata": {"name": "p"}, "spec": spec}


def c(name: str = "c", requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
      **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    return {"name": name, "image": "busybox", "resources": res, **extra}


MEM_DEFAULTS = lr({"type": "Container", "default": {"memory": "512Mi"}, "defaultRequest": {"memory": "256Mi"}})


@pytest.mark.parametrize(("limit_range", "before", "resources", "annotation"), [
    # The docs' "Configure Default Memory Requests and Limits for a Namespace": both defaults.
    (MEM_DEFAULTS, pod(c()), [{"requests": {"memory": "256Mi"}, "limits": {"memory": "512Mi"}}],
     "LimitRanger plugin set: memory request for container c; memory limit for container c"),
    # What the container sets itself stays; only the rest is filled in.
    (MEM_DEFAULTS, pod(c(limits={"memory": "1Gi"}, requests={"memory": "1Gi"})),
     [{"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}], None),
    (lr({"type": "Container", "default": {"cpu": "1", "memory": "1Gi"}, "defaultRequest": {"cpu": "500m"}}),
     pod(c(requests={"cpu": "100m"}), init=(c("i"),)),
     [{"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "1Gi"}},
      {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}],
     "LimitRanger plugin set: cpu, memory limit for container c; cpu request for init container i; "
     "cpu, memory limit for init container i"),
    # Pod items carry no defaults.
    (lr({"type": "Pod", "max": {"cpu": "2"}}), pod(c()), [{}], None),
])
def test_defaults(limit_range: dict[str, Any], before: dict[str, Any], resources: list[dict[str, Any]],
                  annotation: str | None) -> None:
    after = copy.deepcopy(before)
    apply_defaults(limit_range, after)
    everyone = after["spec"]["containers"] + after["spec"].get("initContainers", [])
    assert [x["resources"] for x in everyone] == resources
    assert (after["metadata"].get("annotations") or {}).get(ANNOTATION) == annotation


CPU_MAX_1 = lr({"type": "Container", "max": {"cpu": "1"}})


@pytest.mark.parametrize(("limit_range", "subject", "violations"), [
    (CPU_MAX_1, pod(c(limits={"cpu": "2"}, requests={"cpu": "2"})),
     ["maximum cpu usage per Container is 1, but limit is 2"]),
    (CPU_MAX_1, pod(c(limits={"cpu": "1"}, requests={"cpu": "500m"})), []),
    (CPU_MAX_1, pod(c(requests={"cpu": "500m"})), ["maximum cpu usage per Container is 1.  No limit is specified"]),
    (CPU_MAX_1, pod(c(limits={"cpu": "1"}), init=(c("i", limits={"cpu": "1500m"}),)),
     ["maximum cpu usage per Container is 1, but limit is 1500m"]),
    (lr({"type": "Container", "min": {"memory": "100Mi"}}), pod(c()),
     ["minimum memory usage per Container is 100Mi.  No request is specified"]),
    (lr({"type": "Container", "min": {"memory": "100Mi"}}), pod(c(requests={"memory": "50Mi"})),
     ["minimum memory usage per Container is 100Mi, but request is 50Mi"]),
    (lr({"type": "Container", "min": {"memory": "100Mi"}}),
     pod(c(requests={"memory": "200Mi"}, limits={"memory": "50Mi"})),
     ["minimum memory usage per Container is 100Mi, but limit is 50Mi"]),
    (lr({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}),
     pod(c(requests={"cpu": "100m"}, limits={"cpu": "300m"})),
     ["cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"]),
    (lr({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}),
     pod(c(requests={"cpu": "100m"}, limits={"cpu": "200m"})), []),
    (lr({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}), pod(c(limits={"cpu": "200m"})),
     ["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]),
    (lr({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}), pod(c(requests={"cpu": "200m"})),
     ["cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"]),
    # Pod items: app containers add up; a plain init container runs alone.
    (lr({"type": "Pod", "max": {"memory": "1Gi"}}),
     pod(c("a", limits={"memory": "768Mi"}), c("b", limits={"memory": "512Mi"})),
     ["maximum memory usage per Pod is 1Gi, but limit is 1280Mi"]),
    (lr({"type": "Pod", "max": {"memory": "1Gi"}}),
     pod(c("a", limits={"memory": "512Mi"}), init=(c("i", limits={"memory": "1Gi"}),)), []),
    (lr({"type": "Pod", "min": {"cpu": "1"}}), pod(c("a", requests={"cpu": "300m"}), c("b", requests={"cpu": "300m"})),
     ["minimum cpu usage per Pod is 1, but request is 600m"]),
    # Every violation of one LimitRange is reported.
    (lr({"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}}),
     pod(c(limits={"cpu": "2", "memory": "2Gi"})),
     ["maximum cpu usage per Container is 1, but limit is 2", "maximum memory usage per Container is 1Gi, but limit is 2Gi"]),
])
def test_pod_checks(limit_range: dict[str, Any], subject: dict[str, Any], violations: list[str]) -> None:
    assert pod_violations(limit_range, subject) == violations


PVC_RANGE = lr({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}})


@pytest.mark.parametrize(("requests", "violations"), [
    ({"storage": "1Gi"}, []),
    ({"storage": "2Gi"}, []),
    ({"storage": "500Mi"}, ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]),
    ({"storage": "5Gi"}, ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]),
    ({}, ["minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
          "maximum storage usage per PersistentVolumeClaim is 2Gi.  No request is specified"]),
])
def test_pvc_checks(requests: dict[str, str], violations: list[str]) -> None:
    claim = {"metadata": {"name": "v"}, "spec": {"resources": {"requests": requests}}}
    assert pvc_violations(PVC_RANGE, claim) == violations


def test_aggregate_prints_like_go() -> None:
    assert aggregate(["a"]) == "a"
    assert aggregate(["a", "b", "a"]) == "[a, b]"
