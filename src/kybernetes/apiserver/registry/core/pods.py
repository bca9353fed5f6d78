"""Pods and pod templates: the strategies of the Pod and PodTemplate objects.

A PodSpec's defaults are :func:`~kybernetes.api.defaults.default_pod_spec` (in
``api/defaults.py``, below the API server and the kubelet, which defaults static pods with it, as
``k8s.io/kubernetes/pkg/apis/core/v1/defaults.go`` does); its validation, shared by every kind
that holds one, is :mod:`.podvalidation`.

:class:`PodStrategy` adds what is special about the Pod object itself: the initial status with
its QoS class, the tolerations the ``DefaultTolerationSeconds`` admission plugin adds, and the
narrow set of spec changes an update may make.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.defaults import (
    default_pod_spec,
    default_pod_template,
)
from kybernetes.api.podutil import pod_qos_class
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
    is_ip,
    validate_enum,
)
from kybernetes.apiserver.registry.core import ephemeral
from kybernetes.apiserver.registry.core.podvalidation import (
    RESTART_POLICIES,
    validate_pod_spec,
    validate_pod_template,
)
from kybernetes.apiserver.registry.strategy import Obj, Strategy

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")

_UPDATABLE_FIELDS_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _bool_str(value: Any) -> str:
    return "true" if value else "false"


POD_FIELD_SELECTORS: dict[str, Callable[[Obj], str]] = {
    "spec.nodeName": lambda o: str(as_dict(o.get("spec")).get("nodeName") or ""),
    "spec.restartPolicy": lambda o: str(as_dict(o.get("spec")).get("restartPolicy") or ""),
    "spec.schedulerName": lambda o: str(as_dict(o.get("spec")).get("schedulerName") or ""),
    "spec.serviceAccountName": lambda o: str(as_dict(o.get("spec")).get("serviceAccountName") or ""),
    "spec.hostNetwork": lambda o: _bool_str(as_dict(o.get("spec")).get("hostNetwork")),
    "status.phase": lambda o: str(as_dict(o.get("status")).get("phase") or ""),
    "status.podIP": lambda o: str(as_dict(o.get("status")).get("podIP") or ""),
    "status.nominatedNodeName": lambda o: str(as_dict(o.get("status")).get("nominatedNodeName") or ""),
}


def validate_pod_spec_update(new: dict[str, Any], old: dict[str, Any], path: Path) -> list[FieldError]:
    """Only images, activeDeadlineSeconds, added tolerations and a few more may change (``ValidatePodUpdate``)."""
    errs: list[FieldError] = []
    munged = copy.deepcopy(new)
    for field in ("containers", "initContainers"):
        new_ctrs, old_ctrs = as_list(munged.get(field)), as_list(old.get(field))
        if len(new_ctrs) == len(old_ctrs):
            for n, o in zip(new_ctrs, old_ctrs, strict=True):
                if isinstance(n, dict) and isinstance(o, dict) and n.get("image") and "image" in o:
                    n["image"] = o["image"]
    errs.extend(_validate_active_deadline_update(new, old, path))
    _set_or_drop(munged, "activeDeadlineSeconds", old.get("activeDeadlineSeconds"))
    errs.extend(_validate_tolerations_update(new, old, path))
    _set_or_drop(munged, "tolerations", old.get("tolerations"))
    old_grace = old.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and new.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    new_gates, old_gates = as_list(new.get("schedulingGates")), as_list(old.get("schedulingGates"))
    if all(g in old_gates for g in new_gates):
        # Removing scheduling gates is how a gated pod is released to the scheduler.
        _set_or_drop(munged, "schedulingGates", old.get("schedulingGates"))
    if munged != old:
        changed = sorted(k for k in set(munged) | set(old) if munged.get(k) != old.get(k))
        errs.append(v.forbidden(path, _UPDATABLE_FIELDS_MESSAGE + "\n  changed: " + ", ".join(changed)))
    return errs


def _set_or_drop(obj: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        obj.pop(key, None)
    else:
        obj[key] = copy.deepcopy(value)


def _validate_active_deadline_update(new: dict[str, Any], old: dict[str, Any], path: Path) -> list[FieldError]:
    new_ads, old_ads = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if old_ads is None:
        return []
    p = path.child("activeDeadlineSeconds")
    if new_ads is None:
        return [v.invalid(p, None, "must not update from a positive integer to nil value")]
    if isinstance(new_ads, int) and isinstance(old_ads, int) and new_ads > old_ads:
        return [v.invalid(p, new_ads, "must be less than or equal to previous value")]
    return []


def _validate_tolerations_update(new: dict[str, Any], old: dict[str, Any], path: Path) -> list[FieldError]:
    """Existing tolerations stay; NoExecute ones may only shorten their tolerationSeconds."""
    new_tols = [t for t in as_list(new.get("tolerations")) if isinstance(t, dict)]
    errs: list[FieldError] = []
    for old_tol in as_list(old.get("tolerations")):
        if not isinstance(old_tol, dict):
            continue
        same = [t for t in new_tols if _toleration_identity(t) == _toleration_identity(old_tol)]
        if not same:
            errs.append(v.forbidden(path.child("tolerations"), "existing toleration can not be modified except "
                                                               "its tolerationSeconds"))
            continue
        old_secs = old_tol.get("tolerationSeconds")
        if old_secs is not None and not any(
            t.get("tolerationSeconds") is not None and t["tolerationSeconds"] <= old_secs for t in same
        ):
            errs.append(v.forbidden(path.child("tolerations"), "existing toleration can not be modified except "
                                                               "its tolerationSeconds"))
    return errs


def _toleration_identity(tol: dict[str, Any]) -> tuple[str, str, str, str]:
    return (tol.get("key", ""), tol.get("operator") or "Equal", tol.get("value", ""), tol.get("effect", ""))


def _validate_pod(spec: dict[str, Any]) -> list[FieldError]:
    """A Pod's spec (``validatePodMetadataAndSpec``'s spec part): the PodSpec rules every kind
    shares, and its ephemeral containers, which only a Pod has."""
    return [*validate_pod_spec(spec, Path("spec")), *ephemeral.validate_ephemeral_containers(spec, Path("spec"))]


class PodStrategy(Strategy):
    kind = "Pod"
    has_status = True
    tracks_generation = False  # Kubernetes 1.32 sets no metadata.generation on Pods
    field_selectors = POD_FIELD_SELECTORS

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        # Defaults first, so the QoS class sees the requests copied from limits.
        default_pod_spec(spec, pod=True)
        if "priorityClassName" not in spec and "priority" not in spec:
            # The Priority admission plugin's answer when no class (and no global default) applies.
            spec["priority"] = 0
        if "priority" in spec:
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(spec)}

    def prepare_and_default_for_create(self, obj: Obj) -> None:
        # prepare_for_create has applied the defaults (default() would find nothing to do).
        self.prepare_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        spec, old_spec = new.get("spec"), as_dict(old.get("spec"))
        if not isinstance(spec, dict):
            return
        # A PUT of the pod as the client first wrote it must not look like it removes what the
        # Priority admission plugin added on create. (DefaultTolerationSeconds runs on updates.)
        for field in ("priority", "preemptionPolicy"):
            if field not in spec and field in old_spec:
                spec[field] = old_spec[field]

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_pod_spec(spec, pod=True)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = as_dict(obj.get("spec"))
        return [*_validate_pod(spec), *ephemeral.validate_none_on_create(spec, Path("spec"))]

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = _validate_pod(as_dict(new.get("spec")))
        errs.extend(validate_pod_spec_update(as_dict(new.get("spec")), as_dict(old.get("spec")), Path("spec")))
        return errs

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        if subresource == "ephemeralcontainers":
            ephemeral.take_ephemeral_containers(new, old)
        else:
            super().prepare_for_subresource_update(subresource, new, old)

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        """``pods/ephemeralcontainers``: the pod as a whole is valid and ephemeral containers were
        only added (``ValidatePodEphemeralContainersUpdate``)."""
        refusal = ephemeral.mirror_pod_refusal(old)
        if refusal:
            return refusal  # Kubernetes answers a mirror pod with that alone
        return [*_validate_pod(as_dict(new.get("spec"))), *ephemeral.validate_ephemeral_containers_update(new, old)]

    def graceful_delete_seconds(self, obj: Obj, requested: int | None) -> int:
        """Pods bound to a node and not finished are deleted gracefully: the kubelet confirms
        with grace 0. The client's gracePeriodSeconds, else the pod's
        terminationGracePeriodSeconds, else 30."""
        spec = as_dict(obj.get("spec"))
        if not spec.get("nodeName"):
            return 0
        if as_dict(obj.get("status")).get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, int(requested))
        g = spec.get("terminationGracePeriodSeconds")
        return int(g) if isinstance(g, int) and g >= 0 else 30

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        p = Path("status")
        errs = validate_enum(status.get("phase"), p.child("phase"), POD_PHASES, required=False)
        if status.get("podIP") and not is_ip(status["podIP"]):
            errs.append(v.invalid(p.child("podIP"), status["podIP"], "must be a valid IP address"))
        for i, ip in enumerate(as_list(status.get("podIPs"))):
            if not is_ip(as_dict(ip).get("ip")):
                errs.append(v.invalid(p.child("podIPs").index(i), as_dict(ip).get("ip"), "must be a valid IP address"))
        for i, cond in enumerate(as_list(status.get("conditions"))):
            cond = as_dict(cond)
            if not cond.get("type"):
                errs.append(v.required(p.child("conditions").index(i).child("type")))
            errs.extend(validate_enum(cond.get("status"), p.child("conditions").index(i).child("status"),
                                      ("True", "False", "Unknown")))
        return errs


class PodTemplateStrategy(Strategy):
    """The PodTemplate kind: a named template; any restart policy is allowed."""

    kind = "PodTemplate"

    def default(self, obj: Obj) -> None:
        template = obj.get("template")
        if isinstance(template, dict):
            default_pod_template(template)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_pod_template(as_dict(obj.get("template")), Path("template"),
                                     restart_policies=RESTART_POLICIES)
