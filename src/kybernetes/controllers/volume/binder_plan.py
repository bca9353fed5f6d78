"""The PV controller's decisions, as pure functions: (claim or volume, what the caches hold) -> plan.

Kubernetes' ``pkg/controller/volume/persistentvolume`` (``pv_controller.go``): :func:`plan_claim` is
``syncClaim`` (``syncUnboundClaim`` for a claim without ``pv.kubernetes.io/bind-completed``,
``syncBoundClaim`` for one with it), :func:`plan_volume` is ``syncVolume`` with ``reclaimVolume``.
Which volume serves a claim (``find_best_match``, ``volume_satisfies_claim``) is decided by the
rules shared with the scheduler in :mod:`kybernetes.api.storageutil`. A claim of a
``WaitForFirstConsumer`` class is not bound here until the scheduler has chosen its node (it binds
such claims itself).

The object edits of a binding are the pure ``bind_claim`` / ``claim_status`` / ``unbind_volume``
(and, shared with the scheduler, ``storageutil.bind_volume_to_claim``): each returns the edited
copy, or None when nothing needs to change, so the controller (``binder.py``) writes only what
changed. Event wording is Kubernetes' own.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Literal

from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    access_modes,
    annotations_of,
    claim_class,
    claim_has_class,
    find_best_match,
    is_delay_binding,
    is_volume_bound_to_claim,
    newest_default,
    set_annotation,
    volume_mode,
    volume_satisfies_claim,
)
from kybernetes.controllers.podutil import meta, spec_of, status_of

NORMAL, WARNING = "Normal", "Warning"
MSG_WAIT_FIRST_CONSUMER = "waiting for first consumer to be created before binding"
MSG_NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
MSG_CLAIM_LOST_REF = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
MSG_CLAIM_LOST_PV = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
MSG_MISBOUND = "Two claims are bound to the same volume, this one is bound incorrectly"
_IN_TREE_PREFIX = "kubernetes.io/"
_HOSTPATH_DELETABLE = re.compile(r"/tmp/.+")


def external_provisioning_message(provisioner: str) -> str:
    return (f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually "
            "by the system administrator. If volume creation is delayed, please verify that the provisioner "
            "is running and correctly registered.")


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str
    on: Literal["claim", "volume"] = "claim"


ClaimAction = Literal["none", "pending", "bind", "lost", "assign_class", "provision", "error"]


@dataclass
class ClaimPlan:
    """``pending``: status Pending (access modes and capacity cleared); ``bind``: bind ``volume``
    (volume spec, volume phase, claim spec, claim status, in that order); ``lost``: status Lost,
    and the events only if the phase changes; ``assign_class``: set ``spec.storageClassName`` to
    ``class_name`` (the claim syncs again on its update); ``provision``: hand the claim to
    ``provisioner`` through its annotations; ``error``: retry later with ``error``."""

    action: ClaimAction
    volume: Obj | None = None
    class_name: str = ""
    provisioner: str = ""
    events: list[Event] = field(default_factory=list)
    error: str = ""


VolumeAction = Literal["none", "phase", "release", "unbind", "enqueue_claim"]


@dataclass
class VolumePlan:
    """``phase``: set ``phase`` (message cleared); ``release``: phase Released unless it is
    Released or Failed already, then the reclaim policy's ``reclaim`` outcome; ``unbind``: undo
    the controller's binding (or clear only the uid of a user's pre-binding), phase Available;
    ``enqueue_claim``: let the claim's sync finish the binding. ``events`` go out as planned."""

    action: VolumeAction
    phase: str = ""
    reclaim: Reclaim | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Reclaim:
    """What the reclaim policy does with a released volume: nothing (Retain, or the external
    provisioner deletes it), or mark it Failed with ``message`` and a ``reason`` event."""

    failed: bool
    reason: str = ""
    message: str = ""


# --- claims --------------------------------------------------------------------------------------


def plan_claim(claim: Obj, volumes: dict[str, Obj], classes: dict[str, Obj],
               unscheduled_pods: list[str]) -> ClaimPlan:
    """``syncClaim``. ``volumes`` by name, ``classes`` by name; ``unscheduled_pods``: the names of
    the claim's pods that have no node yet (for the WaitForFirstConsumer event)."""
    if ANN_BIND_COMPLETED in annotations_of(claim):
        return _plan_bound_claim(claim, volumes)
    volume_name = str(spec_of(claim).get("volumeName") or "")
    if volume_name:
        return _plan_claim_naming_volume(claim, volumes.get(volume_name))
    delay = is_delay_binding(claim, classes)
    match = find_best_match(claim, list(volumes.values()), delay)
    if match is not None:
        return ClaimPlan("bind", volume=match)
    if not claim_has_class(claim):
        default = newest_default(classes.values())
        if default is not None:
            return ClaimPlan("assign_class", class_name=str(meta(default)["name"]))
    if delay and ANN_SELECTED_NODE not in annotations_of(claim):
        return ClaimPlan("pending", events=[_wait_event(unscheduled_pods)])
    if claim_class(claim):
        return _plan_provision(claim, classes)
    return ClaimPlan("pending", events=[Event(NORMAL, "FailedBinding", MSG_NO_CLASS)])


