"""RuntimeClass (Kubernetes' ``plugin/pkg/admission/runtimeclass``, on by default; mutating, pod CREATE).

A pod naming a ``runtimeClassName`` gets, from that RuntimeClass:

* ``spec.overhead`` = the class's ``overhead.podFixed`` (a pod that already sets a different
  overhead is refused), which the scheduler and ResourceQuota then add to the pod's requests
  (ResourceQuota validates after every mutating plugin, so it sees the overhead);
* the class's ``scheduling.nodeSelector`` merged into the pod's (a conflicting value is refused)
  and its ``scheduling.tolerations`` merged into the pod's (``MergeTolerations``: a toleration
  another one covers is dropped).

A missing RuntimeClass is refused (403 ``pod rejected: RuntimeClass "x" not found``), and so is a pod
that sets an overhead without a RuntimeClass defining one.
"""

from __future__ import annotations

from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import parse_quantity
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit, forbidden
from kybernetes.apiserver.registry.node import runtime_class_overhead
from kybernetes.apiserver.registry.store import Registry

NAME = "RuntimeClass"



def _same_resources(a: Any, b: Any) -> bool:
    """``apiequality.Semantic.DeepEqual`` of two ResourceLists: the same names and equal quantities."""
    if not isinstance(a, dict) or not isinstance(b, dict) or a.keys() != b.keys():
        return a == b
    try:
        return all(parse_quantity(a[k]) == parse_quantity(b[k]) for k in a)
    except (TypeError, ValueError):
        return a == b


def _is_superset(ss: Obj, t: Obj) -> bool:
    """Whether toleration ``ss`` tolerates everything ``t`` does (``tolerations.isSuperset``)."""
    if ss == t:
        return True
    if t.get("key", "") != ss.get("key", "") and (ss.get("key", "") != "" or ss.get("operator") != "Exists"):
        return False
    if t.get("effect", "") != ss.get("effect", "") and ss.get("effect", ""):
        return False
    if ss.get("effect") == "NoExecute" and ss.get("tolerationSeconds") is not None:
        seconds = t.get("tolerationSeconds")
        if seconds is None or seconds > ss["tolerationSeconds"]:
            return False
    operator = ss.get("operator", "")
    if operator in ("Equal", ""):
        return t.get("operator") == "Equal" and t.get("value", "") == ss.get("value", "")
    return operator == "Exists"


def merge_tolerations(first: list[Obj], second: list[Obj]) -> list[Obj]:
    """``tolerations.MergeTolerations``: both lists, without those another toleration covers
    (of two equal ones, the first is kept)."""
    every = [t for t in first + second if isinstance(t, dict)]
    merged: list[Obj] = []
    for i, t in enumerate(every):
        if any(_is_superset(kept, t) for kept in merged):
            continue
        if any(later != t and _is_superset(later, t) for later in every[i + 1:]):
            continue
        merged.append(t)
    return merged


def _set_scheduling(attrs: Attributes, spec: Obj, rc: Obj) -> None:
    scheduling = rc.get("scheduling")
    if not isinstance(scheduling, dict):
        return
    wanted = scheduling.get("nodeSelector") or {}
    selector = spec.get("nodeSelector")
    if selector is None:
        selector = dict(wanted) if wanted else None
    else:
        for key, value in wanted.items():
            if key in selector and selector[key] != value:
                raise forbidden(attrs, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                                                  f"pod.spec.nodeSelector[{key}] = {selector[key]}")
            selector[key] = value
    if selector is not None:
        spec["nodeSelector"] = selector
    tolerations = merge_tolerations(list(spec.get("tolerations") or []), list(scheduling.get("tolerations") or []))
    if tolerations:
        spec["tolerations"] = tolerations


class RuntimeClassAdmission(Handler):
    operations = frozenset({CREATE})
    resources = frozenset({("", "pods")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def admit(self, attrs: Attributes) -> None:
        spec = (attrs.object or {}).get("spec")
        if attrs.subresource or not isinstance(spec, dict):
            return
        await admit_pod(self.registry, attrs, spec)


async def admit_pod(registry: Registry, attrs: Attributes, spec: Obj) -> None:
    name = spec.get("runtimeClassName")
    rc: Obj | None = None
    if name is not None:
        rcr = registry.catalogue.get("node.k8s.io", "v1", "runtimeclasses")
        assert rcr is not None
        try:
            rc = await registry.get(rcr, "", str(name))
        except errors.NotFound:
            raise forbidden(attrs, f'pod rejected: RuntimeClass "{name}" not found') from None
    overhead = runtime_class_overhead(rc) if rc is not None else None
    if overhead is not None:
        if spec.get("overhead") is not None and not _same_resources(overhead, spec["overhead"]):
            raise forbidden(attrs, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined "
                                              "Overhead")
        spec["overhead"] = overhead
    elif spec.get("overhead") is not None:
        raise forbidden(attrs, "pod rejected: Pod Overhead set without corresponding RuntimeClass "
                                          "defined Overhead")
    if rc is not None:
        _set_scheduling(attrs, spec, rc)


def new(init: PluginInit) -> RuntimeClassAdmission:
    return RuntimeClassAdmission(init.registry)
