"""PersistentVolume/Claim facts shared by the scheduler and the volume controllers.

After Kubernetes' ``pkg/controller/volume/persistentvolume/util`` and ``component-helpers/storage``:

- a claim's class is the beta annotation ``volume.beta.kubernetes.io/storage-class`` if set, else
  ``spec.storageClassName`` (``""`` means "no class");
- a claim is *fully bound* when ``spec.volumeName`` is set and it carries
  ``pv.kubernetes.io/bind-completed`` (the PV controller's mark); a claim with a volume name but no
  mark is only pre-bound;
- :func:`volume_matches_claim` is ``FindMatchingVolume``'s test for one PV (class, volume mode,
  selector, access modes, capacity; a PV pre-bound to another claim or not Available never
  matches), and :func:`matching_volumes` orders those that pass as the binder prefers them (a PV
  pre-bound to the claim first, then the smallest);
- :func:`node_affinity_matcher` compiles ``spec.nodeAffinity.required`` (no affinity: every node).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.api.podutil import quantity_value
from kybernetes.api.scheduling import NodeLike, compile_terms

Obj = dict[str, Any]

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
NOT_SUPPORTED_PROVISIONER = "kubernetes.io/no-provisioner"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
READ_WRITE_ONCE_POD = "ReadWriteOncePod"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("annotations") or {}


def claim_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def claim_class(claim: Mapping[str, Any]) -> str:
    """``GetPersistentVolumeClaimClass``."""
    beta = annotations_of(claim).get(ANN_BETA_STORAGE_CLASS)
    if beta is not None:
        return beta
    return (claim.get("spec") or {}).get("storageClassName") or ""


def volume_class(pv: Mapping[str, Any]) -> str:
    """``GetPersistentVolumeClass``."""
    beta = annotations_of(pv).get(ANN_BETA_STORAGE_CLASS)
    if beta is not None:
        return beta
    return (pv.get("spec") or {}).get("storageClassName") or ""


def is_claim_bound(claim: Mapping[str, Any]) -> bool:
    """Fully bound: a volume name and the PV controller's bind-completed mark."""
    return bool((claim.get("spec") or {}).get("volumeName")) and ANN_BIND_COMPLETED in annotations_of(claim)


def claim_request(claim: Mapping[str, Any]) -> int:
    req = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return quantity_value("storage", req) if req is not None else 0


def volume_capacity(pv: Mapping[str, Any]) -> int:
    cap = ((pv.get("spec") or {}).get("capacity") or {}).get("storage")
    return quantity_value("storage", cap) if cap is not None else 0


def is_volume_bound_to_claim(pv: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """The PV's claimRef names this claim (and, when it has one, this claim's uid)."""
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref:
        return False
    meta = _meta(claim)
    if ref.get("name") != meta.get("name") or (ref.get("namespace") or "") != (meta.get("namespace") or ""):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def node_affinity_matcher(pv: Mapping[str, Any]) -> Callable[[NodeLike], bool] | None:
    """The PV's required node affinity, or None when it has none (any node will do)."""
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
    terms = required.get("nodeSelectorTerms")
    if not required:
        return None
    return compile_terms(terms or [])


def volume_matches_claim(pv: Mapping[str, Any], claim: Mapping[str, Any], request: int | None = None) -> bool:
    """Whether an unbound PV could serve the claim, node affinity aside (see the module docstring)."""
    spec = pv.get("spec") or {}
    cspec = claim.get("spec") or {}
    if _meta(pv).get("deletionTimestamp") is not None:
        return False
    if spec.get("claimRef") and not is_volume_bound_to_claim(pv, claim):
        return False
    if not spec.get("claimRef") and (pv.get("status") or {}).get("phase") != "Available":
        return False
    if volume_class(pv) != claim_class(claim):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (cspec.get("volumeMode") or "Filesystem"):
        return False
    selector = cspec.get("selector")
    if selector and not from_label_selector_object(selector).matches(_meta(pv).get("labels") or {}):
        return False
    if not set(cspec.get("accessModes") or ()) <= set(spec.get("accessModes") or ()):
        return False
    return volume_capacity(pv) >= (claim_request(claim) if request is None else request)


def matching_volumes(claim: Mapping[str, Any], volumes: Iterable[Obj]) -> list[Obj]:
    """The PVs that could serve the claim, node affinity aside, best first (``FindMatchingVolume``'s order).

    A PV pre-bound to the claim comes first; the rest by capacity, smallest first (ties by name, so
    the choice is stable). The first of them that also fits the node is the one to bind.
    """
    request = claim_request(claim)
    found = [pv for pv in volumes if volume_matches_claim(pv, claim, request)]
    found.sort(key=lambda pv: (not is_volume_bound_to_claim(pv, claim), volume_capacity(pv),
                               _meta(pv).get("name") or ""))
    return found


def topology_matches(terms: Iterable[Mapping[str, Any]] | None, labels: Mapping[str, str]) -> bool:
    """``MatchTopologySelectorTerms``: no terms match everything; terms are ORed, expressions ANDed."""
    terms = list(terms or ())
    if not terms:
        return True
    for term in terms:
        if all(labels.get(e.get("key") or "") in (e.get("values") or ()) for e in term.get("matchLabelExpressions") or ()):
            return True
    return False