def _wait_event(unscheduled_pods: list[str]) -> Event:
    if not unscheduled_pods:
        return Event(NORMAL, "WaitForFirstConsumer", MSG_WAIT_FIRST_CONSUMER)
    if len(unscheduled_pods) > 1:
        return Event(NORMAL, "WaitForPodScheduled", f"waiting for pods {','.join(unscheduled_pods)} to be scheduled")
    return Event(NORMAL, "WaitForPodScheduled", f"waiting for pod {unscheduled_pods[0]} to be scheduled")


def _plan_provision(claim: Obj, classes: dict[str, Obj]) -> ClaimPlan:
    """``provisionClaim`` for an external provisioner: the claim stays as it is (Pending)."""
    name = claim_class(claim)
    sc = classes.get(name)
    if sc is None:
        return ClaimPlan("none", events=[Event(WARNING, "ProvisioningFailed",
                                               f'storageclass.storage.k8s.io "{name}" not found')])
    provisioner = str(sc.get("provisioner") or "")
    if provisioner.startswith(_IN_TREE_PREFIX):
        # No in-tree provisioner runs here (kubernetes.io/no-provisioner among them).
        return ClaimPlan("none", events=[Event(WARNING, "ProvisioningFailed",
                                               f"no volume plugin matched name: {provisioner}")])
    return ClaimPlan("provision", provisioner=provisioner,
                     events=[Event(NORMAL, "ExternalProvisioning", external_provisioning_message(provisioner))])


def _plan_claim_naming_volume(claim: Obj, pv: Obj | None) -> ClaimPlan:
    """``syncUnboundClaim`` for a claim whose ``spec.volumeName`` names a volume."""
    if pv is None:
        return ClaimPlan("pending")
    name = meta(pv)["name"]
    if spec_of(pv).get("claimRef") is None:
        why = volume_satisfies_claim(pv, claim)
        if why:
            return ClaimPlan("pending", events=[Event(WARNING, "VolumeMismatch",
                                                      f'Cannot bind to requested volume "{name}": {why}')])
        return ClaimPlan("bind", volume=pv)
    if is_volume_bound_to_claim(pv, claim):
        return ClaimPlan("bind", volume=pv)
    event = Event(WARNING, "FailedBinding", f'volume "{name}" already bound to a different claim.')
    if ANN_BOUND_BY_CONTROLLER not in annotations_of(claim):
        return ClaimPlan("pending", events=[event])
    ref = spec_of(pv).get("claimRef") or {}
    return ClaimPlan("error", events=[event], error=(
        f'invalid binding of claim "{meta(claim).get("namespace")}/{meta(claim).get("name")}" to volume "{name}": '
        f'volume already claimed by "{ref.get("namespace")}/{ref.get("name")}"'))


def _plan_bound_claim(claim: Obj, volumes: dict[str, Obj]) -> ClaimPlan:
    """``syncBoundClaim``."""
    volume_name = str(spec_of(claim).get("volumeName") or "")
    if not volume_name:
        return ClaimPlan("lost", events=[Event(WARNING, "ClaimLost", MSG_CLAIM_LOST_REF)])
    pv = volumes.get(volume_name)
    if pv is None:
        return ClaimPlan("lost", events=[Event(WARNING, "ClaimLost", MSG_CLAIM_LOST_PV)])
    ref = spec_of(pv).get("claimRef")
    if ref is None or (isinstance(ref, dict) and ref.get("uid") == meta(claim).get("uid")):
        return ClaimPlan("bind", volume=pv)
    return ClaimPlan("lost", events=[Event(WARNING, "ClaimMisbound", MSG_MISBOUND)])


# --- volumes -------------------------------------------------------------------------------------


def plan_volume(pv: Obj, claim: Obj | None) -> VolumePlan:
    """``syncVolume``. ``claim`` is the claim ``spec.claimRef`` names, or None when there is none
    (or only one of that name with another uid: the referenced claim was deleted)."""
    ref = spec_of(pv).get("claimRef")
    if not isinstance(ref, dict):
        return VolumePlan("phase", phase="Available")
    if not ref.get("uid"):
        return VolumePlan("phase", phase="Available")  # pre-bound: the claim's sync binds it
    if claim is None:
        return VolumePlan("release", reclaim=reclaim(pv))
    name = meta(pv)["name"]
    claim_volume = str(spec_of(claim).get("volumeName") or "")
    if not claim_volume:
        if volume_mode(claim) != volume_mode(pv):
            claim_name = meta(claim).get("name")
            return VolumePlan("none", events=[
                Event(WARNING, "VolumeMismatch", f'Cannot bind PersistentVolume to requested PersistentVolumeClaim '
                      f'"{claim_name}" due to incompatible volumeMode.', on="volume"),
                Event(WARNING, "VolumeMismatch", f'Cannot bind PersistentVolume "{name}" to requested '
                      "PersistentVolumeClaim due to incompatible volumeMode.")])
        return VolumePlan("enqueue_claim")
    if claim_volume == name:
        return VolumePlan("phase", phase="Bound")
    annotations = annotations_of(pv)
    if ANN_PROVISIONED_BY in annotations and spec_of(pv).get("persistentVolumeReclaimPolicy") == "Delete":
        return VolumePlan("release", reclaim=reclaim(pv))
    return VolumePlan("unbind")


