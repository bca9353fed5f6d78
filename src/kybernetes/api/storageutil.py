"""The one home of the rules about PersistentVolumes, claims and StorageClasses that several
components apply: the PV controller and the ephemeral volume controller (``controllers/volume/``),
PVC protection, the scheduler's volume plugins, the DefaultStorageClass and
PersistentVolumeClaimResize admission plugins, the local-path provisioner, the kubelet's claim
mounts, the PV/PVC printers and the quota evaluator.

After Kubernetes' ``component-helpers/storage/volume`` (``pv_helpers.go``, ``helpers.go``) and
``pkg/controller/volume/persistentvolume`` (``index.go``, ``checkVolumeSatisfyClaim``):

- a claim's or volume's class is the beta annotation ``volume.beta.kubernetes.io/storage-class`` if
  present, else ``spec.storageClassName`` (``""``: no class); the default StorageClass is the newest
  of those annotated ``is-default-class: "true"``;
- a claim is *fully bound* when ``spec.volumeName`` is set and it carries
  ``pv.kubernetes.io/bind-completed``;
- storage sizes compare exactly (``Quantity.Cmp``) when searching for a volume, and as whole bytes
  rounded up (``Quantity.Value``) when checking a volume a claim names, as Kubernetes does;
- :func:`find_matching_volume` is ``FindMatchingVolume`` (the scheduler's call with a node, the PV
  controller's without), :func:`find_best_match` the PV controller's access-mode index over it,
  :func:`volume_satisfies_claim` ``checkVolumeSatisfyClaim``;
- :func:`bind_volume_to_claim` is ``GetBindVolumeToClaim`` (the edit both the scheduler and the PV
  controller make to bind a volume), :func:`claim_reference` the ``claimRef`` it and a provisioner write;
- a pod's claims (:func:`pod_claims`) include a generic ephemeral volume's ``<pod>-<volume>``
  (``ephemeral.VolumeClaimName``), which serves the pod only if the pod controls it
  (:func:`volume_is_for_pod`, ``ephemeral.VolumeIsForPod``);
- :func:`node_affinity_matcher` is ``CheckNodeAffinity``, :func:`topology_matches`
  ``MatchTopologySelectorTerms``.

Every reader takes objects as the API returns them and never raises on a malformed field (a claim
whose selector cannot be parsed matches no volume, as Kubernetes' search fails for it).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from fractions import Fraction
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.scheduling import NodeLike, compile_terms

IS_DEFAULT = "storageclass.kubernetes.io/is-default-class"
BETA_IS_DEFAULT = "storageclass.beta.kubernetes.io/is-default-class"
BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
"""The class as the beta annotation on a claim or a volume; it wins over ``spec.storageClassName``."""

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"

NOT_SUPPORTED_PROVISIONER = "kubernetes.io/no-provisioner"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
READ_WRITE_ONCE_POD = "ReadWriteOncePod"


# --- reading objects -----------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """An object's annotations, or {} when it has none (or they are malformed)."""
    annotations = _meta(obj).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def claim_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


# --- a pod's claims ------------------------------------------------------------------------------


def ephemeral_claim_name(pod: Mapping[str, Any], volume: Mapping[str, Any]) -> str:
    """``ephemeral.VolumeClaimName``: the claim of a generic ephemeral volume is ``<pod>-<volume>``."""
    return f"{_meta(pod).get('name') or ''}-{volume.get('name') or ''}"


