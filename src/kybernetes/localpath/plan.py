"""What the local-path provisioner decides, as pure functions of the objects it reads.

Each function takes API objects (dicts as the informers hold them) and returns what to do or the
object to write; none does I/O, so every decision is unit-tested without a cluster.

- `claim_to_provision`: whether a claim is ours to provision now (the PV controller has set
  `volume.kubernetes.io/storage-provisioner` to us, it is Pending, not being deleted, not bound).
- `volume_path`: where a claim's directory lives, `<root>/<pv name>_<namespace>_<claim>`, root
  being the class's `nodePath` parameter or else the node's `kybernetes.io/local-path-root`
  annotation (set by its kubelet).
- `persistent_volume`: the PV for a provisioned claim, as sig-storage-lib-external-provisioner
  writes it: named `pvc-<claim uid>`, `claimRef` to the claim, capacity = the request, the
  class's reclaim policy and mount options, a `local` source with node affinity
  `kubernetes.io/hostname In [node]`, annotation `pv.kubernetes.io/provisioned-by`.
- `volume_to_delete`: a Released PV we provisioned whose policy is Delete, with where its
  directory is (node, path).
- `helper_pod`: the short-lived pod that creates (`mkdir -m 0777 -p`) or removes (`rm -rf`) one
  directory on one node, pinned there by `nodeName`, the parent directory mounted by hostPath.
- `expansion`: for a bound claim of ours that asks for more than its PV has (and whose class
  allows expansion), the size to record, as external-resizer does (no quota on a directory).

`PlanError` carries a message for the user (the reason of a ProvisioningFailed event).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from kybernetes.api.localpath import PROVISIONER, ROOT_ANNOTATION
from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import (
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    annotations_of,
    claim_capacity,
    claim_class,
    claim_provisioner,
    claim_reference,
    storage_capacity,
    storage_request,
    volume_mode,
)

HOSTNAME_LABEL = "kubernetes.io/hostname"
NODE_PATH_PARAMETER = "nodePath"
HELPER_IMAGE = "docker.io/library/busybox:1.36"
HELPER_MOUNT = "/data"
HELPER_LABEL = "kybernetes.io/local-path-helper"

_SAFE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(_[a-z0-9]([-a-z0-9.]*[a-z0-9])?)*$")


class PlanError(Exception):
    """A claim or volume cannot be handled as asked; the message says why (for its event)."""


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def volume_name(pvc: Obj) -> str:
    """The PV name for a claim: `pvc-<uid>`, as the external provisioner names it."""
    return f"pvc-{_meta(pvc).get('uid', '')}"


def claim_to_provision(pvc: Obj, name: str = PROVISIONER) -> bool:
    """Whether the claim waits for a volume from provisioner `name`."""
    status = pvc.get("status") if isinstance(pvc.get("status"), dict) else {}
    return (claim_provisioner(pvc) == name and not _meta(pvc).get("deletionTimestamp")
            and not _spec(pvc).get("volumeName") and (status or {}).get("phase", "Pending") == "Pending")


def selected_node(pvc: Obj) -> str:
    node = annotations_of(pvc).get(ANN_SELECTED_NODE) or ""
    if not node:
        raise PlanError("configuration error, no node was specified")
    return str(node)


def check_class(pvc: Obj, sc: Obj | None, name: str = PROVISIONER) -> Obj:
    """The claim's class, checked: it exists and names this provisioner."""
    class_name = claim_class(pvc)
    if sc is None:
        raise PlanError(f'storageclass.storage.k8s.io "{class_name}" not found')
    if sc.get("provisioner") != name:
        raise PlanError(f'StorageClass "{class_name}" is provisioned by "{sc.get("provisioner")}", not "{name}"')
    if _spec(pvc).get("selector"):
        raise PlanError("claim Selector is not supported")
    if volume_mode(pvc) == "Block":
        raise PlanError("volumeMode Block is not supported")
    return sc


def volume_path(pvc: Obj, sc: Obj, node: Obj) -> str:
    """The directory of the claim's volume on `node` (absolute, normalised)."""
    params = sc.get("parameters") if isinstance(sc.get("parameters"), dict) else {}
    root = str((params or {}).get(NODE_PATH_PARAMETER) or annotations_of(node).get(ROOT_ANNOTATION) or "")
    node_name = _meta(node).get("name", "")
    if not root:
        raise PlanError(f'no {NODE_PATH_PARAMETER} parameter in StorageClass "{_meta(sc).get("name")}" and '
                        f'no {ROOT_ANNOTATION} annotation on node "{node_name}"')
    if not posixpath.isabs(root):
        raise PlanError(f'the local-path root "{root}" of node "{node_name}" is not an absolute path')
    meta = _meta(pvc)
    return posixpath.join(posixpath.normpath(root), f"{volume_name(pvc)}_{meta.get('namespace')}_{meta.get('name')}")


