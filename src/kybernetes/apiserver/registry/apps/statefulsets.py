"""apps/v1 StatefulSets (and their volume claim templates).

Mirrors ``pkg/registry/apps/<resource>`` with the rules of ``pkg/apis/apps/validation`` and the
``apps/v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
    int_or_percent_value,
    quantity_or_none,
    validate_int_or_percent,
    validate_nonneg,
)
from kybernetes.apiserver.registry.apps.common import (
    not_greater,
    spec_of,
    status_counts,
    validate_selector_and_template,
)
from kybernetes.apiserver.registry.core import default_pod_template
from kybernetes.apiserver.registry.strategy import Obj, Strategy

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
        errs += validate_selector_and_template(_with_claim_volumes(spec), p, kind="StatefulSet")
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


def _with_claim_volumes(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as its pods will be, for validating the template: each claim template a
    ``persistentVolumeClaim`` volume of its name (replacing a template volume of the same name, as
    the controller does), so that containers may mount the claims. Kubernetes validates no volume of
    the template at all (``ValidatePodTemplateSpecForStatefulSet``); this refuses only mounts that no
    pod of the set could have. The stored object is not changed."""
    names = [as_dict(as_dict(c).get("metadata")).get("name") for c in as_list(spec.get("volumeClaimTemplates"))]
    # A name that is no volume name is the claim template's error to report, not the template's.
    names = [n for n in names if isinstance(n, str) and n and not v.is_dns1123_label(n)]
    template = spec.get("template")
    if not names or not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return spec
    pod_spec = template["spec"]
    volumes = [vol for vol in as_list(pod_spec.get("volumes")) if as_dict(vol).get("name") not in names]
    volumes += [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in names]
    return {**spec, "template": {**template, "spec": {**pod_spec, "volumes": volumes}}}


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