def pod_claims(pod: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(claim name, is a generic ephemeral volume's) for each claim the pod's volumes use, in order."""
    out: list[tuple[str, bool]] = []
    volumes = _spec(pod).get("volumes")
    for vol in volumes if isinstance(volumes, list) else ():
        if not isinstance(vol, dict):
            continue
        pvc = vol.get("persistentVolumeClaim")
        if isinstance(pvc, dict):
            out.append((str(pvc.get("claimName") or ""), False))
        elif vol.get("ephemeral") is not None:
            out.append((ephemeral_claim_name(pod, vol), True))
    return out


def volume_is_for_pod(pod: Mapping[str, Any], pvc: Mapping[str, Any]) -> str:
    """``ephemeral.VolumeIsForPod``: "" when the pod controls the claim (same namespace, the
    controller owner reference has the pod's uid), else Kubernetes' error."""
    pm, cm = _meta(pod), _meta(pvc)
    refs = cm.get("ownerReferences")
    owned = any(isinstance(r, dict) and r.get("controller") and r.get("uid") == pm.get("uid")
                for r in (refs if isinstance(refs, list) else ()))
    if owned and (cm.get("namespace") or "") == (pm.get("namespace") or ""):
        return ""
    return (f"PVC {cm.get('namespace') or ''}/{cm.get('name') or ''} was not created for pod "
            f"{pm.get('namespace') or ''}/{pm.get('name') or ''} (pod is not owner)")


# --- classes -------------------------------------------------------------------------------------


def is_default_storage_class(sc: Obj) -> bool:
    """``storageutil.IsDefaultAnnotation``: the GA or the beta annotation is exactly ``"true"``."""
    annotations = annotations_of(sc)
    return annotations.get(IS_DEFAULT) == "true" or annotations.get(BETA_IS_DEFAULT) == "true"


def newest_default(classes: Iterable[Obj], is_default: Callable[[Obj], bool] = is_default_storage_class) -> Obj | None:
    """The default class among ``classes``: of those ``is_default`` accepts, the newest by
    creationTimestamp, ties broken by the smaller name; ``None`` if there is no default."""
    defaults = sorted((c for c in classes if is_default(c)), key=lambda c: str(c["metadata"].get("name", "")))
    defaults.sort(key=lambda c: str(c["metadata"].get("creationTimestamp") or ""), reverse=True)
    return defaults[0] if defaults else None


def claim_has_class(pvc: Obj) -> bool:
    """``PersistentVolumeClaimHasClass``: the field is set (even to ``""``) or the beta annotation
    is present."""
    return _spec(pvc).get("storageClassName") is not None or BETA_CLASS in annotations_of(pvc)


def _class_of(obj: Mapping[str, Any]) -> str:
    annotations = annotations_of(obj)
    if BETA_CLASS in annotations:
        return str(annotations[BETA_CLASS])
    return str(_spec(obj).get("storageClassName") or "")


def claim_class(pvc: Mapping[str, Any]) -> str:
    """``GetPersistentVolumeClaimClass``: the beta annotation, else ``spec.storageClassName``, else ""."""
    return _class_of(pvc)


def volume_class(pv: Mapping[str, Any]) -> str:
    """``GetPersistentVolumeClass``: the beta annotation, else ``spec.storageClassName``, else ""."""
    return _class_of(pv)


def is_delay_binding(claim: Obj, classes: Mapping[str, Obj]) -> bool:
    """``IsDelayBindingMode``: the claim's class (by name in ``classes``) binds ``WaitForFirstConsumer``."""
    sc = classes.get(claim_class(claim))
    return sc is not None and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def claim_provisioner(pvc: Obj) -> str:
    """The provisioner the PV controller handed the claim to (the GA annotation, else the beta one)."""
    annotations = annotations_of(pvc)
    return str(annotations.get(ANN_STORAGE_PROVISIONER) or annotations.get(ANN_BETA_STORAGE_PROVISIONER) or "")


# --- modes and sizes -----------------------------------------------------------------------------


def volume_mode(obj: Mapping[str, Any]) -> str:
    """A claim's or volume's ``spec.volumeMode``; unset means ``Filesystem`` (``CheckVolumeModeMismatches``)."""
    return str(_spec(obj).get("volumeMode") or "Filesystem")


def access_modes(obj: Mapping[str, Any]) -> list[str]:
    modes = _spec(obj).get("accessModes")
    return [str(m) for m in modes] if isinstance(modes, list) else []


def volume_serves_access_modes(pv: Obj, pvc: Obj) -> bool:
    """``CheckAccessModes``: the volume offers every access mode the claim asks for."""
    offered = set(access_modes(pv))
    return all(m in offered for m in access_modes(pvc))


def _storage(raw: Any) -> Fraction:
    try:
        return parse_quantity(raw) if raw is not None else Fraction(0)
    except (ValueError, TypeError):
        return Fraction(0)  # malformed in a stored object: validation reports it, not the readers


def storage_request(pvc: Mapping[str, Any]) -> Fraction:
    """``spec.resources.requests.storage``, exactly (0 when unset or malformed)."""
    requests = (_spec(pvc).get("resources") or {}).get("requests")
    return _storage(requests.get("storage") if isinstance(requests, dict) else None)


def storage_capacity(pv: Mapping[str, Any]) -> Fraction:
    """A volume's ``spec.capacity.storage``, exactly (0 when unset or malformed)."""
    capacity = _spec(pv).get("capacity")
    return _storage(capacity.get("storage") if isinstance(capacity, dict) else None)


def claim_capacity(pvc: Mapping[str, Any]) -> Fraction | None:
    """A claim's ``status.capacity.storage`` (what it was bound or resized to), None when unset."""
    status = pvc.get("status")
    capacity = status.get("capacity") if isinstance(status, dict) else None
    raw = capacity.get("storage") if isinstance(capacity, dict) else None
    return None if raw is None else _storage(raw)


def _whole(q: Fraction) -> int:
    """``Quantity.Value``: rounded up, away from zero."""
    return math.ceil(q) if q >= 0 else math.floor(q)


# --- binding -------------------------------------------------------------------------------------


def is_volume_bound_to_claim(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> bool:
    """``IsVolumeBoundToClaim``: the volume's claimRef names the claim (and its uid, once set)."""
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, dict):
        return False
    meta = _meta(pvc)
    if ref.get("name") != meta.get("name") or (ref.get("namespace") or "") != (meta.get("namespace") or ""):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def set_annotation(obj: Obj, key: str, value: str) -> None:
    """Set one annotation on ``obj`` in place (``SetMetaDataAnnotation``)."""
    annotations = obj.setdefault("metadata", {}).get("annotations")
    if not isinstance(annotations, dict):
        annotations = obj["metadata"]["annotations"] = {}
    annotations[key] = value


def claim_reference(pvc: Mapping[str, Any]) -> dict[str, Any]:
    """``GetReference`` of a claim, as a volume's ``spec.claimRef``."""
    m = _meta(pvc)
    return {"kind": "PersistentVolumeClaim", "namespace": m.get("namespace"), "name": m.get("name"),
            "uid": m.get("uid"), "apiVersion": "v1", "resourceVersion": m.get("resourceVersion")}


def bind_volume_to_claim(pv: Obj, pvc: Obj) -> Obj | None:
    """``GetBindVolumeToClaim``: a copy of the volume with ``claimRef`` to the claim, and
    ``bound-by-controller`` unless the user pre-bound it to this claim; None when it is bound
    to the claim (name, namespace and uid) already."""
    ref = _spec(pv).get("claimRef")
    m = _meta(pvc)
    if isinstance(ref, dict) and ref.get("name") == m.get("name") and ref.get("namespace") == m.get("namespace") \
            and ref.get("uid") == m.get("uid"):
        return None
    out = copy.deepcopy(pv)
    if not is_volume_bound_to_claim(pv, pvc):
        set_annotation(out, ANN_BOUND_BY_CONTROLLER, "yes")
    out.setdefault("spec", {})["claimRef"] = claim_reference(pvc)
    return out


def is_claim_bound(pvc: Mapping[str, Any]) -> bool:
    """Fully bound: a volume name and the PV controller's bind-completed mark (``isPVCFullyBound``)."""
    return bool(_spec(pvc).get("volumeName")) and ANN_BIND_COMPLETED in annotations_of(pvc)


def node_affinity_matcher(pv: Mapping[str, Any]) -> Callable[[NodeLike], bool] | None:
    """``CheckNodeAffinity`` compiled: the PV's required node affinity, or None when it has none
    (any node will do)."""
    required = (_spec(pv).get("nodeAffinity") or {}).get("required") or {}
    if not required:
        return None
    return compile_terms(required.get("nodeSelectorTerms") or [])


def topology_matches(terms: Iterable[Mapping[str, Any]] | None, labels: Mapping[str, str]) -> bool:
    """``MatchTopologySelectorTerms``: no terms match everything; terms are ORed, expressions ANDed."""
    terms = list(terms or ())
    if not terms:
        return True
    for term in terms:
        if all(labels.get(e.get("key") or "") in (e.get("values") or ())
               for e in term.get("matchLabelExpressions") or ()):
            return True
    return False


# --- matching a claim to volumes -----------------------------------------------------------------


def _candidate(pv: Obj, claim: Obj, requested: Fraction) -> bool:
    """The filters every match passes: not another claim's, large enough, same volumeMode, not deleted."""
    if _spec(pv).get("claimRef") is not None and not is_volume_bound_to_claim(pv, claim):
        return False
    return (storage_capacity(pv) >= requested and volume_mode(pv) == volume_mode(claim)
            and _meta(pv).get("deletionTimestamp") is None)


def find_matching_volume(claim: Obj, volumes: Iterable[Obj], *,
                         node_fits: Callable[[Obj], bool] | None = None,
                         excluded: Collection[str] = (), delay_binding: bool = False) -> Obj | None:
    """``FindMatchingVolume``: the volume in ``volumes`` (in their order) pre-bound to the claim, else
    the smallest Available one of its class whose labels its selector matches (the first of equal
    size); None if there is none.

    ``node_fits`` is the scheduler's path (``node != nil``): it says whether a volume's node affinity
    admits the node; a volume pre-bound to the claim that does not fit means no match at all, and the
    claim's access modes are checked here. Without it (the PV controller's path) a ``delay_binding``
    claim gets only a volume pre-bound to it, and the caller has checked access modes.
    ``excluded``: names of volumes already chosen for other claims.
    """
    requested = storage_request(claim)
    requested_class = claim_class(claim)
    selector = _spec(claim).get("selector")
    try:
        matcher = from_label_selector_object(selector) if selector is not None else None
    except errors.StatusError:
        return None
    smallest: Obj | None = None
    for pv in volumes:
        if _meta(pv).get("name") in excluded or not _candidate(pv, claim, requested):
            continue
        fits = node_fits is None or node_fits(pv)
        if is_volume_bound_to_claim(pv, claim):
            return pv if fits else None
        if node_fits is None and delay_binding:
            continue  # the scheduler binds it
        if (pv.get("status") or {}).get("phase") != "Available" or volume_class(pv) != requested_class \
                or (matcher is not None and not matcher.matches(_meta(pv).get("labels") or {})) or not fits:
            continue
        if node_fits is not None and not volume_serves_access_modes(pv, claim):
            continue
        if smallest is None or storage_capacity(pv) < storage_capacity(smallest):
            smallest = pv
    return smallest


def find_best_match(claim: Obj, volumes: Iterable[Obj], delay_binding: bool) -> Obj | None:
    """The PV controller's ``findBestMatchForClaim``: volumes grouped by their set of access modes;
    of the sets that contain the claim's, the smallest set first, and in each
    :func:`find_matching_volume` without a node over its volumes by name."""
    wanted = set(access_modes(claim))
    by_modes: dict[frozenset[str], list[Obj]] = {}
    for pv in volumes:
        modes = frozenset(access_modes(pv))
        if wanted <= modes:
            by_modes.setdefault(modes, []).append(pv)
    for modes in sorted(by_modes, key=lambda s: (len(s), sorted(s))):
        group = sorted(by_modes[modes], key=lambda p: str(_meta(p).get("name") or ""))
        match = find_matching_volume(claim, group, delay_binding=delay_binding)
        if match is not None:
            return match
    return None


def volume_satisfies_claim(pv: Obj, claim: Obj) -> str:
    """``checkVolumeSatisfyClaim``: why a volume the claim names cannot serve it ("" if it can).
    Sizes compare as whole bytes here (``Quantity.Value``), as in Kubernetes."""
    if _meta(pv).get("deletionTimestamp"):
        return f'the volume is marked for deletion "{_meta(pv).get("name")}"'
    if _whole(storage_capacity(pv)) < _whole(storage_request(claim)):
        return "requested PV is too small"
    if volume_class(pv) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(pv) != volume_mode(claim):
        return "incompatible volumeMode"
    if not volume_serves_access_modes(pv, claim):
        return "incompatible accessMode"
    return ""