def reclaim(pv: Obj) -> Reclaim:
    """``reclaimVolume`` for a released volume, as far as this controller acts on it: Retain keeps
    the volume (and its data) Released; Delete of a volume an external provisioner made is that
    provisioner's work; with no deleter here, Delete and Recycle fail with Kubernetes' messages."""
    policy = spec_of(pv).get("persistentVolumeReclaimPolicy") or "Retain"
    name = meta(pv)["name"]
    if policy == "Retain":
        return Reclaim(failed=False)
    if policy == "Recycle":
        return Reclaim(True, "VolumeFailedRecycle", "No recycler plugin found for the volume!")
    if policy != "Delete":
        return Reclaim(True, "VolumeUnknownReclaimPolicy", "Volume has unrecognized PersistentVolumeReclaimPolicy")
    provisioner = annotations_of(pv).get(ANN_PROVISIONED_BY, "")
    if provisioner and not provisioner.startswith(_IN_TREE_PREFIX):
        return Reclaim(failed=False)
    if provisioner:
        return Reclaim(True, "VolumeFailedDelete", f"no volume plugin matched name: {provisioner}")
    # Kubernetes' hostPath deleter removes a /tmp/... directory on the controller manager's own
    # machine, which is not the node's here: such a volume gets the no-deleter message instead.
    host_path = spec_of(pv).get("hostPath")
    if isinstance(host_path, dict) and not _HOSTPATH_DELETABLE.fullmatch(str(host_path.get("path") or "")):
        return Reclaim(True, "VolumeFailedDelete",
                       f"host_path deleter only supports /tmp/.+ but received provided {host_path.get('path')}")
    return Reclaim(True, "VolumeFailedDelete",
                   f'error getting deleter volume plugin for volume "{name}": no deletable volume plugin matched')


# --- the edits of a binding ----------------------------------------------------------------------


def bind_claim(claim: Obj, volume_name: str) -> Obj | None:
    """``bindClaimToVolume``'s edit: ``volumeName`` (with ``bound-by-controller`` when the
    controller set it) and ``bind-completed``; None when both are there."""
    out = copy.deepcopy(claim)
    dirty = False
    if spec_of(claim).get("volumeName") != volume_name:
        out.setdefault("spec", {})["volumeName"] = volume_name
        if ANN_BOUND_BY_CONTROLLER not in annotations_of(claim):
            set_annotation(out, ANN_BOUND_BY_CONTROLLER, "yes")
        dirty = True
    if ANN_BIND_COMPLETED not in annotations_of(claim):
        set_annotation(out, ANN_BIND_COMPLETED, "yes")
        dirty = True
    return out if dirty else None


def claim_status(claim: Obj, phase: str, pv: Obj | None) -> Obj | None:
    """``updateClaimStatus``'s edit: the phase; with a volume its access modes, and its capacity
    when the claim becomes Bound; without one, neither. None when nothing changes."""
    out = copy.deepcopy(claim)
    status = out.setdefault("status", {})
    old = status_of(claim)
    if pv is None:
        status.pop("accessModes", None)
        status.pop("capacity", None)
    else:
        status["accessModes"] = access_modes(pv)
        if old.get("phase") != phase:
            capacity = spec_of(pv).get("capacity")
            status["capacity"] = dict(capacity) if isinstance(capacity, dict) else {}
    status["phase"] = phase
    return None if status == old else out


def unbind_volume(pv: Obj) -> Obj:
    """``unbindVolume``'s edit: the controller's binding undone; a user's pre-binding keeps its
    claim and loses only the uid."""
    out = copy.deepcopy(pv)
    annotations = annotations_of(out)
    if ANN_BOUND_BY_CONTROLLER in annotations:
        out["spec"].pop("claimRef", None)
        del annotations[ANN_BOUND_BY_CONTROLLER]
        if not annotations:
            out["metadata"].pop("annotations", None)
    else:
        out["spec"]["claimRef"]["uid"] = ""
    return out


def with_provisioner(claim: Obj, provisioner: str) -> Obj | None:
    """``setClaimProvisioner``: both storage-provisioner annotations; None when they are set."""
    annotations = annotations_of(claim)
    if annotations.get(ANN_STORAGE_PROVISIONER) == provisioner and \
            annotations.get(ANN_BETA_STORAGE_PROVISIONER) == provisioner:
        return None
    out = copy.deepcopy(claim)
    set_annotation(out, ANN_STORAGE_PROVISIONER, provisioner)
    set_annotation(out, ANN_BETA_STORAGE_PROVISIONER, provisioner)
    return out
