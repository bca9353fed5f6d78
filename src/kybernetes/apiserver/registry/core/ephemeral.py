"""Ephemeral containers: what ``pods/NAME/ephemeralcontainers`` may write, and their validation.

Kubernetes' ``podEphemeralContainersStrategy`` (``pkg/registry/core/pod/strategy.go``) and the
rules of ``pkg/apis/core/validation`` that concern them:

- a write through the subresource takes only ``spec.ephemeralContainers`` from the request;
  everything else is the stored pod's (:func:`take_ephemeral_containers`,
  ``dropNonEphemeralContainerUpdates``);
- ephemeral containers may only be added: an existing one removed or changed is refused with
  ``ValidatePodEphemeralContainersUpdate``'s words (:func:`validate_ephemeral_containers_update`),
  and a static pod's mirror takes none (:func:`mirror_pod_refusal`);
- each one is a container (``validateContainerCommon``) with a name unique across all of the
  pod's containers, a ``targetContainerName`` naming one of its regular or init containers, none
  of the fields an ephemeral container may not have (ports, resources, probes, lifecycle,
  resizePolicy, restartPolicy), and no ``subPath``/``subPathExpr`` mounts
  (:func:`validate_ephemeral_containers`, ``validateEphemeralContainers``);
- a pod may not be created with any (:func:`validate_none_on_create`, ``ValidatePodCreate``).

A plain update of the pod that touches ``spec.ephemeralContainers`` stays refused by the pod's
own update rules (:func:`kybernetes.apiserver.registry.core.pods.validate_pod_spec_update`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list
from kybernetes.apiserver.registry.core.podvalidation import validate_container_common
from kybernetes.apiserver.registry.strategy import Obj, semantic_equal

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
NOT_ALLOWED = "cannot be set for an Ephemeral Container"

# The fields of EphemeralContainerCommon not in Kubernetes' allowedEphemeralContainerFields, in
# the Go struct's order (the order of the errors).
_DISALLOWED_FIELDS = ("ports", "resources", "resizePolicy", "restartPolicy", "livenessProbe",
                      "readinessProbe", "startupProbe", "lifecycle")


def take_ephemeral_containers(new: Obj, old: Obj) -> None:
    """Turn ``new`` (the request's pod) into the stored ``old`` with only the request's
    ``spec.ephemeralContainers``; nothing else a client sends this way is written."""
    wanted = as_dict(new.get("spec")).get("ephemeralContainers")
    new.clear()
    new.update(copy.deepcopy(old))
    spec = new.setdefault("spec", {})
    if wanted is None:
        spec.pop("ephemeralContainers", None)
    else:
        spec["ephemeralContainers"] = copy.deepcopy(wanted)


def validate_none_on_create(spec: dict[str, Any], path: Path) -> list[FieldError]:
    """A new pod has no ephemeral containers: they are only ever added to a running pod."""
    if as_list(spec.get("ephemeralContainers")):
        return [v.forbidden(path.child("ephemeralContainers"), "cannot be set on create")]
    return []


def validate_ephemeral_containers(spec: dict[str, Any], path: Path) -> list[FieldError]:
    """``validateEphemeralContainers`` over ``spec.ephemeralContainers`` (``path``: the spec's)."""
    ephemeral = as_list(spec.get("ephemeralContainers"))
    if not ephemeral:
        return []
    others = {str(c.get("name") or "") for field in ("containers", "initContainers")
              for c in as_list(spec.get(field)) if isinstance(c, dict)}
    all_names = set(others)
    volumes = {str(vol.get("name")) for vol in as_list(spec.get("volumes")) if isinstance(vol, dict)}
    errs: list[FieldError] = []
    for i, ec in enumerate(ephemeral):
        p = path.child("ephemeralContainers").index(i)
        if not isinstance(ec, dict):
            errs.append(v.type_invalid(p, ec, "must be an object"))
            continue
        errs.extend(validate_container_common(ec, volumes, p))
        image = ec.get("image")
        if isinstance(image, str) and image != image.strip():
            errs.append(v.invalid(p.child("image"), image, "must not have leading or trailing whitespace"))
        name = str(ec.get("name") or "")
        if name in all_names:
            errs.append(v.duplicate(p.child("name"), name))
        else:
            all_names.add(name)  # an empty one too, as Kubernetes: a second unnamed one is a duplicate
        target = ec.get("targetContainerName")
        if target and target not in others:
            errs.append(v.not_found(p.child("targetContainerName"), target))
        errs.extend(v.forbidden(p.child(field), NOT_ALLOWED) for field in _DISALLOWED_FIELDS if _is_set(ec, field))
        for j, mount in enumerate(as_list(ec.get("volumeMounts"))):
            for sub in ("subPath", "subPathExpr"):
                if as_dict(mount).get(sub):
                    errs.append(v.forbidden(p.child("volumeMounts").index(j).child(sub), NOT_ALLOWED))
    return errs


def _is_set(container: dict[str, Any], field: str) -> bool:
    """Whether ``field`` differs from its Go zero value (a struct is zero when all its fields are;
    an empty list or map is not nil, so it counts as set)."""
    value = container.get(field)
    if field == "resources":
        return any(x is not None for x in as_dict(value).values())
    return value is not None


def mirror_pod_refusal(old: Obj) -> list[FieldError]:
    """A static pod's mirror takes no ephemeral container (the kubelet runs the static pod from
    its file, not from the API). Kubernetes reports it at ``field.NewPath("")``, which prints as
    ``[]``."""
    if MIRROR_ANNOTATION in as_dict(as_dict(old.get("metadata")).get("annotations")):
        return [v.forbidden("[]", "static pods do not support ephemeral containers")]
    return []


def validate_ephemeral_containers_update(new: Obj, old: Obj) -> list[FieldError]:
    """The part of ``ValidatePodEphemeralContainersUpdate`` about the change itself: existing
    ephemeral containers may be neither removed nor changed (matched by name, since a patch does
    not keep their order)."""
    path = Path("spec", "ephemeralContainers")
    by_name = {c.get("name"): c for c in as_list(as_dict(new.get("spec")).get("ephemeralContainers"))
               if isinstance(c, dict)}
    errs: list[FieldError] = []
    for before in as_list(as_dict(old.get("spec")).get("ephemeralContainers")):
        name = as_dict(before).get("name")
        after = by_name.get(name)
        if after is None:
            errs.append(v.forbidden(path, f"existing ephemeral containers {json.dumps(name)} may not be removed\n"))
        elif not semantic_equal(before, after):
            errs.append(v.forbidden(path, f"existing ephemeral containers {json.dumps(name)} may not be changed\n"
                                          + _diff(before, after)))
    return errs


def _diff(before: Any, after: Any) -> str:
    """A line diff of the two containers' JSON, standing in for the Go ``cmp.Diff`` Kubernetes
    appends (its exact text depends on Go's types and cannot be reproduced)."""
    import difflib

    a = json.dumps(before, indent=2, sort_keys=True).splitlines()
    b = json.dumps(after, indent=2, sort_keys=True).splitlines()
    return "\n".join(line for line in difflib.ndiff(a, b) if line[:1] in "-+ ") + "\n"
