"""The strategies of the ``apps/v1`` kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

Every workload here wraps a pod template and a selector that must pick that template's pods, so
the shared pieces are plain functions at the top of the module:

* :func:`validate_selector_and_template` is ``ValidatePodTemplateSpecForReplicaSet`` and its
  siblings: selector required and not empty, template labels matched by it, the template a valid
  PodTemplateSpec whose pods restart ``Always`` and carry no ``activeDeadlineSeconds``.
* :func:`validate_int_or_percent` / :func:`int_or_percent_value` are ``ValidatePositiveIntOrPercent``
  and ``getIntOrPercentValue``; the policy group's PodDisruptionBudget reuses them.
* :func:`validate_nonneg` is ``ValidateNonnegativeField`` (and tolerates a missing field).

Defaults follow ``pkg/apis/apps/v1/defaults.go`` exactly, so a ``kubectl create deployment``
against kybernetes returns the same object a real cluster returns. A few things a real cluster
does outside defaulting are done here too, because clients see them:

* A new object's ``status`` is the zero value its Go type serialises to (``{"replicas": 0}`` for
  a ReplicaSet, ``{}`` for a Deployment), since that is what the create response contains.
* A Deployment's generation also moves when only its annotations change through the main resource
  (they are copied to its ReplicaSets; the controller writes its revision annotation through
  ``/status``, which never moves it); a DaemonSet keeps the ``deprecated.daemonset.template.generation`` annotation that
  the v1 API uses to carry the internal ``templateGeneration``.
* A StatefulSet's volume claim templates get ``apiVersion``/``kind`` (the v1 conversion sets them),
  ``volumeMode: Filesystem`` and ``status.phase: Pending`` (PVC defaults).

Selector immutability is checked in ``validate_update`` for every kind that has one, as Kubernetes
does for requests to ``apps/v1`` (the only version served here).
"""

from __future__ import annotations

import copy
import re
from typing import Any, TypeGuard

from kybernetes import errors
from kybernetes.api import validation as v
from kybernetes.api.label_selectors import from_label_selector_object, validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.registry.core import default_pod_template, validate_pod_template
from kybernetes.apiserver.registry.pods import as_dict, as_list, quantity_or_none
from kybernetes.apiserver.registry.strategy import Obj, Strategy, semantic_equal

# --- shared helpers (batch.py and groups.py use them too) --------------------------------------