def persistent_volume(pvc: Obj, sc: Obj, node: Obj, path: str, name: str = PROVISIONER) -> Obj:
    """The PV that holds the claim's directory `path` on `node`."""
    spec = _spec(pvc)
    labels = _meta(node).get("labels") or {}
    hostname = labels.get(HOSTNAME_LABEL) or _meta(node).get("name")
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    pv_spec: Obj = {
        "capacity": {"storage": size},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
        "storageClassName": _meta(sc).get("name"),
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "claimRef": claim_reference(pvc),
        "local": {"path": path},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOSTNAME_LABEL, "operator": "In", "values": [hostname]}]}]}},
    }
    if sc.get("mountOptions"):
        pv_spec["mountOptions"] = list(sc["mountOptions"])
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume_name(pvc), "annotations": {ANN_PROVISIONED_BY: name}},
            "spec": pv_spec}


@dataclass(frozen=True)
class Placement:
    """Where a provisioned volume's directory is."""

    node: str
    path: str

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.path)

    @property
    def dirname(self) -> str:
        return posixpath.basename(self.path)


def placement(pv: Obj) -> Placement:
    """The node (from the node affinity) and directory (local or hostPath) of a PV we provisioned."""
    spec = _spec(pv)
    path = str((spec.get("local") or spec.get("hostPath") or {}).get("path") or "")
    terms = ((spec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms") or []
    nodes = [v for t in terms for e in t.get("matchExpressions") or []
             if e.get("key") == HOSTNAME_LABEL and e.get("operator") == "In" for v in e.get("values") or []]
    if not path or len(nodes) != 1:
        raise PlanError(f'persistentvolume "{_meta(pv).get("name")}" has no local path with one node')
    where = Placement(nodes[0], path)
    # Only `<root>/<pv name>_<namespace>_<claim>` is ever removed: never `..`, `/`, or another name.
    name = str(_meta(pv).get("name") or "")
    if (not posixpath.isabs(path) or posixpath.normpath(path) != path or not name
            or not where.dirname.startswith(f"{name}_") or not _SAFE_NAME.match(where.dirname)):
        raise PlanError(f'persistentvolume "{name}": "{path}" is not a directory this provisioner makes')
    return where


def provisioned_by_us(pv: Obj, name: str = PROVISIONER) -> bool:
    return annotations_of(pv).get(ANN_PROVISIONED_BY) == name


def volume_to_delete(pv: Obj, name: str = PROVISIONER) -> bool:
    """A Released PV this provisioner made, whose reclaim policy is Delete: its data goes, then it."""
    status = pv.get("status") if isinstance(pv.get("status"), dict) else {}
    return (provisioned_by_us(pv, name) and (status or {}).get("phase") == "Released"
            and _spec(pv).get("persistentVolumeReclaimPolicy") == "Delete")


def helper_pod(action: str, pv_name: str, where: Placement, namespace: str, image: str = HELPER_IMAGE) -> Obj:
    """The pod that runs `action` ("create" or "delete") for `pv_name`'s directory on its node."""
    target = posixpath.join(HELPER_MOUNT, where.dirname)
    if action == "create":
        command = ["mkdir", "-m", "0777", "-p", target]
    elif action == "delete":
        command = ["rm", "-rf", target]
    else:
        raise ValueError(f"unknown helper action {action!r}")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": helper_pod_name(action, pv_name), "namespace": namespace,
                     "labels": {HELPER_LABEL: action}},
        "spec": {
            "nodeName": where.node,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "helper", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": command,
                            "volumeMounts": [{"name": "data", "mountPath": HELPER_MOUNT}]}],
            "volumes": [{"name": "data", "hostPath": {"path": where.parent, "type": "DirectoryOrCreate"}}],
        },
    }


def helper_pod_name(action: str, pv_name: str) -> str:
    return f"helper-pod-{action}-{pv_name}"[:253]


def requested_size(pvc: Obj) -> str | None:
    return ((_spec(pvc).get("resources") or {}).get("requests") or {}).get("storage")


def expansion(pvc: Obj, pv: Obj | None, sc: Obj | None, name: str = PROVISIONER) -> str | None:
    """The size to grow to when `pvc` (bound to `pv`) asks for more than is recorded; None when
    there is nothing to do: the claim is not bound to a PV of ours, its class does not allow
    expansion, or the PV and the claim's status already have the size asked for."""
    status = pvc.get("status") if isinstance(pvc.get("status"), dict) else {}
    if (pv is None or sc is None or not provisioned_by_us(pv, name) or not sc.get("allowVolumeExpansion")
            or (status or {}).get("phase") != "Bound" or _spec(pvc).get("volumeName") != _meta(pv).get("name")):
        return None
    wanted = requested_size(pvc)
    if wanted is None or "storage" not in (_spec(pv).get("capacity") or {}):
        return None
    want, have_claim = storage_request(pvc), claim_capacity(pvc)
    if want > storage_capacity(pv) or (have_claim is not None and have_claim < want):
        return str(wanted)
    return None  # (a claim without status.capacity is the binder's to finish binding first)


__all__ = [
    "ANN_PROVISIONED_BY",
    "ANN_SELECTED_NODE",
    "ANN_STORAGE_PROVISIONER",
    "HELPER_IMAGE",
    "Placement",
    "PlanError",
    "check_class",
    "claim_provisioner",
    "claim_to_provision",
    "expansion",
    "helper_pod",
    "helper_pod_name",
    "persistent_volume",
    "placement",
    "provisioned_by_us",
    "requested_size",
    "selected_node",
    "volume_name",
    "volume_path",
    "volume_to_delete",
]