IS_NEGATIVE_MSG = "must be greater than or equal to 0"
_PERCENT = re.compile(r"^[0-9]+%$")
PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
    "regex used for validation is '[0-9]+%')"
)


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer (``True`` is not one, though Python says it is)."""
    return isinstance(value, int) and not isinstance(value, bool)


def validate_nonneg(value: Any, path: Path) -> list[FieldError]:
    """``ValidateNonnegativeField`` for an optional integer field."""
    if value is None:
        return []
    if not is_int(value):
        return [v.type_invalid(path, value, "must be an integer")]
    if value < 0:
        return [v.invalid(path, value, IS_NEGATIVE_MSG)]
    return []


def int_or_percent_value(value: Any) -> int | None:
    """The number in an int-or-percent (``"25%"`` -> 25, ``3`` -> 3); ``None`` if it is neither."""
    if is_int(value):
        return int(value)
    if isinstance(value, str):
        if _PERCENT.match(value):
            return int(value[:-1])
        if value.isdigit():
            return int(value)  # intstr.IntValue() parses a bare numeric string
    return None


def validate_int_or_percent(value: Any, path: Path) -> list[FieldError]:
    """``ValidatePositiveIntOrPercent`` plus ``IsNotMoreThan100Percent``; ``None`` is fine (unset)."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [v.invalid(path, value, PERCENT_MSG)]
        if int(value[:-1]) > 100:
            return [v.invalid(path, value, "must not be greater than 100%")]
        return []
    if is_int(value):
        return validate_nonneg(value, path)
    return [v.invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def validate_selector_and_template(
    spec: dict[str, Any], path: Path, *, kind: str, check_match: bool = True
) -> list[FieldError]:
    """Selector and pod template of a workload that keeps pods running (restartPolicy Always).

    A missing selector selects nothing (``LabelSelectorAsSelector(nil)``), so it fails both as
    "Required" and as not matching the template, as on a real cluster. An empty ``{}`` selector
    selects everything and is reported only as empty.
    """
    errs: list[FieldError] = []
    sel_path = path.child("selector")
    sel = spec.get("selector")
    selector_ok = True
    if sel is None:
        errs.append(v.required(sel_path))
    else:
        sel_errs = validate_label_selector_object(sel, sel_path)
        errs.extend(sel_errs)
        selector_ok = not sel_errs
        if isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions"):
            errs.append(v.invalid(sel_path, sel, f"empty selector is invalid for {kind.lower()}"))
    tpath = path.child("template")
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errs, v.required(tpath)]
    labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    if check_match and selector_ok and (sel is None or isinstance(sel, dict)):
        try:
            selector = from_label_selector_object(sel, none_matches=False)
        except errors.StatusError:
            errs.append(v.invalid(sel_path, sel, "invalid label selector"))
        else:
            empty = isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions")
            if not empty and not selector.matches(labels):
                errs.append(v.invalid(tpath.child("metadata", "labels"), labels,
                                      "`selector` does not match template `labels`"))
    errs.extend(validate_pod_template(template, tpath))
    tspec = as_dict(template.get("spec"))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(v.invalid(tpath.child("spec", "activeDeadlineSeconds"), tspec["activeDeadlineSeconds"],
                              f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def spec_of(obj: Obj) -> dict[str, Any]:
    return as_dict(obj.get("spec"))


def status_counts(status: dict[str, Any], path: Path, fields: tuple[str, ...]) -> list[FieldError]:
    """Non-negative integer counters of a status."""
    errs: list[FieldError] = []
    for f in fields:
        errs.extend(validate_nonneg(status.get(f), path.child(f)))
    return errs


def not_greater(status: dict[str, Any], path: Path, field: str, than: str, label: str) -> list[FieldError]:
    """``status.<field>`` may not exceed ``status.<than>`` (label is how Kubernetes names the bound)."""
    a, b = status.get(field), status.get(than) or 0
    if is_int(a) and is_int(b) and a > b:
        return [v.invalid(path.child(field), a, f"cannot be greater than {label}")]
    return []


def selector_immutable(new: Obj, old: Obj) -> list[FieldError]:
    return v.immutable(spec_of(new).get("selector"), spec_of(old).get("selector"), Path("spec", "selector"))


# --- Deployment --------------------------------------------------------------------------------

DEPLOYMENT_STRATEGIES = ("Recreate", "RollingUpdate")


class DeploymentStrategy(Strategy):
    kind = "Deployment"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        # DeploymentStatus has only omitempty fields: a new one serialises as {}.
        obj["status"] = {}

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        # Annotations are copied to the ReplicaSets, so changing them is a new generation too
        # (through the main resource: the controller's revision annotation goes through /status).
        new_ann = as_dict(new.get("metadata")).get("annotations")
        old_ann = as_dict(old.get("metadata")).get("annotations")
        return super().generation_changed(new, old) or not semantic_equal(new_ann, old_ann)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.get("strategy")
        if not isinstance(strategy, dict):
            strategy = spec["strategy"] = {}
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            ru = strategy.get("rollingUpdate")
            if not isinstance(ru, dict):
                ru = strategy["rollingUpdate"] = {}
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        if isinstance(spec.get("template"), dict):
            default_pod_template(spec["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = validate_nonneg(spec.get("replicas"), p.child("replicas"))
        errs += validate_selector_and_template(spec, p, kind="Deployment")
        errs += self._validate_strategy(as_dict(spec.get("strategy")), p.child("strategy"))
        errs += validate_nonneg(spec.get("revisionHistoryLimit"), p.child("revisionHistoryLimit"))
        min_ready = spec.get("minReadySeconds")
        errs += validate_nonneg(min_ready, p.child("minReadySeconds"))
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            errs += validate_nonneg(deadline, p.child("progressDeadlineSeconds"))
            if is_int(deadline) and deadline <= (min_ready if is_int(min_ready) else 0):
                errs.append(v.invalid(p.child("progressDeadlineSeconds"), deadline,
                                      "must be greater than minReadySeconds"))
        return errs

    @staticmethod
    def _validate_strategy(strategy: dict[str, Any], path: Path) -> list[FieldError]:
        kind = strategy.get("type")
        ru = strategy.get("rollingUpdate")
        if kind == "Recreate":
            if ru is not None:
                return [v.forbidden(path.child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")]
            return []
        if kind == "RollingUpdate":
            if not isinstance(ru, dict):
                return [v.required(path.child("rollingUpdate"), "this should be defaulted and never be nil")]
            rp = path.child("rollingUpdate")
            errs = validate_int_or_percent(ru.get("maxUnavailable"), rp.child("maxUnavailable"))
            errs += validate_int_or_percent(ru.get("maxSurge"), rp.child("maxSurge"))
            if not errs and int_or_percent_value(ru.get("maxUnavailable")) == 0 \
                    and int_or_percent_value(ru.get("maxSurge")) == 0:
                errs.append(v.invalid(rp.child("maxUnavailable"), ru.get("maxUnavailable"),
                                      "may not be 0 when `maxSurge` is 0"))
            return errs
        return [v.not_supported(path.child("type"), kind, DEPLOYMENT_STRATEGIES)]

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + selector_immutable(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs = status_counts(status, p, ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                         "availableReplicas", "unavailableReplicas", "collisionCount"))
        errs += not_greater(status, p, "updatedReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "readyReplicas", "readyReplicas")
        return errs


# --- ReplicaSet --------------------------------------------------------------------------------


class ReplicaSetStrategy(Strategy):
    kind = "ReplicaSet"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        if isinstance(spec.get("template"), dict):
            default_pod_template(spec["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = validate_nonneg(spec.get("replicas"), p.child("replicas"))
        errs += validate_nonneg(spec.get("minReadySeconds"), p.child("minReadySeconds"))
        # Kubernetes says "for deployment" for ReplicaSets too; keep its words.
        errs += validate_selector_and_template(spec, p, kind="ReplicaSet")
        return [_rs_empty_selector_text(e) for e in errs]

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + selector_immutable(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs = status_counts(status, p, ("replicas", "fullyLabeledReplicas", "readyReplicas",
                                         "availableReplicas", "observedGeneration"))
        errs += not_greater(status, p, "fullyLabeledReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "readyReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "readyReplicas", "readyReplicas")
        return errs


def _rs_empty_selector_text(err: FieldError) -> FieldError:
    if err.detail == "empty selector is invalid for replicaset":
        err.detail = "empty selector is invalid for deployment"
    return err


# --- StatefulSet -------------------------------------------------------------------------------

POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
PVC_RETENTION_POLICIES = ("Delete", "Retain")
ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
# What an update may change; anything else in spec is Forbidden.
STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
               "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
STS_FORBIDDEN_MSG = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


class StatefulSetStrategy(Strategy):
    kind = "StatefulSet"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"availableReplicas": 0, "replicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("podManagementPolicy"):
            spec["podManagementPolicy"] = "OrderedReady"
        us = spec.get("updateStrategy")
        if not isinstance(us, dict):
            us = spec["updateStrategy"] = {}
        if not us.get("type"):
            us["type"] = "RollingUpdate"
            if not isinstance(us.get("rollingUpdate"), dict):
                us["rollingUpdate"] = {}
        if us["type"] == "RollingUpdate" and isinstance(us.get("rollingUpdate"), dict):
            us["rollingUpdate"].setdefault("partition", 0)
        policy = spec.get("persistentVolumeClaimRetentionPolicy")
        if not isinstance(policy, dict):
            policy = spec["persistentVolumeClaimRetentionPolicy"] = {}
        if not policy.get("whenDeleted"):
            policy["whenDeleted"] = "Retain"
        if not policy.get("whenScaled"):
            policy["whenScaled"] = "Retain"
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if isinstance(spec.get("template"), dict):
            default_pod_template(spec["template"])
        for claim in as_list(spec.get("volumeClaimTemplates")):
            if isinstance(claim, dict):
                _default_claim_template(claim)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        service = spec.get("serviceName")
        if service:
            # Optional since 1.32; when given it names a headless Service (a DNS-1035 label).
            errs += [v.invalid(p.child("serviceName"), service, m) for m in v.is_dns1035_label(str(service))]
        pmp = spec.get("podManagementPolicy")
        if not pmp:
            errs.append(v.required(p.child("podManagementPolicy")))
        elif pmp not in POD_MANAGEMENT_POLICIES:
            errs.append(v.invalid(p.child("podManagementPolicy"), pmp, "must be 'OrderedReady' or 'Parallel'"))
        errs += self._validate_update_strategy(as_dict(spec.get("updateStrategy")), p.child("updateStrategy"))
        policy = spec.get("persistentVolumeClaimRetentionPolicy")
        if isinstance(policy, dict):
            pp = p.child("persistentVolumeClaimRetentionPolicy")
            for f in ("whenDeleted", "whenScaled"):
                if policy.get(f) not in PVC_RETENTION_POLICIES:
                    errs.append(v.not_supported(pp.child(f), policy.get(f), PVC_RETENTION_POLICIES))
        ordinals = spec.get("ordinals")
        if isinstance(ordinals, dict):
            errs += validate_nonneg(ordinals.get("start"), p.child("ordinals.start"))
        errs += validate_nonneg(spec.get("replicas"), p.child("replicas"))
        errs += validate_nonneg(spec.get("minReadySeconds"), p.child("minReadySeconds"))
        errs += validate_nonneg(spec.get("revisionHistoryLimit"), p.child("revisionHistoryLimit"))
        errs += validate_selector_and_template(spec, p, kind="StatefulSet")
        for i, claim in enumerate(as_list(spec.get("volumeClaimTemplates"))):
            errs += _validate_claim_template(claim, p.child("volumeClaimTemplates").index(i))
        return errs

    @staticmethod
    def _validate_update_strategy(us: dict[str, Any], path: Path) -> list[FieldError]:
        kind = us.get("type")
        ru = us.get("rollingUpdate")
        if not kind:
            return [v.required(path)]
        if kind == "OnDelete":
            if ru is not None:
                return [v.invalid(path.child("rollingUpdate"), ru, "only allowed for updateStrategy 'RollingUpdate'")]
            return []
        if kind == "RollingUpdate":
            if isinstance(ru, dict):
                rp = path.child("rollingUpdate")
                errs = validate_nonneg(ru.get("partition"), rp.child("partition"))
                if ru.get("maxUnavailable") is not None:
                    errs += validate_int_or_percent(ru["maxUnavailable"], rp.child("maxUnavailable"))
                    if int_or_percent_value(ru["maxUnavailable"]) == 0:
                        errs.append(v.invalid(rp.child("maxUnavailable"), ru["maxUnavailable"], "cannot be 0"))
                return errs
            return []
        return [v.invalid(path, us, "must be 'RollingUpdate' or 'OnDelete'")]

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_rest = {k: val for k, val in spec_of(new).items() if k not in STS_MUTABLE}
        old_rest = {k: val for k, val in spec_of(old).items() if k not in STS_MUTABLE}
        if new_rest != old_rest:
            errs.append(v.forbidden(Path("spec"), STS_FORBIDDEN_MSG))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs = status_counts(status, p, ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                                         "availableReplicas", "observedGeneration", "collisionCount"))
        for f in ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"):
            errs += not_greater(status, p, f, "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "readyReplicas", "status.readyReplicas")
        return errs


def _default_claim_template(claim: dict[str, Any]) -> None:
    claim["apiVersion"] = "v1"
    claim["kind"] = "PersistentVolumeClaim"
    spec = claim.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    status = claim.get("status")
    if not isinstance(status, dict):
        status = claim["status"] = {}
    status.setdefault("phase", "Pending")


def _validate_claim_template(claim: Any, path: Path) -> list[FieldError]:
    if not isinstance(claim, dict):
        return [v.type_invalid(path, claim, "must be an object")]
    errs: list[FieldError] = []
    meta = as_dict(claim.get("metadata"))
    name = meta.get("name")
    if not name:
        errs.append(v.required(path.child("metadata", "name"), "name or generateName is required"))
    else:
        errs += [v.invalid(path.child("metadata", "name"), name, m) for m in v.is_dns1123_subdomain(str(name))]
    errs += v.validate_labels(meta.get("labels"), path.child("metadata", "labels"))
    errs += v.validate_annotations(meta.get("annotations"), path.child("metadata", "annotations"))
    spec, sp = as_dict(claim.get("spec")), path.child("spec")
    modes = as_list(spec.get("accessModes"))
    if not modes:
        errs.append(v.required(sp.child("accessModes"), "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(v.not_supported(sp.child("accessModes"), mode, ACCESS_MODES))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(v.not_supported(sp.child("volumeMode"), mode, VOLUME_MODES))
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        if not spec.get("dataSource") and not spec.get("dataSourceRef"):
            errs.append(v.required(sp.child("resources").key("storage")))
    else:
        qty = quantity_or_none(requests["storage"])
        if qty is None:
            errs.append(v.invalid(sp.child("resources", "requests").key("storage"), requests["storage"],
                                  "must be a valid quantity"))
        elif qty <= 0:
            errs.append(v.invalid(sp.child("resources", "requests").key("storage"), requests["storage"],
                                  "must be greater than zero"))
    return errs


# --- DaemonSet ---------------------------------------------------------------------------------

DS_STRATEGIES = ("RollingUpdate", "OnDelete")
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


class DaemonSetStrategy(Strategy):
    kind = "DaemonSet"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                         "numberMisscheduled": 0, "numberReady": 0}
        # templateGeneration starts at 1; apps/v1 carries it in an annotation.
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta.get("annotations"), dict):
            meta["annotations"] = {}
        meta["annotations"][TEMPLATE_GENERATION] = "1"

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        old_ann = as_dict(as_dict(old.get("metadata")).get("annotations"))
        try:
            gen = int(old_ann.get(TEMPLATE_GENERATION, "0"))
        except ValueError:
            gen = 0
        # Compared as Kubernetes does, after defaulting (its decoder defaults before this runs):
        # a client that sends the template without the server's defaults has not changed it.
        defaulted = {"spec": copy.deepcopy(spec_of(new))}
        self.default(defaulted)
        if not semantic_equal(spec_of(defaulted).get("template"), spec_of(old).get("template")):
            gen += 1
        if gen:
            meta = new.setdefault("metadata", {})
            if not isinstance(meta.get("annotations"), dict):
                meta["annotations"] = {}
            meta["annotations"][TEMPLATE_GENERATION] = str(gen)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        us = spec.get("updateStrategy")
        if not isinstance(us, dict):
            us = spec["updateStrategy"] = {}
        if not us.get("type"):
            us["type"] = "RollingUpdate"
        if us["type"] == "RollingUpdate":
            ru = us.get("rollingUpdate")
            if not isinstance(ru, dict):
                ru = us["rollingUpdate"] = {}
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        if isinstance(spec.get("template"), dict):
            default_pod_template(spec["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = validate_selector_and_template(spec, p, kind="DaemonSet")
        errs += validate_nonneg(spec.get("minReadySeconds"), p.child("minReadySeconds"))
        errs += validate_nonneg(spec.get("revisionHistoryLimit"), p.child("revisionHistoryLimit"))
        errs += self._validate_update_strategy(as_dict(spec.get("updateStrategy")), p.child("updateStrategy"))
        return errs

    @staticmethod
    def _validate_update_strategy(us: dict[str, Any], path: Path) -> list[FieldError]:
        kind = us.get("type")
        if kind == "OnDelete":
            return []
        if kind != "RollingUpdate":
            return [v.not_supported(path.child("type"), kind, DS_STRATEGIES)]
        ru = us.get("rollingUpdate")
        if not isinstance(ru, dict):
            return [v.required(path.child("rollingUpdate"))]
        rp = path.child("rollingUpdate")
        errs = validate_int_or_percent(ru.get("maxUnavailable"), rp.child("maxUnavailable"))
        errs += validate_int_or_percent(ru.get("maxSurge"), rp.child("maxSurge"))
        if errs:
            return errs
        unavailable = bool(int_or_percent_value(ru.get("maxUnavailable")))
        surge = bool(int_or_percent_value(ru.get("maxSurge")))
        if unavailable and surge:
            errs.append(v.invalid(rp.child("maxSurge"), ru.get("maxSurge"),
                                  "may not be set when maxUnavailable is non-zero"))
        elif not unavailable and not surge:
            errs.append(v.required(rp.child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + selector_immutable(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return status_counts(as_dict(new.get("status")), Path("status"), (
            "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
            "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable",
            "collisionCount"))


# --- ControllerRevision ------------------------------------------------------------------------


class ControllerRevisionStrategy(Strategy):
    kind = "ControllerRevision"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("data") is None:
            errs.append(v.required(Path("data"), "data is mandatory"))
        errs += validate_nonneg(obj.get("revision", 0), Path("revision"))
        return errs

    def default(self, obj: Obj) -> None:
        # ``revision`` is a plain int64 without omitempty: it is always there.
        obj.setdefault("revision", 0)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + v.immutable(new.get("data"), old.get("data"), Path("data"))


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("apps", "Deployment"): DeploymentStrategy(),
    ("apps", "ReplicaSet"): ReplicaSetStrategy(),
    ("apps", "StatefulSet"): StatefulSetStrategy(),
    ("apps", "DaemonSet"): DaemonSetStrategy(),
    ("apps", "ControllerRevision"): ControllerRevisionStrategy(),
}

__all__ = [
    "STRATEGIES",
    "int_or_percent_value",
    "is_int",
    "validate_int_or_percent",
    "validate_nonneg",
    "validate_selector_and_template",
]
